r"""Gradient flossing (Engelken 2023): Adam on the distance of the top-k Lyapunov exponents from a
target, back-propagated exactly through the QR method.

The flossing loss of a window of T steps is

.. math::

    L_{\text{floss}}(\theta) = \frac{1}{k} \sum_{i=1}^{k} \big(\lambda_i(\theta) - \lambda^*\big)^2,
    \qquad
    \frac{\partial L_{\text{floss}}}{\partial \theta}
        = \sum_i c_i \frac{\partial \lambda_i}{\partial \theta},
    \quad c_i = \frac{2 (\lambda_i - \lambda^*)}{k},

with :math:`\lambda_1 \ge \dots \ge \lambda_k` the finite-time exponents of the window
(:func:`gradsim.lyapunov_vjp`, a QR at every step, the same estimator as
:func:`gradsim.lyapunov_spectrum`) and the gradient its exact vector-Jacobian product with the
cotangent :math:`c`. Each flossing update computes it, optionally clips it by its global norm
(Pascanu et al. 2013), and takes one Adam step (:class:`gradsim.training.backprop.Adam`).
Pushing the leading exponents to :math:`\lambda^* = 0` makes the long-range Jacobian
neither expand nor contract along its top k directions, which is what the paper uses to make
gradients travel (before training and at intervals during it: see
:class:`gradsim.training.backprop.Flossing`).

Everything is float64 numpy; nothing here writes files or touches numpy's global random state.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .._validate import as_rng, describe, finite_array, finite_number, positive_int, positive_number
from ..cells import Cell

__all__ = ["floss", "FlossResult"]


@dataclass(frozen=True, eq=False)
class FlossResult:
    r"""Result of :func:`floss`.

    Attributes
    ----------
    cell : Cell
        The flossed cell (parameters not in :attr:`parameters` are the input cell's arrays,
        bit for bit).
    exponents : ndarray, shape (updates + 1, *E, k)
        ``exponents[u]`` are the top k finite-time exponents (descending, per step) measured on
        the window of update u, before that update's step; ``exponents[updates]`` those of the
        final cell (on a fresh window when ``rng`` was given). E is the cell's batch shape
        (``()`` for one network); several windows per network are averaged.
    losses : ndarray, shape (updates + 1, *E)
        :math:`\frac{1}{k} \sum_i (\lambda_i - \lambda^*)^2` of the rows of :attr:`exponents`.
    grad_norm_before, grad_norm_after : ndarray, shape (updates, *E)
        Global norm (over the flossed parameters; per member for an ensemble) of each
        update's flossing gradient before and after clipping (equal without ``clip_norm``).
    parameters : tuple of str
        Names of the flossed parameters.
    k : int
    target : float
    updates : int
    """

    cell: Cell
    exponents: np.ndarray
    losses: np.ndarray
    grad_norm_before: np.ndarray
    grad_norm_after: np.ndarray
    parameters: tuple
    k: int
    target: float
    updates: int


def _check_parameters(cell, parameters) -> tuple:
    names = tuple(cell.parameters())
    if parameters is None:
        return names
    if isinstance(parameters, str):
        parameters = (parameters,)
    try:
        chosen = tuple(parameters)
    except TypeError:
        raise TypeError(
            f"`parameters` must be None (all) or a collection of parameter names among {names}; got "
            f"{describe(parameters)}."
        ) from None
    if not chosen:
        raise ValueError(
            f"`parameters` must name at least one parameter among {names} (None floss them all); got "
            "an empty collection."
        )
    unknown = [p for p in chosen if not isinstance(p, str) or p not in names]
    if unknown:
        raise ValueError(
            f"`parameters` must hold names of the {type(cell).__name__}'s parameters {names}; got unknown "
            f"{unknown!r}."
        )
    return tuple(n for n in names if n in set(chosen))


def _check_k(cell, k, path) -> int:
    cell._check_path(path)
    size = cell.path_size(path)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= size:
        raise ValueError(
            f"`k` must be an integer in [1, {size}] (the state size along path {path!r}); got {describe(k)}."
        )
    return int(k)


def _window_maker(inputs, rng):
    """A function () -> the inputs of the next window: the given ones, or fresh draws."""
    if isinstance(inputs, numbers.Integral) and not isinstance(inputs, bool):
        return lambda: inputs
    if inputs is None or isinstance(inputs, bool):
        raise TypeError(f"`inputs` must be a positive int T or an array (..., T, I); got {describe(inputs)}.")
    array = finite_array(inputs, "inputs")
    if rng is None:
        return lambda: array
    gen = as_rng(rng)
    std = float(np.std(array))
    return lambda: gen.standard_normal(array.shape) * std


def floss(
    cell, inputs, k, target=0.0, updates=100, learning_rate=1e-3, rng=None, *, warmup=0, path="full",
    parameters=None, clip_norm=None, state0=None,
) -> FlossResult:
    r"""Gradient flossing: Adam updates on :math:`\frac{1}{k}\sum_{i \le k} (\lambda_i - \lambda^*)^2`
    alone (no task loss), the gradient exact by :func:`gradsim.lyapunov_vjp`.

    Update u = 0 .. updates - 1 measures the top k finite-time exponents
    :math:`\lambda^{(u)}` of the current cell on its window, takes the gradient of the loss
    with the cotangent :math:`c = 2 (\lambda^{(u)} - \lambda^*) / k` (parameter gradients
    only: ``input_gradient=False``), clips it by its global norm when ``clip_norm`` is given,
    and applies one Adam step (:class:`~gradsim.training.backprop.Adam`, ``lr=learning_rate``,
    default betas) to the flossed parameters.

    Parameters
    ----------
    cell : Cell
        Any tied cell, or an ensemble (``cell.batch_shape == E``): each member is flossed on
        its own loss (Adam acts entry by entry, the clipping per member), so member i of the
        result equals flossing ``cell[i]`` alone with the same windows, to rounding (with
        ``rng``: when the inputs are (T, I), shared, and ``rng`` the same seed; per-member
        inputs (*E, T, I) are drawn as one array of that shape).
    inputs : int or array, shape (T, I) or (..., T, I)
        The window: an int T (T steps of zero input) or an array as
        :func:`gradsim.lyapunov_spectrum` takes it (for an ensemble, (T, I) shared by the
        members or (*E, T, I) one per member). Without ``rng`` every update uses this same
        window (a deterministic objective). With ``rng``, every update (and the final
        measurement) draws a fresh window "like inputs": an array of the same shape with
        i.i.d. entries :math:`N(0, \sigma^2)`, :math:`\sigma` = ``np.std(inputs)`` over all
        its entries (zero mean whatever the given array's mean), drawn by
        ``rng.standard_normal(inputs.shape) * sigma`` once per update, in order; an int T
        draws nothing (zero input stays zero input). Batch dimensions of the inputs or of
        ``state0`` beyond an ensemble's members are several windows of one network: its
        exponents are their mean (the estimate of all its windows together), and the loss is
        that of the mean.
    k : int
        Number of leading exponents flossed, 1 <= k <= P (the path size).
    target : float
        :math:`\lambda^*`, per step (natural log); finite.
    updates : int
        Number of flossing updates, >= 1.
    learning_rate : float
        Adam's step size, > 0.
    rng : seed or Generator, optional
        Draws the fresh windows (see ``inputs``). None: the given window every update.
    warmup : int
        Steps of each window run before the exponents' average starts (0 <= warmup < T);
        the gradient still flows through them. With zero input, start away from a fixed
        point (``state0``): a tanh RNN without bias sits at h = 0 forever.
    path : str
        The Jacobian path whose exponents are flossed (``"full"``, ``"hidden"``, ...).
    parameters : collection of str, optional
        Names of the parameters to floss (None: all of ``cell.parameters()``); the others
        are kept bit for bit. Engelken's code flosses ``weight_hh``, ``weight_ih`` and the
        bias.
    clip_norm : float, optional
        Global-norm threshold of each update's gradient over the flossed parameters
        (:func:`~gradsim.training.backprop.clip_by_global_norm`, per member for an ensemble).
    state0 : array, shape (..., S), optional
        Initial state of every window (zeros by default).

    Returns
    -------
    FlossResult
        The flossed cell and the per-update exponents and losses.

    Notes
    -----
    The exponents of each window (those recorded, and those in the cotangent c) are
    :func:`gradsim.lyapunov_spectrum`'s (same ``k``, ``warmup``, ``path``, starting frame
    seed 0), computed first because c depends on them; the gradient is then
    :func:`gradsim.lyapunov_vjp`'s with that c, whose exponents (a QR every step) agree with
    them to ``lyapunov_spectrum``'s stated 1e-8. So the gradient is that of the recorded loss
    to 1e-8 of its size. Cost per update: one ``lyapunov_vjp`` (about 4 times a
    ``lyapunov_spectrum`` of the window) and one ``lyapunov_spectrum``.

    The gradient through the trajectory grows like back-propagation through time does, at
    :math:`\lambda_1` per step while the network is chaotic: long windows at a large positive
    :math:`\lambda_1` give huge gradients, which Adam's normalisation (and ``clip_norm``)
    tames.

    Raises
    ------
    FloatingPointError
        When the forward dynamics overflow or a frame column is annihilated (from
        :func:`gradsim.lyapunov_vjp`), or the gradient overflows (a window too long for its
        top exponent: :math:`\lambda_1 T > 709`).
    """
    from .backprop import Adam

    if not isinstance(cell, Cell):
        raise TypeError(
            f"`cell` must be a gradsim Cell (tied weights, one network or an ensemble); got {describe(cell)}."
        )
    k = _check_k(cell, k, path)
    target = finite_number(target, "target")
    updates = positive_int(updates, "updates")
    learning_rate = positive_number(learning_rate, "learning_rate")
    if clip_norm is not None:
        clip_norm = positive_number(clip_norm, "clip_norm")
    names = _check_parameters(cell, parameters)
    window = _window_maker(inputs, rng)
    optimizer = Adam(lr=learning_rate)
    state = optimizer.init({n: v for n, v in cell.parameters().items() if n in names})
    cell, state, exponents, before, after = _floss_updates(
        cell, window, k, target, updates, optimizer, state, names, clip_norm, warmup, path, state0,
    )
    exponents.append(_exponents(cell, window(), k, warmup, path, state0))
    exponents = np.array(exponents)
    return FlossResult(
        cell=cell,
        exponents=exponents,
        losses=np.mean((exponents - target) ** 2, axis=-1),
        grad_norm_before=np.array(before),
        grad_norm_after=np.array(after),
        parameters=names,
        k=k,
        target=target,
        updates=updates,
    )


def _network_mean(lam, batch):
    """Windows beyond the ensemble's members (a batch of sequences for one network, or a
    leading batch before the members): each network's exponents are their mean. Returns
    ``(mean, number of windows per network)``."""
    lead = lam.ndim - 1 - len(batch)
    if not lead:
        return lam, 1
    return lam.mean(axis=tuple(range(lead))), int(np.prod(lam.shape[:lead], dtype=int))


def _exponents(cell, x, k, warmup, path, state0):
    from ..numeric.spectrum import lyapunov_spectrum

    lam = lyapunov_spectrum(cell, x, state0=state0, k=k, warmup=warmup, path=path).exponents
    return _network_mean(lam, cell.batch_shape)[0]


def _floss_updates(cell, window, k, target, updates, optimizer, state, names, clip_norm, warmup, path,
                   state0):
    """``updates`` flossing steps of ``optimizer`` from its ``state`` (validated arguments):
    returns ``(cell, state, exponents, norms_before, norms_after)``, the last three lists with
    one entry per update (exponents measured before its step)."""
    from ..numeric.lyapunov_grad import lyapunov_vjp
    from ..numeric.spectrum import lyapunov_spectrum
    from .backprop import clip_by_global_norm, global_norm

    batch = cell.batch_shape
    exponents, before, after = [], [], []
    params = {n: np.array(v) for n, v in cell.parameters().items() if n in names}
    for _ in range(updates):
        x = window()
        lam = lyapunov_spectrum(cell, x, state0=state0, k=k, warmup=warmup, path=path).exponents
        mean, windows = _network_mean(lam, batch)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is raised below
            grads = lyapunov_vjp(
                cell, x, k, np.broadcast_to(2.0 * (mean - target) / (k * windows), lam.shape),
                state0=state0, warmup=warmup, path=path, input_gradient=False,
            ).parameters
        lam = mean
        grads = {n: grads[n] for n in names}
        if not all(np.all(np.isfinite(g)) for g in grads.values()):
            raise FloatingPointError(
                f"the flossing gradient overflowed float64 at flossing update {len(exponents)} (top exponent "
                f"{np.max(lam[..., 0]):.3g} per step: back-propagation through a chaotic window grows as "
                "exp(lambda_1 T)); use shorter windows (a batch of them for the same statistics)."
            )
        norm = global_norm(grads, batch_shape=batch)
        clipped = norm
        if clip_norm is not None:
            grads, norm, clipped = clip_by_global_norm(grads, clip_norm, batch_shape=batch)
        exponents.append(lam)
        before.append(norm)
        after.append(clipped)
        params, state = optimizer.update(params, grads, state)
        cell = cell.with_parameters(params)
    return cell, state, exponents, before, after
