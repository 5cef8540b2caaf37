"""Local (finite-time) Lyapunov exponents: ``lyapunov_spectrum(..., local_steps=L)``.

Each test checks them against something computed independently of the QR planner:

- a brute-force reference (dense ``cell.jacobian`` at the states of ``gs.unroll``, a numpy
  Householder QR after every step, log|R_ii| summed over each window);
- the exponents themselves (a window's length-weighted mean), one window covering the run;
- an ensemble member against its lone run;
- a diagonal linear RNN, whose every local exponent is log|d_i| exactly.

Tolerances:

- ``CONTRACT = 3e-8`` (brute force). ``lyapunov_spectrum`` promises 1e-8 relative accuracy in
  every R_ii per QR, i.e. 1e-8 in each log|R_ii| (its docstring); the window edges are read by
  Householder R within the same limit. A window of ``n`` steps sums at most ``n`` QRs (one per
  step at most) and its two edge reads, so its local exponent is within (n + 2) * 1e-8 / n
  <= 3e-8 of the truth. The reference's own rounding (one Householder QR per step of a
  well-conditioned product) is ~1e-15 per step, negligible. A wrong window edge or column order
  moves a local exponent by its fluctuation, O(0.01 - 1). Observed: <= 6e-10 (one step of the
  tanh RNN, whose per-step values depend on the frame's rounding within near-degenerate
  directions), <= 3e-12 for the rate network.
- Mean against exponents: the exponents and the windows credit the same QR growths; they differ
  by the reads at the two ends of the run (interior reads cancel), plus the rounding of summing
  the windows. The exponents' end reads are the block edges' Cholesky reads (``frame.peek``),
  whose error is ~eps times the square of the column-scaled frame's condition number, measured
  up to 7e-7 in log R_kk near their limit (more than the 1e-8 their docstring states), so
  ``PEEK = 1e-6`` per read: 2 * PEEK / n_steps. Observed: <= 1e-11.
- Ensembles: ``RTOL = 1e-12`` relative to the lone run's scale, as tests/test_ensembles.py
  (same operations, same QR schedule; only a differently ordered BLAS sum).
- Diagonal linear RNN: 1e-14. The frame stays diagonal, so every QR and read is exact up to the
  rounding of the products d_i^m (m <= 64 steps between QRs, 1 ulp each) and of the logarithms
  of growths below 32 nats (|log d_i| <= 0.5): a few 1e-15. Observed: 3e-15.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import gradsim as gs

CONTRACT = 3 * 1e-8  # see the module docstring
PEEK = 1e-6  # a block edge's read (frame.peek), see the module docstring
RTOL = 1e-12
EPS = float(np.finfo(np.float64).eps)
T = 300
WARMUP = 17  # 283 measured steps: windows of 7 leave a last window of 3


def _brute_logs(cell, n_steps, warmup, x=None, start=None):
    """log|R_ii| of a QR after every step, (n_steps - warmup, k), in the frame's column order."""
    states = gs.unroll(cell, x if x is not None else n_steps)
    q = np.eye(cell.state_size) if start is None else start
    logs = np.empty((n_steps, q.shape[1]))
    for t in range(n_steps):
        jac = cell.jacobian(states[t], None if x is None else x[t])
        q, r = np.linalg.qr(jac @ q)
        logs[t] = np.log(np.abs(np.diagonal(r)))
    return logs[warmup:]


def _windows(logs, steps):
    """Per-step growth over consecutive windows of ``steps`` rows (the last may be shorter)."""
    edges = list(range(0, len(logs), steps)) + [len(logs)]
    return np.array([logs[a:b].sum(axis=0) / (b - a) for a, b in zip(edges[:-1], edges[1:])])


def _tanh_rnn():
    rng = np.random.default_rng(11)
    return gs.RNN(gs.gaussian(8, 1.6, rng=rng), weight_ih=rng.standard_normal((8, 2)) * 0.5)


def _rate_rk4():
    return gs.make_cell("rate", 10, 0, gain=2.0, dt=0.1, integrator="rk4", zero_diagonal=True, rng=2)


CELLS = {"tanh-rnn": _tanh_rnn, "rate-rk4": _rate_rk4}


@pytest.mark.parametrize("steps", [1, 7, T])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_local_exponents_equal_a_qr_every_step(name, steps):
    cell = CELLS[name]()
    x = np.random.default_rng(5).standard_normal((T, cell.n_input)) if cell.n_input else None
    result = gs.lyapunov_spectrum(cell, x if x is not None else T, warmup=WARMUP, local_steps=steps)
    logs = _brute_logs(cell, T, WARMUP, x)
    # Columns in descending order of the reference's own averages (distinct for these networks).
    logs = logs[:, np.argsort(-logs.mean(axis=0), kind="stable")]
    reference = _windows(logs, steps)
    lengths = np.diff(list(range(0, T - WARMUP, steps)) + [T - WARMUP])
    assert np.array_equal(result.local_lengths, lengths)
    assert result.local_lengths.dtype.kind == "i"
    assert result.local_exponents.shape == (len(lengths), cell.state_size)
    np.testing.assert_allclose(result.local_exponents, reference, rtol=0, atol=CONTRACT)
    # The exponents themselves, against the same reference.
    np.testing.assert_allclose(result.exponents, logs.mean(axis=0), rtol=0, atol=CONTRACT)


def test_local_exponents_of_a_thin_frame_equal_a_qr_every_step():
    # k <= P / 4: the thin-frame kernels (stacked QRs at powers-of-two intervals). The starting
    # frame is the one the docstring names: Haar-random from seed rng = 0.
    cell = gs.RNN(gs.gaussian(12, 1.8, rng=3))
    k = 3
    start = np.linalg.qr(np.random.default_rng(0).standard_normal((12, k)))[0]
    result = gs.lyapunov_spectrum(cell, T, k=k, warmup=WARMUP, local_steps=1)
    logs = _brute_logs(cell, T, WARMUP, start=start)
    logs = logs[:, np.argsort(-logs.mean(axis=0), kind="stable")]
    np.testing.assert_allclose(result.local_exponents, logs, rtol=0, atol=CONTRACT)


@pytest.mark.parametrize("steps", [1, 5, 7, T])
def test_window_edges_that_force_a_qr(steps):
    # Time-varying Jacobians: a calm regime (no alignment, so the planner spaces QRs widely)
    # whose QR blocks run into an aligning one (loss 2.8 nats per step). The frame outgrows the
    # reads within a block: block and window edges force QRs (the blocks then change at rounding
    # level), and planned blocks are redone step by step.
    calm = gs.RNN(np.diag([1.01, 0.99]), activation="linear")
    wild = gs.RNN(np.array([[4.0, 1.0], [0.0, 0.25]]), activation="linear")

    def cells(t):
        return calm if (t // 150) % 2 == 0 else wild

    q, logs = np.eye(2), np.empty((T, 2))
    for t in range(T):
        q, r = np.linalg.qr(cells(t).jacobian(np.zeros(2)) @ q)
        logs[t] = np.log(np.abs(np.diagonal(r)))
    plain = gs.lyapunov_spectrum(cells, T)
    result = gs.lyapunov_spectrum(cells, T, local_steps=steps)
    reference = _windows(logs, steps)[:, np.argsort(-logs.mean(axis=0), kind="stable")]
    np.testing.assert_allclose(result.local_exponents, reference, rtol=0, atol=CONTRACT)
    np.testing.assert_allclose(result.exponents, plain.exponents, rtol=0, atol=CONTRACT)
    np.testing.assert_allclose(result.block_exponents, plain.block_exponents, rtol=0, atol=CONTRACT)


def test_start_growths_are_the_log_diagonal_of_the_frames_r():
    # The correction for a frame left orthonormal only to rounding: Q = Q' S, log|S_ii|.
    from types import SimpleNamespace

    from gradsim.numeric.spectrum import _start_growths

    rng = np.random.default_rng(4)
    q = np.linalg.qr(rng.standard_normal((3, 6, 4)))[0] @ (np.eye(4) + 1e-6 * np.triu(rng.standard_normal((4, 4))))
    expected = [np.log(np.abs(np.diagonal(np.linalg.qr(m)[1]))) for m in q]
    got = _start_growths(SimpleNamespace(frame=q), (np.array([0, 2]),), 2)
    np.testing.assert_allclose(got, [expected[0], expected[2]], rtol=0, atol=16 * EPS)
    assert np.max(np.abs(expected)) > 1e-7  # the correction is not trivially zero here
    one = _start_growths(SimpleNamespace(frame=q[1]), (), 1)
    np.testing.assert_allclose(one, [expected[1]], rtol=0, atol=16 * EPS)


@pytest.mark.parametrize("steps", [1, 7, 50])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_length_weighted_mean_of_local_exponents_is_the_exponents(name, steps):
    cell = CELLS[name]()
    result = gs.lyapunov_spectrum(cell, T, warmup=WARMUP, local_steps=steps)
    sums = result.local_exponents * result.local_lengths[:, None]
    tol = (2 * PEEK + len(sums) * EPS * np.abs(sums).sum(axis=0).max()) / result.n_steps
    assert result.local_lengths.sum() == result.n_steps
    np.testing.assert_allclose(sums.sum(axis=0) / result.n_steps, result.exponents, rtol=0, atol=tol)


@pytest.mark.parametrize("steps", [T - WARMUP, T - WARMUP + 1, 10**6])
def test_one_window_covering_the_run_is_the_exponents(steps):
    cell = _rate_rk4()
    result = gs.lyapunov_spectrum(cell, T, warmup=WARMUP, local_steps=steps)
    assert np.array_equal(result.local_lengths, [T - WARMUP])
    assert result.local_exponents.shape == (1, cell.state_size)
    np.testing.assert_allclose(
        result.local_exponents[0], result.exponents, rtol=0, atol=2 * PEEK / result.n_steps + 8 * EPS
    )


@pytest.mark.parametrize("kind, k, opts", [
    ("rate", None, {"gain": 2.0, "dt": 0.1, "integrator": "rk4", "zero_diagonal": True}),
    ("rnn", None, {"gain": 1.5, "bias_std": 0.2}),
    ("rnn", 2, {"gain": 1.8}),  # thin frames (k <= P / 4 with P = 9)
], ids=["rate-rk4", "rnn", "rnn-thin"])
@pytest.mark.parametrize("steps", [1, 7])
def test_ensemble_member_local_exponents_equal_its_lone_run(kind, k, opts, steps):
    ens = gs.make_cell(kind, 9, 2, ensemble=3, rng=8, **opts)
    x = np.random.default_rng(9).standard_normal((3, 200, 2))
    together = gs.lyapunov_spectrum(ens, x, k=k, warmup=10, local_steps=steps)
    assert together.local_exponents.shape[:2] == (len(together.local_lengths), 3)
    for i in range(3):
        alone = gs.lyapunov_spectrum(ens[i], x[i], k=k, warmup=10, local_steps=steps)
        assert np.array_equal(together.local_lengths, alone.local_lengths)
        scale = float(np.max(np.abs(alone.local_exponents)))
        np.testing.assert_allclose(together.local_exponents[:, i], alone.local_exponents, rtol=0,
                                   atol=RTOL * scale)


@pytest.mark.parametrize("steps", [1, 7, T])
def test_diagonal_linear_rnn_has_log_d_in_every_window(steps):
    d = np.array([1.5, -1.2, 0.9, 0.7, -0.62, 1.05])  # |log d_i| <= 0.5
    cell = gs.RNN(np.diag(d), activation="linear")
    result = gs.lyapunov_spectrum(cell, T, local_steps=steps)
    expected = np.sort(np.log(np.abs(d)))[::-1]
    np.testing.assert_allclose(
        result.local_exponents, np.broadcast_to(expected, result.local_exponents.shape), rtol=0, atol=1e-14
    )


def test_without_local_steps_nothing_is_measured():
    cell = _tanh_rnn()
    x = np.random.default_rng(5).standard_normal((T, 2))
    default = gs.lyapunov_spectrum(cell, x, participation=True)
    explicit = gs.lyapunov_spectrum(cell, x, participation=True, local_steps=None)
    assert default.local_exponents is None and default.local_lengths is None
    assert explicit.local_exponents is None and explicit.local_lengths is None
    for field in ("exponents", "stderr", "block_exponents", "participation", "block_participation"):
        assert np.array_equal(getattr(default, field), getattr(explicit, field)), field


@pytest.mark.parametrize("steps", [1, 7])
def test_local_steps_leaves_the_blocks_alone(steps):
    # The averaging blocks keep their own reads (frame.peek) and the QR schedule is the
    # planner's: the window edges change them only by forcing a QR where the frame is too
    # aligned to be read (log(||a_k|| / R_kk) > 8.8 nats), which this network's frames
    # (re-orthonormalised within half that) never reach. So the blocks, exponents, errors and
    # participation are the same bits.
    cell = _tanh_rnn()
    x = np.random.default_rng(5).standard_normal((T, 2))
    plain = gs.lyapunov_spectrum(cell, x, warmup=WARMUP, participation=True)
    local = gs.lyapunov_spectrum(cell, x, warmup=WARMUP, participation=True, local_steps=steps)
    for field in ("exponents", "stderr", "block_exponents", "participation", "block_participation"):
        assert np.array_equal(getattr(plain, field), getattr(local, field)), field


@pytest.mark.parametrize("steps", [1, 7])
def test_local_steps_that_force_qrs_change_the_exponents_by_rounding(steps):
    # The rate network's first QR block (planned from a one-step block that barely aligns)
    # overruns the read limit, so a window edge forces a QR and the schedule changes. The
    # exponents are then the sums of other QRs' growths of the same product: equal within the
    # contract (observed ~2e-13). (Its blocks move by the accuracy of their edges' Cholesky
    # reads, ~1e-7 in a block's growth: not compared here.)
    cell = _rate_rk4()
    plain = gs.lyapunov_spectrum(cell, T, warmup=WARMUP)
    local = gs.lyapunov_spectrum(cell, T, warmup=WARMUP, local_steps=steps)
    np.testing.assert_allclose(local.exponents, plain.exponents, rtol=0, atol=CONTRACT)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3", np.float64(3.0)])
def test_bad_local_steps(bad):
    cell = _tanh_rnn()
    shown = "True" if bad is True else repr(bad)
    with pytest.raises(ValueError, match=re.escape(
        f"`local_steps` must be None or an integer >= 1 (steps per window of local exponents); got {shown}."
    )):
        gs.lyapunov_spectrum(cell, 20, local_steps=bad)


def test_numpy_integer_local_steps_is_accepted():
    result = gs.lyapunov_spectrum(_tanh_rnn(), 20, local_steps=np.int64(6))
    assert np.array_equal(result.local_lengths, [6, 6, 6, 2])
