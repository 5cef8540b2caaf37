"""Tests of the weight initialisers: exact algebraic properties, distributions against theory with
standard-error-based tolerances, and randomness hygiene (reproducible, no global state).

Statistical tolerances. For n iid samples with variance sigma^2 and fourth central moment mu_4,
the sample variance s^2 has variance (mu_4 - sigma^4 (n - 3)/(n - 1)) / n. For a normal,
mu_4 = 3 sigma^4, which gives exactly 2 sigma^4 / (n - 1); for U(-a, a), sigma^2 = a^2 / 3 and
mu_4 = a^4 / 5, which gives about (4/45) a^4 / n. We accept |s^2 - sigma^2| < 5 standard errors:
with fixed seeds the tests are deterministic, and a correct initialiser fails with probability
below 1e-6 per check (n is in the tens of thousands, so s^2 is very nearly normal). A wrong scale
(e.g. fan_out for fan_in, a missing factor 2) is off by tens to hundreds of standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gradsim as gs
from gradsim import init

N_SIGMA = 5


def normal_var_se(var, n):
    """Standard error of the sample variance of n normal samples: sigma^2 sqrt(2 / (n - 1))."""
    return var * np.sqrt(2.0 / (n - 1))


def uniform_var_se(bound, n):
    """Standard error of the sample variance of n U(-a, a) samples: a^2 sqrt(4 / (45 n))."""
    return bound**2 * np.sqrt(4.0 / (45.0 * n))


# ------------------------------------------------------------------------------------------
# orthogonal
@pytest.mark.parametrize("shape", [7, (7, 7), (9, 4), (4, 9), (1, 5), (5, 1)])
@pytest.mark.parametrize("gain", [1.0, 0.5, 2.5])
@pytest.mark.parametrize("seed", range(3))
def test_orthogonal_is_gain_times_orthonormal(shape, gain, seed):
    q = init.orthogonal(shape, gain=gain, rng=seed)
    rows, cols = (shape, shape) if isinstance(shape, int) else shape
    assert q.shape == (rows, cols)
    # Orthonormal columns when tall (Q^T Q = g^2 I), orthonormal rows when wide (Q Q^T = g^2 I).
    gram = q.T @ q if rows >= cols else q @ q.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.svd(q, compute_uv=False), gain, rtol=1e-12)


def test_orthogonal_gain_zero_is_zero_matrix():
    np.testing.assert_array_equal(init.orthogonal(4, gain=0.0, rng=0), np.zeros((4, 4)))


def _mean_cos_eigen_angle(matrices):
    angles = np.concatenate([np.angle(np.linalg.eigvals(m)) for m in matrices])
    return np.mean(np.cos(angles))


def test_orthogonal_is_haar_eigenvalue_phases_unbiased():
    """Haar on O(N) is invariant under Q -> -Q, so E[tr Q] = 0, i.e. the eigen-angles theta have
    E[sum_j cos theta_j] = 0. Moreover E[(tr Q)^2] = 1 for N >= 2 (Diaconis & Shahshahani 1994),
    so the mean of cos theta over M matrices x N eigenvalues has standard error 1 / (N sqrt(M)).

    The naive QR of a Gaussian matrix without Mezzadri's sign correction is not Haar: its
    eigenvalues pile up near -1 (mean cos theta about -0.2 at N = 8, about 40 standard errors at
    M = 600). The last assertion checks that the statistic does detect it, so the test has power.
    """
    n, m = 8, 600
    rng = np.random.default_rng(2024)
    qs = [init.orthogonal(n, rng=rng) for _ in range(m)]
    se = 1.0 / (n * np.sqrt(m))
    assert abs(_mean_cos_eigen_angle(qs)) < N_SIGMA * se
    # second moment: E[(tr Q)^2] = 1 with Var((tr Q)^2) = E[(tr Q)^4] - 1 = 3 - 1 = 2 (the trace is
    # asymptotically standard normal; its moments match the normal's up to order N for O(N)).
    tr2 = np.array([np.trace(q) ** 2 for q in qs])
    assert abs(tr2.mean() - 1.0) < N_SIGMA * np.sqrt(2.0 / m)

    # Power check: the biased construction fails the very same criterion.
    naive = [np.linalg.qr(rng.standard_normal((n, n)))[0] for _ in range(m)]
    assert abs(_mean_cos_eigen_angle(naive)) > 20 * se


def test_orthogonal_determinant_signs_are_balanced():
    """Haar on O(N) gives det = +1 and det = -1 with probability 1/2 each (both components)."""
    m = 2000
    rng = np.random.default_rng(7)
    dets = np.array([np.linalg.det(init.orthogonal(5, rng=rng)) for _ in range(m)])
    np.testing.assert_allclose(np.abs(dets), 1.0, atol=1e-12)
    # number of +1 is Binomial(m, 1/2): standard error sqrt(m) / 2
    assert abs(np.sum(dets > 0) - m / 2) < N_SIGMA * np.sqrt(m) / 2


# ------------------------------------------------------------------------------------------
# gaussian
@pytest.mark.parametrize("shape", [(300, 300), (150, 400), (400, 150)])
@pytest.mark.parametrize("gain", [0.5, 1.0, 3.0])
def test_gaussian_variance_is_gain_squared_over_fan_in(shape, gain):
    w = init.gaussian(shape, gain=gain, rng=11)
    assert w.shape == shape
    fan_in = shape[1]
    var = gain**2 / fan_in
    n = w.size
    assert abs(np.var(w, ddof=1) - var) < N_SIGMA * normal_var_se(var, n)
    # mean 0: standard error sqrt(var / n)
    assert abs(np.mean(w)) < N_SIGMA * np.sqrt(var / n)


@pytest.mark.parametrize("gain", [0.5, 1.5])
def test_gaussian_spectral_radius_follows_circular_law(gain):
    """Circular law: for iid entries of variance g^2 / N the eigenvalues fill the disc of radius g.

    Finite size (Rider 2003): rho / g - 1 ~ sqrt(gamma_N / 4N) + G / sqrt(4 N gamma_N), G Gumbel,
    gamma_N = log(N / 2 pi) - 2 log log N. For N = 400 that is about 0.02 + 0.03 G: over 200 seeds
    we saw rho / g in [0.998, 1.103], mean 1.033, standard deviation about 0.02. The mean over
    three seeds has standard deviation about 0.012, so a 0.1 relative tolerance leaves more than
    five standard deviations, while a wrong scale (fan_out, variance g instead of g^2, a missing
    square root) is off by far more at these gains.
    """
    n = 400
    # One BLAS thread: a 400 x 400 eigensolve is faster serial than with oversubscribed threads.
    with threadpool_limits(1):
        radii = [
            np.max(np.abs(np.linalg.eigvals(init.gaussian(n, gain=gain, rng=s))))
            for s in range(int(10 * gain), int(10 * gain) + 3)
        ]
    assert abs(np.mean(radii) / gain - 1.0) < 0.1


def test_gaussian_gain_is_an_exact_scale():
    """Same seed, different gain: the same draw times the gain (so the law holds for every gain)."""
    base = init.gaussian((30, 20), gain=1.0, rng=5)
    for gain in (0.0, 0.3, 2.0):
        np.testing.assert_allclose(init.gaussian((30, 20), gain=gain, rng=5), gain * base, rtol=1e-15)


def test_gaussian_largest_singular_value_near_two_gain():
    """Quarter-circle law: ||W||_2 -> 2 g (Tracy-Widom fluctuations ~ N^(-2/3), tiny at N = 400)."""
    w = init.gaussian(400, gain=1.3, rng=0)
    with threadpool_limits(1):
        top = np.linalg.norm(w, 2)
    assert abs(top / (2 * 1.3) - 1.0) < 0.05


# ------------------------------------------------------------------------------------------
# xavier / he / pytorch
FORMULAS = {
    # name -> (uniform?, variance(fan_out, fan_in, gain))
    "xavier_uniform": (True, lambda o, i, g: g**2 * 2.0 / (i + o)),
    "xavier_normal": (False, lambda o, i, g: g**2 * 2.0 / (i + o)),
    "he_uniform": (True, lambda o, i, g: g**2 * 2.0 / i),
    "he_normal": (False, lambda o, i, g: g**2 * 2.0 / i),
}


@pytest.mark.parametrize("name", list(FORMULAS))
@pytest.mark.parametrize("shape", [(200, 100), (100, 300)])
@pytest.mark.parametrize("gain", [1.0, 0.7])
def test_xavier_he_variance_matches_formula(name, shape, gain):
    uniform, formula = FORMULAS[name]
    fan_out, fan_in = shape
    w = getattr(init, name)(shape, gain=gain, rng=3)
    assert w.shape == shape
    var = formula(fan_out, fan_in, gain)
    if uniform:
        bound = np.sqrt(3.0 * var)  # U(-a, a) has variance a^2 / 3
        assert np.all(np.abs(w) <= bound)
        assert np.max(np.abs(w)) > 0.99 * bound  # fills the interval
        se = uniform_var_se(bound, w.size)
    else:
        se = normal_var_se(var, w.size)
    assert abs(np.var(w, ddof=1) - var) < N_SIGMA * se


def test_initialiser_aliases():
    assert init.INITIALISERS["xavier"] is init.xavier_uniform
    assert init.INITIALISERS["he"] is init.he_normal
    for name, fn in init.INITIALISERS.items():
        if fn is not None:
            np.testing.assert_array_equal(init.initialise(name, (5, 3), 0.8, rng=4), fn((5, 3), 0.8, 4))


@pytest.mark.parametrize("shape,n_hidden", [((40, 10), 10), ((40, 3), 10), ((12,), 4)])
def test_pytorch_uniform_bound_is_one_over_sqrt_hidden(shape, n_hidden):
    w = init.pytorch_uniform(shape, n_hidden, rng=0)
    assert w.shape == shape
    bound = 1.0 / np.sqrt(n_hidden)
    assert np.all(np.abs(w) <= bound)
    assert np.max(np.abs(w)) > 0.8 * bound
    via = init.initialise("pytorch", shape, rng=0, n_hidden=n_hidden)
    np.testing.assert_array_equal(via, w)


# ------------------------------------------------------------------------------------------
# identity, forget-gate bias, chrono
@pytest.mark.parametrize("shape", [4, (4, 4), (3, 5), (5, 3)])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.0])
def test_identity_is_exact(shape, scale):
    w = init.identity(shape, scale=scale)
    rows, cols = (shape, shape) if isinstance(shape, int) else shape
    np.testing.assert_array_equal(w, scale * np.eye(rows, cols))
    assert w.dtype == np.float64


def test_forget_gate_bias():
    b = init.forget_gate_bias(3, 2.5)
    np.testing.assert_array_equal(b, [0, 0, 0, 2.5, 2.5, 2.5, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(init.forget_gate_bias(2), [0, 0, 1, 1, 0, 0, 0, 0])


@pytest.mark.parametrize("t_max", [2.5, 10.0, 784.0])
def test_chrono_bias(t_max):
    n = 500
    b = init.chrono_bias(n, t_max, rng=1)
    assert b.shape == (4 * n,)
    b_i, b_f = b[:n], b[n : 2 * n]
    assert np.all(b_f >= 0) and np.all(b_f <= np.log(t_max - 1))
    np.testing.assert_array_equal(b_i, -b_f)
    np.testing.assert_array_equal(b[2 * n :], 0.0)
    # u = exp(b_f) ~ U[1, t_max - 1]: mean t_max / 2, standard error (t_max - 2) / sqrt(12 n)
    u = np.exp(b_f)
    assert abs(u.mean() - t_max / 2) < N_SIGMA * (t_max - 2) / np.sqrt(12 * n)


# ------------------------------------------------------------------------------------------
# randomness hygiene
RANDOM = ["gaussian", "orthogonal", "xavier_uniform", "xavier_normal", "he_normal", "he_uniform"]


@pytest.mark.parametrize("name", RANDOM)
def test_same_seed_same_weights_different_seed_different(name):
    fn = getattr(init, name)
    np.testing.assert_array_equal(fn((6, 4), 1.0, 42), fn((6, 4), 1.0, 42))
    assert not np.array_equal(fn((6, 4), 1.0, 42), fn((6, 4), 1.0, 43))
    # a SeedSequence and an int seed of the same entropy agree
    np.testing.assert_array_equal(fn((6, 4), 1.0, np.random.SeedSequence(42)), fn((6, 4), 1.0, 42))


@pytest.mark.parametrize("name", RANDOM)
def test_generator_is_used_and_advanced(name):
    fn = getattr(init, name)
    gen = np.random.default_rng(9)
    first, second = fn(5, 1.0, gen), fn(5, 1.0, gen)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, fn(5, 1.0, np.random.default_rng(9)))


def test_chrono_and_pytorch_reproducible():
    np.testing.assert_array_equal(init.chrono_bias(5, 10, rng=1), init.chrono_bias(5, 10, rng=1))
    assert not np.array_equal(init.chrono_bias(5, 10, rng=1), init.chrono_bias(5, 10, rng=2))
    np.testing.assert_array_equal(init.pytorch_uniform(5, 5, rng=1), init.pytorch_uniform(5, 5, rng=1))
    assert not np.array_equal(init.pytorch_uniform(5, 5, rng=1), init.pytorch_uniform(5, 5, rng=2))


def test_initialisers_never_touch_global_numpy_state():
    np.random.seed(12345)
    before = np.random.get_state()
    for name in RANDOM:
        getattr(init, name)(6, 1.0, None)  # rng=None: fresh OS entropy, not the global state
        getattr(init, name)(6, 1.0, 3)
    init.pytorch_uniform(6, 6, rng=None)
    init.chrono_bias(6, 10.0, rng=None)
    init.identity(6)
    gs.make_cell("lstm", 3, 2, chrono_t_max=20.0, rng=None)
    after = np.random.get_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]
    # and the global stream is still exactly where the seed put it
    np.random.seed(12345)
    expected = np.random.random(3)
    np.random.set_state(after)
    np.testing.assert_array_equal(np.random.random(3), expected)


def test_rng_none_gives_fresh_draws():
    assert not np.array_equal(init.gaussian(6, rng=None), init.gaussian(6, rng=None))
