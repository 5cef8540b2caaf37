"""Tests of the task generators: structure of the batches, seeding, and the exact trivial
baselines (THEORY.md section 11) against Monte Carlo estimates.

Monte Carlo tolerances. A sample mean of n iid draws with standard deviation sd is within
5 sd / sqrt(n) of its expectation except with probability 6e-7; every test states its sd. The
entropy baselines are estimated by the plug-in entropy of empirical class frequencies, whose
bias is -(K - 1) / (2 n) to first order (Miller 1955) and whose spread at the uniform
distribution is O(1/n) (the first-order term vanishes there); for a non-uniform distribution
the spread is sqrt(Var(log p(Y)) / n). The seeds are fixed, so the tests are deterministic;
the bounds say why they pass for any seed.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import gradsim.training.tasks as tk
from gradsim.theory import adding_problem_baseline_mse, copy_task_baseline


def exact(message):
    return "^" + re.escape(message) + "$"


def plug_in_entropy(labels, n_classes):
    """Entropy (nats) of the empirical distribution of ``labels`` along axis 0, per column."""
    counts = np.stack([(labels == k).sum(axis=0) for k in range(n_classes)])
    p = counts / labels.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=0)


# ------------------------------------------------------------------------------------------
# the adding problem
def test_adding_problem_structure():
    task = tk.adding_problem(11)
    inputs, targets = task.sample(500, rng=0)
    assert inputs.shape == (500, 11, 2) and targets.shape == (500, 1)
    assert inputs.dtype == np.float64 and targets.dtype == np.float64
    assert (task.readout, task.loss, task.n_input, task.n_output, task.length) == ("last", "mse", 2, 1, 11)
    values, markers = inputs[..., 0], inputs[..., 1]
    assert np.all((values >= 0) & (values < 1))
    # exactly one marker in the first half [0, 5) and one in the second half [5, 11)
    assert np.array_equal(markers[:, :5].sum(axis=1), np.ones(500))
    assert np.array_equal(markers[:, 5:].sum(axis=1), np.ones(500))
    # the target is the sum of the two marked values (the same floating-point sum)
    marked = np.where(markers == 1.0, values, 0.0)
    np.testing.assert_allclose(targets[:, 0], marked.sum(axis=1), rtol=0, atol=4e-16)


def test_adding_problem_baseline_by_monte_carlo():
    # Y - 1 is the sum of two independent U(-1/2, 1/2): triangular on (-1, 1), so
    # E (Y - 1)^2 = 1/6 and E (Y - 1)^4 = 1/15: sd of (Y - 1)^2 = sqrt(1/15 - 1/36) = 0.197.
    n = 200_000
    _, targets = tk.adding_problem(20).sample(n, rng=1)
    mse_of_mean = np.mean((targets - 1.0) ** 2)
    sd = math.sqrt(1 / 15 - 1 / 36)
    assert abs(mse_of_mean - adding_problem_baseline_mse()) < 5 * sd / math.sqrt(n)
    assert tk.adding_problem(20).baseline == 1 / 6
    # The best constant is the mean, E Y = 1 (sd of Y is sqrt(1/6)).
    assert abs(targets.mean() - 1.0) < 5 * math.sqrt(1 / 6) / math.sqrt(n)


# ------------------------------------------------------------------------------------------
# the copy task
def test_copy_task_structure():
    task = tk.copy_task(7, n_symbols=4, n_copy=3)
    inputs, targets = task.sample(50, rng=2)
    assert task.length == 7 + 6 and inputs.shape == (50, 13, 6) and targets.shape == (50, 13)
    assert targets.dtype == np.int64 and task.n_output == 5 and task.readout == "sequence"
    tokens = inputs.argmax(axis=-1)
    assert np.array_equal(inputs.sum(axis=-1), np.ones((50, 13)))  # one-hot
    symbols = tokens[:, :3]
    assert np.all((symbols >= 1) & (symbols <= 4))
    assert np.all(tokens[:, 3:9] == 0)  # T - 1 = 6 blanks
    assert np.all(tokens[:, 9] == 5)  # the delimiter
    assert np.all(tokens[:, 10:] == 0)
    assert np.all(targets[:, :10] == 0)
    assert np.array_equal(targets[:, 10:], symbols)


@pytest.mark.parametrize("T", [1, 30, 100])
def test_copy_task_baseline_by_monte_carlo(T):
    # The best memoryless predictor is the per-step marginal of the target; its mean
    # cross-entropy is the mean over steps of the marginal's entropy. Plug-in estimate from
    # n = 10 000 sequences: blank steps give exactly 0, each symbol step log 8 - bias with
    # bias 7 / (2 n) = 3.5e-4 and spread O(1/n); 1e-3 (absolute, per symbol step) covers both.
    task = tk.copy_task(T)
    _, targets = task.sample(10_000, rng=3)
    estimate = plug_in_entropy(targets, task.n_output).mean()
    assert task.baseline == copy_task_baseline(T) == 10 * math.log(8) / (T + 20)
    assert abs(estimate - task.baseline) < 1e-3 * 10 / (T + 20)


# ------------------------------------------------------------------------------------------
# next-symbol prediction on a periodic sequence
def test_periodic_sequence_abc():
    task = tk.periodic_sequence(8)  # "A B C A B C A B -> what comes next?"
    inputs, targets = task.sample(300, rng=4)
    assert inputs.shape == (300, 8, 3) and targets.shape == (300, 8)
    current = inputs.argmax(axis=-1)
    # the next symbol of A B C is (current + 1) mod 3, and the target at t is the input at t + 1
    assert np.array_equal(targets, (current + 1) % 3)
    assert np.array_equal(targets[:, :-1], current[:, 1:])
    # every phase occurs
    assert set(current[:, 0]) == {0, 1, 2}


@pytest.mark.parametrize("pattern", ["ABC", "AAB", "ABCB"])
def test_periodic_baseline_by_monte_carlo(pattern):
    # Marginal of the target at every step = symbol frequencies of one period. Plug-in
    # estimate over n = 60 000 sequences: sd <= sqrt(Var log p / n) <= 0.5 / sqrt(n) = 2e-3 per
    # step for these patterns, and the mean over 6 steps of 6 correlated estimates is no
    # worse; bias <= 2 / (2 n). 5 sd = 0.01.
    task = tk.periodic_sequence(6, pattern)
    _, targets = task.sample(60_000, rng=5)
    counts = np.array([pattern.count(a) for a in sorted(set(pattern))]) / len(pattern)
    exact_entropy = -np.sum(counts * np.log(counts))
    assert task.baseline == pytest.approx(exact_entropy, rel=1e-15)
    assert abs(plug_in_entropy(targets, task.n_output).mean() - task.baseline) < 0.01
    if pattern == "ABC":
        assert task.baseline == pytest.approx(math.log(3), rel=1e-15)


# ------------------------------------------------------------------------------------------
# long-gap recall: "Yesterday it was Sunday, so today it must be ..."
def test_long_gap_recall_structure():
    task = tk.long_gap_recall(9)
    inputs, targets = task.sample(400, rng=6)
    assert inputs.shape == (400, 9, 7 + 8 + 1) and targets.shape == (400,)
    tokens = inputs.argmax(axis=-1)
    key = tokens[:, 0]
    assert np.all(key < 7)
    assert np.all((tokens[:, 1:-1] >= 7) & (tokens[:, 1:-1] < 15))  # fillers only
    assert np.all(tokens[:, -1] == 15)  # the query
    assert np.array_equal(targets, (key + 1) % 7)  # the day after
    # Sunday (key 6) -> Monday (0)
    assert set(targets[key == 6]) == {0}


def test_long_gap_recall_baseline_by_monte_carlo():
    # The target is uniform over 7 keys and independent of everything after step 0. Plug-in
    # entropy over n = 50 000: bias 6 / (2 n) = 6e-5, spread O(1/n); 1e-3 is 10x that.
    task = tk.long_gap_recall(30)
    inputs, targets = task.sample(50_000, rng=7)
    assert task.baseline == math.log(7)
    assert abs(plug_in_entropy(targets[:, None], 7)[0] - math.log(7)) < 1e-3
    # Independence of the last filler: the target's distribution given the filler at step T - 2
    # is uniform too (each of 8 groups has ~6 250 draws: bias 6 / 12 500 = 5e-4; 3e-3 covers it
    # and the spread).
    filler = inputs[:, -2].argmax(axis=-1)
    for value in np.unique(filler):
        group = targets[filler == value]
        assert abs(plug_in_entropy(group[:, None], 7)[0] - math.log(7)) < 3e-3


# ------------------------------------------------------------------------------------------
# seeding and validation
@pytest.mark.parametrize("kind", tk.TASK_KINDS)
def test_tasks_are_seeded_and_leave_global_state_alone(kind):
    task = tk.make_task(kind, 12)
    before = np.random.get_state()[1].copy()
    a = task.sample(5, rng=11)
    b = task.sample(5, rng=np.random.default_rng(11))
    c = task.sample(5, rng=12)
    assert np.array_equal(np.random.get_state()[1], before)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_task_argument_errors():
    with pytest.raises(ValueError, match=exact("`T` must be an integer >= 2; got 1.")):
        tk.adding_problem(1)
    with pytest.raises(TypeError, match=exact("`T` must be an integer >= 1; got 2.5.")):
        tk.copy_task(2.5)
    with pytest.raises(ValueError, match=exact("`pattern` must be a non-empty string; got ''.")):
        tk.periodic_sequence(5, "")
    with pytest.raises(ValueError, match=exact("`n_keys` must be an integer >= 2; got 1.")):
        tk.long_gap_recall(5, n_keys=1)
    with pytest.raises(ValueError, match=r"^`kind` must be one of 'adding', 'copy', 'periodic', "):
        tk.make_task("add", 5)
    with pytest.raises(ValueError, match=exact("`batch_size` must be an integer >= 1; got 0.")):
        tk.adding_problem(4).sample(0, rng=0)
    with pytest.raises(TypeError, match=r"^`rng` must be None, a non-negative int seed"):
        tk.adding_problem(4).sample(2, rng="seed")
