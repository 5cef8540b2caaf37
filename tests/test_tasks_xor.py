"""Tests of the delayed temporal XOR / delayed copy task (gradsim.training.tasks.delayed_xor).

The targets are checked against a direct loop over the definition y_t = XOR_j x_{t - j d}
(x_t = 0 for t < 0), and the memoryless baseline (T - d) log 2 / T against Monte Carlo: the
best predictor that sees the step t and the current bit x_t predicts the empirical distribution
of y_t given (t, x_t), whose cross-entropy on fresh draws estimates H(y_t | t, x_t).

Monte Carlo tolerances. The plug-in estimate of the entropy of a fair bit from m draws has bias
-1/(2m) to first order (Miller 1955) and a spread of O(1/m) (the first-order term vanishes at
p = 1/2); a sample proportion of m fair bits has sd 1/(2 sqrt m), and we allow 5 sd (probability
6e-7 per check). Seeds are fixed, so the tests are deterministic; the bounds say why they pass.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import gradsim.training.tasks as tk


def exact(message):
    return "^" + re.escape(message) + "$"


def reference_targets(bits, delay, n_bits):
    """y[b, t] = XOR over j = 1..n_bits of bits[b, t - j delay] (0 before the sequence)."""
    batch, T = bits.shape
    out = np.zeros((batch, T), dtype=np.int64)
    for b in range(batch):
        for t in range(T):
            value = 0
            for j in range(1, n_bits + 1):
                if t - j * delay >= 0:
                    value ^= int(bits[b, t - j * delay])
            out[b, t] = value
    return out


@pytest.mark.parametrize("T, delay, n_bits", [(9, 2, 2), (30, 7, 2), (13, 3, 1), (40, 4, 4), (5, 1, 4)])
def test_structure_and_targets_exactly_the_definition(T, delay, n_bits):
    task = tk.delayed_xor(T, delay, n_bits=n_bits)
    inputs, targets = task.sample(64, rng=3)
    assert inputs.shape == (64, T, 1) and targets.shape == (64, T)
    assert inputs.dtype == np.float64 and targets.dtype == np.int64
    assert (task.readout, task.loss, task.n_input, task.n_output, task.length, task.T) == (
        "sequence", "xent", 1, 2, T, T)
    assert task.name == ("delayed_copy" if n_bits == 1 else "xor")
    assert np.all((inputs == 0.0) | (inputs == 1.0))
    bits = inputs[..., 0].astype(np.int64)
    assert np.array_equal(targets, reference_targets(bits, delay, n_bits))


def test_xor_is_the_xor_of_the_inputs_d_and_2d_back():
    # The paper's task (n_bits = 2), written out without the general parity.
    T, d = 50, 6
    inputs, targets = tk.delayed_xor(T, d).sample(200, rng=4)
    x = inputs[..., 0].astype(np.int64)
    assert np.array_equal(targets[:, 2 * d:], x[:, d:T - d] ^ x[:, :T - 2 * d])
    assert np.array_equal(targets[:, d:2 * d], x[:, :d])  # only x_{t-d} exists yet
    assert not targets[:, :d].any()


def test_make_task_builds_xor_with_and_without_delay():
    a = tk.make_task("xor", 60, delay=12)
    b = tk.delayed_xor(60, 12)
    xa, ya = a.sample(8, rng=5)
    xb, yb = b.sample(8, rng=5)
    assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    assert a.baseline == b.baseline == 48 * math.log(2) / 60
    # Default delay T // (n_bits + 1): the last third of the sequence needs the whole horizon.
    inputs, targets = tk.make_task("xor", 12).sample(4, rng=6)
    x = inputs[..., 0].astype(np.int64)
    assert np.array_equal(targets, reference_targets(x, 4, 2))
    assert "xor" in tk.TASK_KINDS


@pytest.mark.parametrize("T, delay, n_bits", [(24, 5, 2), (20, 6, 1), (25, 2, 4)])
def test_baseline_by_monte_carlo(T, delay, n_bits):
    task = tk.delayed_xor(T, delay, n_bits=n_bits)
    n = 100_000
    inputs, targets = task.sample(n, rng=7)
    x = inputs[..., 0].astype(np.int64)
    # The best memoryless predictor: p(y_t = 1 | t, x_t) fitted on the first half, scored by
    # cross-entropy on the second half (probabilities clipped away from 0 to keep the deterministic
    # first steps finite: a clip of 1e-12 costs at most 1e-12 per step there).
    fit, test = slice(0, n // 2), slice(n // 2, n)
    loss = 0.0
    for t in range(T):
        for value in (0, 1):
            p = targets[fit][x[fit, t] == value, t].mean()
            p = min(max(p, 1e-12), 1 - 1e-12)
            y = targets[test][x[test, t] == value, t]
            loss += -(np.sum(y * math.log(p) + (1 - y) * math.log(1 - p)))
    loss /= (n - n // 2) * T
    # Bias and spread of a fitted-then-tested fair bit: each (t, value) cell has m ~ n / 4 draws
    # on either side; the out-of-sample excess is (p_fit - 1/2)^2 * 2 ~ 1/(2 m) = 2e-5 per step,
    # and its spread is of the same order; 2e-4 covers both with a factor 10.
    assert abs(loss - task.baseline) < 2e-4
    assert task.baseline == tk.delayed_xor_baseline(T, delay) == (T - delay) * math.log(2) / T
    # Targets after the first delay are fair bits: per-step proportions within 5 sd.
    rates = targets[:, delay:].mean(axis=0)
    assert np.all(np.abs(rates - 0.5) < 5 * 0.5 / math.sqrt(n))
    # ... and independent of the current input: the XOR of target and input is fair too.
    rates = (targets[:, delay:] ^ x[:, delay:]).mean(axis=0)
    assert np.all(np.abs(rates - 0.5) < 5 * 0.5 / math.sqrt(n))
    assert not targets[:, :delay].any()


def test_seeded_and_global_state_untouched():
    task = tk.delayed_xor(20, 3)
    before = np.random.get_state()[1].copy()
    a = task.sample(5, rng=11)
    b = task.sample(5, rng=np.random.default_rng(11))
    c = task.sample(5, rng=12)
    assert np.array_equal(np.random.get_state()[1], before)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_bad_input():
    with pytest.raises(ValueError, match=exact(
            "`T` must exceed n_bits * delay = 20 (at least one step whose target needs the whole "
            "horizon); got 20.")):
        tk.delayed_xor(20, 10)
    with pytest.raises(ValueError, match=exact("`delay` must be an integer >= 1; got 0.")):
        tk.delayed_xor(20, 0)
    with pytest.raises(TypeError, match=exact("`delay` must be an integer >= 1; got 2.5.")):
        tk.delayed_xor(20, 2.5)
    with pytest.raises(ValueError, match=exact("`n_bits` must be an integer >= 1; got 0.")):
        tk.delayed_xor(20, 2, n_bits=0)
    with pytest.raises(ValueError, match=exact("`T` must be an integer >= 1; got 0.")):
        tk.delayed_xor(0, 1)
    with pytest.raises(ValueError, match=exact("`delay` must be smaller than T = 5; got 5.")):
        tk.delayed_xor_baseline(5, 5)
    with pytest.raises(ValueError, match=exact(
            "`T` must exceed n_bits * delay = 2 (at least one step whose target needs the whole "
            "horizon); got 2.")):
        tk.make_task("xor", 2)
