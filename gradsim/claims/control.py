r"""The claims of issue 13 on controlling the exponents: critical initialisation.

Each ``check_<name>(quick, rng) -> Evidence`` runs :func:`gradsim.numeric.critical_init` and
compares the value it finds with :mod:`gradsim.theory` (mean field, THEORY.md section 5; the
zero-weight gated cells, sections 7 and 8); the statistics follow :mod:`gradsim.claims.library`
(Student t quantiles at the two-sided probability of 4 sigma where a standard error is estimated
from B networks). Keyword-only arguments after ``rng`` exist for the tests only (a wrong
prediction must be refuted); the registry calls every check with ``(quick, rng)``.

:data:`CONTROL_CLAIMS` and :data:`CONTROL_COMPARISONS` are appended to the library's ``CLAIMS``
and ``COMPARISONS`` at the bottom of :mod:`gradsim.claims.library`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import logit

from ..numeric.critical import critical_init
from ..theory import predictions as theory
from .framework import Claim, Evidence
from .library import _crit, _g, _judge, _pm

__all__ = ["CONTROL_CLAIMS", "CONTROL_COMPARISONS"]

_S5 = "THEORY.md sections 5 and 15"


def _seed(rng) -> int:
    return int(rng.integers(2**63))


def _finite_n_exponent(g, sigma_in, n):
    """(1/2) log chi_1 - r/4 and r = (3 mu_2/chi_1^2 - 1)/N (library._mean_field_finite_n, with input)."""
    chi1 = theory.mean_field_chi1(g, "tanh", sigma_in=sigma_in)
    q = theory.mean_field_q_star(g, "tanh", sigma_in=sigma_in)
    r = (3.0 * theory.mu2(g, "tanh", q) / chi1**2 - 1.0) / n
    return 0.5 * math.log(chi1) - r / 4.0, r


# ------------------------------------------------------------------------------------------
# 1. the critical gain with input noise
def check_critical_gain_mean_field(quick: bool, rng, *, prediction=None) -> Evidence:
    """critical_init's gain (tanh RNN, input std 1, tied) against the root of the finite-N
    mean-field exponent; ``prediction`` (tests only) replaces that root."""
    sigma_in = 1.0
    n, ensemble, steps, warmup = (64, 16, 800, 150) if quick else (256, 16, 1500, 200)
    found = critical_init("rnn", n, input_std=sigma_in, ensemble=ensemble, steps=steps, warmup=warmup,
                          rng=_seed(rng))
    g_inf = brentq(lambda g: theory.mean_field_chi1(g, "tanh", sigma_in=sigma_in) - 1.0, 0.5, 10.0,
                   xtol=1e-14)
    g_n = brentq(lambda g: _finite_n_exponent(g, sigma_in, n)[0], 0.5, 10.0, xtol=1e-14)
    r = _finite_n_exponent(g_n, sigma_in, n)[1]
    predicted = g_n if prediction is None else float(prediction)
    crit = _crit(ensemble - 1)
    tolerance = crit * found.stderr + r**2 / abs(found.slope)
    above = found.value - tolerance > 1.0
    detail = (
        f"Tied tanh RNN h' = tanh(W h + x), W ~ N(0, g^2/N), N = {n}, {ensemble} networks, x ~ N(0, "
        f"{sigma_in:g}^2) per unit and step, T = {steps - warmup} after {warmup}: critical_init finds "
        f"lambda_1 = 0 at g = {_pm(found.value, found.stderr)} (exponent there {_pm(found.exponent, found.exponent_stderr)}, "
        f"slope d lambda/dg = {_g(found.slope, 3)}, {found.n_evaluations} ensemble runs). Mean field: "
        f"chi_1 = 1 at g = {_g(g_inf, 6)} (N = inf; 1 without input), shifted by the finite-N Jensen gap "
        f"(3 mu_2/chi_1^2 - 1)/(4N) to g_N = {_g(g_n, 6)} (shift {_g(g_n - g_inf, 3)}; remainder "
        f"O(r^2) = {_g(r**2, 2)} in lambda allowed). Compared with {_g(predicted, 6)}; "
        f"{_g(crit, 3)} s.e. (Student t, {ensemble - 1} dof)."
    )
    return _judge("within", found.value, predicted, tolerance, detail,
                  side=[(above, "the measured critical gain is not above 1 beyond its tolerance")])


# ------------------------------------------------------------------------------------------
# 2. the gated cells' critical bias at zero weights
_GH = np.polynomial.hermite_e.hermegauss(120)


def _e_log_sigmoid(b, s):
    z, w = _GH
    return float(np.sum(w * -np.logaddexp(0.0, -(b + s * z))) / np.sum(w))


def check_critical_gate_bias_zero_weight(quick: bool, rng, *, prediction=None) -> Evidence:
    """Zero-weight LSTM forget bias and GRU update bias for lambda = -1/H: exact without input
    (logit(e^(-1/H))); with input std 1 (one unit per network, an ensemble) against the root of
    E log sigma(b + z) = -1/H. ``prediction`` (tests only) replaces the with-input root."""
    horizons = (10, 100) if quick else (10, 100, 1000)
    exact_gap = 0.0
    for h in horizons:
        want = float(logit(math.exp(-1.0 / h)))
        for kind, parameter, path in (("lstm", "forget_bias", "cell"), ("gru", "update_bias", "direct")):
            found = critical_init(kind, 4, parameter=parameter, horizon=h, gain=0.0, path=path,
                                  ensemble=2, steps=60, warmup=5, rng=_seed(rng))
            exact_gap = max(exact_gap, abs(found.value - want))
    # The root finder stops at |lambda + 1/H| <= 1e-12, i.e. 1e-12 / sigma(-b) ~ 1e-12 H in b;
    # allow 1e-8 (H <= 1000 and the rounding of log sigma).
    exact_tol = 1e-8
    h, s = 50, 1.0
    ensemble, steps = (64, 800) if quick else (128, 2000)
    noisy = critical_init("lstm", 1, parameter="forget_bias", horizon=h, gain=0.0, input_std=s,
                          path="cell", ensemble=ensemble, steps=steps, warmup=10, rng=_seed(rng))
    root = brentq(lambda b: _e_log_sigmoid(b, s) + 1.0 / h, -10.0, 30.0, xtol=1e-13)
    predicted = root if prediction is None else float(prediction)
    crit = _crit(ensemble - 1)
    tolerance = crit * noisy.stderr
    no_input = float(logit(math.exp(-1.0 / h)))
    detail = (
        f"Zero weights, no input: the critical LSTM forget bias (cell path) and GRU update bias "
        f"(PyTorch, direct path) for lambda_1 = -1/H, H in {list(horizons)}, equal logit(e^(-1/H)) = "
        f"log(H - 1/2) + O(1/H) to {_g(exact_gap, 2)} (allowed {_g(exact_tol, 2)}); chrono's "
        f"log(H - 1) is {_g(no_input - theory.chrono_forget_bias(h), 3)} lower at H = {h}. With input "
        f"x ~ N(0, {s:g}^2) through the forget gate (one unit, {ensemble} networks, T = {steps - 10}): "
        f"b_f = {_pm(noisy.value, noisy.stderr)} against the root {_g(root, 6)} of E log sigma(b + "
        f"{s:g} z) = -1/{h} ({_g(root - no_input, 3)} above the no-input {_g(no_input, 5)}: Jensen); "
        f"compared with {_g(predicted, 6)}, {_g(crit, 3)} s.e. (Student t, {ensemble - 1} dof)."
    )
    return _judge("within", noisy.value, predicted, tolerance, detail,
                  side=[(exact_gap <= exact_tol, "the zero-weight roots without input are not logit(e^(-1/H))")])


# ==========================================================================================
CONTROL_CLAIMS: tuple[Claim, ...] = (
    Claim(
        id="theory.critical-gain-mean-field",
        statement="The initialisation at the edge of chaos of a random tanh RNN driven by input noise "
                  "(the gain with lambda_1 = 0) is where the mean-field chi_1(g; sigma_in) = 1: above "
                  "g = 1, moved there by the input.",
        source=f"Poole et al. 2016; Chen, Pennington & Schoenholz 2018; Engelken 2023 ({_S5})",
        prediction="The root of (1/2) log chi_1 - (3 mu_2/chi_1^2 - 1)/(4N) (mean field, minus the "
                   "finite-N Jensen gap of theory.mean-field-lyapunov), sigma_in = 1; the N = inf edge "
                   "chi_1 = 1 is reported beside it.",
        tolerance_reason="Student t (B - 1 dof, 4-sigma two-sided level) times the delta-method "
                         "standard error of the root over B networks, plus the O(r^2) remainder of the "
                         "Jensen-gap expansion divided by the slope d lambda/dg.",
        check=check_critical_gain_mean_field,
    ),
    Claim(
        id="theory.critical-gate-bias-zero-weight",
        statement="With zero weights the gate bias that keeps gradients for H steps (lambda_1 = -1/H) "
                  "is logit(e^(-1/H)) ~ log(H - 1/2) for the LSTM forget gate (cell path) and the GRU "
                  "update gate (direct path), next to chrono's log(H - 1); input noise raises it to the "
                  "root of E log sigma(b + sigma_in z) = -1/H.",
        source="Gers et al. 2000; Tallec & Ollivier 2018; Chung et al. 2014 (THEORY.md sections 7, 8)",
        prediction="theory.lstm_zero_weight_cell_product_log / gru_zero_weight_direct_product_log "
                   "inverted (exact); with input std 1, the Gaussian average's root (Gauss-Hermite), "
                   "H = 50.",
        tolerance_reason="Without input 1e-8 (the root finder's stopping rule, 1e-12 in lambda, over "
                         "the slope sigma(-b) >= 1e-3); with input, Student t (B - 1 dof) times the "
                         "delta-method standard error over B one-unit networks, whose exponent is an "
                         "unbiased time average of log sigma(b + x_t).",
        check=check_critical_gate_bias_zero_weight,
    ),
)

CONTROL_COMPARISONS: dict[str, str] = {
    "theory.critical-gain-mean-field": "within",
    "theory.critical-gate-bias-zero-weight": "within",
}
