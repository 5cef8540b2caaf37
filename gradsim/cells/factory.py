"""``make_cell``: a cell of any kind with freshly initialised weights."""

from __future__ import annotations

import numpy as np

from .. import init as _init
from .._validate import as_rng, choice, describe, finite_number, positive_int, positive_number
from .base import ACTIVATIONS, Cell
from .classic import RNN, ResidualRNN
from .ensemble import stack_cells
from .gru import GRU, GRU_VARIANTS
from .lstm import LSTM
from .modern import LRU, AntisymmetricRNN, CoRNN, IndRNN, MinGRU, MinLSTM, _check_option, _check_ring
from .rate import RATE_INTEGRATORS, LeakyRNN, RateRNN, _check_alpha

CELL_KINDS = (
    "rnn", "irnn", "residual", "lstm", "gru", "leaky", "rate", "lru", "mingru", "minlstm", "indrnn",
    "antisymmetric", "cornn",
)
# The diagonal kinds of gradsim.cells.modern, whose parameters are not PyTorch's four arrays.
MODERN_KINDS = ("lru", "mingru", "minlstm", "indrnn")
# The discretised-ODE kinds of gradsim.cells.modern (AntisymmetricRNN, CoRNN), whose parameters are
# not PyTorch's four arrays either and whose Jacobians are dense.
ODE_KINDS = ("antisymmetric", "cornn")
# Their published defaults: AntisymmetricRNN (eps, gamma), CoRNN (dt, gamma, eps) of sMNIST.
_ODE_DEFAULTS = {"antisymmetric": {"eps": 0.01, "gamma": 0.01}, "cornn": {"dt": 0.042, "gamma": 2.7, "eps": 4.7}}
_N_GATES = {"rnn": 1, "irnn": 1, "residual": 1, "lstm": 4, "gru": 3, "leaky": 1, "rate": 1}
# The kinds with one square recurrent matrix W_hh, whose diagonal is the self-coupling.
_SQUARE_KINDS = ("rnn", "irnn", "residual", "leaky", "rate")
# The leak or branch weight `alpha` of the kinds that have one, when it is not given.
_DEFAULT_ALPHA = {"residual": 1.0, "leaky": 0.1}


def make_cell(
    kind: str,
    n_hidden: int,
    n_input: int = 1,
    *,
    init: str = "gaussian",
    gain: float = 1.0,
    activation: str = "tanh",
    variant: str = "torch",
    alpha: float | None = None,
    dt: float | None = None,
    integrator: str | None = None,
    zero_diagonal: bool = False,
    input_gain: float = 1.0,
    bias_std: float = 0.0,
    forget_bias: float | None = None,
    chrono_t_max: float | None = None,
    r_min: float | None = None,
    r_max: float | None = None,
    max_phase: float | None = None,
    eps: float | None = None,
    gamma: float | None = None,
    ensemble: int | None = None,
    rng=None,
) -> Cell:
    """Build a cell with freshly initialised weights.

    Parameters
    ----------
    kind : {"rnn", "irnn", "residual", "lstm", "gru", "leaky", "rate", "lru", "mingru", "minlstm", "indrnn", \
            "antisymmetric", "cornn"}
        ``"irnn"`` is an RNN with ReLU, recurrent weights ``gain * I`` and zero bias
        (Le, Jaitly & Hinton 2015), whatever ``init`` says. ``"leaky"`` is a
        :class:`~gradsim.cells.rate.LeakyRNN`, ``"rate"`` a :class:`~gradsim.cells.rate.RateRNN`
        (with ``init="gaussian"``, ``gain=g`` and ``zero_diagonal=True``, the random network
        of Engelken, Wolf & Abbott 2023, J_ij ~ N(0, g^2 / N), J_ii = 0).
        The modern diagonal cells (:mod:`gradsim.cells.modern`): ``"lru"`` is an
        :class:`~gradsim.cells.modern.LRU` from :meth:`LRU.ring_init` (with ``r_min``, ``r_max``,
        ``max_phase``; readout size O = I; ``init``, ``gain``, ``input_gain`` and ``bias_std`` do
        not apply); ``"mingru"`` and ``"minlstm"`` (:class:`MinGRU`, :class:`MinLSTM`) have input
        weights N(0, input_gain^2 / I) and biases N(0, bias_std^2) per gate, or, with
        ``init="pytorch"``, nn.Linear's U(-1/sqrt I, 1/sqrt I) for every weight and bias (the
        paper's layers); ``"indrnn"`` (:class:`IndRNN`, with ``activation``; Li et al. use
        ``"relu"``) has recurrent weights u ~ U(0, gain) (Li et al.'s U(0, 1) for gain 1), or
        u = gain for ``init="identity"``, or U(-1/sqrt N, 1/sqrt N) for ``init="pytorch"``, and
        input weights and bias as the other kinds. ``init`` and ``gain`` do not apply to the
        gated minimal cells (they have no recurrent weights).
        The discretised ODEs: ``"antisymmetric"`` (:class:`~gradsim.cells.modern.AntisymmetricRNN`,
        with ``activation``, ``eps`` default 0.01, ``gamma`` default 0.01) has W drawn by ``init``
        with ``gain`` (``"gaussian"``: W ~ N(0, gain^2 / N), Chang et al.'s N(0, sigma^2 / N) with
        sigma = gain), V ~ N(0, input_gain^2 / I) and b ~ N(0, bias_std^2), or, with
        ``init="pytorch"``, U(-1/sqrt N, 1/sqrt N) for all three; ``"cornn"``
        (:class:`~gradsim.cells.modern.CoRNN`, with ``activation``, ``dt`` default 0.042,
        ``gamma`` 2.7, ``eps`` 4.7: Rusch & Mishra's sMNIST settings) has W_y and W_z drawn by
        ``init`` with ``gain``, V ~ N(0, input_gain^2 / I), b ~ N(0, bias_std^2), or, with
        ``init="pytorch"``, the authors' code: one nn.Linear over cat(x, z, y), so every weight
        and the bias U(-1/sqrt(I + 2N), 1/sqrt(I + 2N)).
    n_hidden, n_input : int
        N and I; ``n_input=0`` gives a cell without input weights.
    init : str
        Initialiser of each N x N recurrent block (see :data:`gradsim.init.INITIALISERS`);
        ``"pytorch"`` fills every weight and bias with PyTorch's default U(-1/sqrt N, 1/sqrt N).
    gain : float
        Gain (or identity scale) of the recurrent blocks.
    activation : str
        RNN, residual, leaky, rate, IndRNN, AntisymmetricRNN and CoRNN cells (for "indrnn" the default tanh applies too;
        Li et al. use "relu").
    variant : str
        GRU only.
    alpha : float or array of shape (n_hidden,), optional
        Residual cells: weight of the residual branch (default 1). Leaky cells: the leak rate
        in (0, 1] (default 0.1). Checked as a number for the other kinds and ignored, except
        for ``"rate"``, where it is an error (its leak is ``dt``).
    dt : float, optional
        Rate cells: the step in units of tau (default 1: the map). CoRNN: the step Delta t
        (default 0.042).
    integrator : {"euler", "rk4"}, optional
        Rate cells only (default ``"euler"``).
    zero_diagonal : bool
        No self-coupling: the diagonal of the recurrent matrix is set to 0 after it is drawn
        (the other entries are those of ``zero_diagonal=False``, from the same draws). For the
        kinds with one square recurrent matrix: rnn, irnn, residual, leaky, rate.
    input_gain : float
        Input weights are N(0, input_gain^2 / I) (unless ``init="pytorch"``).
    bias_std : float
        Biases (``bias_hh``) are N(0, bias_std^2); ``bias_ih`` is zero.
    forget_bias : float, optional
        LSTM only: added to the forget-gate bias.
    chrono_t_max : float, optional
        LSTM only: chrono initialisation of the i and f biases with this longest memory.
    r_min, r_max, max_phase : float, optional
        LRU only: the ring initialisation's bounds (defaults 0, 1 and 2 pi, those of
        :meth:`LRU.ring_init`); 0 <= r_min < r_max <= 1, max_phase > 0.
    eps, gamma : float, optional
        AntisymmetricRNN (eps > 0, gamma >= 0; defaults 0.01, 0.01) and CoRNN (both > 0; defaults
        4.7 and 2.7) only.
    ensemble : int, optional
        Draw this many independent networks as one ensemble (``batch_shape == (ensemble,)``).
        Member i is the cell ``make_cell(...)`` would build from the i-th child of ``rng``
        (``rng.spawn(ensemble)[i]``), so one member can be rebuilt on its own.
    rng : seed or Generator

    Returns
    -------
    Cell
        One network, or an ensemble of ``ensemble`` networks.
    """
    choice(kind, "kind", CELL_KINDS)
    n = positive_int(n_hidden, "n_hidden")
    n_in = positive_int(n_input, "n_input", minimum=0)
    choice(init, "init", tuple(_init.INITIALISERS))
    # Checked for every kind, so that a misspelt option never passes silently.
    choice(activation, "activation", tuple(ACTIVATIONS))
    choice(variant, "variant", GRU_VARIANTS)
    if forget_bias is not None:
        forget_bias = finite_number(forget_bias, "forget_bias")
    if chrono_t_max is not None:
        chrono_t_max = positive_number(chrono_t_max, "chrono_t_max")
        if chrono_t_max <= 2.0:
            raise ValueError(
                f"`chrono_t_max` must be a number > 2 (the longest memory in steps); got {chrono_t_max!r}."
            )
    if alpha is not None and kind == "rate":
        raise ValueError(
            f"`alpha` does not apply to kind='rate' (its leak per step is `dt`); got alpha={describe(alpha)}."
        )
    if alpha is not None:
        alpha = _check_alpha(alpha, n) if kind == "leaky" else finite_number(alpha, "alpha")
    if integrator is not None and kind == "cornn":
        raise ValueError(f"`integrator` applies to kind='rate' only; got kind={kind!r}.")
    if dt is not None and kind not in ("rate", "cornn"):
        raise ValueError(f"`dt` applies to kind='rate' or kind='cornn' only; got kind={kind!r}.")
    if integrator is not None and kind != "rate":
        raise ValueError(f"`integrator` applies to kind='rate' only; got kind={kind!r}.")
    if dt is not None:
        dt = positive_number(dt, "dt")
    if (eps is not None or gamma is not None) and kind not in ODE_KINDS:
        raise ValueError(
            f"`eps` and `gamma` apply to kind='antisymmetric' or kind='cornn' only; got kind={kind!r}."
        )
    if eps is not None:
        eps = _check_option(eps, "eps")
    if gamma is not None:
        gamma = _check_option(gamma, "gamma", allow_zero=kind == "antisymmetric")
    if integrator is not None:
        choice(integrator, "integrator", RATE_INTEGRATORS)
    if not isinstance(zero_diagonal, (bool, np.bool_)):
        raise TypeError(f"`zero_diagonal` must be True or False; got {describe(zero_diagonal)}.")
    if zero_diagonal and kind not in _SQUARE_KINDS:
        listed = ", ".join(repr(k) for k in _SQUARE_KINDS)
        raise ValueError(
            f"`zero_diagonal` applies to the kinds with one square recurrent matrix ({listed}); "
            f"got kind={kind!r}."
        )
    gain = positive_number(gain, "gain", allow_zero=True)
    input_gain = positive_number(input_gain, "input_gain", allow_zero=True)
    bias_std = positive_number(bias_std, "bias_std", allow_zero=True)
    if kind != "lstm" and (forget_bias is not None or chrono_t_max is not None):
        raise ValueError(
            f"`forget_bias` and `chrono_t_max` apply to kind='lstm' only; got kind={kind!r}."
        )
    ring = (r_min, r_max, max_phase)
    if any(v is not None for v in ring):
        if kind != "lru":
            raise ValueError(f"`r_min`, `r_max` and `max_phase` apply to kind='lru' only; got kind={kind!r}.")
        r_min, r_max, max_phase = _check_ring(
            0.0 if r_min is None else r_min,
            1.0 if r_max is None else r_max,
            2.0 * np.pi if max_phase is None else max_phase,
        )
    rng = as_rng(rng)
    if ensemble is not None:
        size = positive_int(ensemble, "ensemble")
        options = dict(
            init=init, gain=gain, activation=activation, variant=variant, alpha=alpha, dt=dt,
            integrator=integrator, zero_diagonal=zero_diagonal, input_gain=input_gain,
            bias_std=bias_std, forget_bias=forget_bias, chrono_t_max=chrono_t_max,
            r_min=r_min, r_max=r_max, max_phase=max_phase, eps=eps, gamma=gamma,
        )
        return stack_cells([make_cell(kind, n, n_in, rng=child, **options) for child in rng.spawn(size)])
    if kind in ODE_KINDS:
        given = {"dt": dt, "eps": eps, "gamma": gamma}
        opts = {k: v if given[k] is None else given[k] for k, v in _ODE_DEFAULTS[kind].items()}
        return _ode_cell(kind, n, n_in, init, gain, activation, input_gain, bias_std, opts, rng)
    if kind in MODERN_KINDS:
        return _modern_cell(kind, n, n_in, init, gain, activation, input_gain, bias_std, ring, rng)
    gates = _N_GATES[kind]
    if kind == "irnn":
        init = "identity"
    if init == "pytorch":
        w_hh = _init.pytorch_uniform((gates * n, n), n, rng)
        w_ih = _init.pytorch_uniform((gates * n, n_in), n, rng)
        b_hh = _init.pytorch_uniform((gates * n,), n, rng)
        b_ih = _init.pytorch_uniform((gates * n,), n, rng)
    else:
        w_hh = np.concatenate([_init.initialise(init, n, gain, rng) for _ in range(gates)])
        w_ih = _init.gaussian((gates * n, n_in), input_gain, rng)
        b_hh = rng.standard_normal(gates * n) * bias_std if bias_std > 0 else np.zeros(gates * n)
        b_ih = np.zeros(gates * n)
    if kind == "irnn":
        b_hh = np.zeros(n)
        b_ih = np.zeros(n)
    if zero_diagonal:
        np.fill_diagonal(w_hh, 0.0)
    if alpha is None:
        alpha = _DEFAULT_ALPHA.get(kind)
    if kind in ("rnn", "irnn"):
        act = "relu" if kind == "irnn" else activation
        return RNN(w_hh, w_ih, b_hh, b_ih, activation=act)
    if kind == "residual":
        return ResidualRNN(w_hh, w_ih, b_hh, b_ih, activation=activation, alpha=alpha)
    if kind == "leaky":
        return LeakyRNN(w_hh, w_ih, b_hh, b_ih, alpha=alpha, activation=activation)
    if kind == "rate":
        return RateRNN(
            w_hh, w_ih, b_hh, b_ih, dt=1.0 if dt is None else dt,
            integrator=integrator or "euler", activation=activation,
        )
    if kind == "gru":
        return GRU(w_ih, w_hh, b_ih, b_hh, variant=variant)
    if chrono_t_max is not None:
        b_hh = b_hh + _init.chrono_bias(n, chrono_t_max, rng)
    if forget_bias is not None:
        b_hh = b_hh + _init.forget_gate_bias(n, forget_bias)
    return LSTM(w_ih, w_hh, b_ih, b_hh)


def _modern_cell(kind, n, n_in, init, gain, activation, input_gain, bias_std, ring, rng):
    """A cell of gradsim.cells.modern with the initialisation described in make_cell."""
    if kind == "lru":
        r_min, r_max, max_phase = ring
        return LRU.ring_init(
            n, n_in,
            r_min=0.0 if r_min is None else r_min,
            r_max=1.0 if r_max is None else r_max,
            max_phase=2.0 * np.pi if max_phase is None else max_phase,
            rng=rng,
        )

    def weight():
        if init == "pytorch":
            return _init.pytorch_uniform((n, n_in), max(n_in, 1), rng)
        return _init.gaussian((n, n_in), input_gain, rng)

    def bias():
        if init == "pytorch":
            return _init.pytorch_uniform((n,), max(n_in, 1), rng)
        return rng.standard_normal(n) * bias_std if bias_std > 0 else np.zeros(n)

    if kind == "mingru":
        w_z, b_z, w_h, b_h = weight(), bias(), weight(), bias()
        return MinGRU(w_z, w_h, b_z, b_h)
    if kind == "minlstm":
        w_f, b_f, w_i, b_i, w_h, b_h = weight(), bias(), weight(), bias(), weight(), bias()
        return MinLSTM(w_f, w_i, w_h, b_f, b_i, b_h)
    if init == "identity":
        u = np.full(n, gain)
    elif init == "pytorch":
        u = _init.pytorch_uniform((n,), n, rng)
    else:
        u = rng.uniform(0.0, gain, n)
    w_ih = _init.pytorch_uniform((n, n_in), n, rng) if init == "pytorch" else _init.gaussian((n, n_in), input_gain, rng)
    b = _init.pytorch_uniform((n,), n, rng) if init == "pytorch" else (
        rng.standard_normal(n) * bias_std if bias_std > 0 else np.zeros(n)
    )
    return IndRNN(u, w_ih, b, activation=activation)


def _ode_cell(kind, n, n_in, init, gain, activation, input_gain, bias_std, opts, rng):
    """An AntisymmetricRNN or a CoRNN with the initialisation described in make_cell."""
    squares = 1 if kind == "antisymmetric" else 2
    if init == "pytorch":
        fan_in = n if kind == "antisymmetric" else n_in + 2 * n
        squares = [_init.pytorch_uniform((n, n), fan_in, rng) for _ in range(squares)]
        w_ih = _init.pytorch_uniform((n, n_in), fan_in, rng)
        b = _init.pytorch_uniform((n,), fan_in, rng)
    else:
        squares = [_init.initialise(init, n, gain, rng) for _ in range(squares)]
        w_ih = _init.gaussian((n, n_in), input_gain, rng)
        b = rng.standard_normal(n) * bias_std if bias_std > 0 else np.zeros(n)
    if kind == "antisymmetric":
        return AntisymmetricRNN(squares[0], w_ih, b, activation=activation, **opts)
    return CoRNN(squares[0], squares[1], w_ih, b, activation=activation, **opts)
