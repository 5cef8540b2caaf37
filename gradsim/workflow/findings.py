"""The key numbers of a report, each with what it can be trusted to.

A study's ``summarize(frame)`` returns its key numbers. Each is a float that also says how far
another run (another machine, other BLAS kernels, other library versions, the same seeds) may
move it:

- :class:`Exact`: a quantity the simulation determines up to floating-point rounding (a
  theorem checked to rounding, a count fixed by the grid, a closed form). It carries a relative
  and an absolute rounding tolerance. A plain ``float`` or ``int`` in a summary is taken as
  ``Exact`` with the default tolerances.
- :class:`Estimate`: a mean, median or exponent estimated from random draws or from a chaotic
  trajectory, with its standard error. Rerun elsewhere it moves within its noise: a chaotic
  trajectory decorrelates from rounding alone, and a training run's path can branch.
- :class:`Rate`: a proportion of successes among independent trials, shown with its Wilson
  score interval.

They subclass ``float``, so a summary's numbers still compare and format as numbers.
:func:`agree` decides whether two values of one key number are consistent, and is what
``gradsim compare`` uses.

Tolerances. ``Exact``'s defaults (relative 1e-9, absolute 1e-12) cover the rounding of float64
computations that differ only in the order of their floating-point operations (other BLAS
kernels, other numpy versions), which changes results by ~1e-16 times the condition of the
computation: 1e-9 leaves a factor 1e4 or more for the condition numbers of these studies'
products and sums, and the absolute 1e-12 covers quantities that are themselves rounding
(``largest excess over a bound: 3e-15``). Two estimates agree when they differ by less than
``Z_AGREE = 4`` combined standard errors: for independent draws a false alarm has probability
6e-5 per number, so a report of a few hundred key numbers disagrees with itself by chance with
probability of about 1-2%.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "Exact",
    "Estimate",
    "Rate",
    "mean_estimate",
    "median_estimate",
    "rate_of",
    "extreme_estimate",
    "wilson_interval",
    "agree",
    "describe_finding",
    "Z_AGREE",
    "EXACT_RTOL",
    "EXACT_ATOL",
]

Z_AGREE = 4.0
EXACT_RTOL = 1e-9
EXACT_ATOL = 1e-12
# 95% two-sided normal quantile: the intervals the report shows.
_Z95 = 1.959963984540054


class Exact(float):
    """A number exact up to floating-point rounding.

    Parameters
    ----------
    value : float
    rtol, atol : float
        Two runs agree when ``|a - b| <= atol + rtol * max(|a|, |b|)``.
    """

    def __new__(cls, value, rtol: float = EXACT_RTOL, atol: float = EXACT_ATOL):
        self = super().__new__(cls, value)
        self.rtol = float(rtol)
        self.atol = float(atol)
        return self

    def __reduce__(self):
        return (type(self), (float(self), self.rtol, self.atol))


class Estimate(float):
    """A number estimated from random draws or a chaotic trajectory, with its standard error.

    Parameters
    ----------
    value : float
    stderr : float
        One standard error (non-negative; NaN if it cannot be estimated, e.g. one draw).
    n : int, optional
        Number of draws (seeds, configurations, blocks) behind it, for the report.
    """

    def __new__(cls, value, stderr, n: int | None = None):
        self = super().__new__(cls, value)
        stderr = float(stderr)
        if stderr < 0:
            raise ValueError(f"`stderr` must be non-negative; got {stderr!r}.")
        self.stderr = stderr
        self.n = None if n is None else int(n)
        return self

    def __reduce__(self):
        return (type(self), (float(self), self.stderr, self.n))


class Rate(float):
    """A proportion ``successes / trials`` of independent trials.

    Parameters
    ----------
    successes, trials : int
        ``0 <= successes <= trials``, ``trials >= 1``.
    """

    def __new__(cls, successes, trials):
        for name, value in (("successes", successes), ("trials", trials)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"`{name}` must be an integer; got {value!r}.")
        if trials < 1 or not 0 <= successes <= trials:
            raise ValueError(
                f"`successes` and `trials` must satisfy 0 <= successes <= trials, trials >= 1; "
                f"got {successes} of {trials}."
            )
        self = super().__new__(cls, successes / trials)
        self.successes = int(successes)
        self.trials = int(trials)
        return self

    def __reduce__(self):
        return (type(self), (self.successes, self.trials))

    def interval(self, z: float = _Z95) -> tuple[float, float]:
        """The Wilson score interval (95% by default)."""
        return wilson_interval(self.successes, self.trials, z)


def wilson_interval(successes: int, trials: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927; Brown, Cai & DasGupta 2001).

    Unlike the normal interval it is never empty or outside [0, 1], and it keeps close to its
    coverage at 0 or ``trials`` successes, where a study's success rates often sit.
    """
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    # At 0 (or all) successes the bound is 0 (or 1) exactly; the formula leaves ~1e-17 there.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def mean_estimate(values) -> Estimate:
    """The mean of independent draws with its standard error s / sqrt(n) (ddof 1)."""
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("`values` must hold at least one number; got none.")
    n = values.size
    stderr = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return Estimate(float(np.mean(values)), stderr, n)


def median_estimate(values) -> Estimate:
    """The median of independent draws, with a distribution-free standard error.

    The standard error is the width of the order-statistic 95% interval of the median (ranks
    n/2 -/+ 1.96 sqrt(n)/2, clipped to the sample) over 2 x 1.96: it needs no assumption on the
    distribution, and stays defined with infinite values (a diverged run's loss).
    """
    values = np.sort(np.asarray(values, dtype=float).ravel())
    if values.size == 0:
        raise ValueError("`values` must hold at least one number; got none.")
    n = values.size
    if n == 1:  # one draw: no spread to estimate, as in mean_estimate
        return Estimate(float(values[0]), math.nan, 1)
    half_width = _Z95 * math.sqrt(n) / 2
    low = values[max(0, int(math.floor(n / 2 - half_width)) - 1)]
    high = values[min(n - 1, int(math.ceil(n / 2 + half_width)))]
    with np.errstate(invalid="ignore"):
        stderr = float((high - low) / (2 * _Z95)) if np.isfinite(high - low) else math.inf
    return Estimate(float(np.median(values)), stderr, n)


def extreme_estimate(values, stderrs, largest: bool = True) -> Estimate:
    """The max (or min) over configurations of measured values with standard errors.

    The standard error is the largest among the configurations within ``Z_AGREE`` combined
    standard errors of the extreme: those that could be the extreme in another run. Non-finite
    values are left out.
    """
    values, stderrs = np.asarray(values, float), np.asarray(stderrs, float)
    keep = np.isfinite(values)
    values, stderrs = values[keep], stderrs[keep]
    sign = 1.0 if largest else -1.0
    i = int(np.argmax(sign * values))
    near = sign * (values[i] - values) <= Z_AGREE * (stderrs + stderrs[i])
    return Estimate(values[i], float(np.max(stderrs[near])), len(values))


def rate_of(outcomes) -> Rate:
    """The :class:`Rate` of a sequence of booleans (True = success)."""
    outcomes = np.asarray(outcomes, dtype=bool).ravel()
    if outcomes.size == 0:
        raise ValueError("`outcomes` must hold at least one trial; got none.")
    return Rate(int(outcomes.sum()), int(outcomes.size))


def _as_finding(value):
    if isinstance(value, (Exact, Estimate, Rate)):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    return Exact(value)


def agree(a, b, z: float = Z_AGREE) -> tuple[bool, str]:
    """Whether two values of one key number are consistent, and how far apart they are.

    Exact numbers agree within their rounding tolerances; estimates (and a mix of an estimate
    with an exact number) within ``z`` combined standard errors plus the rounding tolerance;
    rates within ``z`` standard errors of the difference of the Agresti-Caffo adjusted
    proportions (one pseudo-success and one pseudo-failure added to each, so that 0 of n and
    n of n still carry noise). Equal values (NaN with NaN, inf with inf) always agree;
    non-numbers (text) agree when equal.

    Returns
    -------
    (bool, str)
        The verdict and a short account: the difference and what was allowed.
    """
    a, b = _as_finding(a), _as_finding(b)
    if not isinstance(a, numbers.Real) or not isinstance(b, numbers.Real):
        return (str(a) == str(b)), "text"
    fa, fb = float(a), float(b)
    if fa == fb or (math.isnan(fa) and math.isnan(fb)):
        return True, "equal"
    if not (math.isfinite(fa) and math.isfinite(fb)):
        return False, "one is not finite"
    diff = abs(fa - fb)
    rtol = max(getattr(a, "rtol", EXACT_RTOL), getattr(b, "rtol", EXACT_RTOL))
    atol = max(getattr(a, "atol", EXACT_ATOL), getattr(b, "atol", EXACT_ATOL))
    rounding = atol + rtol * max(abs(fa), abs(fb))
    if isinstance(a, Rate) and isinstance(b, Rate):
        pa = (a.successes + 1) / (a.trials + 2)
        pb = (b.successes + 1) / (b.trials + 2)
        se = math.sqrt(pa * (1 - pa) / (a.trials + 2) + pb * (1 - pb) / (b.trials + 2))
        allowed = z * se + rounding
        return diff <= allowed, f"differ by {diff:.3g}, allowed {allowed:.3g} ({z:g} s.e. of the difference)"
    se = math.hypot(_stderr(a), _stderr(b))
    if math.isnan(se):
        return diff <= rounding, f"differ by {diff:.3g}; no standard error to allow for"
    allowed = z * se + rounding
    if se == 0:
        return diff <= allowed, f"differ by {diff:.3g}, allowed {allowed:.3g} (rounding)"
    return diff <= allowed, f"differ by {diff:.3g}, allowed {allowed:.3g} ({z:g} combined s.e.)"


def _stderr(value) -> float:
    if isinstance(value, Estimate):
        return value.stderr
    if isinstance(value, Rate):  # a rate compared with a non-rate: its binomial noise
        p = (value.successes + 1) / (value.trials + 2)
        return math.sqrt(p * (1 - p) / (value.trials + 2))
    return 0.0


def describe_finding(value, fmt) -> str:
    """The report's text of a key number: ``fmt(value)`` plus its uncertainty.

    ``0.3837 ± 0.0123`` for an estimate (one standard error), ``0.6667 (8/12; 95% CI
    0.39-0.86)`` for a rate (Wilson), the number alone for an exact one.
    """
    if isinstance(value, Estimate):
        if not math.isfinite(value):  # -inf (every draw's gradient exactly 0): no spread to show
            return fmt(value)
        if math.isnan(value.stderr):
            return f"{fmt(value)} (one draw)"
        return f"{fmt(value)} ± {value.stderr:.2g}"
    if isinstance(value, Rate):
        low, high = value.interval()
        return f"{fmt(value)} ({value.successes}/{value.trials}; 95% CI {low:.2f}-{high:.2f})"
    return fmt(value)
