r"""The curse of memory: second moments of a scalar linear recurrence and its sensitivities.

THEORY.md section 13 (Zucchet & Orvieto 2024, "Recurrent neural networks: vanishing and
exploding gradients are not the end of the story"). The recurrence is

.. math::

    h_t = \lambda\, h_{t-1} + \gamma(\lambda)\, x_t, \qquad |\lambda| < 1,

with :math:`\gamma = 1` (plain) or :math:`\gamma = \sqrt{1-\lambda^2}` (input normalisation, the
LRU's; gamma is then a *function* of lambda, so :math:`d/d\lambda` includes :math:`\gamma'`),
driven by stationary inputs of zero mean, unit variance and autocorrelation
:math:`E[x_t x_{t+\Delta}] = \rho^{|\Delta|}`, :math:`|\rho| < 1` (e.g. a Gaussian AR(1) process,
:math:`x_t = \rho x_{t-1} + \sqrt{1-\rho^2}\,\epsilon_t`). All moments are stationary, i.e. the
limit :math:`t \to \infty` from any initial state (equivalently the state of the infinite past).

The derivation (all results below follow from it)
-------------------------------------------------
Write :math:`h_t = \gamma(\lambda) S(\lambda)` with :math:`S(a) = \sum_{k \ge 0} a^k x_{t-k}`.
The stationary cross-moment of two recurrences with the same inputs is a double geometric series,
summed over the diagonal k = l and the two triangles k > l, k < l:

.. math::

    C(a, b) = E[S(a) S(b)] = \sum_{k, l \ge 0} a^k b^l \rho^{|k-l|}
        = \frac{1}{1-ab}\Big[1 + \frac{a\rho}{1-a\rho} + \frac{b\rho}{1-b\rho}\Big]
        = \frac{1 - ab\rho^2}{(1-ab)(1-a\rho)(1-b\rho)}.

The series converges with all its derivatives uniformly on :math:`|a|, |b| \le r < 1`, so it may
be differentiated term by term, and

.. math::

    E[h^2] = \gamma(\lambda)^2 C(\lambda, \lambda), \qquad
    E\Big[\Big(\frac{\partial h}{\partial\lambda}\Big)^2\Big]
        = \partial_a \partial_b \big[\gamma(a)\gamma(b) C(a, b)\big]_{a=b=\lambda}.

For any reparametrisation :math:`\lambda = f(\nu)`, :math:`\partial h/\partial\nu = f'(\nu)\,
\partial h/\partial\lambda`, so the second moment is multiplied by :math:`f'(\nu)^2`; for the
exponential parametrisation :math:`\lambda = \exp(-\exp\nu)` (the LRU's ``nu_log``),
:math:`f'(\nu) = -e^\nu \lambda = \lambda \log\lambda`.

Results
-------
==================  ==========================================================  =====================
quantity            stationary value                                            as lambda -> 1
==================  ==========================================================  =====================
E[h^2], plain       (1 + rho l) / ((1 - rho l)(1 - l^2))                         ~ (1 - l)^-1
E[h^2], normalised  (1 + rho l) / (1 - rho l)                                   bounded
E[(dh/dl)^2], plain [(1+l^2)(1-l^2 rho^2) + 2(1-l^2) l rho]                      ~ (1 - l)^-3
                    / [(1-l^2)^3 (1-l rho)^2]
E[(dh/dl)^2], norm. (1 + rho l) / ((1 - rho l)(1 - l^2)^2)                       ~ (1 - l)^-2
E[(dh/dnu)^2]       (l log l)^2 E[(dh/dl)^2] of the same variant                 (1-l)^-1 / bounded
==================  ==========================================================  =====================

(l = lambda). The plain formulas are those of THEORY.md section 13 (after Zucchet & Orvieto
2024, section 2), rederived here from C(a, b); the normalised and the exponential ones are derived
here (the normalised one with sympy from the expression above; by hand for iid inputs:
:math:`\gamma^2 = 1-\lambda^2`, :math:`\gamma\gamma' = -\lambda`,
:math:`\gamma'^2 = \lambda^2/(1-\lambda^2)` give
:math:`[(1+\lambda^2) - 2\lambda^2 + \lambda^2]/(1-\lambda^2)^2 = 1/(1-\lambda^2)^2`). The four
sensitivities' leading terms as :math:`\lambda \to 1` have the same prefactor
:math:`(1+\rho)/(4(1-\rho))`; see :func:`sensitivity_divergence`. tests/test_memory_theory.py
checks every formula against the double series summed numerically (with a bound on the
truncation) and against Monte Carlo with :func:`gradsim.parameter_jvp` on ``gs.RNN`` and
``gs.LRU`` cells.

So normalisation alone leaves the sensitivity to lambda diverging, as :math:`(1-\lambda)^{-1}` in
standard deviation instead of :math:`(1-\lambda)^{-3/2}`, while :math:`\partial h_T/\partial h_0
= \lambda^T` never explodes; normalisation together with the exponential parametrisation keeps
:math:`E[(\partial h/\partial\nu)^2] \to (1+\rho)/(4(1-\rho))` bounded as the memory grows.

Every function is pure (numbers in, float out) and imports nothing from the numeric layer.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .._validate import choice, finite_number

__all__ = [
    "MemoryDivergence",
    "linear_state_cross_moment",
    "linear_state_second_moment",
    "linear_sensitivity_second_moment",
    "exp_sensitivity_second_moment",
    "sensitivity_divergence",
]

PARAMETRIZATIONS = ("lambda", "exp")


def _inside_unit_interval(value, name: str, meaning: str) -> float:
    value = finite_number(value, name)
    if not abs(value) < 1.0:
        raise ValueError(f"`{name}` must satisfy |{name}| < 1 ({meaning}); got {value!r}.")
    return value


def _lam(value, name: str = "lam") -> float:
    return _inside_unit_interval(value, name, "a stable recurrence with a stationary state")


def _rho(value) -> float:
    return _inside_unit_interval(value, "rho", "the inputs' lag-one autocorrelation")


def _flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False; got {value!r}.")
    return value


def _plain_sensitivity(lam: float, rho: float, one_minus_lam2: float) -> float:
    numerator = (1.0 + lam * lam) * (1.0 - lam * lam * rho * rho) + 2.0 * one_minus_lam2 * lam * rho
    return numerator / (one_minus_lam2**3 * (1.0 - lam * rho) ** 2)


def _normalised_sensitivity(lam: float, rho: float, one_minus_lam2: float) -> float:
    return (1.0 + rho * lam) / ((1.0 - rho * lam) * one_minus_lam2**2)


def linear_state_cross_moment(a, b, rho=0.0) -> float:
    r"""Stationary :math:`E[h^{(a)}_t h^{(b)}_t]` of two plain recurrences fed the same inputs.

    :math:`h^{(a)}_t = a h^{(a)}_{t-1} + x_t`, :math:`h^{(b)}_t = b h^{(b)}_{t-1} + x_t`, inputs of
    unit variance and autocorrelation :math:`\rho^{|\Delta|}`:

    .. math::

        C(a, b) = \sum_{k, l \ge 0} a^k b^l \rho^{|k-l|}
            = \frac{1 - ab\rho^2}{(1-ab)(1-a\rho)(1-b\rho)}

    (the diagonal k = l gives 1/(1-ab), the triangle k > l gives
    :math:`a\rho/((1-ab)(1-a\rho))`, k < l likewise with b). It generates every moment of this
    module: see the module docstring.

    Parameters
    ----------
    a, b : float
        |a| < 1, |b| < 1.
    rho : float
        Lag-one autocorrelation of the inputs, |rho| < 1 (0: iid).

    Returns
    -------
    float
    """
    a = _lam(a, "a")
    b = _lam(b, "b")
    rho = _rho(rho)
    return (1.0 - a * b * rho * rho) / ((1.0 - a * b) * (1.0 - a * rho) * (1.0 - b * rho))


def linear_state_second_moment(lam, rho=0.0, *, normalized=False) -> float:
    r"""Stationary :math:`E[h^2]` of :math:`h_t = \lambda h_{t-1} + \gamma x_t`.

    .. math::

        E[h^2] = \gamma^2\, \frac{1 + \rho\lambda}{(1 - \rho\lambda)(1 - \lambda^2)},
        \qquad \gamma = 1 \ \text{or}\ \sqrt{1-\lambda^2}

    (:func:`linear_state_cross_moment` at a = b = lambda); iid inputs: :math:`1/(1-\lambda^2)`
    plain, 1 normalised. THEORY.md section 13.

    Parameters
    ----------
    lam : float
        The recurrence coefficient, |lam| < 1.
    rho : float
        Lag-one autocorrelation of the unit-variance inputs, |rho| < 1 (0: iid).
    normalized : bool
        True: the input is scaled by :math:`\gamma = \sqrt{1-\lambda^2}`.

    Returns
    -------
    float
    """
    lam = _lam(lam)
    rho = _rho(rho)
    normalized = _flag(normalized, "normalized")
    ratio = (1.0 + rho * lam) / (1.0 - rho * lam)
    if normalized:
        return ratio
    return ratio / ((1.0 - lam) * (1.0 + lam))


def linear_sensitivity_second_moment(lam, rho=0.0, *, normalized=False) -> float:
    r"""Stationary :math:`E[(\partial h_t/\partial\lambda)^2]` of
    :math:`h_t = \lambda h_{t-1} + \gamma x_t`.

    Plain (:math:`\gamma = 1`; THEORY.md section 13, after Zucchet & Orvieto 2024):

    .. math::

        E\Big[\Big(\frac{\partial h}{\partial\lambda}\Big)^2\Big]
        = \frac{(1+\lambda^2)(1-\lambda^2\rho^2) + 2(1-\lambda^2)\lambda\rho}
               {(1-\lambda^2)^3 (1-\lambda\rho)^2}
        \;\overset{\rho=0}{=}\; \frac{1+\lambda^2}{(1-\lambda^2)^3}.

    Normalised (:math:`\gamma = \sqrt{1-\lambda^2}`, differentiated with lambda; derived here):

    .. math::

        E\Big[\Big(\frac{d h}{d\lambda}\Big)^2\Big]
        = \frac{1+\rho\lambda}{(1-\rho\lambda)(1-\lambda^2)^2}
        \;\overset{\rho=0}{=}\; \frac{1}{(1-\lambda^2)^2}.

    Both are :math:`\partial_a\partial_b[\gamma(a)\gamma(b) C(a,b)]` at a = b = lambda with C of
    :func:`linear_state_cross_moment` (module docstring). As :math:`\lambda \to 1` they grow as
    :math:`(1+\rho)/(4(1-\rho))\,(1-\lambda)^{-3}` and :math:`(\ldots)(1-\lambda)^{-2}`.

    Parameters
    ----------
    lam : float
        The recurrence coefficient, |lam| < 1.
    rho : float
        Lag-one autocorrelation of the unit-variance inputs, |rho| < 1 (0: iid).
    normalized : bool
        True: :math:`\gamma = \sqrt{1-\lambda^2}`, a function of lambda.

    Returns
    -------
    float
    """
    lam = _lam(lam)
    rho = _rho(rho)
    normalized = _flag(normalized, "normalized")
    one_minus_lam2 = (1.0 - lam) * (1.0 + lam)
    if normalized:
        return _normalised_sensitivity(lam, rho, one_minus_lam2)
    return _plain_sensitivity(lam, rho, one_minus_lam2)


def exp_sensitivity_second_moment(nu, rho=0.0, *, normalized=False) -> float:
    r"""Stationary :math:`E[(\partial h_t/\partial\nu)^2]` under :math:`\lambda = \exp(-\exp\nu)`.

    The LRU's exponential parametrisation (Orvieto et al. 2023; ``nu_log`` of ``gs.LRU``), real
    lambda in (0, 1) for every real nu. By the chain rule,
    :math:`\partial\lambda/\partial\nu = -e^\nu\lambda = \lambda\log\lambda`, so

    .. math::

        E\Big[\Big(\frac{\partial h}{\partial\nu}\Big)^2\Big]
            = e^{2\nu}\lambda^2\, E\Big[\Big(\frac{\partial h}{\partial\lambda}\Big)^2\Big]

    with the second factor from :func:`linear_sensitivity_second_moment` (plain or normalised;
    normalised, gamma = sqrt(1 - lambda^2) is a function of nu too, as when the LRU's
    ``gamma_log`` is tied to ``nu_log``). iid inputs:

    .. math::

        \text{plain: } \frac{e^{2\nu}\lambda^2 (1+\lambda^2)}{(1-\lambda^2)^3}
            \sim \tfrac14 (1-\lambda)^{-1}, \qquad
        \text{normalised: } \frac{e^{2\nu}\lambda^2}{(1-\lambda^2)^2} \to \tfrac14

    as :math:`\nu \to -\infty` (:math:`1 - \lambda \approx e^\nu`). With :math:`u = e^\nu`,
    :math:`e^\nu\lambda/(1-\lambda^2) = u/(2\sinh u) \le 1/2`, so the normalised moment is
    :math:`(u/(2\sinh u))^2 (1+\rho\lambda)/(1-\rho\lambda)`, bounded for every nu. Computed with
    :math:`1-\lambda^2 = -\mathrm{expm1}(-2e^\nu)`, accurate where lambda rounds to 1.

    Parameters
    ----------
    nu : float
        Any finite real; lambda = exp(-exp(nu)). Values below about -745 + log 2 make
        1 - lambda^2 underflow and are refused.
    rho : float
        Lag-one autocorrelation of the unit-variance inputs, |rho| < 1 (0: iid).
    normalized : bool
        True: :math:`\gamma = \sqrt{1-\lambda^2}`.

    Returns
    -------
    float
        Plain, the moment grows as e^(-nu) / 4 and overflows to inf only below nu = -709;
        normalised, it stays below (1 + |rho|) / (4 (1 - |rho|)) everywhere.
    """
    nu = finite_number(nu, "nu")
    rho = _rho(rho)
    normalized = _flag(normalized, "normalized")
    rate = math.exp(nu)
    one_minus_lam2 = -math.expm1(-2.0 * rate)
    if one_minus_lam2 == 0.0:
        raise ValueError(
            "`nu` must be large enough that 1 - lambda^2 = -expm1(-2 exp(nu)) is a positive "
            f"float64 (nu > about -744); got {nu!r}."
        )
    lam = math.exp(-rate)
    # e^{2 nu} cancels two powers of (1 - lambda^2) first, so nothing overflows on the way.
    ratio = rate / one_minus_lam2
    if normalized:
        return lam * lam * ratio * ratio * (1.0 + rho * lam) / (1.0 - rho * lam)
    numerator = (1.0 + lam * lam) * (1.0 - lam * lam * rho * rho) + 2.0 * one_minus_lam2 * lam * rho
    return lam * lam * ratio * ratio * numerator / (one_minus_lam2 * (1.0 - lam * rho) ** 2)


class MemoryDivergence(NamedTuple):
    """Leading behaviour ``prefactor * (1 - lambda) ** slope`` of a sensitivity's second moment."""

    slope: float
    prefactor: float


def sensitivity_divergence(rho=0.0, *, normalized=False, parametrization="lambda") -> MemoryDivergence:
    r"""How the sensitivity's second moment diverges as the memory grows (:math:`\lambda \to 1`).

    .. math::

        E\Big[\Big(\frac{\partial h}{\partial\theta}\Big)^2\Big]
            = c\,(1-\lambda)^{s}\,\big(1 + O(1-\lambda)\big), \qquad
        c = \frac{1+\rho}{4(1-\rho)}

    with the slope s of :math:`\log E` against :math:`\log(1-\lambda)`:

    ==============  ====================  ===============
    theta           plain (gamma = 1)     normalised
    ==============  ====================  ===============
    lambda          -3                    -2
    nu (exp)        -1                    0 (bounded)
    ==============  ====================  ===============

    Derivation: near a = b = 1, :math:`C(a, b) = \frac{1+\rho}{1-\rho}\frac{1}{1-ab}(1 + O(1-a,
    1-b))`, and :math:`\partial_a\partial_b (1-ab)^{-1} = (1+ab)/(1-ab)^3 \approx 2/(8(1-\lambda)^3)`
    gives the plain row; with normalisation the leading terms of :math:`\gamma^2 C_{ab}`,
    :math:`2\gamma\gamma' C_a` and :math:`\gamma'^2 C` cancel to :math:`1/(1-\lambda^2)^2`
    (see :func:`linear_sensitivity_second_moment`); the exponential parametrisation multiplies
    by :math:`(\lambda\log\lambda)^2 = (1-\lambda)^2 (1 + O(1-\lambda))`, two powers. The
    prefactor is the same in all four cases. These are limits: at finite lambda the local slope
    differs from s by O(1 - lambda) (e.g. plain, iid: :math:`s + (1-\lambda)/2 + \ldots`).

    Parameters
    ----------
    rho : float
        Lag-one autocorrelation of the unit-variance inputs, |rho| < 1.
    normalized : bool
        Input normalisation :math:`\gamma = \sqrt{1-\lambda^2}`.
    parametrization : {"lambda", "exp"}
        The parameter differentiated: lambda itself, or nu with lambda = exp(-exp(nu)).

    Returns
    -------
    MemoryDivergence
        ``(slope, prefactor)``.
    """
    rho = _rho(rho)
    normalized = _flag(normalized, "normalized")
    parametrization = choice(parametrization, "parametrization", PARAMETRIZATIONS)
    slope = -3.0 if not normalized else -2.0
    if parametrization == "exp":
        slope += 2.0
    return MemoryDivergence(slope=slope, prefactor=(1.0 + rho) / (4.0 * (1.0 - rho)))
