r"""Weight import and export: PyTorch (``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``) and Keras.

gradsim's cells already hold PyTorch-layout parameters under PyTorch's names, so the PyTorch
mapping is the identity up to the layer suffix:

=====================  =========================  ==================================
PyTorch tensor         shape                      gradsim cell attribute
=====================  =========================  ==================================
``weight_ih_l{k}``     (G N, I)                   ``weight_ih``
``weight_hh_l{k}``     (G N, N)                   ``weight_hh``
``bias_ih_l{k}``       (G N,)                     ``bias_ih``
``bias_hh_l{k}``       (G N,)                     ``bias_hh``
=====================  =========================  ==================================

with G = 1 (``nn.RNN``, tanh or relu), 4 (``nn.LSTM``, gates i, f, g, o) or 3 (``nn.GRU``,
gates r, z, n; gradsim variant ``"torch"``). The second direction of a bidirectional layer
carries the suffix ``_reverse`` (``weight_hh_l0_reverse``); its cell is the same kind of cell,
run over the reversed sequence. The cells ``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell``
have the same tensors without a suffix. Layer k > 0 reads the outputs of layer k - 1 (2 N
wide when bidirectional) as its inputs. Everything is converted to float64 (exactly: every
float16 / bfloat16 / float32 value is a float64 value).

Keras stores the transposes, one bias, and its own GRU gate order (U units):

- ``kernel`` (I, G U) -> ``weight_ih = kernel.T``, gate blocks reordered;
- ``recurrent_kernel`` (U, G U) -> ``weight_hh = recurrent_kernel.T``, same reordering;
- ``bias`` (G U,) -> ``bias_ih = bias``, ``bias_hh = 0``;
- GRU with ``reset_after=True``: ``bias`` (2, 3 U) -> ``bias_ih = bias[0]`` (input bias),
  ``bias_hh = bias[1]`` (recurrent bias).

SimpleRNN: h' = act(x K + h R + b). LSTM gate order i, f, c, o is PyTorch's i, f, g, o. GRU:
Keras orders z, r, h and PyTorch r, z, n, so the first two blocks are swapped; both update with
h' = z h + (1 - z) hh. ``reset_after=True`` (Keras's default, cuDNN's form) is gradsim's
variant ``"torch"``; ``reset_after=False`` (reset before the matmul, the bias on the input side
only) is variant ``"reset_before"``.

Nothing here imports ``torch`` at module level: ``.npz`` files and the Keras functions work
without it (``pip install 'gradsim[torch]'`` for ``.pt`` files and ``nn.Module`` objects).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._validate import choice, describe, positive_int
from ..cells import GRU, LSTM, RNN, Cell, ResidualRNN
from ..cells.stacked import StackedCell

__all__ = [
    "from_torch",
    "load_torch",
    "to_state_dict",
    "from_keras",
    "load_keras_npz",
    "load_weights",
    "TORCH_NONLINEARITIES",
    "KERAS_KINDS",
]

TORCH_NONLINEARITIES = ("tanh", "relu")
_GATES_TO_KIND = {1: "rnn", 4: "lstm", 3: "gru"}
_KIND_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
KERAS_KINDS = ("simple_rnn", "lstm", "gru")
_KERAS_ALIASES = {"simple_rnn": "simple_rnn", "simplernn": "simple_rnn", "rnn": "simple_rnn",
                  "lstm": "lstm", "gru": "gru"}
_KERAS_GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
# Keras activations gradsim's RNN cell computes exactly (None is Keras's "no activation").
_KERAS_RNN_ACTIVATIONS = {"tanh": "tanh", "relu": "relu", "linear": "linear", "sigmoid": "sigmoid",
                          None: "linear"}
_HARD_SIGMOID_NOTE = (
    " ('hard_sigmoid' was the default recurrent_activation of Keras before 2.3 / TF 2.0; it is "
    "a piecewise-linear clip, not the logistic sigmoid of gradsim's gates, so such a network "
    "cannot be imported exactly)"
)
_TORCH_HINT = "pip install 'gradsim[torch]'"

# <prefix>weight_hh[_l<k>[_reverse]]; the prefix is empty or a dotted module path ending in ".".
_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?)weight_hh(?:_l(?P<layer>\d+)(?P<reverse>_reverse)?)?$")


# ------------------------------------------------------------------------------------------
# helpers
def _is_tensor(value) -> bool:
    return hasattr(value, "detach") and hasattr(value, "dtype") and hasattr(value, "shape")


def _flatten(mapping, parent: str = "") -> dict:
    """Nested mappings (a checkpoint holding a state dict) -> one level of dotted keys.

    Only array-like leaves (tensors, arrays) are kept; numbers, strings and the like (epoch,
    optimiser settings) are dropped.
    """
    out = {}
    for key, value in mapping.items():
        name = f"{parent}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        elif _is_tensor(value) or isinstance(value, np.ndarray):
            out[name] = value
    return out


def _as_float64(value, name: str) -> np.ndarray:
    """A tensor or array -> a float64 numpy array; complex and non-finite values refused."""
    if _is_tensor(value):
        value = value.detach()
        if value.is_complex():
            raise TypeError(f"`{name}` must be a real tensor; got dtype {value.dtype}.")
        value = value.cpu().double().numpy()
    array = np.asarray(value)
    if np.iscomplexobj(array):
        raise TypeError(f"`{name}` must be a real array; got dtype {array.dtype}.")
    try:
        array = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be an array of real numbers; got {describe(value)}.") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must contain only finite values; got NaN or inf.")
    return array


def _keys_listing(keys, limit: int = 12) -> str:
    keys = sorted(keys)
    if not keys:
        return "no tensors at all"
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _check_layer_args(layer, reverse):
    layer = positive_int(layer, "layer", minimum=0)
    if not isinstance(reverse, (bool, np.bool_)):
        raise TypeError(f"`reverse` must be True or False; got {describe(reverse)}.")
    return layer, bool(reverse)


# ------------------------------------------------------------------------------------------
# PyTorch
def _module_info(module):
    """(kind, nonlinearity, proj_size) of a torch recurrent module, or None for any other."""
    import torch

    if isinstance(module, torch.nn.RNNBase):
        kind, nonlinearity = {
            "RNN_TANH": ("rnn", "tanh"), "RNN_RELU": ("rnn", "relu"),
            "LSTM": ("lstm", None), "GRU": ("gru", None),
        }[module.mode]
        return kind, nonlinearity, int(getattr(module, "proj_size", 0) or 0)
    if isinstance(module, torch.nn.RNNCell):
        return "rnn", module.nonlinearity, 0
    if isinstance(module, torch.nn.LSTMCell):
        return "lstm", None, 0
    if isinstance(module, torch.nn.GRUCell):
        return "gru", None, 0
    return None


def _select_prefix(tensors: dict, prefix, where: str):
    """The prefix of the recurrent layer to read, and its (layer, reverse) entries."""
    groups: dict[str, set] = {}
    for key in tensors:
        match = _KEY.match(key)
        if match:
            layer = match["layer"]
            entry = None if layer is None else (int(layer), bool(match["reverse"]))
            groups.setdefault(match["prefix"], set()).add(entry)
    if not groups:
        raise ValueError(
            f"{where} is not a recurrent layer: it has no `weight_hh_l<k>` (nor `weight_hh`) "
            f"tensor of a torch.nn.RNN / LSTM / GRU; it has {_keys_listing(tensors)}."
        )
    if prefix is not None:
        if not isinstance(prefix, str):
            raise TypeError(f"`prefix` must be a string (a module path such as 'encoder.rnn'); got {describe(prefix)}.")
        wanted = prefix if prefix == "" or prefix.endswith(".") else prefix + "."
        if wanted not in groups:
            known = ", ".join(repr(p.rstrip(".")) for p in sorted(groups))
            raise ValueError(f"`prefix` must name a recurrent module of {where} ({known}); got {prefix!r}.")
        return wanted, groups[wanted]
    if len(groups) > 1:
        known = ", ".join(repr(p.rstrip(".")) for p in sorted(groups))
        raise ValueError(
            f"`prefix` must be given: {where} holds several recurrent modules ({known})."
        )
    (only,) = groups
    return only, groups[only]


def _from_tensors(tensors: dict, layer, reverse, nonlinearity, prefix, modules, where) -> Cell:
    """One layer (``layer`` an int), or with ``layer=None`` the whole network: a
    :class:`~gradsim.cells.stacked.StackedCell` of every layer of a unidirectional multi-layer
    module, and the plain cell of a one-layer module or a torch cell (as ``layer=0``)."""
    if layer is not None:
        return _layer_from_tensors(tensors, layer, reverse, nonlinearity, prefix, modules, where)
    if not isinstance(reverse, (bool, np.bool_)):
        raise TypeError(f"`reverse` must be True or False; got {describe(reverse)}.")
    if nonlinearity is not None:
        choice(nonlinearity, "nonlinearity", TORCH_NONLINEARITIES)
    pre, entries = _select_prefix(tensors, prefix, where)
    layers = sorted({entry[0] for entry in entries if entry is not None})
    if None in entries or len(layers) <= 1 or reverse:
        return _layer_from_tensors(tensors, 0, reverse, nonlinearity, prefix, modules, where)
    if any(backward for _, backward in entries):
        raise ValueError(
            f"`layer` must be given for the bidirectional multi-layer network in {where} "
            f"(layers {', '.join(map(str, layers))}): its layer k reads both directions of layer "
            "k - 1, which is not one forward recurrence (StackedCell); got layer=None."
        )
    if layers != list(range(len(layers))):
        raise ValueError(
            f"{where} must hold the layers 0, ..., L - 1 to be read as one network (or pass "
            f"`layer`); it has the layers {', '.join(map(str, layers))}."
        )
    cells = [_layer_from_tensors(tensors, k, False, nonlinearity, prefix, modules, where) for k in layers]
    for k in range(1, len(cells)):
        if cells[k].n_input != cells[k - 1].n_hidden:
            raise ValueError(
                f"`{pre}weight_ih_l{k}` must have {cells[k - 1].n_hidden} columns, the hidden size "
                f"of layer {k - 1}, to read its outputs; got shape {cells[k].weight_ih.shape}."
            )
    return StackedCell(tuple(cells))


def _layer_from_tensors(tensors: dict, layer, reverse, nonlinearity, prefix, modules, where) -> Cell:
    layer, reverse = _check_layer_args(layer, reverse)
    if nonlinearity is not None:
        choice(nonlinearity, "nonlinearity", TORCH_NONLINEARITIES)
    pre, entries = _select_prefix(tensors, prefix, where)
    if None in entries:  # nn.RNNCell / LSTMCell / GRUCell: no layer suffix
        if layer != 0 or reverse:
            raise ValueError(
                f"`layer` must be 0 and `reverse` False for a single cell (tensors without an "
                f"_l<k> suffix, as nn.LSTMCell's); got layer={layer}, reverse={reverse}."
            )
        suffix = ""
    else:
        layers = sorted({k for k, _ in entries})
        if layer not in layers:
            raise ValueError(
                f"`layer` must be one of the layers in {where} ({', '.join(map(str, layers))}); got {layer}."
            )
        if (layer, reverse) not in entries:
            raise ValueError(
                f"`reverse` must be False: {where} has no `{pre}weight_hh_l{layer}_reverse` "
                f"(layer {layer} is unidirectional); got True."
            )
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")

    def name(base):
        return f"{pre}{base}{suffix}"

    info = modules.get(pre)
    proj_size = info[2] if info else 0
    if name("weight_hr") in tensors or proj_size:
        shape = tuple(tensors[name("weight_hr")].shape) if name("weight_hr") in tensors else None
        got = f"`{name('weight_hr')}` of shape {shape}" if shape else f"proj_size={proj_size}"
        raise ValueError(
            "LSTMs with proj_size > 0 are not supported: their hidden state h_t = W_hr "
            "(o * tanh c_t) lives in a smaller space than the cell c_t, so the recurrence is "
            "not the (h, c) -> (h, c) map of gradsim's LSTM (2 N state, h and c both N wide); "
            f"got {got}."
        )

    w_hh = _as_float64(tensors[name("weight_hh")], name("weight_hh"))
    if w_hh.ndim != 2 or w_hh.shape[1] == 0 or w_hh.shape[0] % w_hh.shape[1] != 0 or (
        w_hh.shape[0] // w_hh.shape[1] not in _GATES_TO_KIND
    ):
        raise ValueError(
            f"`{name('weight_hh')}` must have shape (G N, N) with G = 1 (RNN), 3 (GRU) or 4 "
            f"(LSTM); got shape {w_hh.shape}."
        )
    rows, n = w_hh.shape
    kind = _GATES_TO_KIND[rows // n]
    if info is not None and info[0] != kind:
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[info[0]]
        raise ValueError(
            f"`{name('weight_hh')}` must have shape ({gates * n}, {n}) for a torch "
            f"{_KIND_NAMES[info[0]]}; got shape {w_hh.shape}."
        )

    missing = [name(b) for b in ("weight_ih",) if name(b) not in tensors]
    if missing:
        raise ValueError(
            f"{where} is missing the tensor `{missing[0]}` of layer `{name('weight_hh')}` "
            f"(shape ({rows}, I)); it has {_keys_listing(tensors)}."
        )
    w_ih = _as_float64(tensors[name("weight_ih")], name("weight_ih"))
    if w_ih.ndim != 2 or w_ih.shape[0] != rows:
        raise ValueError(
            f"`{name('weight_ih')}` must have shape ({rows}, I) to match `{name('weight_hh')}` "
            f"of shape {w_hh.shape}; got shape {w_ih.shape}."
        )
    present = [b for b in ("bias_ih", "bias_hh") if name(b) in tensors]
    if len(present) == 1:
        other = "bias_hh" if present[0] == "bias_ih" else "bias_ih"
        raise ValueError(
            f"{where} is missing the tensor `{name(other)}` (shape ({rows},)): it has "
            f"`{name(present[0])}`, and a torch layer has both biases or neither."
        )
    biases = {}
    for b in present:
        value = _as_float64(tensors[name(b)], name(b))
        if value.shape != (rows,):
            raise ValueError(
                f"`{name(b)}` must have shape ({rows},) to match `{name('weight_hh')}` of shape "
                f"{w_hh.shape}; got shape {value.shape}."
            )
        biases[b] = value

    module_nl = info[1] if info else None
    if kind != "rnn":
        if nonlinearity is not None:
            raise ValueError(
                f"`nonlinearity` applies to RNN layers only; got nonlinearity={nonlinearity!r} "
                f"for {'an' if kind == 'lstm' else 'a'} {_KIND_NAMES[kind]} layer."
            )
    elif module_nl is not None and nonlinearity is not None and nonlinearity != module_nl:
        raise ValueError(
            f"`nonlinearity` must match the module's ({module_nl!r}) or be None; got {nonlinearity!r}."
        )
    kw = dict(weight_ih=w_ih, weight_hh=w_hh, bias_ih=biases.get("bias_ih"), bias_hh=biases.get("bias_hh"))
    if kind == "rnn":
        return RNN(activation=module_nl or nonlinearity or "tanh", **kw)
    if kind == "lstm":
        return LSTM(**kw)
    return GRU(variant="torch", **kw)


def from_torch(source, layer: int | None = None, reverse: bool = False, *, nonlinearity=None, prefix=None) -> Cell:
    """The gradsim cell of a PyTorch recurrent network (the whole stack) or of one layer.

    Parameters
    ----------
    source : torch.nn.Module or mapping of str to tensor / array
        An ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` (any number of layers, uni- or bidirectional),
        an ``nn.RNNCell`` / ``LSTMCell`` / ``GRUCell``, any module containing one of these, or a
        state dict (nested checkpoint dicts are flattened with dots). Tensors named
        ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (see the
        module notes for shapes), optionally under a module prefix such as ``encoder.rnn.``.
    layer : int, optional
        k, the one layer to read (0 = the one reading the network's inputs). None (the
        default): the whole network, a :class:`~gradsim.StackedCell` of its layers for a
        unidirectional ``num_layers > 1`` module; the plain cell (as ``layer=0``) for a
        one-layer module or an ``nn.*Cell``. A bidirectional multi-layer network needs
        ``layer`` (its layers read both directions, not one forward recurrence).
    reverse : bool
        Read the ``_reverse`` direction of a bidirectional layer (of layer 0 when ``layer`` is
        None).
    nonlinearity : {"tanh", "relu"}, optional
        For an ``nn.RNN`` read from a state dict, which does not record it (default
        ``"tanh"``, PyTorch's default). A module's own setting is used when ``source`` is a
        module; a different value given here is an error.
    prefix : str, optional
        Module path of the recurrent layer when ``source`` holds several (e.g. ``"encoder"``).

    Returns
    -------
    Cell
        :class:`~gradsim.RNN` (activation tanh or relu), :class:`~gradsim.LSTM` or
        :class:`~gradsim.GRU` (variant ``"torch"``) holding float64 copies of the tensors, or
        a :class:`~gradsim.StackedCell` of them (``layer=None``, several layers). A layer
        without biases (``bias=False``) gives zero biases.

    Raises
    ------
    ValueError
        Not a recurrent layer, a missing or misshapen tensor (named, with the shapes), an LSTM
        with ``proj_size > 0`` (its hidden state is a projection of smaller size than the cell,
        which gradsim's LSTM cannot represent), a layer or direction the source lacks.
    """
    modules = {}
    if hasattr(source, "named_modules") and callable(getattr(source, "state_dict", None)):
        tensors = dict(source.state_dict())
        for module_name, module in source.named_modules():
            info = _module_info(module)
            if info is not None:
                modules[module_name + "." if module_name else ""] = info
        where = f"the module {type(source).__name__}"
    elif isinstance(source, Mapping):
        tensors = _flatten(source)
        where = "the state dict"
    else:
        raise TypeError(
            f"`source` must be a torch.nn.Module or a state dict (mapping of names to tensors); "
            f"got {describe(source)}."
        )
    return _from_tensors(tensors, layer, reverse, nonlinearity, prefix, modules, where)


def _read_torch_file(path: Path) -> dict:
    """The flattened tensors of a .pt / .pth file or of an .npz file."""
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"reading {path.name} needs PyTorch ({_TORCH_HINT}); or save the state dict as .npz "
            "with numpy.savez(path, **{k: v.numpy() for k, v in state_dict.items()})"
        ) from None
    try:
        # weights_only: never unpickle arbitrary objects (code) from a file.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, KeyError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{path.name} cannot be read by torch.load(weights_only=True): it is not a tensor "
            f"file, or it holds a pickled object such as a whole nn.Module (save "
            f"module.state_dict() instead); torch said: {first}"
        ) from None
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"{path.name} is not a recurrent layer: it holds {type(obj).__name__}, not a state dict "
            "(a mapping of names to tensors)."
        )
    return _flatten(obj)


def _check_path_arg(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a file path; got {describe(path)}.")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`path` must be an existing weights file; got {str(path)!r} (no weights file at {path}).")
    return path


def load_torch(path, layer: int | None = None, reverse: bool = False, *, nonlinearity=None, prefix=None) -> Cell:
    """:func:`from_torch` of a state dict saved in a file.

    Parameters
    ----------
    path : str or Path
        A ``torch.save``\\ d state dict (``.pt``, ``.pth``, any suffix but ``.npz``), read with
        ``torch.load(weights_only=True)`` (a pickled module is refused: save its
        ``state_dict()``), or an ``.npz`` archive with the state dict's names (read by numpy;
        PyTorch is not needed).
    layer, reverse, nonlinearity, prefix
        As in :func:`from_torch`. A file does not record an ``nn.RNN``'s nonlinearity: pass
        ``nonlinearity="relu"`` for a ReLU network.

    Returns
    -------
    Cell
    """
    path = _check_path_arg(path)
    return _from_tensors(_read_torch_file(path), layer, reverse, nonlinearity, prefix, {}, path.name)


def to_state_dict(cell: Cell, layer: int = 0, reverse: bool = False, *, as_torch: bool = False,
                  bias: bool = True, dtype=None) -> dict:
    """The cell's parameters under PyTorch's names, for ``module.load_state_dict``.

    Parameters
    ----------
    cell : RNN (tanh or relu), LSTM or GRU (variant "torch"), or a StackedCell of them
        The cells ``torch.nn`` can run; others (a residual, linear or sigmoid RNN; a GRU that
        resets before the matmul or follows Chung et al.) are refused. A
        :class:`~gradsim.StackedCell` gives every layer k's tensors, suffix ``_l{k}`` (for a
        ``num_layers = L`` module of one kind).
    layer : int
        k of the ``_l{k}`` suffix (0 for a StackedCell).
    reverse : bool
        Add the ``_reverse`` suffix (second direction of a bidirectional layer).
    as_torch : bool
        Return ``torch.Tensor`` values (``dtype``, default ``torch.float64``) instead of numpy
        arrays; ``load_state_dict`` casts them to the module's dtype.
    bias : bool
        Include ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (False for a module built with
        ``bias=False``; the cell's biases must then be zero).

    Returns
    -------
    dict
        ``{"weight_ih_l{k}": (G N, I), "weight_hh_l{k}": (G N, N), "bias_ih_l{k}": (G N,),
        "bias_hh_l{k}": (G N,)}``, fresh writable float64 copies (or tensors).
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"`cell` must be a gradsim Cell; got {describe(cell)}.")
    layer, reverse = _check_layer_args(layer, reverse)
    if isinstance(cell, StackedCell):
        if layer != 0 or reverse:
            raise ValueError(
                "`layer` must be 0 and `reverse` False for a StackedCell (its layers k are written "
                f"as _l{{k}}); got layer={layer}, reverse={reverse}."
            )
        out = {}
        for k, one in enumerate(cell.layers):
            out.update(to_state_dict(one, k, as_torch=as_torch, bias=bias, dtype=dtype))
        return out
    if isinstance(cell, ResidualRNN) or type(cell) not in (RNN, LSTM, GRU):
        raise ValueError(
            f"`cell` must be an RNN, LSTM or GRU to export to PyTorch (torch.nn has no "
            f"{type(cell).__name__}); got {type(cell).__name__}."
        )
    if isinstance(cell, RNN) and cell.activation not in TORCH_NONLINEARITIES:
        raise ValueError(
            f"`cell` must have activation 'tanh' or 'relu' to export to torch.nn.RNN; got "
            f"activation={cell.activation!r}."
        )
    if isinstance(cell, GRU) and cell.variant != "torch":
        raise ValueError(
            "`cell` must be a GRU with variant='torch' to export to torch.nn.GRU (which resets "
            f"after the matmul and updates h' = (1 - z) n + z h); got variant={cell.variant!r}."
        )
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"`bias` must be True or False; got {describe(bias)}.")
    if not bias and (np.any(cell.bias_ih) or np.any(cell.bias_hh)):
        raise ValueError("`bias` must be True for a cell with non-zero biases; got False.")
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if bias else [])
    out = {f"{n}{suffix}": np.array(getattr(cell, n), dtype=np.float64, copy=True) for n in names}
    if as_torch:
        try:
            import torch
        except ImportError:
            raise ImportError(f"`as_torch=True` needs PyTorch ({_TORCH_HINT}).") from None
        dtype = torch.float64 if dtype is None else dtype
        out = {k: torch.from_numpy(v).to(dtype) for k, v in out.items()}
    elif dtype is not None:
        raise ValueError("`dtype` applies with as_torch=True only; got a dtype with as_torch=False.")
    return out


# ------------------------------------------------------------------------------------------
# Keras
def _keras_kind(kind) -> str:
    if isinstance(kind, str) and kind.lower() in _KERAS_ALIASES:
        return _KERAS_ALIASES[kind.lower()]
    raise ValueError(
        f"`kind` must be one of 'simple_rnn' (or 'rnn'), 'lstm', 'gru'; got {describe(kind)}."
    )


def _keras_activation(value, name: str, kind: str, default: str):
    """The gradsim activation for a Keras activation name, or a ValueError naming it."""
    if value is not None and not isinstance(value, str):
        raise TypeError(
            f"`{name}` must be a Keras activation name (a string) or None; got {describe(value)}."
        )
    key = value.lower() if isinstance(value, str) else None
    if name == "activation" and kind == "simple_rnn":
        if key in _KERAS_RNN_ACTIVATIONS:
            return _KERAS_RNN_ACTIVATIONS[key]
        raise ValueError(
            "`activation` must be one of 'tanh', 'relu', 'linear', 'sigmoid' or None (linear) "
            f"for a Keras SimpleRNN, the activations gradsim's RNN computes; got {value!r}."
        )
    label = {"lstm": "LSTM", "gru": "GRU"}[kind]
    if key != default:
        role = ("the candidate" + (" and the cell output" if kind == "lstm" else "")
                if name == "activation" else "the gates")
        note = _HARD_SIGMOID_NOTE if key == "hard_sigmoid" else ""
        raise ValueError(
            f"`{name}` must be {default!r} for a Keras {label}: gradsim's {label} uses {default} "
            f"for {role}; got {value!r}{note}."
        )
    return default


def _keras_array(value, name, shape, expected_text):
    array = _as_float64(value, name)
    if array.shape != shape:
        raise ValueError(f"`{name}` must have shape {expected_text}; got shape {array.shape}.")
    return array


def _blocks(matrix_t, order, units):
    """Rows of ``matrix_t`` (G U, ...) regrouped in the gate ``order``."""
    return np.concatenate([matrix_t[g * units : (g + 1) * units] for g in order], axis=0)


def from_keras(kind, kernel, recurrent_kernel, bias=None, *, reset_after: bool = True,
               activation="tanh", recurrent_activation=None) -> Cell:
    r"""The gradsim cell of a Keras ``SimpleRNN``, ``LSTM`` or ``GRU`` layer.

    Keras's equations (U units, row vectors x and h):

    .. math::

        \text{SimpleRNN:}\quad h' = \phi(x K + h R + b)

        \text{LSTM:}\quad [a_i, a_f, a_c, a_o] = x K + h R + b,\quad
        c' = \sigma(a_f) c + \sigma(a_i) \tanh(a_c),\quad h' = \sigma(a_o) \tanh(c')

        \text{GRU:}\quad z = \sigma(x K_z + b^x_z + h R_z + b^h_z),\;
        r = \sigma(x K_r + b^x_r + h R_r + b^h_r),\;
        h' = z h + (1 - z)\, \tanh(x K_h + b^x_h + \rho)

    with :math:`\rho = r \odot (h R_h + b^h_h)` when ``reset_after`` (bias (2, 3U): row 0 the
    input bias :math:`b^x`, row 1 the recurrent bias :math:`b^h`) and
    :math:`\rho = (r \odot h) R_h` otherwise (bias (3U,) = :math:`b^x`, no :math:`b^h`).

    Parameters
    ----------
    kind : {"simple_rnn", "lstm", "gru"}
        ``"rnn"`` is accepted for ``"simple_rnn"``.
    kernel : array, shape (I, G U)
        G = 1, 4 (gates i, f, c, o) or 3 (gates z, r, h).
    recurrent_kernel : array, shape (U, G U)
    bias : array, shape (G U,), or (2, 3 U) for a GRU with ``reset_after=True``; optional
        None for a layer with ``use_bias=False``.
    reset_after : bool
        GRU only (Keras's default True): True gives gradsim's GRU variant ``"torch"`` (the
        gate blocks reordered z, r, h -> r, z, n), False gives variant ``"reset_before"``.
    activation : str or None
        SimpleRNN: ``"tanh"``, ``"relu"``, ``"linear"``, ``"sigmoid"`` or None (linear).
        LSTM and GRU: ``"tanh"`` only.
    recurrent_activation : str, optional
        LSTM and GRU: ``"sigmoid"`` only (the default, None, means it); the old Keras default
        ``"hard_sigmoid"`` and everything else are refused. Must be None for a SimpleRNN,
        which has no such argument.

    Returns
    -------
    Cell
        :class:`~gradsim.RNN`, :class:`~gradsim.LSTM` or :class:`~gradsim.GRU`.
    """
    kind = _keras_kind(kind)
    if not isinstance(reset_after, (bool, np.bool_)):
        raise TypeError(f"`reset_after` must be True or False; got {describe(reset_after)}.")
    if kind == "simple_rnn" and recurrent_activation is not None:
        raise ValueError(
            "`recurrent_activation` must be None for a Keras SimpleRNN (it has no gates); "
            f"got {recurrent_activation!r}."
        )
    act = _keras_activation(activation, "activation", kind, "tanh")
    if kind != "simple_rnn":
        _keras_activation("sigmoid" if recurrent_activation is None else recurrent_activation,
                          "recurrent_activation", kind, "sigmoid")
    gates = _KERAS_GATES[kind]
    rec = _as_float64(recurrent_kernel, "recurrent_kernel")
    if rec.ndim != 2 or rec.shape[0] == 0 or rec.shape[1] != gates * rec.shape[0]:
        raise ValueError(
            f"`recurrent_kernel` must have shape (U, {gates} U) for a Keras {kind}; got shape {rec.shape}."
        )
    units = rec.shape[0]
    ker = _as_float64(kernel, "kernel")
    if ker.ndim != 2 or ker.shape[1] != gates * units:
        raise ValueError(
            f"`kernel` must have shape (I, {gates * units}) to match `recurrent_kernel` of shape "
            f"{rec.shape}; got shape {ker.shape}."
        )
    bias_ih = bias_hh = None
    if bias is not None:
        if kind == "gru" and reset_after:
            b = _keras_array(bias, "bias", (2, gates * units),
                             f"(2, {gates * units}) for a GRU with reset_after=True (row 0 the "
                             "input bias, row 1 the recurrent bias; a 1-d bias means "
                             "reset_after=False)")
            bias_ih, bias_hh = b[0], b[1]
        else:
            extra = " for a GRU with reset_after=False" if kind == "gru" else ""
            bias_ih = _keras_array(bias, "bias", (gates * units,), f"({gates * units},){extra}")
    order = (1, 0, 2) if kind == "gru" else tuple(range(gates))  # Keras z, r, h -> torch r, z, n
    w_ih = _blocks(ker.T, order, units)
    w_hh = _blocks(rec.T, order, units)
    if bias_ih is not None:
        bias_ih = _blocks(bias_ih, order, units)
    if bias_hh is not None:
        bias_hh = _blocks(bias_hh, order, units)
    kw = dict(weight_ih=w_ih, weight_hh=w_hh, bias_ih=bias_ih, bias_hh=bias_hh)
    if kind == "simple_rnn":
        return RNN(activation=act, **kw)
    if kind == "lstm":
        return LSTM(**kw)
    return GRU(variant="torch" if reset_after else "reset_before", **kw)


_KERAS_NAMES = ("kernel", "recurrent_kernel", "bias")


def _keras_groups(arrays: dict) -> dict:
    """prefix -> {"kernel": key, "recurrent_kernel": key, "bias": key} from the archive's keys.

    Keys may be bare (``kernel``) or carry a layer path (``lstm/lstm_cell/kernel:0``,
    ``gru.bias``); the prefix is everything before the last ``/`` or ``.``.
    """
    groups: dict[str, dict] = {}
    for key in arrays:
        stem = key[:-2] if key.endswith(":0") else key
        cut = max(stem.rfind("/"), stem.rfind("."))
        base, prefix = stem[cut + 1 :], stem[: cut + 1]
        if base in _KERAS_NAMES:
            groups.setdefault(prefix, {})[base] = key
    return {p: g for p, g in groups.items() if "recurrent_kernel" in g}


def _is_keras(arrays: dict) -> bool:
    return bool(_keras_groups(arrays))


def load_keras_npz(path, kind=None, *, reset_after=None, activation="tanh",
                   recurrent_activation=None, prefix=None) -> Cell:
    """:func:`from_keras` of the arrays ``kernel``, ``recurrent_kernel``, ``bias`` of an ``.npz``.

    Parameters
    ----------
    path : str or Path
        An ``.npz`` archive, e.g. ``numpy.savez(path, kernel=..., recurrent_kernel=..., bias=...)``
        or with Keras's weight paths as keys (``lstm/lstm_cell/kernel:0``).
    kind : {"simple_rnn", "lstm", "gru"}, optional
        Read from the shapes when None: ``recurrent_kernel`` is (U, G U), G = 1, 4 or 3.
    reset_after : bool, optional
        GRU only. None reads it from the bias: 2-d (2, 3U) means True, 1-d (3U,) False; a GRU
        without bias must say it.
    activation, recurrent_activation
        As in :func:`from_keras`.
    prefix : str, optional
        The layer's path in the archive (``"lstm/lstm_cell"``) when it holds several layers.

    Returns
    -------
    Cell
    """
    path = _check_path_arg(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return _keras_from_arrays(arrays, path.name, kind, reset_after, activation,
                              recurrent_activation, prefix)


def _keras_from_arrays(arrays, where, kind, reset_after, activation, recurrent_activation, prefix):
    groups = _keras_groups(arrays)
    if not groups:
        raise ValueError(
            f"{where} is not a Keras recurrent layer: it has no `recurrent_kernel` array; it "
            f"has {_keys_listing(arrays)}."
        )
    if prefix is not None:
        if not isinstance(prefix, str):
            raise TypeError(f"`prefix` must be a string (a layer path such as 'lstm/lstm_cell'); got {describe(prefix)}.")
        matches = [p for p in groups if p.rstrip("/.") == prefix.rstrip("/.")]
        if not matches:
            known = ", ".join(repr(p.rstrip("/.")) for p in sorted(groups))
            raise ValueError(f"`prefix` must name a layer of {where} ({known}); got {prefix!r}.")
        group = groups[matches[0]]
    elif len(groups) > 1:
        known = ", ".join(repr(p.rstrip("/.")) for p in sorted(groups))
        raise ValueError(f"`prefix` must be given: {where} holds several Keras layers ({known}).")
    else:
        (group,) = groups.values()
    if "kernel" not in group:
        raise ValueError(
            f"{where} is missing the array `kernel` (shape (I, G U)) beside "
            f"`{group['recurrent_kernel']}`; it has {_keys_listing(arrays)}."
        )
    rec = arrays[group["recurrent_kernel"]]
    bias = arrays[group["bias"]] if "bias" in group else None
    if kind is None:
        shape = np.shape(rec)
        ratio = shape[1] // shape[0] if len(shape) == 2 and shape[0] and shape[1] % shape[0] == 0 else None
        kinds = {1: "simple_rnn", 4: "lstm", 3: "gru"}
        if ratio not in kinds:
            raise ValueError(
                f"`{group['recurrent_kernel']}` must have shape (U, G U) with G = 1 (SimpleRNN), "
                f"3 (GRU) or 4 (LSTM); got shape {shape}."
            )
        kind = kinds[ratio]
    kind = _keras_kind(kind)
    if kind == "gru" and reset_after is None:
        if bias is None:
            raise ValueError(
                "`reset_after` must be given for a GRU without bias: the equations differ and "
                "only the bias's shape records it; got None."
            )
        reset_after = np.ndim(bias) == 2
    return from_keras(kind, arrays[group["kernel"]], rec, bias,
                      reset_after=True if reset_after is None else reset_after,
                      activation=activation, recurrent_activation=recurrent_activation)


def load_weights(path, layer: int | None = None, reverse: bool = False, *, prefix=None, nonlinearity=None,
                 kind=None, reset_after=None, activation=None, recurrent_activation=None) -> Cell:
    """A recurrent network (PyTorch: the whole stack by default) or one layer from a weights file,
    PyTorch or Keras, whichever the file holds.

    An ``.npz`` with a ``recurrent_kernel`` array is read as Keras (:func:`load_keras_npz`),
    anything else as a PyTorch state dict (:func:`load_torch`).

    Parameters
    ----------
    path : str or Path
    layer, reverse, prefix, nonlinearity
        PyTorch: as in :func:`from_torch`. Keras files hold one layer per prefix:
        ``layer`` must be 0 and ``reverse`` False (select a layer with ``prefix``).
    kind, reset_after, activation, recurrent_activation
        Keras: as in :func:`load_keras_npz` (``activation`` defaults to ``"tanh"``). For a
        PyTorch RNN, ``activation`` is a synonym of ``nonlinearity``.

    Returns
    -------
    Cell
    """
    path = _check_path_arg(path)
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        if _is_keras(arrays):
            layer, reverse = _check_layer_args(0 if layer is None else layer, reverse)
            if layer != 0 or reverse or nonlinearity is not None:
                raise ValueError(
                    f"{path.name} holds Keras weights: `layer` must be 0, `reverse` False and "
                    "`nonlinearity` None (select a layer with `prefix`, an activation with "
                    f"`activation`); got layer={layer}, reverse={reverse}, nonlinearity={nonlinearity!r}."
                )
            return _keras_from_arrays(arrays, path.name, kind, reset_after,
                                      "tanh" if activation is None else activation,
                                      recurrent_activation, prefix)
        tensors = arrays
    else:
        tensors = None
    extra = {"kind": kind, "reset_after": reset_after, "recurrent_activation": recurrent_activation}
    given = [k for k, v in extra.items() if v is not None]
    if given:
        raise ValueError(
            f"`{given[0]}` applies to Keras weights only; {path.name} holds a PyTorch state dict."
        )
    if activation is not None:
        if nonlinearity is not None and nonlinearity != activation:
            raise ValueError(
                f"`activation` and `nonlinearity` must agree for a PyTorch RNN; got {activation!r} "
                f"and {nonlinearity!r}."
            )
        nonlinearity = activation
    if tensors is None:
        tensors = _read_torch_file(path)
    return _from_tensors(tensors, layer, reverse, nonlinearity, prefix, {}, path.name)
