"""reservoirpy import: an echo state network's ``Reservoir`` node as the matching leaky cell.

:func:`from_reservoirpy` turns an initialised ``reservoirpy.nodes.Reservoir`` into a
:class:`gradsim.LeakyRNN` whose forward run is reservoirpy's own (same float64 operations, up to
the summation order of a sparse against a dense matrix-vector product), so that its Lyapunov
spectrum, singular values and gradient norms can be measured with :mod:`gradsim.numeric`.
:func:`load_reservoir` reads a node the user saved (``reservoirpy.save``'s ``.rpy``, or a
pickle); ``gradsim analyze`` uses it.

reservoirpy is an optional extra (``pip install 'gradsim[reservoir]'``), never needed by the
core: it is imported only when a node is converted or a file is read.
"""

from __future__ import annotations

import numbers
import pickle
from pathlib import Path

import numpy as np

from .._validate import describe
from ..cells.rate import LeakyRNN

__all__ = ["from_reservoirpy", "load_reservoir", "RESERVOIRPY_ACTIVATIONS", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'gradsim[reservoir]'"

# reservoirpy.activationsfunc's function name -> gradsim's activation name. softmax and softplus
# have no gradsim cell (softmax is not even elementwise) and are refused.
RESERVOIRPY_ACTIVATIONS = {"tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "identity": "linear"}


def _import_reservoirpy():
    try:
        import reservoirpy  # the top-level package: absolute import, never this module
    except ImportError as exc:
        raise ImportError(f"reservoirpy is needed to read reservoirpy reservoirs ({exc}); "
                          f"install it with {INSTALL_HINT}") from None
    return reservoirpy


def _version(rpy) -> tuple:
    parts = []
    for piece in str(getattr(rpy, "__version__", "0.4")).split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def from_reservoirpy(node):
    r"""The :class:`gradsim.LeakyRNN` of an initialised reservoirpy ``Reservoir`` node.

    reservoirpy's reservoir (0.4: ``Reservoir._step``; 0.3: ``equation="internal"``) is the
    leaky integrator

    .. math::

        x_{t+1} = (1 - \mathrm{lr})\, x_t + \mathrm{lr}\, f(W x_t + W_{in} u_{t+1} + b)

    with the input ``u`` the current row of the series, which is gradsim's

    .. math::

        h_t = (1 - \alpha)\, h_{t-1} + \alpha\, \phi(W_{hh} h_{t-1} + W_{ih} x_t + b_{hh} + b_{ih})

    with ``weight_hh = W``, ``weight_ih = Win``, ``bias_hh = bias`` (a number broadcast to every
    unit), ``bias_ih = 0``, ``alpha = lr`` (a number, or one leak rate per unit) and ``phi`` the
    activation. ``gradsim.unroll(cell, X)[1:]`` is then ``node.run(X)`` of a freshly
    initialised (or reset) node. reservoirpy starts from its current state ``node.state["out"]``
    (0.3: ``node.state()[0]``), zero after ``initialize`` or ``reset``; the cell holds no state:
    pass it as ``state0`` to continue a run (``unroll(cell, X, state0=node.state["out"])``).

    Parameters
    ----------
    node : reservoirpy.nodes.Reservoir
        Initialised (``node.initialize(X)``, or run once). Its matrices may be scipy sparse or
        dense; they become dense float64 arrays of shapes (units, units) and (units, input_dim).
        The activation must be one of reservoirpy's ``tanh``, ``sigmoid``, ``relu`` or
        ``identity`` (gradsim's ``"tanh"``, ``"sigmoid"``, ``"relu"``, ``"linear"``);
        ``numpy.tanh`` and ``scipy.special.expit`` are taken as ``tanh`` and ``sigmoid``.

    Returns
    -------
    LeakyRNN
        ``n_hidden = units``, ``n_input = input_dim`` (0 for an autonomous reservoir).

    Raises
    ------
    TypeError
        ``node`` is not a reservoirpy ``Reservoir`` (an ``ESN``, a ``Model``, another node, or a
        subclass with its own step equation).
    ValueError
        The node is not initialised, its activation has no gradsim counterpart, ``lr`` is outside
        (0, 1], or (reservoirpy 0.3) it has feedback weights, non-zero noise or
        ``equation="external"``.
    ImportError
        reservoirpy is not installed.

    Notes
    -----
    reservoirpy 0.3's ``equation="external"`` integrates the pre-activation instead,
    s' = (1 - lr) s + lr (W f(s) + Win u + b), and outputs f(s'): the Euler rate map of
    :class:`gradsim.RateRNN` with ``dt = lr`` in the state s (``node.internal_state``), not a leaky
    cell, so it is refused rather than imported as the wrong equation. Feedback (``Wfb`` g(y) in
    0.3; a ``Model`` connection in 0.4) closes the loop through a readout whose state is not the
    reservoir's, and noise makes the map random: neither is a cell of fixed parameters.
    """
    return _convert(node, "`node`")


def _convert(node, label):
    rpy = _import_reservoirpy()
    if _version(rpy) < (0, 4):
        arguments = _arguments_v03(node, label, rpy)
    else:
        arguments = _arguments_v04(node, label, rpy)
    return LeakyRNN(**arguments)


def _not_a_reservoir(node, label, rpy):
    kind = type(node).__name__
    hint = ""
    if isinstance(node, getattr(rpy, "Model", ())) or kind in ("ESN", "Model"):
        hint = (" (a Model or ESN holds its reservoir as one of its nodes: pass that node, e.g. "
                "`next(n for n in model.nodes if isinstance(n, Reservoir))`)")
    if node is None or isinstance(node, (str, bytes, numbers.Number)):
        received = describe(node)
    else:
        module = type(node).__module__
        received = f"a {kind}" if module == "builtins" else f"a {module}.{kind}"
    return TypeError(f"{label} must be a reservoirpy Reservoir node (reservoirpy.nodes.Reservoir){hint}; "
                     f"got {received}.")


def _arguments_v04(node, label, rpy):
    reservoir = rpy.nodes.Reservoir
    if not isinstance(node, reservoir):
        raise _not_a_reservoir(node, label, rpy)
    if type(node)._step is not reservoir._step:
        raise TypeError(
            f"{label} must be a reservoirpy Reservoir with reservoirpy's step equation; got a subclass "
            f"{type(node).__name__} that overrides `_step` (its equation is unknown to gradsim)."
        )
    units = _units(node, label)
    if not getattr(node, "initialized", False):
        raise ValueError(
            f"{label} must be an initialized Reservoir (call node.initialize(X) or run it once first); "
            f"got an uninitialized Reservoir of {units} units."
        )
    bias = _array(node.bias, "node.bias")
    if bias.ndim != 0 and bias.shape != (units,):
        raise ValueError(f"`node.bias` must be a number or an array of shape ({units},); got shape {bias.shape}.")
    return _leaky_arguments(node, units, bias, rpy)


def _arguments_v03(node, label, rpy):
    reservoir = rpy.nodes.Reservoir
    if not isinstance(node, reservoir):
        raise _not_a_reservoir(node, label, rpy)
    units = _units(node, label)
    if not node.is_initialized:
        raise ValueError(
            f"{label} must be an initialized Reservoir (call node.initialize(X) or run it once first); "
            f"got an uninitialized Reservoir of {units} units."
        )
    forward = getattr(node._forward, "__name__", repr(node._forward))
    if forward == "forward_external":
        raise ValueError(
            f"{label} must use equation='internal'; got equation='external', which is not supported: it "
            "leaks the pre-activation s (node.internal_state) and outputs f(s), the Euler rate map "
            "s' = (1 - lr) s + lr (W f(s) + Win u + b) of gradsim.RateRNN with dt = lr, not a LeakyRNN."
        )
    if forward != "forward_internal":
        raise TypeError(f"{label} must be a reservoirpy Reservoir with equation='internal'; got the "
                        f"forward function {forward!r}, whose equation is unknown to gradsim.")
    if node.has_feedback or node.Wfb is not None:
        raise ValueError(
            f"{label} must have no feedback; got feedback weights Wfb, which are not supported: the term "
            "Wfb g(y) feeds a readout's output back, and the readout is not part of the reservoir's "
            "state (import the reservoir without its feedback connection)."
        )
    noise = {"noise_in": node.noise_in, "noise_rc": node.noise_rc, "noise_fb": node.noise_out}
    noisy = {k: v for k, v in noise.items() if np.any(np.asarray(v) != 0)}
    if noisy:
        listed = ", ".join(f"{k}={v!r}" for k, v in noisy.items())
        raise ValueError(
            f"{label} must have zero noise (noise_in, noise_rc, noise_fb); got {listed}, which is not "
            "supported: a gradsim cell is a deterministic map."
        )
    bias = _array(node.bias, "node.bias")
    if bias.shape in ((units, 1), (1, units)):  # 0.3 keeps the bias as a column
        bias = bias.reshape(units)
    if bias.ndim != 0 and bias.shape != (units,):
        raise ValueError(f"`node.bias` must be a number or an array of shape ({units}, 1); got shape {bias.shape}.")
    return _leaky_arguments(node, units, bias, rpy)


def _units(node, label):
    units = getattr(node, "units", None)
    if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units < 1:
        raise ValueError(f"{label} must have a positive integer number of units; got units={units!r}.")
    return int(units)


def _leaky_arguments(node, units, bias, rpy):
    """The LeakyRNN keyword arguments of a checked node (both reservoirpy versions)."""
    n_input = node.input_dim
    weight_hh = _array(node.W, "node.W")
    if weight_hh.shape != (units, units):
        raise ValueError(f"`node.W` must have shape ({units}, {units}); got shape {weight_hh.shape}.")
    weight_ih = _array(node.Win, "node.Win")
    if weight_ih.ndim != 2 or weight_ih.shape != (units, n_input):
        raise ValueError(f"`node.Win` must have shape ({units}, {n_input}) (units, input_dim); "
                         f"got shape {weight_ih.shape}.")
    return {
        "weight_hh": weight_hh,
        "weight_ih": weight_ih,
        "bias_hh": np.broadcast_to(bias, (units,)).copy(),
        "bias_ih": np.zeros(units),
        "alpha": _leak(node.lr, units),
        "activation": _activation(node.activation, rpy),
    }


def _array(value, name) -> np.ndarray:
    """A dense float64 copy of a scipy sparse matrix, a numpy array or a number."""
    if callable(value) and not hasattr(value, "shape"):
        raise ValueError(f"`{name}` must be an array (the node must be initialized); got the initializer "
                         f"{getattr(value, '__name__', describe(value))}.")
    if hasattr(value, "toarray"):  # scipy.sparse arrays and matrices
        value = value.toarray()
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be an array of real numbers; got {describe(value)}.") from None
    return array


def _leak(lr, units):
    """reservoirpy's leak rate as LeakyRNN's ``alpha``: a float, or an array (units,)."""
    array = _array(lr, "node.lr")
    if array.ndim != 0 and array.shape != (units,):
        raise ValueError(f"`node.lr` must be a number or an array of shape ({units},); got shape {array.shape}.")
    if not np.all((array > 0) & (array <= 1)):
        bad = array if array.ndim == 0 else array[~((array > 0) & (array <= 1))][0]
        raise ValueError(
            "`node.lr` must lie in (0, 1] (gradsim.LeakyRNN's alpha: lr = 0 freezes the state, lr > 1 "
            f"overshoots the fixed point); got {float(bad)!r}."
        )
    return float(array) if array.ndim == 0 else array


def _activation(function, rpy) -> str:
    """gradsim's name of reservoirpy's activation function, by identity (or module and name)."""
    from scipy.special import expit

    module = rpy.activationsfunc
    known = [(getattr(module, name), gs_name) for name, gs_name in RESERVOIRPY_ACTIVATIONS.items()
             if hasattr(module, name)]
    known += [(np.tanh, "tanh"), (expit, "sigmoid")]
    for candidate, gs_name in known:
        if function is candidate:
            return gs_name
    name = getattr(function, "__name__", None)
    # The same function from a reloaded reservoirpy.activationsfunc (identity lost, name kept).
    if getattr(function, "__module__", None) == module.__name__ and name in RESERVOIRPY_ACTIVATIONS:
        return RESERVOIRPY_ACTIVATIONS[name]
    listed = ", ".join(f"{k} ({v!r})" for k, v in RESERVOIRPY_ACTIVATIONS.items())
    received = name if name is not None else describe(function)
    raise ValueError(
        f"`node.activation` must be one of reservoirpy's {listed} (gradsim's names in brackets); "
        f"got {received}, which has no gradsim cell."
    )


def load_reservoir(path):
    """The :class:`gradsim.LeakyRNN` of a reservoirpy ``Reservoir`` saved by the user.

    .. warning::

        The file is a pickle: reading it runs code stored in it. Load only files you trust.

    Parameters
    ----------
    path : str or Path
        ``reservoirpy.save(node, path)``'s ``.rpy`` file or ``pickle.dump(node, file)``'s file
        (any suffix), holding one initialised ``Reservoir`` node. Needs reservoirpy installed
        (``pip install 'gradsim[reservoir]'``), the version that saved it or a compatible one.

    Returns
    -------
    LeakyRNN
        As :func:`from_reservoirpy`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no reservoir file at {path}")
    # Before unpickling: "needs reservoirpy" rather than pickle's "No module named 'reservoirpy'".
    _import_reservoirpy()
    try:
        with open(path, "rb") as handle:
            node = pickle.load(handle)
    except ModuleNotFoundError as exc:
        raise ImportError(f"{path.name} needs the module {exc.name!r}, which is not installed") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError,
            IndexError, KeyError) as exc:
        raise ValueError(f"cannot read {path.name} as a pickled reservoirpy node: "
                         f"{type(exc).__name__}: {exc}") from None
    return _convert(node, f"the object in {path.name}")
