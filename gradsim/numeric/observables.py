r"""Observables of a Lyapunov spectrum: Kaplan-Yorke dimension, entropy rate, the fraction of
positive exponents, and their standard errors.

The functions of a spectrum take the array that :func:`~gradsim.lyapunov_spectrum` returns as
``.exponents``: shape (..., k), descending along the last axis, any leading batch dimensions
(an ensemble's members, batched inputs), and return one number per spectrum, shape (...)
(a numpy scalar for a single spectrum). They keep the exponents' units: per step for the
exponents of :func:`~gradsim.lyapunov_spectrum`; divide rates by the step's duration for rates
per unit time. Conventions are those of Engelken, Wolf & Abbott 2023's and Clark's public
codes (RainerEngelken/RNN-LyapunovSpectra, davidclark1/rnn-lyapunov); divide a dimension by N
for their "D/N".

When only the leading k of n exponents were computed (``lyapunov_spectrum(..., k=k)`` with
k < n), pass ``n``: an observable that the missing exponents could change is NaN.

:func:`spectrum_observables` attaches standard errors, from the blocks of steps that the
spectrum was averaged over (a block bootstrap over time) or from an ensemble's members. Local
(finite-time) exponents are :attr:`~gradsim.numeric.LyapunovSpectrum.block_exponents`; with
``n_blocks`` equal to the number of measured steps they are the exponents of single steps.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .._validate import as_rng, choice, describe, positive_int
from .spectrum import LyapunovSpectrum

__all__ = [
    "kaplan_yorke_dimension",
    "entropy_rate",
    "positive_fraction",
    "SpectrumObservables",
    "spectrum_observables",
]


# ------------------------------------------------------------------------------------------
# argument checks
def _index(flat, shape) -> tuple:
    return tuple(int(i) for i in np.unravel_index(int(flat), shape))


def _spectrum(exponents) -> np.ndarray:
    """``exponents`` as a float64 array (..., k), k >= 1, descending, no NaN, no +inf."""
    if isinstance(exponents, LyapunovSpectrum):
        raise TypeError(
            "`exponents` must be an array of exponents (..., k), such as lyapunov_spectrum(...)"
            ".exponents; got a LyapunovSpectrum (pass its .exponents, or use spectrum_observables)."
        )
    if np.iscomplexobj(exponents):
        raise TypeError("`exponents` must be an array of real numbers of shape (..., k); got complex values.")
    try:
        array = np.asarray(exponents, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`exponents` must be an array of real numbers of shape (..., k); got {describe(exponents)}."
        ) from None
    if array.ndim == 0 or array.shape[-1] == 0 or array.size == 0:
        raise ValueError(
            f"`exponents` must be a non-empty array of shape (..., k) with k >= 1; got shape {array.shape}."
        )
    bad = np.isnan(array) | (array == np.inf)
    if bad.any():
        where = _index(np.argmax(bad), array.shape)
        raise ValueError(
            f"`exponents` must be real numbers below +inf (-inf is allowed: a zero growth factor); "
            f"got {float(array[where])!r} at index {where}."
        )
    with np.errstate(invalid="ignore"):  # -inf - -inf
        rises = np.diff(array, axis=-1) > 0
    if rises.any():
        where = _index(np.argmax(rises), rises.shape)
        after = where[:-1] + (where[-1] + 1,)
        raise ValueError(
            "`exponents` must be descending along the last axis (as lyapunov_spectrum returns them); "
            f"got an increase from {float(array[where])!r} at index {where} to {float(array[after])!r} "
            f"at index {after}."
        )
    return array


def _full_size(n, k: int) -> int:
    if n is None:
        return k
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < k:
        raise ValueError(
            f"`n` must be None or an integer >= k = {k} (the full number of exponents, of which the "
            f"leading k were computed); got {describe(n)}."
        )
    return int(n)


def _scalar(array):
    """A 0-d result as a numpy scalar, anything else as it is."""
    return array[()] if isinstance(array, np.ndarray) and array.ndim == 0 else array


# ------------------------------------------------------------------------------------------
# observables of one spectrum (unchecked kernels, then the public functions)
def _kaplan_yorke(e: np.ndarray, n: int) -> np.ndarray:
    k = e.shape[-1]
    cumulative = np.cumsum(e, axis=-1)
    # A descending spectrum has a concave cumulative sum: where it is >= 0 is a prefix.
    j = np.sum(cumulative >= 0, axis=-1)
    inner = np.clip(j, 1, k - 1) if k > 1 else np.ones_like(j)
    with np.errstate(divide="ignore", invalid="ignore"):
        if k > 1:
            head = np.take_along_axis(cumulative, (inner - 1)[..., None], -1)[..., 0]
            tail = np.take_along_axis(e, inner[..., None], -1)[..., 0]
            crossing = inner + head / np.abs(tail)  # -inf tail: head / inf = 0
        else:
            crossing = np.zeros(j.shape)
    result = np.where(j == 0, 0.0, crossing)
    return np.where(j == k, float(k) if n == k else math.nan, result)


def _entropy(e: np.ndarray, n: int) -> np.ndarray:
    total = np.sum(np.where(e > 0, e, 0.0), axis=-1)
    if n > e.shape[-1]:
        total = np.where(e[..., -1] > 0, math.nan, total)
    return total


def _positive(e: np.ndarray, n: int) -> np.ndarray:
    fraction = np.sum(e > 0, axis=-1) / n
    if n > e.shape[-1]:
        fraction = np.where(e[..., -1] > 0, math.nan, fraction)
    return fraction


def kaplan_yorke_dimension(exponents, n=None):
    r"""Kaplan-Yorke (Lyapunov) dimension of a descending spectrum (Kaplan & Yorke 1979).

    .. math::

        D_{KY} = j + \frac{\sum_{i=1}^{j} \lambda_i}{|\lambda_{j+1}|}, \qquad
        j = \max\{\, m : \textstyle\sum_{i=1}^{m} \lambda_i \ge 0 \,\}

    and :math:`D_{KY} = 0` when :math:`\lambda_1 < 0` (a stable fixed point). The cumulative
    sum is taken as non-negative at zero (Clark's convention), so a limit cycle (0, -1, ...)
    has dimension 1 and a spectrum (0, 0, -1) dimension 2; Engelken et al.'s code counts only
    strictly positive sums and would give 0 for both (the two agree wherever the sum does not
    touch zero exactly). If the cumulative sum stays >= 0 through the last exponent, the
    volume never contracts: the result is k for a complete spectrum, and NaN for a partial one
    (``n > k``), whose missing exponents decide where the sum crosses zero.

    Parameters
    ----------
    exponents : array_like, shape (..., k)
        Descending along the last axis (as ``lyapunov_spectrum(...).exponents``); no NaN or
        +inf (-inf, a zero growth factor, is allowed).
    n : int, optional
        The full number of exponents (the state size) when only the leading k were computed;
        k by default (a complete spectrum).

    Returns
    -------
    float or ndarray, shape (...)
        In [0, k]; divide by n for the dimension per unit (D/N).

    Examples
    --------
    >>> float(kaplan_yorke_dimension([1.0, 0.5, -2.0, -3.0]))  # 2 + 1.5 / 2
    2.75
    """
    e = _spectrum(exponents)
    return _scalar(_kaplan_yorke(e, _full_size(n, e.shape[-1])))


def entropy_rate(exponents, n=None):
    r"""Sum of the positive exponents: Pesin's identity for the Kolmogorov-Sinai entropy rate
    (an upper bound on it in general, Ruelle's inequality; Pesin 1977).

    .. math::

        h_{KS} \le \sum_{\lambda_i > 0} \lambda_i

    In nats per step for the exponents of :func:`~gradsim.lyapunov_spectrum`. Zero exponents
    contribute nothing.

    Parameters
    ----------
    exponents : array_like, shape (..., k)
        Descending, as in :func:`kaplan_yorke_dimension`.
    n : int, optional
        The full number of exponents when only the leading k were computed: a partial spectrum
        whose last exponent is still positive may be missing positive exponents, and gives NaN.
        Without it, the spectrum is taken to hold every positive exponent.

    Returns
    -------
    float or ndarray, shape (...)
    """
    e = _spectrum(exponents)
    return _scalar(_entropy(e, _full_size(n, e.shape[-1])))


def positive_fraction(exponents, n=None):
    r"""Fraction of positive exponents, :math:`\#\{i : \lambda_i > 0\} / n` (the unstable
    fraction of Clark's code).

    Parameters
    ----------
    exponents : array_like, shape (..., k)
        Descending, as in :func:`kaplan_yorke_dimension`.
    n : int, optional
        The denominator, the full number of exponents; k by default. A partial spectrum
        (``n > k``) whose last exponent is still positive gives NaN.

    Returns
    -------
    float or ndarray, shape (...)
        In [0, 1].
    """
    e = _spectrum(exponents)
    return _scalar(_positive(e, _full_size(n, e.shape[-1])))


# ------------------------------------------------------------------------------------------
# standard errors
@dataclass(frozen=True, eq=False)
class SpectrumObservables:
    """Result of :func:`spectrum_observables`: each observable with one standard error.

    Attributes
    ----------
    kaplan_yorke_dimension, entropy_rate, positive_fraction : float or ndarray, shape (...)
        Of the measured spectrum (``over="blocks"``), or the mean over the members
        (``over="members"``, shape without the first batch axis).
    kaplan_yorke_dimension_stderr, entropy_rate_stderr, positive_fraction_stderr : same shape
        One standard error (NaN with fewer than two blocks or members).
    participation, participation_stderr : float or ndarray, or None
        The leading Lyapunov vector's participation ratio (between 1 and the state size), if
        the spectrum was measured with ``participation=True``; else None.
    n : int
        The full number of exponents the observables were computed for.
    over : str
        ``"blocks"`` or ``"members"``.
    n_samples : int
        Number of blocks (bootstrapped) or members behind each standard error.
    """

    kaplan_yorke_dimension: np.ndarray
    kaplan_yorke_dimension_stderr: np.ndarray
    entropy_rate: np.ndarray
    entropy_rate_stderr: np.ndarray
    positive_fraction: np.ndarray
    positive_fraction_stderr: np.ndarray
    participation: np.ndarray | None
    participation_stderr: np.ndarray | None
    n: int
    over: str
    n_samples: int


_KERNELS = {"kaplan_yorke_dimension": _kaplan_yorke, "entropy_rate": _entropy, "positive_fraction": _positive}


def _block_lengths(n_steps: int, n_blocks: int) -> np.ndarray:
    """The number of steps in each block of :func:`~gradsim.lyapunov_spectrum`'s averaging
    window (the same cut: ``n_blocks`` nearly equal blocks of ``n_steps`` steps)."""
    return np.diff(np.linspace(0, n_steps, n_blocks + 1).round().astype(int))


def spectrum_observables(
    result, n=None, *, over: str = "blocks", n_boot: int = 1000, rng=0
) -> SpectrumObservables:
    r"""Kaplan-Yorke dimension, entropy rate, positive fraction (and the leading vector's
    participation ratio, if measured) of a :class:`~gradsim.numeric.LyapunovSpectrum`, each with
    a standard error.

    ``over="blocks"`` (a block bootstrap over time): the spectrum is the length-weighted mean
    of its blocks' exponents (:attr:`~gradsim.numeric.LyapunovSpectrum.block_exponents`). Each
    of ``n_boot`` replicates draws as many blocks with replacement, averages their exponents
    with the same weights, sorts the mean descending and computes the observables from it; the
    standard error is the replicates' standard deviation. The observables themselves are those
    of the measured spectrum. Blocks far longer than the correlation time of the local
    exponents make the blocks nearly independent, which the bootstrap assumes (with the default
    20 blocks, each is 1/20 of the run). Each batch member is bootstrapped with the same block
    draws.

    ``over="members"`` (network seeds, or independent inputs): the observables of each member
    along the first batch axis of ``result.exponents``, their mean, and its standard error
    s / sqrt(M) (ddof 1).

    Parameters
    ----------
    result : LyapunovSpectrum
    n : int, optional
        The full number of exponents, when ``result`` holds only the leading k (see
        :func:`kaplan_yorke_dimension`).
    over : {"blocks", "members"}
    n_boot : int
        Bootstrap replicates (``over="blocks"``); the standard error is itself uncertain by
        about 1 / sqrt(2 n_boot) relative from resampling (2% at 1000).
    rng : seed or Generator
        Draws the bootstrap's blocks (seed 0 by default, so results are reproducible).

    Returns
    -------
    SpectrumObservables
    """
    if not isinstance(result, LyapunovSpectrum):
        raise TypeError(
            f"`result` must be a LyapunovSpectrum (from lyapunov_spectrum); got {describe(result)}."
        )
    over = choice(over, "over", ("blocks", "members"))
    exponents = _spectrum(result.exponents)
    n_full = _full_size(n, exponents.shape[-1])
    values = {name: kernel(exponents, n_full) for name, kernel in _KERNELS.items()}
    pr = None if result.participation is None else np.asarray(result.participation, dtype=np.float64)
    out = {}
    if over == "members":
        if exponents.ndim < 2:
            raise ValueError(
                "`result` must have a batch dimension (an ensemble's members, or batched inputs) for "
                f"over='members'; got exponents of shape {exponents.shape}."
            )
        members = exponents.shape[0]
        if pr is not None:
            values["participation"] = pr
        for name, value in values.items():
            out[name] = _scalar(np.mean(value, axis=0))
            with np.errstate(invalid="ignore", divide="ignore"):
                spread = np.std(value, axis=0, ddof=1) if members > 1 else np.full(value.shape[1:], math.nan)
            out[name + "_stderr"] = _scalar(spread / math.sqrt(members))
        samples = members
    else:
        n_boot = positive_int(n_boot, "n_boot")
        blocks = np.moveaxis(np.asarray(result.block_exponents, dtype=np.float64), 0, -2)  # (..., B, k)
        n_blocks = blocks.shape[-2]
        lengths = _block_lengths(result.n_steps, n_blocks).astype(np.float64)
        generator = as_rng(rng)
        draws = generator.integers(0, n_blocks, size=(n_boot, n_blocks))
        counts = np.zeros((n_boot, n_blocks))
        np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
        weights = counts * lengths
        weights /= weights.sum(axis=1, keepdims=True)  # (n_boot, B)
        # A -inf block exponent (a zero growth factor) makes every replicate that draws it -inf,
        # without the NaN of 0 * -inf for the replicates that do not.
        dead = np.isneginf(blocks)
        replicates = np.einsum("rb,...bk->...rk", weights, np.where(dead, 0.0, blocks))
        if dead.any():
            drawn_dead = np.einsum("rb,...bk->...rk", (counts > 0).astype(float), dead.astype(float)) > 0
            replicates = np.where(drawn_dead, -np.inf, replicates)
        replicates = -np.sort(-replicates, axis=-1)
        samples_of = {name: kernel(replicates, n_full) for name, kernel in _KERNELS.items()}  # (..., n_boot)
        if pr is not None:
            # (n_blocks, ...) -> (..., n_blocks)
            block_pr = np.moveaxis(np.asarray(result.block_participation, dtype=np.float64), 0, -1)
            values["participation"] = pr
            samples_of["participation"] = np.einsum("rb,...b->...r", weights, block_pr)
        for name, value in values.items():
            out[name] = _scalar(value)
            with np.errstate(invalid="ignore", divide="ignore"):
                if n_blocks > 1 and n_boot > 1:
                    spread = np.std(samples_of[name], axis=-1, ddof=1)
                else:
                    spread = np.full(np.shape(value), math.nan)
            out[name + "_stderr"] = _scalar(spread)
        samples = n_blocks
    out.setdefault("participation", None)
    out.setdefault("participation_stderr", None)
    return SpectrumObservables(**out, n=n_full, over=over, n_samples=samples)
