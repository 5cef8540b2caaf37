"""Tests of the spectrum observables (gradsim/numeric/observables.py) and of the leading
Lyapunov vector's participation ratio (lyapunov_spectrum(..., participation=True)).

Dimension, entropy rate and positive fraction are checked on spectra whose values are worked
out by hand here; standard errors against the spread over independent repetitions; the
participation ratio on maps whose leading vector is known exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gradsim as gs
from gradsim.numeric import (
    SpectrumObservables,
    entropy_rate,
    kaplan_yorke_dimension,
    positive_fraction,
    spectrum_observables,
)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Small matrices: BLAS threads only add contention, and results must not depend on them.
    with threadpool_limits(1):
        yield


# ------------------------------------------------------------------------------------------
# hand-checked values
@pytest.mark.parametrize(
    "spectrum, dimension, entropy, fraction",
    [
        # cumsum 1, 1.5, -0.5: j = 2, D = 2 + 1.5 / 2.
        ([1.0, 0.5, -2.0, -3.0], 2.75, 1.5, 0.5),
        # cumsum 0.3, -0.7: j = 1, D = 1 + 0.3 / 1.
        ([0.3, -1.0, -1.5], 1.3, 0.3, 1 / 3),
        # cumsum 2, 3, 2, 0.5, -1.5: j = 4, D = 4 + 0.5 / 2.
        ([2.0, 1.0, -1.0, -1.5, -2.0], 4.25, 3.0, 0.4),
        # all negative: a stable fixed point.
        ([-0.1, -0.2, -5.0], 0.0, 0.0, 0.0),
        # all positive (complete): the volume grows, D = k.
        ([3.0, 2.0, 1.0], 3.0, 6.0, 1.0),
        # the cumulative sum never crosses zero although some exponents are negative.
        ([3.0, -1.0, -1.0], 3.0, 3.0, 1 / 3),
        # a limit cycle: cumsum 0, -1 (>= 0 counts), D = 1 + 0 / 1.
        ([0.0, -1.0], 1.0, 0.0, 0.0),
        # zero exponents: cumsum 0, 0, -1: D = 2; cumsum reaching zero exactly: 1, 0, -2: D = 2.
        ([0.0, 0.0, -1.0], 2.0, 0.0, 0.0),
        ([1.0, -1.0, -2.0], 2.0, 1.0, 1 / 3),
        # one exponent.
        ([-0.5], 0.0, 0.0, 0.0),
        ([0.5], 1.0, 0.5, 1.0),
        # -inf (a zero growth factor) after the crossing: D = j.
        ([0.5, -np.inf], 1.0, 0.5, 0.5),
        # equal exponents (descending allows ties).
        ([0.5, 0.5, -2.0, -2.0], 2.5, 1.0, 0.5),
    ],
)
def test_hand_checked_values(spectrum, dimension, entropy, fraction):
    assert kaplan_yorke_dimension(spectrum) == pytest.approx(dimension, abs=1e-15)
    assert entropy_rate(spectrum) == pytest.approx(entropy, abs=1e-15)
    assert positive_fraction(spectrum) == pytest.approx(fraction, abs=1e-15)


def test_partial_spectra():
    # The leading 3 of n = 10: where the dimension crosses within them, n only matters for
    # the fraction's denominator.
    top = [1.0, 0.5, -2.0]
    assert kaplan_yorke_dimension(top, n=10) == pytest.approx(2.75, abs=1e-15)
    assert positive_fraction(top, n=10) == pytest.approx(0.2, abs=1e-15)
    assert entropy_rate(top, n=10) == pytest.approx(1.5, abs=1e-15)
    # The cumulative sum has not crossed zero by the last computed exponent: the missing ones
    # decide, so NaN; and a still-positive last exponent leaves entropy and fraction unknown.
    assert math.isnan(kaplan_yorke_dimension([3.0, 2.0, 1.0], n=5))
    assert math.isnan(kaplan_yorke_dimension([3.0, -1.0, -1.0], n=4))
    assert math.isnan(entropy_rate([3.0, 2.0, 1.0], n=5))
    assert math.isnan(positive_fraction([3.0, 2.0, 1.0], n=5))
    # n = k is a complete spectrum.
    assert kaplan_yorke_dimension([3.0, 2.0, 1.0], n=3) == 3.0
    # A last exponent of exactly 0 is not positive: the positive ones are all known.
    assert entropy_rate([1.0, 0.0], n=5) == 1.0
    assert positive_fraction([1.0, 0.0], n=5) == pytest.approx(0.2, abs=1e-15)


def test_against_a_plain_loop_on_random_spectra():
    # The formula as written in Engelken et al.'s getDim / Clark's ky_dimension, one spectrum
    # at a time in plain Python (counting cumulative sums >= 0), on 2000 random spectra.
    rng = np.random.default_rng(0)
    spectra = -np.sort(-rng.normal(-0.5, 1.0, size=(2000, 7)), axis=-1)

    def reference(e):
        cs = np.cumsum(e)
        j = int(np.sum(cs >= 0))
        if j == 0:
            return 0.0
        if j == len(e):
            return float(len(e))
        return j + cs[j - 1] / abs(e[j])

    expected = np.array([reference(e) for e in spectra])
    np.testing.assert_allclose(kaplan_yorke_dimension(spectra), expected, rtol=1e-15, atol=0)
    np.testing.assert_allclose(entropy_rate(spectra), [e[e > 0].sum() for e in spectra], rtol=1e-14, atol=0)
    np.testing.assert_array_equal(positive_fraction(spectra), [(e > 0).mean() for e in spectra])


def test_batch_dimensions():
    spectra = np.array(
        [[[1.0, 0.5, -2.0, -3.0], [-1.0, -2.0, -3.0, -4.0]], [[4.0, 3.0, 2.0, 1.0], [0.3, -1.0, -1.0, -1.0]]]
    )
    np.testing.assert_allclose(kaplan_yorke_dimension(spectra), [[2.75, 0.0], [4.0, 1.3]], rtol=1e-15)
    np.testing.assert_allclose(entropy_rate(spectra), [[1.5, 0.0], [10.0, 0.3]], rtol=1e-15)
    np.testing.assert_allclose(positive_fraction(spectra), [[0.5, 0.0], [1.0, 0.25]], rtol=1e-15)
    partial = kaplan_yorke_dimension(spectra, n=6)
    assert np.isnan(partial[1, 0]) and partial[0, 0] == 2.75
    # One spectrum gives a scalar.
    assert np.ndim(kaplan_yorke_dimension(spectra[0, 0])) == 0


def test_on_an_exact_spectrum_from_lyapunov_spectrum():
    # A diagonal linear RNN has exponents log|w_ii| exactly (to rounding): D_KY by hand.
    w = np.diag([2.0, 1.5, 0.5, 0.25])  # log: 0.693, 0.405, -0.693, -1.386
    result = gs.lyapunov_spectrum(gs.RNN(w, activation="linear"), 50)
    logs = np.log([2.0, 1.5, 0.5, 0.25])
    # cumsum 0.693, 1.099, 0.405, -0.981: j = 3, D = 3 + 0.405 / 1.386.
    assert kaplan_yorke_dimension(result.exponents) == pytest.approx(3 + logs[:3].sum() / abs(logs[3]), abs=1e-12)
    assert entropy_rate(result.exponents) == pytest.approx(math.log(3.0), abs=1e-12)


# ------------------------------------------------------------------------------------------
# bad input
@pytest.mark.parametrize(
    "exponents, kwargs, error, pattern",
    [
        ([1.0, 2.0, -1.0], {}, ValueError,
         r"`exponents` must be descending along the last axis .*; got an increase from 1\.0 at index \(0,\) "
         r"to 2\.0 at index \(1,\)\."),
        ([[1.0, 0.0], [0.0, 0.5]], {}, ValueError, r"got an increase from 0\.0 at index \(1, 0\) to 0\.5 at index \(1, 1\)\."),
        ([0.5, np.nan, -1.0], {}, ValueError, r"`exponents` must be real numbers below \+inf .*; got nan at index \(1,\)\."),
        ([np.inf, 0.0], {}, ValueError, r"`exponents` must be real numbers below \+inf .*; got inf at index \(0,\)\."),
        ([], {}, ValueError, r"`exponents` must be a non-empty array of shape \(\.\.\., k\) with k >= 1; got shape \(0,\)\."),
        (np.zeros((3, 0)), {}, ValueError, r"got shape \(3, 0\)\."),
        (1.5, {}, ValueError, r"`exponents` must be a non-empty array .*; got shape \(\)\."),
        (["a", "b"], {}, TypeError, r"`exponents` must be an array of real numbers of shape \(\.\.\., k\); got \['a', 'b'\]\."),
        (np.array([1.0 + 0j, -1.0]), {}, TypeError, r"`exponents` must be an array of real numbers .*; got complex values\."),
        ([1.0, -1.0], {"n": 1}, ValueError, r"`n` must be None or an integer >= k = 2 .*; got 1\."),
        ([1.0, -1.0], {"n": 2.5}, ValueError, r"`n` must be None or an integer >= k = 2 .*; got 2\.5\."),
    ],
)
@pytest.mark.parametrize("function", [kaplan_yorke_dimension, entropy_rate, positive_fraction])
def test_bad_spectra(function, exponents, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        function(exponents, **kwargs)


def test_bad_spectrum_observables_arguments():
    result = gs.lyapunov_spectrum(gs.RNN(np.diag([0.5, 0.2]), activation="linear"), 40)
    with pytest.raises(TypeError, match=r"`result` must be a LyapunovSpectrum \(from lyapunov_spectrum\); got"):
        spectrum_observables(result.exponents)
    with pytest.raises(TypeError, match=r"`exponents` must be an array of exponents .*; got a LyapunovSpectrum"):
        kaplan_yorke_dimension(result)
    with pytest.raises(ValueError, match=r"`over` must be one of 'blocks', 'members'; got 'seeds'\."):
        spectrum_observables(result, over="seeds")
    with pytest.raises(ValueError, match=r"`result` must have a batch dimension .* for over='members'; got exponents of shape \(2,\)\."):
        spectrum_observables(result, over="members")
    with pytest.raises(ValueError, match=r"`n_boot` must be an integer >= 1; got 0\."):
        spectrum_observables(result, n_boot=0)


# ------------------------------------------------------------------------------------------
# standard errors
def _chaotic_runs(repetitions, steps, participation=False):
    """One chaotic tanh RNN (N = 16, g = 3) driven by `repetitions` independent noise inputs."""
    cell = gs.make_cell("rnn", 16, 1, gain=3.0, rng=3)
    inputs = 0.5 * np.random.default_rng(5).standard_normal((repetitions, steps, 1))
    return gs.lyapunov_spectrum(cell, inputs, warmup=200, participation=participation)


def test_blocks_reproduce_the_exponents():
    # The bootstrap re-weights the blocks by their lengths; with every block once, the
    # weighted mean is the measured spectrum (to rounding of the sums, 1e-13 at these sizes).
    result = _chaotic_runs(2, 457)
    lengths = np.diff(np.linspace(0, result.n_steps, result.block_exponents.shape[0] + 1).round())
    weighted = np.einsum("b,b...->...", lengths, result.block_exponents) / lengths.sum()
    np.testing.assert_allclose(weighted, result.exponents, rtol=0, atol=1e-13)


def test_bootstrap_stderr_matches_the_spread_over_repetitions():
    # 30 independent input sequences (same network): the spread of D_KY and of the entropy
    # rate over them against the bootstrap standard error of each run (its root mean square).
    # The sample standard deviation of 30 draws is uncertain by 1 / sqrt(2 x 29) = 13%
    # relative; the bootstrap over 20 blocks is biased low by sqrt(19/20) and its own error
    # averages out over the 30 runs; so the ratio should be 1 within 3 x 13% ~ 0.4 (observed
    # here: 1.23, 1.03 and 0.89 for the three; 1.04, 0.87 and 1.02 at 40 runs of 4000 steps).
    # A bootstrap of single blocks instead of their mean (a factor sqrt(20)) would fail it.
    runs = _chaotic_runs(30, 2000, participation=True)
    obs = spectrum_observables(runs, n_boot=400, rng=1)
    assert obs.over == "blocks" and obs.n_samples == 20 and obs.n == 16
    for name in ("kaplan_yorke_dimension", "entropy_rate", "participation"):
        values, errors = getattr(obs, name), getattr(obs, name + "_stderr")
        assert values.shape == errors.shape == (30,)
        ratio = np.std(values, ddof=1) / np.sqrt(np.mean(errors**2))
        assert 0.6 < ratio < 1.4, (name, ratio)
    # The observables are those of the measured spectra.
    np.testing.assert_array_equal(obs.kaplan_yorke_dimension, kaplan_yorke_dimension(runs.exponents))
    # Over the members: the mean and s / sqrt(M) of the same numbers.
    members = spectrum_observables(runs, over="members")
    dims = kaplan_yorke_dimension(runs.exponents)
    assert members.kaplan_yorke_dimension == pytest.approx(dims.mean(), rel=1e-14)
    assert members.kaplan_yorke_dimension_stderr == pytest.approx(dims.std(ddof=1) / math.sqrt(30), rel=1e-12)
    assert members.participation == pytest.approx(runs.participation.mean(), rel=1e-14)
    assert members.n_samples == 30


def test_spectrum_observables_single_run_and_reproducibility():
    result = gs.lyapunov_spectrum(gs.make_cell("rnn", 8, 1, gain=2.5, rng=1), np.ones((300, 1)) * 0.1, warmup=50)
    first = spectrum_observables(result, rng=7)
    again = spectrum_observables(result, rng=7)
    assert isinstance(first, SpectrumObservables)
    assert np.ndim(first.kaplan_yorke_dimension) == 0
    assert first.kaplan_yorke_dimension_stderr == again.kaplan_yorke_dimension_stderr
    assert first.participation is None and first.participation_stderr is None
    # A partial spectrum that does not cross zero: NaN, with n.
    top = gs.lyapunov_spectrum(gs.RNN(np.diag([2.0, 1.5, 1.2, 0.5]), activation="linear"), 40, k=1)
    assert math.isnan(spectrum_observables(top, n=4).kaplan_yorke_dimension)
    # One block: no spread, NaN standard errors.
    single = gs.lyapunov_spectrum(gs.RNN(np.diag([0.5, 0.2]), activation="linear"), 10, n_blocks=1)
    assert math.isnan(spectrum_observables(single).entropy_rate_stderr)


def test_bootstrap_with_a_zero_growth_factor():
    # A zero eigenvalue gives an exponent of -inf in every block: the bootstrap keeps it -inf
    # (0 x -inf would be NaN). Exponents log 2, log 1.5, -inf: cumsum 0.69, 1.10, -inf, so
    # D = 2 + 1.10 / inf = 2 in every replicate, and its standard error is 0.
    result = gs.lyapunov_spectrum(gs.RNN(np.diag([2.0, 1.5, 0.0]), activation="linear"), 40)
    assert result.exponents[-1] == -np.inf
    obs = spectrum_observables(result)
    assert obs.kaplan_yorke_dimension == 2.0
    assert obs.kaplan_yorke_dimension_stderr == 0.0
    assert obs.entropy_rate == pytest.approx(math.log(3.0), abs=1e-12)


# ------------------------------------------------------------------------------------------
# participation ratio of the leading Lyapunov vector
def test_participation_of_a_diagonal_map_is_one():
    # Leading direction e_1 (eigenvalue 1.2 against at most 0.9): after the warm-up the
    # frame's first column is e_1 to (0.9 / 1.2)^100 ~ 3e-13, so PR = 1 to ~1e-25.
    n = 10
    w = np.diag(np.r_[1.2, np.linspace(0.9, -0.9, n - 1)])
    for k in (1, n):  # a Haar-random start and the identity start
        result = gs.lyapunov_spectrum(gs.RNN(w, activation="linear"), 400, warmup=100, k=k, participation=True)
        assert result.participation == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(result.block_participation, 1.0, atol=1e-12)


def test_participation_of_a_uniform_leading_vector_is_n():
    # W = 1.5 u u^T + 0.5 (I - u u^T) with u = (1, ..., 1) / sqrt(N): the leading vector is u,
    # whose entries all have q_i^4 = 1 / N^2, so PR = N. After 100 warm-up steps the other
    # directions are down by (0.5 / 1.5)^100; what remains is rounding (1e-12 relative).
    n = 12
    u = np.ones(n) / math.sqrt(n)
    w = 1.5 * np.outer(u, u) + 0.5 * (np.eye(n) - np.outer(u, u))
    for k in (1, 3):
        result = gs.lyapunov_spectrum(gs.RNN(w, activation="linear"), 300, warmup=100, k=k, participation=True)
        assert result.participation == pytest.approx(n, rel=1e-12)
    # A leading vector spread over 3 of the 12 coordinates equally: PR = 3.
    v = np.zeros(n)
    v[[1, 5, 7]] = 1 / math.sqrt(3)
    w3 = 1.5 * np.outer(v, v) + 0.5 * (np.eye(n) - np.outer(v, v))
    result = gs.lyapunov_spectrum(gs.RNN(w3, activation="linear"), 300, warmup=100, k=2, participation=True)
    assert result.participation == pytest.approx(3.0, rel=1e-12)


def test_participation_of_a_growing_vector_stays_finite():
    # Gain 1e3 per step: between QRs the first column grows by up to e^200; its fourth power
    # would overflow without the rescaling. PR of e_1 is 1.
    w = np.diag([1e3, 1.0, 1e-3, 0.5])
    result = gs.lyapunov_spectrum(gs.RNN(w, activation="linear"), 500, warmup=10, k=1, participation=True)
    assert result.participation == pytest.approx(1.0, abs=1e-12)


def test_participation_leaves_every_other_result_unchanged():
    # The option only reads the frame: exponents, standard errors and blocks bit for bit, for
    # a full spectrum, a thin frame (k <= P / 4), and an ensemble whose member i equals the
    # single network i (participation too).
    x = 0.3 * np.random.default_rng(0).standard_normal((300, 1))
    ens = gs.make_cell("rnn", 12, 1, gain=2.0, ensemble=3, rng=0)
    for cell, k in [(gs.make_cell("rnn", 12, 1, gain=2.0, rng=0), None), (ens[1], 2), (ens, None), (ens, 3)]:
        plain = gs.lyapunov_spectrum(cell, x, k=k, warmup=50)
        with_pr = gs.lyapunov_spectrum(cell, x, k=k, warmup=50, participation=True)
        for field in ("exponents", "stderr", "block_exponents"):
            assert np.array_equal(getattr(plain, field), getattr(with_pr, field)), (field, k)
        assert plain.participation is None and plain.block_participation is None
        assert np.shape(with_pr.participation) == cell.batch_shape
        assert with_pr.block_participation.shape == (20,) + cell.batch_shape
        assert np.all((with_pr.participation >= 1.0) & (with_pr.participation <= 12.0))
        lengths = np.diff(np.linspace(0, 250, 21).round())
        mean = np.einsum("b,b...->...", lengths, with_pr.block_participation) / 250
        np.testing.assert_allclose(mean, with_pr.participation, rtol=1e-13)
    for k in (None, 3):
        together = gs.lyapunov_spectrum(ens, x, k=k, warmup=50, participation=True)
        for i in range(3):
            alone = gs.lyapunov_spectrum(ens[i], x, k=k, warmup=50, participation=True)
            assert together.participation[i] == alone.participation
            assert np.array_equal(together.block_participation[:, i], alone.block_participation)
