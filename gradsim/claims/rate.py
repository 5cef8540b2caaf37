r"""The claims of issue 14: rate networks (leaky integrators, the map x' = J tanh(x), the flow).

Each ``check_<name>(quick, rng) -> Evidence`` simulates with the numeric layer and compares
with :mod:`gradsim.theory.rate` (or, for the lecture note's statement, with the exact
fixed-point exponents); the statistics follow :mod:`gradsim.claims.library` (Z = 4, Student t
quantiles where a standard error is estimated from k samples). Keyword-only arguments after
``rng`` exist for the tests only (a wrong prediction or a perturbed setting must be refuted);
the registry calls every check with ``(quick, rng)``.

:data:`RATE_CLAIMS` and :data:`RATE_COMPARISONS` are appended to the library's ``CLAIMS`` and
``COMPARISONS`` at the bottom of :mod:`gradsim.claims.library`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammainc

from ..cells import LeakyRNN, RateRNN, make_cell
from ..init import gaussian
from ..numeric import lyapunov_spectrum, spectrum_observables, unroll
from ..theory import rate as rate_theory
from .framework import Claim, Evidence
from .library import _LOG_SV_ACCURACY, _LYAP_CRIT, _LYAP_REASON, _crit, _g, _judge, _pm, N002

__all__ = ["RATE_CLAIMS", "RATE_COMPARISONS"]

_SECTION = "THEORY.md section 12"


def _log_sech2(x):
    """log tanh'(x) = log 4 - 2 log(e^x + e^-x), without the cancellation of log(1 - tanh^2)."""
    return math.log(4.0) - 2.0 * np.logaddexp(x, -x)


def _log_cond_eigvecs(w) -> float:
    """log of the 2-norm condition number of W's eigenvector matrix (columns of unit norm)."""
    _, vectors = np.linalg.eig(w)
    return math.log(float(np.linalg.cond(vectors)))


# ------------------------------------------------------------------------------------------
# 1. exponential trace memory (lecture note 002)
def check_exponential_trace_memory(quick: bool, rng, *, leak_exponent=None) -> Evidence:
    """Memory time -1/lambda_1 of the leaky RNN at a = 0.1 over a = 1, g = 0.5, no input.

    ``leak_exponent`` (tests only) replaces the exact per-step exponent at a = 0.1.
    """
    n, steps_small, steps_one = (64, 4000, 1000) if quick else (128, 10000, 2500)
    g, a = 0.5, 0.1
    w = gaussian(n, g, rng)
    log_cond = _log_cond_eigvecs(w)  # (1 - a) I + a W has W's eigenvectors
    found = {}
    for alpha, steps in ((a, steps_small), (1.0, steps_one)):
        # The state decays to the fixed point h = 0 at ~a (1 - g) per step: a quarter of the
        # run brings it below 1e-10 and lets the frame align before averaging.
        warmup = steps // 4
        spec = lyapunov_spectrum(LeakyRNN(w, alpha=alpha), steps + warmup, k=1, warmup=warmup,
                                 state0=rng.uniform(-1.0, 1.0, n))
        lam, se = float(spec.exponents[0]), float(spec.stderr[0])
        # Exponent per step at h = 0: log|1 - a + a mu_i| (the theory returns it per unit time).
        exact = float(rate_theory.trivial_fixed_point_exponents(w, delta=alpha)[0]) * alpha
        # Block standard error (a complex leading pair makes the blocks oscillate) plus the
        # eigenvector-conditioning bound of a constant tangent map, rho^T <= ||M^T|| <= cond(V) rho^T.
        found[alpha] = (lam, se, exact, _LYAP_CRIT * se + log_cond / steps)
    if leak_exponent is not None:
        lam, se, _, tol = found[a]
        found[a] = (lam, se, float(leak_exponent), tol)
    (lam_a, se_a, ex_a, tol_a), (lam_1, se_1, ex_1, tol_1) = found[a], found[1.0]
    measured = lam_1 / lam_a  # tau(a) / tau(1), tau = -1 / lambda_1
    predicted = ex_1 / ex_a
    # Exact interval of the ratio when each exponent may be off by its tolerance.
    lo = (abs(ex_1) - tol_1) / (abs(ex_a) + tol_a)
    hi = (abs(ex_1) + tol_1) / max(abs(ex_a) - tol_a, 1e-300)
    tolerance = max(predicted - lo, hi - predicted)
    detail = (
        f"Leaky RNN h' = (1 - a) h + a tanh(W h), Gaussian W (g = {g}, N = {n}), no input, state "
        f"decaying to h = 0: lambda_1 = {_pm(lam_a, se_a)} per step at a = {a} (exact log|1 - a + a mu| "
        f"= {_g(ex_a, 6)}, memory time {_g(-1 / lam_a, 4)} steps) and {_pm(lam_1, se_1)} at a = 1 "
        f"(exact log rho(W) = {_g(ex_1, 6)}); tau(a)/tau(1) = {_g(measured, 5)} vs exact "
        f"{_g(predicted, 5)} (1/a = {_g(1 / a, 3)}; the approximation 1/(a(1 - g)) = "
        f"{_g(1 / (a * (1 - g)), 3)} steps vs exact {_g(-1 / ex_a, 4)}, which uses the largest "
        f"Re mu_i instead of the disc's edge g)."
    )
    evidence = _judge("within", measured, predicted, tolerance, detail)
    if evidence.verdict != "supported":
        return evidence
    # Outside the condition: a chaotic gain. The leak slows the dynamics but the trace does
    # not decay: perturbations (and gradients) grow.
    n_c, steps_c = (256, 3000) if quick else (256, 8000)
    g_c = 3.0
    spec = lyapunov_spectrum(LeakyRNN(gaussian(n_c, g_c, rng), alpha=a), steps_c + 500, k=1,
                             warmup=500, state0=rng.uniform(-1.0, 1.0, n_c))
    lam_c, se_c = float(spec.exponents[0]), float(spec.stderr[0])
    chaotic = lam_c > _LYAP_CRIT * se_c
    outside = (
        f" Condition g < 1: at g = {g_c} (N = {n_c}, a = {a}) lambda_1 = {_pm(lam_c, se_c)} per step "
        f"{'> 0 (beyond ' + _g(_LYAP_CRIT, 3) + ' s.e.)' if chaotic else 'is not significantly positive'}"
        f": {'perturbations grow, no exponential trace memory' if chaotic else 'no counterexample found'}."
    )
    return Evidence("conditional" if chaotic else "supported", measured, predicted, tolerance,
                    detail + outside)


# ------------------------------------------------------------------------------------------
# 2. the mean exponent of the map
def check_rate_map_mean_exponent(quick: bool, rng, *, prediction=None) -> Evidence:
    """Sum of the exponents = mean log|det J_t| (one network); its mean per unit over networks
    against log g - 1/2 + <log phi'> (with the exact finite-N E log|det J|/N)."""
    g = 3.0
    n_id, steps_id, warm = (48, 1500, 200) if quick else (96, 3000, 300)
    cell = make_cell("rate", n_id, 0, gain=g, dt=1.0, integrator="euler", rng=rng)
    x0 = rng.standard_normal(n_id)
    spec = lyapunov_spectrum(cell, steps_id, state0=x0, warmup=warm)
    states = unroll(cell, steps_id, x0)
    # The step from x_t has Jacobian J diag(tanh'(x_t)); the averaged steps are t = warm..T-1.
    log_det = np.linalg.slogdet(cell.weight_hh)[1] + np.sum(_log_sech2(states[warm:steps_id]), axis=-1)
    identity_gap = abs(float(np.sum(spec.exponents)) - float(np.mean(log_det)))
    identity_tol = _LOG_SV_ACCURACY * n_id

    n, count, steps = (128, 8, 1500) if quick else (256, 16, 3000)
    cells = make_cell("rate", n, 0, gain=g, dt=1.0, integrator="euler", rng=rng, ensemble=count)
    states = unroll(cells, steps, rng.standard_normal((count, n)))
    # By the identity (checked above) the mean exponent of each network is its mean log|det J_t|/N.
    means = (np.linalg.slogdet(cells.weight_hh)[1]
             + np.mean(np.sum(_log_sech2(states[:, warm:steps]), axis=-1), axis=-1)) / n
    measured = float(np.mean(means))
    se = float(np.std(means, ddof=1)) / math.sqrt(count)
    predicted = rate_theory.map_mean_exponent(g, n=n) if prediction is None else float(prediction)
    tolerance = _crit(count - 1) * se
    detail = (
        f"Map x' = J tanh(x), J ~ N(0, {g}^2/N), no input. Identity (N = {n_id}, T = {steps_id - warm}): "
        f"sum of QR exponents {_g(np.sum(spec.exponents), 8)} vs mean log|det J_t| over the very "
        f"trajectory, gap {_g(identity_gap, 2)} (allowed {_g(identity_tol, 2)}). Mean exponent per unit "
        f"over {count} networks (N = {n}, T = {steps - warm}): {_pm(measured, se)} vs "
        f"E log|det J|/N + <log phi'> = {_g(predicted, 6)} (limit log g - 1/2 + <log phi'> = "
        f"{_g(rate_theory.map_mean_exponent(g), 6)}); gap {_g(measured - predicted, 3)}, 1/N = "
        f"{_g(1 / n, 3)}."
    )
    return _judge("within", measured, predicted, tolerance, detail,
                  side=[(identity_gap <= identity_tol, "sum of exponents != mean log|det J_t|")])


# ------------------------------------------------------------------------------------------
# 3. the trivial fixed point: circular law
def _kostlan_distance(n: int, g: float) -> float:
    """sup_s |E F_N(s) - e^(2s)/g^2| for complex Ginibre: N |mu|^2 / g^2 are independent
    Gamma(k, 1), k = 1..N (Kostlan 1992), so E F_N(s) = mean_k P(Gamma(k) <= N e^(2s)/g^2)."""
    r2 = np.concatenate([np.linspace(0.0, 1.0, 2001), np.linspace(1.0, 4.0, 601)])
    k = np.arange(1, n + 1)
    expected = gammainc(k[None, :], n * r2[:, None]).mean(axis=1)
    return float(np.max(np.abs(expected - np.minimum(r2, 1.0))))


def check_rate_fixed_point_circular_law(quick: bool, rng, *, model_gain=None) -> Evidence:
    """QR exponents at x = 0 equal log|mu_i|; their CDF against e^(2s)/g^2 (KS distance).

    ``model_gain`` (tests only) is the gain of the compared circular law.
    """
    g = 0.5
    model = g if model_gain is None else float(model_gain)
    # (a) One network: QR exponents at the fixed point x = 0 (state0 = 0: the tangent map is J).
    n_qr, steps_qr, warm = (32, 3000, 500) if quick else (64, 6000, 1000)
    j = gaussian(n_qr, g, rng)
    spec = lyapunov_spectrum(RateRNN(j, dt=1.0, integrator="euler"), steps_qr, warmup=warm)
    exact = rate_theory.trivial_fixed_point_exponents(j)
    sum_gap = abs(float(np.sum(spec.exponents)) - float(np.sum(exact)))
    sum_tol = _LOG_SV_ACCURACY * n_qr
    max_gap = float(np.max(np.abs(spec.exponents - exact)))
    # Exponent k: the top-k sum is the log growth of the k-th exterior power, whose eigenvector
    # condition number is at most cond(V)^k ... per exponent, two of those bounds.
    max_tol = 2.0 * _log_cond_eigvecs(j) / (steps_qr - warm)
    # (b) Many networks: the pooled CDF of the exact exponents log|mu_i|.
    n, count = (64, 16) if quick else (128, 40)
    exps = np.array([rate_theory.trivial_fixed_point_exponents(gaussian(n, g, rng)) for _ in range(count)])
    grid = np.sort(exps.ravel())
    per_draw = np.array([np.searchsorted(np.sort(e), grid, side="right") / n for e in exps])
    target = rate_theory.circular_law_exponent_cdf(grid, model)
    # sup over the jumps of the pooled CDF, at both sides of each jump.
    pooled = per_draw.mean(axis=0)
    left = np.concatenate([[0.0], pooled[:-1]])
    dev = np.maximum(np.abs(pooled - target), np.abs(left - target))
    at = int(np.argmax(dev))
    measured = float(dev[at])
    se = float(np.std(per_draw[:, at], ddof=1)) / math.sqrt(count)
    edge = _kostlan_distance(n, g)
    real_share = math.sqrt(2.0 / (math.pi * n))
    tolerance = _crit(count - 1) * se + edge + real_share / 4.0
    detail = (
        f"Map x' = J tanh(x) at the fixed point x = 0, g = {g} (no input). (a) N = {n_qr}, "
        f"T = {steps_qr - warm}: QR exponents vs log|mu_i| of J: max gap {_g(max_gap, 3)} (allowed "
        f"2 log cond(V)/T = {_g(max_tol, 3)}), sum gap {_g(sum_gap, 2)} (allowed {_g(sum_tol, 2)}). "
        f"(b) {count} draws, N = {n}: sup_s |F_N(s) - e^(2s)/{_g(model, 3)}^2| of the pooled exact "
        f"exponents = {_g(measured, 4)} at s = {_g(grid[at], 4)} (F = {_g(target[at], 3)}); "
        f"finite-N edge term {_g(edge, 3)} (complex Ginibre, Kostlan), real-eigenvalue share/4 "
        f"{_g(real_share / 4, 3)}, {_g(_crit(count - 1), 3)} s.e. {_g(se, 2)}."
    )
    return _judge("at most", measured, 0.0, tolerance, detail,
                  side=[(sum_gap <= sum_tol, "sum of QR exponents != log|det J|"),
                        (max_gap <= max_tol, "QR exponents differ from log|mu_i|")])


# ------------------------------------------------------------------------------------------
# 4. the flow's sum rule
def check_rate_flow_sum_rule(quick: bool, rng, *, integrator: str = "rk4") -> Evidence:
    """Sum of the exponents per unit time + N at dt and dt/2 (RK4, J_ii = 0): the observed
    order of its error.

    ``integrator`` (tests only): "euler" has order 1 and must be refuted.
    """
    g, dt = 3.0, 0.1
    n, span, warm_span = (64, 100.0, 20.0) if quick else (96, 200.0, 20.0)
    j = gaussian(n, g, rng)
    np.fill_diagonal(j, 0.0)  # no self-coupling: the vector field's trace is -N
    x0 = rng.standard_normal(n)
    devs = []
    for h in (dt, dt / 2):
        steps, warm = int(round(span / h)), int(round(warm_span / h))
        spec = lyapunov_spectrum(RateRNN(j, dt=h, integrator=integrator), steps + warm, state0=x0,
                                 warmup=warm)
        total = float(np.sum(spec.exponents)) / h  # per unit time
        devs.append(total - rate_theory.continuous_time_exponent_sum(n))
    d1, d2 = devs
    measured = math.log2(abs(d1) / abs(d2)) if d1 != 0 and d2 != 0 else math.nan
    predicted = 4.0
    tolerance = 0.5
    detail = (
        f"Flow dx/dt = -x + J tanh(x), J_ii = 0, g = {g}, N = {n}, {_g(span, 3)} time units: sum of "
        f"exponents per unit time + N = {_g(d1, 3)} at dt = {dt} and {_g(d2, 3)} at dt = {dt / 2} "
        f"({integrator}); observed order log2 of their ratio = {_g(measured, 4)} (relative errors "
        f"{_g(abs(d1) / n, 2)} and {_g(abs(d2) / n, 2)} per unit)."
    )
    return _judge("within", measured if math.isfinite(measured) else -1.0, predicted, tolerance, detail,
                  side=[(abs(d2) < abs(d1), "the deviation does not shrink as dt halves")])


# ------------------------------------------------------------------------------------------
# 5. the map's largest exponent against mean field
def check_rate_map_dmft_max_exponent(quick: bool, rng, *, prediction=None) -> Evidence:
    """lambda_1 of the map at N1 = 64 and N2 = 256, extrapolated to N = inf assuming an O(1/N)
    bias (Richardson), against map_max_exponent_dmft(g)."""
    g = 3.0
    sizes = (64, 256)
    count, steps, warm = (6, 1500, 300) if quick else (16, 4000, 300)
    means, ses = [], []
    for n in sizes:
        cells = make_cell("rate", n, 0, gain=g, dt=1.0, integrator="euler", rng=rng, ensemble=count)
        spec = lyapunov_spectrum(cells, steps, state0=rng.standard_normal((count, n)), k=1, warmup=warm)
        lams = spec.exponents[:, 0]
        means.append(float(np.mean(lams)))
        ses.append(float(np.std(lams, ddof=1)) / math.sqrt(count))
    (n1, n2), (m1, m2), (s1, s2) = sizes, means, ses
    # lambda(N) = lambda_inf - c/N + O(1/N^2): eliminate c.
    measured = (n2 * m2 - n1 * m1) / (n2 - n1)
    se = math.hypot(n2 * s2, n1 * s1) / (n2 - n1)
    predicted = rate_theory.map_max_exponent_dmft(g) if prediction is None else float(prediction)
    # The O(1/N^2) remainder is allowed as large as the 1/N correction at N2 itself.
    correction = abs(measured - m2)
    tolerance = _crit(count - 1) * se + correction
    gap1, gap2 = predicted - m1, predicted - m2
    detail = (
        f"Map x' = J tanh(x), g = {g}, no input, {count} networks per size, T = {steps - warm}: "
        f"lambda_1 = {_pm(m1, s1)} (N = {n1}), {_pm(m2, s2)} (N = {n2}); DMFT {_g(predicted, 6)} "
        f"(Molgedey et al. 1992); gaps {_g(gap1, 3)} and {_g(gap2, 3)} (ratio "
        f"{_g(gap1 / gap2 if gap2 else math.inf, 3)}, O(1/N) predicts {n2 // n1}); extrapolated "
        f"lambda_inf = {_pm(measured, se)} (Richardson, correction {_g(correction, 3)})."
    )
    return _judge("within", measured, predicted, tolerance, detail,
                  side=[(abs(gap2) < abs(gap1), "the gap does not shrink with N")])


# ------------------------------------------------------------------------------------------
# 6. input suppresses chaos
def check_rate_input_suppresses_chaos(quick: bool, rng, *, input_std: float = 1.0) -> Evidence:
    """lambda_1 (N = 256) and the entropy rate (N = 128) of the map at g = 3 without and with
    white-noise input (std 1 per unit, a fresh draw each step)."""
    g = 3.0
    n, steps, warm = (256, 2500, 200) if quick else (256, 6000, 300)
    n_h, steps_h = (128, 900) if quick else (128, 2000)
    out = {}
    for label, size, length, k in (("lam", n, steps, 1), ("h", n_h, steps_h, None)):
        j = gaussian(size, g, rng)
        x0 = rng.standard_normal(size)
        free = lyapunov_spectrum(RateRNN(j, dt=1.0, integrator="euler"), length, state0=x0, k=k,
                                 warmup=warm)
        noise = input_std * rng.standard_normal((length, size))
        driven = lyapunov_spectrum(RateRNN(j, np.eye(size), dt=1.0, integrator="euler"), noise,
                                   state0=x0, k=k, warmup=warm)
        out[label] = (free, driven)
    free, driven = out["lam"]
    l0, e0, l1, e1 = (float(free.exponents[0]), float(free.stderr[0]),
                      float(driven.exponents[0]), float(driven.stderr[0]))
    measured = l0 - l1
    tolerance = _LYAP_CRIT * math.hypot(e0, e1)
    obs0, obs1 = (spectrum_observables(s) for s in out["h"])
    h0, h1 = float(obs0.entropy_rate) / n_h, float(obs1.entropy_rate) / n_h
    hs0, hs1 = float(obs0.entropy_rate_stderr) / n_h, float(obs1.entropy_rate_stderr) / n_h
    h_tol = _LYAP_CRIT * math.hypot(hs0, hs1)
    detail = (
        f"Map x' = J tanh(x) + u, g = {g}, u_t ~ N(0, {_g(input_std, 3)}^2) per unit and step: "
        f"lambda_1 (N = {n}, T = {steps - warm}) {_pm(l0, e0)} free, {_pm(l1, e1)} driven, drop "
        f"{_g(measured, 4)} (needs > {_g(tolerance, 3)}); entropy rate / N (N = {n_h}, "
        f"T = {steps_h - warm}) {_pm(h0, hs0)} free, {_pm(h1, hs1)} driven, drop {_g(h0 - h1, 4)} "
        f"(needs > {_g(h_tol, 3)})."
    )
    return _judge("exceeds", measured, 0.0, tolerance, detail,
                  side=[(h0 - h1 > h_tol, "the entropy rate does not drop significantly")])


# ==========================================================================================
RATE_CLAIMS: tuple[Claim, ...] = (
    Claim(
        id="notes.exponential-trace-memory",
        statement="Against vanishing gradients: 'exponential trace memory (Jordan 1987, Mozer 1989)', "
                  "the leaky unit h' = (1 - a) h + a tanh(W h + U x), keeps memory for ~1/a steps.",
        source=N002,
        prediction="At g < 1 without input the exponents are log|1 - a + a mu_i| exactly "
                   "(theory.trivial_fixed_point_exponents(W, delta=a)), memory time "
                   "-1/lambda_1 ~ 1/(a(1 - g)); reported: tau(0.1)/tau(1) against its exact value.",
        tolerance_reason=_LYAP_REASON + " plus log cond(V)/T (a constant tangent map M = V D V^-1: "
                         "rho^T <= ||M^T|| <= cond(V) rho^T) on each exponent, propagated exactly "
                         "to the ratio.",
        check=check_exponential_trace_memory,
    ),
    Claim(
        id="theory.rate-map-mean-exponent",
        statement="Map x' = J tanh(x), J ~ N(0, g^2/N): the exponents sum to the mean of "
                  "log|det J_t| = log|det J| + sum_i log tanh'(x_t,i), and per unit they approach "
                  "log g - 1/2 + <log phi'> at large N.",
        source=f"Engelken, Wolf & Abbott 2023; Clark, rnn-lyapunov ({_SECTION})",
        prediction="theory.map_mean_exponent(g, n=N) (exact finite-N E log|det J|/N, mean-field "
                   "<log phi'> at q*), g = 3.",
        tolerance_reason="Student t (k - 1 dof) times the standard error over k networks (the "
                         "network-to-network spread of log|det J|/N, ~sqrt(log N / 2)/N, dominates); "
                         "identity: 1e-8 N per step (the QR contract).",
        check=check_rate_map_mean_exponent,
    ),
    Claim(
        id="theory.rate-fixed-point-circular-law",
        statement="At g < 1 (map, no input) the exponents are the log moduli of J's eigenvalues, "
                  "with cumulative distribution e^(2s)/g^2 at large N.",
        source=f"Girko 1984; Clark, rnn-lyapunov trivial_fixed_point.py ({_SECTION})",
        prediction="theory.trivial_fixed_point_exponents(J) (exact) and "
                   "theory.circular_law_exponent_cdf(s, g); reported: the sup distance of the "
                   "pooled CDF, g = 0.5.",
        tolerance_reason="Finite-N edge term sup|E F_N - F| of complex Ginibre (Kostlan 1992: "
                         "N|mu|^2 are independent Gamma(k)), plus the real eigenvalues' share "
                         "sqrt(2/(pi N)) (Edelman, Kostlan & Shub 1994) times 1/4 (their radial CDF "
                         "r/g departs from r^2/g^2 by at most 1/4), plus Student t (k - 1 dof) "
                         "standard errors over k draws at the sup's location.",
        check=check_rate_fixed_point_circular_law,
    ),
    Claim(
        id="theory.rate-flow-sum-rule",
        statement="Flow dx/dt = -x + J tanh(x) with J_ii = 0: the exponents sum to -N per unit "
                  "time (Liouville), which RK4 keeps up to O(dt^4).",
        source=f"Engelken, Wolf & Abbott 2023 ({_SECTION})",
        prediction="theory.continuous_time_exponent_sum(N) = -N; reported: the observed order "
                   "log2(dev(dt)/dev(dt/2)) of the deviation, predicted 4 (dt = 0.1, g = 3).",
        tolerance_reason="0.5 in the order: the next term of the RK4 error, O(dt^5), and the "
                         "trajectory average of O(dt^4) coefficients move the observed order by a "
                         "few tenths at dt = 0.1; the QR's rounding of the sum (log|det| of a "
                         "backward-stable QR, ~N eps per QR) is ~1e-10 of the deviation.",
        check=check_rate_flow_sum_rule,
    ),
    Claim(
        id="theory.rate-map-dmft-max-exponent",
        statement="The largest exponent of the map x' = J tanh(x) approaches the mean-field "
                  "(1/2) log(g^2 <sech^4>) at large N.",
        source=f"Molgedey, Schuchhardt & Schuster 1992; Engelken, Wolf & Abbott 2023 ({_SECTION})",
        prediction="theory.map_max_exponent_dmft(3) = 0.310249; reported: lambda_1 at N = 64 and "
                   "256 extrapolated to N = inf assuming an O(1/N) bias.",
        tolerance_reason="Student t (k - 1 dof) times the standard error of the extrapolation over "
                         "k networks per size, plus the O(1/N^2) remainder allowed as large as the "
                         "1/N correction at N = 256.",
        check=check_rate_map_dmft_max_exponent,
    ),
    Claim(
        id="theory.rate-input-suppresses-chaos",
        statement="Time-varying input reduces the largest exponent and the entropy rate of a "
                  "chaotic rate network.",
        source=f"Molgedey, Schuchhardt & Schuster 1992; Engelken, Wolf & Abbott 2023 ({_SECTION})",
        prediction="lambda_1(free) - lambda_1(driven) > 0 and the same for h/N; map, g = 3, white "
                   "noise std 1 per unit, held for one step.",
        tolerance_reason=_LYAP_REASON + ", on the difference of two estimates (standard errors "
                                        "in quadrature); the same for the entropy rate's block "
                                        "bootstrap standard errors.",
        check=check_rate_input_suppresses_chaos,
    ),
)

RATE_COMPARISONS: dict[str, str] = {
    "theory.rate-map-mean-exponent": "within",
    "theory.rate-fixed-point-circular-law": "at most",
    "theory.rate-flow-sum-rule": "within",
    "theory.rate-map-dmft-max-exponent": "within",
    "theory.rate-input-suppresses-chaos": "exceeds",
}
