r"""BPTT training of the cells: readouts, losses, optimisers, gradient clipping, a training loop.

Back-propagation through time here is built from the cells' own vector-Jacobian products, the
same code the analysis in :mod:`gradsim.numeric` uses: with states :math:`s_0 \dots s_L`,
:math:`s_{t+1} = \mathrm{step}(s_t, x_t)` and a loss :math:`L` of readouts of the hidden parts
:math:`h_t` of the states,

.. math::

    g_L = \frac{\partial L}{\partial s_L}\Big|_{\text{direct}}, \qquad
    g_t = \frac{\partial L}{\partial s_t}\Big|_{\text{direct}} + J_{t+1}^\top g_{t+1}
        \quad (\texttt{cell.vjp}), \qquad
    \frac{\partial L}{\partial \theta} = \sum_{t=0}^{L-1}
        \frac{\partial (g_{t+1} \cdot \mathrm{step}(s_t, x_t))}{\partial \theta}
        \quad (\texttt{cell.param\_vjp}),

the last sum computed by one batched ``param_vjp`` call over all steps. The norms
:math:`\|g_t\|` (the whole state) and :math:`\|\partial L/\partial h_t\|` (its hidden part) come
for free and are what shows where the gradient dies.

A :class:`Model` is a cell plus a linear readout :math:`y = W_{out} h + b_{out}` of the hidden
part ``h`` (for the LSTM, the first N entries of the state ``concat(h, c)``; for a
:class:`~gradsim.StackedCell`, every layer's output :math:`y^{(k)}` in layer order, at the
positions ``cell.hidden_index``, ``n_hidden`` = the sum of the layers' sizes), applied to the
last state (``readout="last"``, sequence to one) or to every state after an input
(``readout="sequence"``, sequence to sequence). Losses: mean squared error over all output
entries (``"mse"``) or mean softmax cross-entropy in nats (``"xent"``).

Parameters travel as a dict ``name -> array``: the cell's own names (``cell.parameters()``:
PyTorch's ``weight_hh``, ``weight_ih``, ``bias_hh``, ``bias_ih`` for the classic cells, the
papers' names for the modern ones, ``"layer{k}.{name}"`` for a stack) and ``weight_out``,
``bias_out``; new values go back into the cell by ``cell.with_parameters``. Optimisers are small
immutable objects with pure ``init(params) -> state`` and ``update(params, grads, state) ->
(params, state)``.

Ensembles. A model around an ensemble cell (``cell.batch_shape == E``, e.g. ``(B,)``) is B
networks trained side by side: its readout carries the same leading dimensions
(``weight_out`` (*E, O, N), ``bias_out`` (*E, O)), and every function here works member by
member. Inputs ``(batch, L, I)`` are one task batch shared by all members, or ``(*E, batch, L,
I)`` one per member; losses, gradients, gradient norms, clipping (each member by its own global
norm), optimiser steps and divergence are per member, with the member dimensions in front of
every result. Training an ensemble equals training each member alone, to rounding (the members
share BLAS calls, not arithmetic). Random draws per member follow one rule, that of
``make_cell(..., ensemble=B)``: member i uses the i-th child ``rng.spawn(B)[i]`` of the
generator (for a batch shape of several dimensions, spawned dimension by dimension).

Everything is float64 numpy; nothing here writes files or touches numpy's global random state.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .._validate import as_rng, choice, describe, finite_array, frozen, positive_int, positive_number
from ..cells import Cell
from .tasks import LOSSES, READOUTS, Task
from ..theory.predictions import clip_by_norm

__all__ = [
    "Model",
    "init_model",
    "stack_models",
    "forward",
    "loss_and_output_grad",
    "bptt",
    "BPTTResult",
    "global_norm",
    "clip_by_global_norm",
    "clip_by_value",
    "SGD",
    "Adam",
    "train_model",
    "TrainRecord",
    "Flossing",
    "evaluate",
    "CELL_PARAMS",
    "READOUT_PARAMS",
]

CELL_PARAMS = ("weight_hh", "weight_ih", "bias_hh", "bias_ih")
READOUT_PARAMS = ("weight_out", "bias_out")


# ------------------------------------------------------------------------------------------
# the model
def _shape_text(shape) -> str:
    """A shape for messages: ``(3, O, 4)``; a 1-tuple keeps its comma."""
    items = [str(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


@dataclass(frozen=True, eq=False)
class Model:
    r"""A recurrent cell with a linear readout of its hidden part.

    .. math::

        s_{t+1} = \mathrm{cell.step}(s_t, x_t), \qquad y_t = W_{out} h_t + b_{out}

    Parameters
    ----------
    cell : Cell
        One network, or an ensemble (``cell.batch_shape == E``).
    weight_out : array, shape (O, N), or (*E, O, N) for an ensemble
        An ensemble's readout has the cell's batch shape in front (one readout per member); an
        (O, N) readout given with an ensemble cell is shared as the starting point of every
        member (broadcast to (*E, O, N)).
    bias_out : array, shape (O,), or (*E, O) for an ensemble

    Notes
    -----
    ``model[i]`` is member i of an ensemble model (its cell ``cell[i]`` and readout
    ``weight_out[i]``, ``bias_out[i]``); :func:`stack_models` builds one from single models.
    """

    cell: Cell
    weight_out: np.ndarray
    bias_out: np.ndarray

    def __post_init__(self):
        if not isinstance(self.cell, Cell):
            raise TypeError(f"`cell` must be a gradsim Cell; got {describe(self.cell)}.")
        batch = self.cell.batch_shape
        n = self.cell.n_hidden
        if not batch:
            try:
                weight = finite_array(self.weight_out, "weight_out", shape=(None, n))
            except ValueError:
                if np.ndim(self.weight_out) > 2:
                    raise ValueError(
                        f"`weight_out` must have shape (*, {n}) for a single network (the cell's "
                        "batch_shape is ()); a readout with batch dimensions needs an ensemble cell of "
                        f"that batch_shape; got shape {np.shape(self.weight_out)}."
                    ) from None
                raise
            if weight.shape[0] < 1:
                raise ValueError(f"`weight_out` must have at least one row; got shape {weight.shape}.")
            bias = finite_array(self.bias_out, "bias_out", shape=(weight.shape[0],))
        else:
            weight = finite_array(self.weight_out, "weight_out")
            if weight.ndim < 2 or weight.shape[-1] != n or weight.shape[:-2] not in ((), batch):
                raise ValueError(
                    f"`weight_out` must have shape {_shape_text(batch + ('O', n))} for an ensemble of "
                    f"batch_shape {batch} (or (O, {n}), shared by the members); got shape {weight.shape}."
                )
            o = weight.shape[-2]
            if o < 1:
                raise ValueError(f"`weight_out` must have at least one row; got shape {weight.shape}.")
            bias = finite_array(self.bias_out, "bias_out")
            if bias.shape not in ((o,), batch + (o,)):
                raise ValueError(
                    f"`bias_out` must have shape {_shape_text(batch + (o,))} for an ensemble of "
                    f"batch_shape {batch} (or ({o},), shared by the members); got shape {bias.shape}."
                )
            weight = np.broadcast_to(weight, batch + weight.shape[-2:])
            bias = np.broadcast_to(bias, batch + (o,))
        object.__setattr__(self, "weight_out", frozen(weight))
        object.__setattr__(self, "bias_out", frozen(bias))

    @property
    def n_output(self) -> int:
        return self.weight_out.shape[-2]

    @property
    def batch_shape(self) -> tuple:
        """The cell's batch shape: ``()`` for one network, ``E`` for an ensemble."""
        return self.cell.batch_shape

    @property
    def params(self) -> dict:
        """All trainable arrays (read-only), cell parameters first (an ensemble's with its
        batch dimensions in front)."""
        out = dict(self.cell.parameters())
        out["weight_out"] = self.weight_out
        out["bias_out"] = self.bias_out
        return out

    def with_params(self, params: dict) -> "Model":
        """A new model with the arrays of ``params`` (any subset of :attr:`params`' keys)."""
        names = tuple(self.cell.parameters())
        unknown = set(params) - set(names) - set(READOUT_PARAMS)
        if unknown:
            raise ValueError(
                f"`params` must have keys among {names + READOUT_PARAMS}; got {sorted(unknown)}."
            )
        cell_part = {k: v for k, v in params.items() if k in names}
        cell = self.cell.with_parameters(cell_part)
        return Model(cell, params.get("weight_out", self.weight_out), params.get("bias_out", self.bias_out))

    def __getitem__(self, index):
        """Member ``index`` of an ensemble model (an int per batch dimension gives one network;
        slices or integer arrays, a sub-ensemble), indexed like its cell."""
        cell = self.cell[index]  # validates the index and raises the cell's errors
        batch = self.batch_shape
        where = np.arange(int(np.prod(batch, dtype=int))).reshape(batch)[index]
        o, n = self.weight_out.shape[-2:]
        weight = self.weight_out.reshape((-1, o, n))[where]
        bias = self.bias_out.reshape((-1, o))[where]
        return Model(cell, weight, bias)

    def __len__(self):
        if not self.batch_shape:
            raise TypeError("a single-network Model has no len(); it is not an ensemble.")
        return self.batch_shape[0]


def stack_models(models) -> Model:
    """One ensemble model from single models (or from ensemble models of one batch shape).

    Parameters
    ----------
    models : sequence of Model
        Cells of one class, size and options (as :func:`gradsim.stack_cells` requires) and
        readouts of one size.

    Returns
    -------
    Model
        ``batch_shape == (len(models),) + models[0].batch_shape``; ``result[i]`` holds the same
        parameters as ``models[i]``.
    """
    from ..cells import stack_cells

    if isinstance(models, Model):
        raise TypeError("`models` must be a sequence of Models; got a single Model.")
    try:
        models = list(models)
    except TypeError:
        raise TypeError(f"`models` must be a sequence of Models; got {describe(models)}.") from None
    if not models:
        raise ValueError("`models` must hold at least one Model; got an empty sequence.")
    for i, model in enumerate(models):
        if not isinstance(model, Model):
            raise TypeError(f"`models` must hold only Models; item {i} is {describe(model)}.")
        if model.n_output != models[0].n_output:
            raise ValueError(
                f"`models` must all have one n_output; item 0 has n_output={models[0].n_output}, item "
                f"{i} has n_output={model.n_output}."
            )
    try:
        cell = stack_cells([m.cell for m in models])
    except (TypeError, ValueError) as error:
        raise type(error)(str(error).replace("`cells`", "the cells of `models`", 1)) from None
    return Model(
        cell,
        np.stack([m.weight_out for m in models]),
        np.stack([m.bias_out for m in models]),
    )


def _member_rngs(rng, shape) -> np.ndarray:
    """Generators of an ensemble's members, an object array of ``shape``: member ``i`` of a
    1-d batch gets ``rng.spawn(B)[i]`` (the rule of ``make_cell(..., ensemble=B)``); further
    dimensions spawn from their parent member's generator in turn."""
    out = np.empty(shape, dtype=object)

    def fill(gen, prefix, dims):
        if not dims:
            out[prefix] = gen
            return
        for i, child in enumerate(gen.spawn(dims[0])):
            fill(child, prefix + (i,), dims[1:])

    fill(rng, (), tuple(shape))
    return out


def init_model(cell, n_output, *, scale=1.0, rng=None) -> Model:
    r"""A model around ``cell`` with a fresh readout :math:`W_{out} \sim N(0, \text{scale}^2/N)`,
    :math:`b_{out} = 0`.

    Parameters
    ----------
    cell : Cell
        One network, or an ensemble (``batch_shape == (B,)`` or any leading shape).
    n_output : int
        O >= 1.
    scale : float
        Readout gain, >= 0.
    rng : seed or Generator
        For an ensemble, member i's readout is drawn exactly as ``init_model(cell[i], n_output,
        rng=child)`` draws it, with ``child = as_rng(rng).spawn(B)[i]`` (the seeding rule of
        ``make_cell(..., ensemble=B)``; a batch shape (B1, B2) spawns B2 children from member
        i's child in turn). One member can so be rebuilt on its own.

    Returns
    -------
    Model
        Readout of shape (O, N), or (*E, O, N) for an ensemble.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"`cell` must be a gradsim Cell; got {describe(cell)}.")
    n_output = positive_int(n_output, "n_output")
    scale = positive_number(scale, "scale", allow_zero=True)
    rng = as_rng(rng)
    n = cell.n_hidden
    batch = cell.batch_shape
    if not batch:
        weight = rng.standard_normal((n_output, n)) * (scale / math.sqrt(n))
        return Model(cell, weight, np.zeros(n_output))
    children = _member_rngs(rng, batch)
    weight = np.empty(batch + (n_output, n))
    for index in np.ndindex(*batch):
        weight[index] = children[index].standard_normal((n_output, n)) * (scale / math.sqrt(n))
    return Model(cell, weight, np.zeros(batch + (n_output,)))


def _flat(model) -> Model:
    """An ensemble model with its batch shape flattened to one member axis (M,)."""
    batch = model.batch_shape
    if len(batch) == 1:
        return model
    m = int(np.prod(batch, dtype=int))
    cell = model.cell
    arrays = {k: np.reshape(v, (m,) + v.shape[len(batch):]) for k, v in cell.parameters().items()}
    flat_cell = cell.with_parameters(arrays)
    o, n = model.weight_out.shape[-2:]
    return Model(flat_cell, model.weight_out.reshape(m, o, n), model.bias_out.reshape(m, o))


def _unflat(model, batch) -> Model:
    """The inverse of :func:`_flat`."""
    if model.batch_shape == tuple(batch):
        return model
    cell = model.cell
    arrays = {k: np.reshape(v, tuple(batch) + v.shape[1:]) for k, v in cell.parameters().items()}
    o, n = model.weight_out.shape[-2:]
    return Model(
        cell.with_parameters(arrays),
        model.weight_out.reshape(tuple(batch) + (o, n)),
        model.bias_out.reshape(tuple(batch) + (o,)),
    )


# ------------------------------------------------------------------------------------------
# forward pass, losses, BPTT
def _check_batch(model, inputs, targets, readout, loss):
    choice(readout, "readout", READOUTS)
    choice(loss, "loss", LOSSES)
    if not isinstance(model, Model):
        raise TypeError(f"`model` must be a gradsim.training.backprop.Model; got {describe(model)}.")
    inputs = finite_array(inputs, "inputs")
    n_in = model.cell.n_input
    if inputs.ndim != 3 or inputs.shape[2] != n_in or inputs.shape[1] < 1 or inputs.shape[0] < 1:
        raise ValueError(
            f"`inputs` must have shape (B, L, {n_in}) with B, L >= 1; got shape {inputs.shape}."
        )
    if targets is None:
        return inputs, None
    b, length = inputs.shape[:2]
    o = model.n_output
    if loss == "mse":
        want = (b, o) if readout == "last" else (b, length, o)
        targets = finite_array(targets, "targets", shape=want)
    else:
        want = (b,) if readout == "last" else (b, length)
        raw = np.asarray(targets)
        if raw.shape != want or not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(
                f"`targets` must be integer class indices of shape {want}; got "
                f"{describe(raw)} of dtype {raw.dtype}."
            )
        if raw.size and (raw.min() < 0 or raw.max() >= o):
            raise ValueError(
                f"`targets` must be class indices in [0, {o}); got values in "
                f"[{raw.min()}, {raw.max()}]."
            )
        targets = raw.astype(np.int64)
    return inputs, targets


def _hidden_index(cell):
    """Where the hidden part h (what the readout reads, N = ``cell.n_hidden`` entries) sits in
    the state: the first N entries (``slice(0, N)``), or, for a cell with a ``hidden_index``
    (a :class:`~gradsim.StackedCell`: every layer's output, layers in order), those positions
    (an index array, or the slice when they are the first N)."""
    n = cell.n_hidden
    index = getattr(cell, "hidden_index", None)
    if index is None:
        return slice(0, n)
    index = np.asarray(index)
    return slice(0, n) if np.array_equal(index, np.arange(n)) else index


def _unroll(cell, x_tm, state0):
    """States (L + 1, B, S), time-major, from the cell's own step."""
    states = np.empty((x_tm.shape[0] + 1,) + state0.shape)
    states[0] = state0
    for t in range(x_tm.shape[0]):
        states[t + 1] = cell._step(states[t], x_tm[t])
    return states


def _outputs(model, states, readout):
    """Readout of the hidden parts: (B, O) for "last", (L, B, O) time-major for "sequence"."""
    h = _hidden_index(model.cell)
    hidden = states[-1][..., h] if readout == "last" else states[1:][..., h]
    return hidden @ model.weight_out.T + model.bias_out


# -- ensembles: member-by-member layout ------------------------------------------------------
# Inside, an ensemble runs as a flat one of M members (see _flat); its arrays are time-major
# with the member axis last among the batch axes, where the cells broadcast it:
#   inputs (L, batch, M or 1, I), states (L + 1, batch, M, S), outputs (batch, M, O) for
#   "last" and (L, batch, M, O) for "sequence", targets of the outputs' shape (mse) or without
#   its last axis (xent).
def _leading(array, core_ndim, batch, name, shared, per_member):
    """The leading (member) dimensions of ``array`` beyond its ``core_ndim`` core ones, checked
    to broadcast to the ensemble's ``batch``."""
    lead = array.shape[: array.ndim - core_ndim] if array.ndim >= core_ndim else None
    ok = lead is not None and len(lead) <= len(batch)
    if ok:
        try:
            ok = np.broadcast_shapes(lead, batch) == tuple(batch)
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(
            f"`{name}` must have shape {shared}, shared by the members, or {per_member}, one per "
            f"member of the ensemble of batch_shape {batch}; got shape {array.shape}."
        )
    return lead


def _to_members(array, lead, batch, order):
    """``lead + core`` -> member-axis layout: (M or 1,) + core transposed by ``order``."""
    core = array.shape[len(lead):]
    if lead:
        m = int(np.prod(batch, dtype=int))
        array = np.broadcast_to(array, tuple(batch) + core).reshape((m,) + core)
    else:
        array = array[None]
    return np.ascontiguousarray(array.transpose(order))


_INPUT_ORDER = (2, 1, 0, 3)  # (M, B, L, I) -> (L, B, M, I)
_TARGET_ORDER = {
    ("last", "mse"): (1, 0, 2),  # (M, B, O) -> (B, M, O)
    ("sequence", "mse"): (2, 1, 0, 3),  # (M, B, L, O) -> (L, B, M, O)
    ("last", "xent"): (1, 0),  # (M, B) -> (B, M)
    ("sequence", "xent"): (2, 1, 0),  # (M, B, L) -> (L, B, M)
}


def _check_members_batch(model, inputs, targets, readout, loss):
    """Checks of an ensemble's mini-batch; returns (x_tm, targets) in the member layout."""
    choice(readout, "readout", READOUTS)
    choice(loss, "loss", LOSSES)
    if not isinstance(model, Model):
        raise TypeError(f"`model` must be a gradsim.training.backprop.Model; got {describe(model)}.")
    batch = model.batch_shape
    n_in = model.cell.n_input
    inputs = finite_array(inputs, "inputs")
    lead = _leading(inputs, 3, batch, "inputs", f"(B, L, {n_in})", _shape_text(batch + ("B", "L", n_in)))
    if inputs.shape[-1] != n_in or inputs.shape[-2] < 1 or inputs.shape[-3] < 1:
        raise ValueError(
            f"`inputs` must have shape (B, L, {n_in}) or {_shape_text(batch + ('B', 'L', n_in))} with "
            f"B, L >= 1; got shape {inputs.shape}."
        )
    x_tm = _to_members(inputs, lead, batch, _INPUT_ORDER)
    if targets is None:
        return x_tm, None
    b, length = inputs.shape[-3:-1]
    o = model.n_output
    core = (b,) if readout == "last" else (b, length)
    if loss == "mse":
        core = core + (o,)
        raw = finite_array(targets, "targets")
    else:
        raw = np.asarray(targets)
    t_lead = _leading(raw, len(core), batch, "targets", _shape_text(core), _shape_text(batch + core))
    if raw.shape[len(t_lead):] != core:
        raise ValueError(
            f"`targets` must have shape {_shape_text(core)}, shared by the members, or "
            f"{_shape_text(batch + core)}, one per member; got shape {raw.shape}."
        )
    if loss == "xent":
        if not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(
                f"`targets` must be integer class indices of shape {_shape_text(core)} or "
                f"{_shape_text(batch + core)}; got {describe(raw)} of dtype {raw.dtype}."
            )
        if raw.size and (raw.min() < 0 or raw.max() >= o):
            raise ValueError(
                f"`targets` must be class indices in [0, {o}); got values in "
                f"[{raw.min()}, {raw.max()}]."
            )
        raw = raw.astype(np.int64)
    return x_tm, _member_targets(raw, t_lead, batch, readout, loss)


def _member_targets(targets, lead, batch, readout, loss):
    out = _to_members(targets, lead, batch, _TARGET_ORDER[readout, loss])
    m = int(np.prod(batch, dtype=int))
    axis = out.ndim - (2 if loss == "mse" else 1)  # the member axis
    if out.shape[axis] != m:
        shape = list(out.shape)
        shape[axis] = m
        out = np.broadcast_to(out, tuple(shape))
    return out


def _member_matmul(v, weight):
    """``v[..., m, :] @ weight[m]`` for every member m: v (..., M, K), weight (M, K, J) ->
    (..., M, J), as M matrix products (one per member) rather than a product per row."""
    lead = v.shape[:-2]
    m, k = v.shape[-2:]
    flat = v.reshape((-1, m, k)).transpose(1, 0, 2)
    out = np.matmul(flat, weight)  # (M, P, J)
    return out.transpose(1, 0, 2).reshape(lead + (m, weight.shape[-1]))


def _member_outputs(model, states, readout):
    """Readout of a flat ensemble: (B, M, O) for "last", (L, B, M, O) for "sequence"."""
    h = _hidden_index(model.cell)
    hidden = states[-1][..., h] if readout == "last" else states[1:][..., h]
    return _member_matmul(hidden, model.weight_out.transpose(0, 2, 1)) + model.bias_out


def _member_loss(outputs, targets, loss):
    """Per-member losses (M,) and their gradients with respect to ``outputs`` (..., M, O): member
    m's loss is the single-network loss of its own outputs (:func:`loss_and_output_grad`)."""
    axes = tuple(range(outputs.ndim - 2))
    if loss == "mse":
        diff = outputs - targets
        count = diff.size // diff.shape[-2]
        return np.mean(diff * diff, axis=axes + (-1,)), 2.0 * diff / count
    shifted = outputs - np.max(outputs, axis=-1, keepdims=True)
    log_p = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    picked = np.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
    count = targets.size // targets.shape[-1]
    grad = np.exp(log_p)
    np.put_along_axis(grad, targets[..., None], np.take_along_axis(grad, targets[..., None], -1) - 1.0, -1)
    return -np.sum(picked, axis=axes) / count, grad / count


def _member_forward(flat, x_tm):
    """States (L + 1, B, M, S) of a flat ensemble model from s_0 = 0."""
    m = flat.batch_shape[0]
    return _unroll(flat.cell, x_tm, np.zeros((x_tm.shape[1], m, flat.cell.state_size)))


def loss_and_output_grad(outputs, targets, loss):
    r"""The loss and its gradient with respect to the outputs.

    .. math::

        \text{mse: } L = \frac1M \sum (y - t)^2, \quad \frac{\partial L}{\partial y} =
            \frac{2 (y - t)}{M} \quad (M = \text{number of output entries})

        \text{xent: } L = -\frac1M \sum_m \log \operatorname{softmax}(y_m)_{t_m}, \quad
            \frac{\partial L}{\partial y_m} = \frac{\operatorname{softmax}(y_m) - e_{t_m}}{M}
            \quad (M = \text{number of scored outputs})

    Parameters
    ----------
    outputs : ndarray, shape (..., O)
    targets : ndarray
        Shape (..., O) float for ``"mse"``; (...,) int for ``"xent"``.
    loss : {"mse", "xent"}

    Returns
    -------
    loss : float
    grad : ndarray, shape of ``outputs``
    """
    if loss == "mse":
        diff = outputs - targets
        return float(np.mean(diff * diff)), 2.0 * diff / diff.size
    shifted = outputs - np.max(outputs, axis=-1, keepdims=True)
    log_p = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    picked = np.take_along_axis(log_p, targets[..., None], axis=-1)
    count = targets.size
    grad = np.exp(log_p)
    np.put_along_axis(grad, targets[..., None], np.take_along_axis(grad, targets[..., None], -1) - 1.0, -1)
    return float(-np.sum(picked) / count), grad / count


def forward(model, inputs, readout: str = "last"):
    """The model's outputs.

    Parameters
    ----------
    model : Model
    inputs : array, shape (B, L, I)
        For an ensemble model (``batch_shape == E``): (B, L, I), one batch shared by the
        members, or (*E, B, L, I), one per member.
    readout : {"last", "sequence"}

    Returns
    -------
    ndarray
        Shape (B, O) for ``"last"``; (B, L, O) for ``"sequence"``; an ensemble's with E in
        front: (*E, B, O) or (*E, B, L, O).
    """
    if isinstance(model, Model) and model.batch_shape:
        batch = model.batch_shape
        x_tm, _ = _check_members_batch(model, inputs, None, readout, "mse")
        flat = _flat(model)
        out = _member_outputs(flat, _member_forward(flat, x_tm), readout)
        if readout == "last":  # (B, M, O) -> (*E, B, O)
            return out.transpose(1, 0, 2).reshape(batch + (out.shape[0], out.shape[-1]))
        return out.transpose(2, 1, 0, 3).reshape(batch + (out.shape[1], out.shape[0], out.shape[-1]))
    inputs, _ = _check_batch(model, inputs, None, readout, "mse")
    x_tm = np.ascontiguousarray(inputs.transpose(1, 0, 2))
    states = _unroll(model.cell, x_tm, np.zeros((inputs.shape[0], model.cell.state_size)))
    out = _outputs(model, states, readout)
    return out if readout == "last" else out.transpose(1, 0, 2)


@dataclass(frozen=True, eq=False)
class BPTTResult:
    """Loss and gradients of one mini-batch.

    Attributes
    ----------
    loss : float
        For an ensemble model (``batch_shape == E``): ndarray of shape E, each member's own loss.
    grads : dict name -> ndarray
        dL/dtheta for every array of :attr:`Model.params`, of the same shapes (an ensemble's:
        member i's gradient of its own loss in ``[i]``).
    state_grad_norms : ndarray, shape (L + 1,)
        ``[t] = ||dL/ds_t||`` (Frobenius norm over the batch and the whole state), t = 0 .. L;
        (*E, L + 1) for an ensemble, per member.
    hidden_grad_norms : ndarray, shape (L + 1,)
        ``[t] = ||dL/dh_t||`` over the hidden part only (equal to the above but for the LSTM);
        (*E, L + 1) for an ensemble.
    """

    loss: float
    grads: dict
    state_grad_norms: np.ndarray
    hidden_grad_norms: np.ndarray


_ROWS = 512


def _bptt(model, inputs, targets, readout, loss):
    cell = model.cell
    n, size, h = cell.n_hidden, cell.state_size, _hidden_index(cell)
    batch, length = inputs.shape[:2]
    x_tm = np.ascontiguousarray(inputs.transpose(1, 0, 2))
    states = _unroll(cell, x_tm, np.zeros((batch, size)))
    outputs = _outputs(model, states, readout)
    if readout == "sequence":
        targets = np.moveaxis(targets, 1, 0)  # time-major like the outputs
    value, d_out = loss_and_output_grad(outputs, targets, loss)

    # Direct gradients of the loss with respect to the hidden parts of the states.
    w_out = model.weight_out
    if readout == "last":
        hidden = states[-1][..., h]
        grad_w = d_out.T @ hidden
        grad_b = d_out.sum(axis=0)
    else:
        hidden = states[1:][..., h].reshape(-1, n)
        flat = d_out.reshape(-1, d_out.shape[-1])
        grad_w = flat.T @ hidden
        grad_b = flat.sum(axis=0)
        direct = d_out @ w_out  # (L, B, N): dL/dh_t for t = 1 .. L

    cotangents = np.empty((length, batch, size))  # [t] = dL/ds_{t+1}
    state_norms = np.empty(length + 1)
    hidden_norms = np.empty(length + 1)
    g = np.zeros((batch, size))
    if readout == "last":
        g[:, h] = d_out @ w_out
    for t in range(length, 0, -1):
        if readout == "sequence":
            g[:, h] += direct[t - 1]
        state_norms[t] = math.sqrt(float(np.sum(g * g)))
        hidden_norms[t] = math.sqrt(float(np.sum(g[:, h] * g[:, h])))
        cotangents[t - 1] = g
        g = cell._vjp(states[t - 1], x_tm[t - 1], g, "full")
    state_norms[0] = math.sqrt(float(np.sum(g * g)))
    hidden_norms[0] = math.sqrt(float(np.sum(g[:, h] * g[:, h])))

    # sum_t d(g_{t+1} . step(s_t, x_t))/dtheta by batched calls over blocks of steps (blocks of
    # ~_ROWS (step, sequence) pairs keep the intermediates in cache: ~2x faster than one call).
    chunk = max(1, _ROWS // batch)
    grads = None
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        part = cell._param_vjp(states[start:stop], x_tm[start:stop], cotangents[start:stop])
        grads = part if grads is None else {k: grads[k] + part[k] for k in grads}
    grads["weight_out"] = grad_w
    grads["bias_out"] = grad_b
    return BPTTResult(value, grads, state_norms, hidden_norms)


# Members per group in an ensemble's BPTT: a group's per-step arrays (batch x members x state)
# hold about this many entries, so that the cells' elementwise work stays in cache (measured:
# one group of 32 LSTMs with N = 64 is 1.8x slower than groups of 4; beyond ~16k entries per
# array the step slows down, below ~4k the per-call overhead dominates). Where a member alone
# has >= 1/4 of it (batch x state >= 2048) the members run one by one through the single-network
# code instead, whose matrix products beat the cells' stacked per-row ones.
_GROUP_ENTRIES = 8192


def _group_size(batch, state_size) -> int:
    """Members per group for task batch ``batch``; 0: one by one (see _GROUP_ENTRIES)."""
    group = _GROUP_ENTRIES // (batch * state_size)
    return group if group > 4 else 0


def _bptt_members(flat, x_tm, targets, readout, loss):
    """BPTT of a flat ensemble model (M members) in the member layout (see _check_members_batch):
    the single-network recurrence of :func:`_bptt` for every member at once, in groups of
    members (every member's arithmetic is its own, so the grouping changes no result). Returns
    the losses (M,), the gradients (M, ...) and the per-member norms (M, L + 1)."""
    m = flat.batch_shape[0]
    group = _group_size(x_tm.shape[1], flat.cell.state_size)
    if group == 0:
        return _bptt_one_by_one(flat, x_tm, targets, readout, loss)
    if group >= m:
        return _bptt_group(flat, x_tm, targets, readout, loss)
    axis = targets.ndim - (2 if loss == "mse" else 1)  # the targets' member axis
    parts = []
    for start in range(0, m, group):
        members = slice(start, min(start + group, m))
        x_part = x_tm if x_tm.shape[2] == 1 else x_tm[:, :, members]
        t_part = targets[(slice(None),) * axis + (members,)]
        parts.append(_bptt_group(flat[members], x_part, t_part, readout, loss))
    values = np.concatenate([p[0] for p in parts])
    grads = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
    return values, grads, np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts])


def _bptt_one_by_one(flat, x_tm, targets, readout, loss):
    """:func:`_bptt_members` member by member through the single-network code: where one
    member's arrays already fill the cache, stacking members only adds the cost of the cells'
    per-row (rather than per-matrix) products."""
    values, grads, s_norms, h_norms = [], [], [], []
    for i in range(flat.batch_shape[0]):
        inputs = x_tm[:, :, i if x_tm.shape[2] > 1 else 0].transpose(1, 0, 2)
        if readout == "last":
            target = targets[:, i]
        else:  # (L, B, M, ...) -> (B, L, ...)
            target = np.swapaxes(targets[:, :, i], 0, 1)
        result = _bptt(flat[i], inputs, target, readout, loss)
        values.append(result.loss)
        grads.append(result.grads)
        s_norms.append(result.state_grad_norms)
        h_norms.append(result.hidden_grad_norms)
    return (
        np.array(values),
        {k: np.stack([g[k] for g in grads]) for k in grads[0]},
        np.stack(s_norms),
        np.stack(h_norms),
    )


def _bptt_group(flat, x_tm, targets, readout, loss):
    cell = flat.cell
    n, size, h = cell.n_hidden, cell.state_size, _hidden_index(cell)
    length, batch = x_tm.shape[:2]
    m = flat.batch_shape[0]
    states = _member_forward(flat, x_tm)
    outputs = _member_outputs(flat, states, readout)
    values, d_out = _member_loss(outputs, targets, loss)

    w_out = flat.weight_out  # (M, O, N)
    o = w_out.shape[1]
    hidden = states[-1][..., h] if readout == "last" else states[1:][..., h].reshape(-1, m, n)
    d_flat = d_out.reshape(-1, m, o)
    grad_w = np.matmul(d_flat.transpose(1, 2, 0), hidden.transpose(1, 0, 2))  # (M, O, N)
    grad_b = d_flat.sum(axis=0)
    direct = _member_matmul(d_out, w_out)  # dL/dh: (B, M, N) or (L, B, M, N)

    cotangents = np.empty((length, batch, m, size))  # [t] = dL/ds_{t+1}
    state_norms = np.empty((m, length + 1))
    hidden_norms = np.empty((m, length + 1))
    g = np.zeros((batch, m, size))
    if readout == "last":
        g[..., h] = direct
    for t in range(length, 0, -1):
        if readout == "sequence":
            g[..., h] += direct[t - 1]
        state_norms[:, t] = np.sqrt(np.sum(g * g, axis=(0, 2)))
        hidden_norms[:, t] = np.sqrt(np.sum(g[..., h] * g[..., h], axis=(0, 2)))
        cotangents[t - 1] = g
        g = cell._vjp(states[t - 1], x_tm[t - 1], g, "full")
    state_norms[:, 0] = np.sqrt(np.sum(g * g, axis=(0, 2)))
    hidden_norms[:, 0] = np.sqrt(np.sum(g[..., h] * g[..., h], axis=(0, 2)))

    chunk = max(1, _ROWS // (batch * m))
    grads = None
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        part = cell._param_vjp(states[start:stop], x_tm[start:stop], cotangents[start:stop])
        grads = part if grads is None else {k: grads[k] + part[k] for k in grads}
    grads["weight_out"] = grad_w
    grads["bias_out"] = grad_b
    return values, grads, state_norms, hidden_norms


def _unflat_grads(grads, batch):
    return {k: v.reshape(tuple(batch) + v.shape[1:]) for k, v in grads.items()}


def bptt(model, inputs, targets, *, readout: str = "last", loss: str = "mse") -> BPTTResult:
    r"""Loss and gradients of one mini-batch by back-propagation through time.

    Runs the cell forward from :math:`s_0 = 0`, reads out, and propagates
    :math:`g_t = \partial L / \partial s_t` back with ``cell.vjp`` (see the module docstring);
    parameter gradients come from ``cell.param_vjp``.

    For an ensemble model (``batch_shape == E``) every member runs this on its own: inputs and
    targets without the leading E are one mini-batch shared by the members, with it one per
    member; losses, gradients and norms come per member with E in front.

    Parameters
    ----------
    model : Model
    inputs : array, shape (B, L, I)
        Or (*E, B, L, I) for an ensemble, one batch per member.
    targets : array
        ``"mse"``: float, shape (B, O) (``readout="last"``) or (B, L, O) (``"sequence"``).
        ``"xent"``: int class indices in [0, O), shape (B,) or (B, L). An ensemble's may have
        E in front.
    readout : {"last", "sequence"}
    loss : {"mse", "xent"}

    Returns
    -------
    BPTTResult
    """
    if isinstance(model, Model) and model.batch_shape:
        batch = model.batch_shape
        x_tm, targets = _check_members_batch(model, inputs, targets, readout, loss)
        values, grads, state_norms, hidden_norms = _bptt_members(_flat(model), x_tm, targets, readout, loss)
        return BPTTResult(
            values.reshape(batch),
            _unflat_grads(grads, batch),
            state_norms.reshape(batch + state_norms.shape[1:]),
            hidden_norms.reshape(batch + hidden_norms.shape[1:]),
        )
    inputs, targets = _check_batch(model, inputs, targets, readout, loss)
    return _bptt(model, inputs, targets, readout, loss)


def evaluate(model, task, batch_size=1000, rng=None) -> float:
    """The loss of ``model`` on a fresh batch of ``task`` (no gradients).

    Parameters
    ----------
    model : Model
    task : Task
    batch_size : int
    rng : seed or Generator

    Returns
    -------
    float
        NaN or inf when the model's outputs overflow. For an ensemble model, an ndarray of its
        batch shape: every member scored on the same batch (NaN for a member whose outputs
        overflow).
    """
    _check_task(model, task)
    inputs, targets = task.sample(batch_size, as_rng(rng))
    if model.batch_shape:
        batch = model.batch_shape
        flat = _flat(model)
        x_tm = _to_members(inputs, (), batch, _INPUT_ORDER)
        targets = _member_targets(targets, (), batch, task.readout, task.loss)
        with np.errstate(all="ignore"):
            outputs = _member_outputs(flat, _member_forward(flat, x_tm), task.readout)
            values = _member_loss(outputs, targets, task.loss)[0]
            finite = np.all(np.isfinite(outputs), axis=tuple(range(outputs.ndim - 2)) + (-1,))
        return np.where(finite, values, math.nan).reshape(batch)
    x_tm = np.ascontiguousarray(inputs.transpose(1, 0, 2))
    with np.errstate(all="ignore"):
        states = _unroll(model.cell, x_tm, np.zeros((batch_size, model.cell.state_size)))
        outputs = _outputs(model, states, task.readout)
        if task.readout == "sequence":
            targets = np.moveaxis(targets, 1, 0)
        if not np.all(np.isfinite(outputs)):
            return math.nan
        return loss_and_output_grad(outputs, targets, task.loss)[0]


# ------------------------------------------------------------------------------------------
# gradient norms and clipping
def _check_grads(grads, name="grads"):
    if not isinstance(grads, dict) or not grads:
        raise TypeError(f"`{name}` must be a non-empty dict name -> array; got {describe(grads)}.")
    return {key: finite_array(value, f"{name}[{key!r}]") for key, value in grads.items()}


def _norm(flat) -> float:
    """Euclidean norm with scaling: no overflow for entries near float64's limits."""
    if flat.size == 0:
        return 0.0
    scale = float(np.max(np.abs(flat)))
    if scale == 0.0 or not math.isfinite(scale):
        return scale
    return scale * math.sqrt(float(np.sum((flat / scale) ** 2)))


def _flatten(grads):
    return np.concatenate([np.ravel(v) for v in grads.values()])


def _unflatten(flat, like):
    out, start = {}, 0
    for key, value in like.items():
        out[key] = flat[start : start + value.size].reshape(value.shape)
        start += value.size
    return out


def _rows(grads, m):
    """Each member's gradients as one row: (M, P), members in C order."""
    return np.concatenate([np.reshape(v, (m, -1)) for v in grads.values()], axis=1)


def _unrows(flat, like, m):
    out, start = {}, 0
    for key, value in like.items():
        size = value.size // m
        out[key] = flat[:, start : start + size].reshape(value.shape)
        start += size
    return out


def _row_norms(flat):
    """:func:`_norm` of every row of (M, P): scaled, NaN or inf where a row holds one."""
    if flat.shape[1] == 0:
        return np.zeros(flat.shape[0])
    scale = np.max(np.abs(flat), axis=1)
    ok = (scale != 0.0) & np.isfinite(scale)
    safe = np.where(ok, scale, 1.0)
    norms = safe * np.sqrt(np.sum((flat / safe[:, None]) ** 2, axis=1))
    return np.where(ok, norms, scale)


def _clip_rows(flat, max_norm):
    """:func:`_clip_norm` for every row of (M, P) on its own (in place): returns
    ``(flat, before, after)``, each member clipped by its own global norm."""
    before = _row_norms(flat)
    after = before.copy()
    clip = before >= max_norm  # False for NaN: a divergent member is not touched
    if np.any(clip):
        flat[clip] *= (max_norm / before[clip])[:, None]
        after[clip] = _row_norms(flat[clip])
        over = after > max_norm
        while np.any(over):  # the few-ulp excess of the rescaling, as in _clip_norm
            flat[over] *= np.minimum(max_norm / after[over], 1.0 - 4.0 * np.finfo(np.float64).eps)[:, None]
            after[over] = _row_norms(flat[over])
            over = after > max_norm
    return flat, before, after


def _check_batch_shape(batch_shape):
    try:
        items = tuple(batch_shape)
    except TypeError:
        items = None
    valid = items is not None and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in items
    )
    if not valid:
        raise TypeError(
            f"`batch_shape` must be a tuple of positive ints (an ensemble's); got {describe(batch_shape)}."
        )
    return tuple(int(d) for d in items)


def _check_member_grads(grads, batch):
    grads = _check_grads(grads)
    for key, value in grads.items():
        if value.shape[: len(batch)] != batch:
            raise ValueError(
                f"`grads[{key!r}]` must have the leading batch_shape {batch}; got shape {value.shape}."
            )
    return grads, batch, int(np.prod(batch, dtype=int))


def global_norm(grads, *, batch_shape=()):
    r"""The global norm :math:`\|g\| = (\sum_\theta \sum_i g_{\theta,i}^2)^{1/2}` of all arrays.

    Parameters
    ----------
    grads : dict name -> array
    batch_shape : tuple of int
        An ensemble's batch shape E (:attr:`Model.batch_shape`): every array then has E in
        front and the norm is taken per member, over that member's entries of all arrays.

    Returns
    -------
    float
        Or an ndarray of shape E, one norm per member.
    """
    batch = _check_batch_shape(batch_shape)
    if not batch:
        return _norm(_flatten(_check_grads(grads)))
    grads, batch, m = _check_member_grads(grads, batch)
    return _row_norms(_rows(grads, m)).reshape(batch)


def _clip_norm(grads, max_norm):
    flat = _flatten(grads)
    before = _norm(flat)
    if before < max_norm:
        return grads, before, before
    # Pascanu et al. 2013, Algorithm 1, on all parameters as one vector.
    flat = clip_by_norm(flat, max_norm)
    after = _norm(flat)
    # threshold / ||g|| * g can round to a norm a few ulps above the threshold: shrink it by
    # as many ulps (the direction is unchanged) so that the guarantee ||g|| <= threshold holds.
    while after > max_norm:
        flat *= min(max_norm / after, 1.0 - 4.0 * np.finfo(np.float64).eps)
        after = _norm(flat)
    return _unflatten(flat, grads), before, after


def clip_by_global_norm(grads, max_norm, *, batch_shape=()):
    r"""Clip all gradients together by their global norm (Pascanu, Mikolov & Bengio 2013).

    .. math::

        \text{if } \|g\| \ge \tau: \quad g \leftarrow \frac{\tau}{\|g\|}\, g

    with :math:`\|g\|` the norm of all arrays concatenated (:func:`global_norm`) and the same
    semantics as :func:`gradsim.theory.clip_by_norm`, which does the rescaling. The direction is
    kept and the returned norm is never above :math:`\tau` (a rounding excess of a few ulps is
    removed).

    Parameters
    ----------
    grads : dict name -> array
    max_norm : float
        The threshold :math:`\tau > 0`.
    batch_shape : tuple of int
        An ensemble's batch shape E: every array has E in front, and each member is clipped
        by its own global norm (as if it were trained alone), never by the ensemble's.

    Returns
    -------
    clipped : dict name -> ndarray
    norm_before, norm_after : float
        Or ndarrays of shape E, per member.
    """
    batch = _check_batch_shape(batch_shape)
    if not batch:
        grads = _check_grads(grads)
        max_norm = positive_number(max_norm, "max_norm")
        clipped, before, after = _clip_norm(grads, max_norm)
        return {k: np.array(v) for k, v in clipped.items()}, before, after
    grads, batch, m = _check_member_grads(grads, batch)
    max_norm = positive_number(max_norm, "max_norm")
    flat, before, after = _clip_rows(_rows(grads, m), max_norm)
    return _unrows(flat, grads, m), before.reshape(batch), after.reshape(batch)


def clip_by_value(grads, max_value) -> dict:
    r"""Clip every gradient entry to :math:`[-c, c]` (Mikolov 2012). Unlike norm clipping this
    changes the direction of the gradient.

    Parameters
    ----------
    grads : dict name -> array
    max_value : float
        c > 0.

    Returns
    -------
    dict name -> ndarray
    """
    grads = _check_grads(grads)
    max_value = positive_number(max_value, "max_value")
    return {k: np.clip(v, -max_value, max_value) for k, v in grads.items()}


# ------------------------------------------------------------------------------------------
# optimisers
@dataclass(frozen=True)
class SGD:
    r"""Stochastic gradient descent with (heavy-ball) momentum, in PyTorch's form.

    .. math::

        v \leftarrow \mu v + g, \qquad \theta \leftarrow \theta - \eta v

    (plain SGD for :math:`\mu = 0`).

    Parameters
    ----------
    lr : float
        Learning rate :math:`\eta > 0`.
    momentum : float
        :math:`\mu \in [0, 1)`.
    """

    lr: float = 0.01
    momentum: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "lr", positive_number(self.lr, "lr"))
        mu = positive_number(self.momentum, "momentum", allow_zero=True)
        if mu >= 1.0:
            raise ValueError(f"`momentum` must be a number in [0, 1); got {mu!r}.")
        object.__setattr__(self, "momentum", mu)

    def init(self, params: dict) -> dict:
        """Zero velocities."""
        return {"velocity": {k: np.zeros(np.shape(v)) for k, v in params.items()}}

    def update(self, params: dict, grads: dict, state: dict):
        """One step; returns ``(new_params, new_state)`` (the inputs are not modified)."""
        velocity = {k: self.momentum * state["velocity"][k] + grads[k] for k in params}
        new = {k: params[k] - self.lr * velocity[k] for k in params}
        return new, {"velocity": velocity}


@dataclass(frozen=True)
class Adam:
    r"""Adam (Kingma & Ba 2015) with bias correction.

    .. math::

        m \leftarrow \beta_1 m + (1 - \beta_1) g, \qquad v \leftarrow \beta_2 v + (1 - \beta_2) g^2

        \theta \leftarrow \theta - \eta\, \frac{m / (1 - \beta_1^k)}{\sqrt{v / (1 - \beta_2^k)} + \epsilon}

    at update k = 1, 2, ...

    Parameters
    ----------
    lr : float
        :math:`\eta > 0`.
    beta1, beta2 : float
        In [0, 1).
    eps : float
        > 0.
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        object.__setattr__(self, "lr", positive_number(self.lr, "lr"))
        object.__setattr__(self, "eps", positive_number(self.eps, "eps"))
        for name in ("beta1", "beta2"):
            beta = positive_number(getattr(self, name), name, allow_zero=True)
            if beta >= 1.0:
                raise ValueError(f"`{name}` must be a number in [0, 1); got {beta!r}.")
            object.__setattr__(self, name, beta)

    def init(self, params: dict) -> dict:
        """Zero moments, step count 0."""
        zeros = {k: np.zeros(np.shape(v)) for k, v in params.items()}
        return {"m": zeros, "v": {k: z.copy() for k, z in zeros.items()}, "k": 0}

    def update(self, params: dict, grads: dict, state: dict):
        """One step; returns ``(new_params, new_state)`` (the inputs are not modified)."""
        k = state["k"] + 1
        m = {key: self.beta1 * state["m"][key] + (1.0 - self.beta1) * grads[key] for key in params}
        v = {key: self.beta2 * state["v"][key] + (1.0 - self.beta2) * grads[key] ** 2 for key in params}
        c1 = 1.0 - self.beta1**k
        c2 = 1.0 - self.beta2**k
        new = {
            key: params[key] - self.lr * (m[key] / c1) / (np.sqrt(v[key] / c2) + self.eps)
            for key in params
        }
        return new, {"m": m, "v": v, "k": k}


# ------------------------------------------------------------------------------------------
# the training loop
@dataclass(frozen=True, eq=False)
class TrainRecord:
    """What happened during :func:`train_model`.

    Attributes
    ----------
    losses : ndarray, shape (U,)
        Mini-batch loss at each update performed (before the update), U <= n_updates. When the
        run diverged the last entry is the first non-finite loss (or the loss of the update
        whose step made the parameters non-finite).
    grad_norm_before, grad_norm_after : ndarray, shape (U,)
        Global gradient norm before and after clipping at each update (equal without
        clipping; NaN or inf at a divergent update).
    recorded_updates : ndarray of int, shape (K,)
        Updates at which the per-step gradient norms were kept.
    hidden_grad_norms, state_grad_norms : ndarray, shape (K, L + 1)
        ``[k, t] = ||dL/dh_t||`` (hidden part) and ``||dL/ds_t||`` (whole state) at update
        ``recorded_updates[k]``, t = 0 .. L.
    diverged : bool
        True when a loss, a gradient or an updated parameter became NaN or inf; training
        stopped there.
    diverged_at : int or None
        The update at which that happened.
    model : Model
        The last model whose parameters were all finite.
    floss_updates : ndarray of int, shape (F,)
        With ``floss=Flossing(...)``: for each of the F flossing updates performed, the
        training update before which it ran (0 for the flossing before training, E, 2E, ...
        for the episodes); empty without flossing.
    floss_exponents : ndarray, shape (F, k)
        The top k exponents measured on each flossing update's window, before its step
        (:func:`gradsim.training.floss.floss`'s rows).
    floss_losses : ndarray, shape (F,)
        Their flossing loss, mean over i of (lambda_i - target)^2.

    Notes
    -----
    An ensemble's record (``record.batch_shape == E``) keeps E in front of every array:
    ``losses``, ``grad_norm_before`` and ``grad_norm_after`` (*E, U), U the updates of the
    longest-running member, NaN after a member stopped; ``hidden_grad_norms`` and
    ``state_grad_norms`` (*E, K, L + 1), NaN where a member had stopped; ``diverged`` a bool
    array of shape E and ``diverged_at`` an int array (-1 for a member that did not diverge);
    ``model`` the ensemble of each member's last finite parameters; ``floss_exponents`` (*E,
    F, k) and ``floss_losses`` (*E, F), NaN where a member had stopped. ``record[i]`` is member
    i's own record, of the shapes and values (to rounding) of training it alone.
    """

    losses: np.ndarray
    grad_norm_before: np.ndarray
    grad_norm_after: np.ndarray
    recorded_updates: np.ndarray
    hidden_grad_norms: np.ndarray
    state_grad_norms: np.ndarray
    diverged: bool
    diverged_at: int | None
    model: Model
    floss_updates: np.ndarray = None
    floss_exponents: np.ndarray = None
    floss_losses: np.ndarray = None

    def __post_init__(self):
        if self.floss_updates is None:  # a record built without flossing
            batch = self.model.batch_shape
            object.__setattr__(self, "floss_updates", np.zeros(0, dtype=np.int64))
            object.__setattr__(self, "floss_exponents", np.zeros(batch + (0, 0)))
            object.__setattr__(self, "floss_losses", np.zeros(batch + (0,)))

    @property
    def batch_shape(self) -> tuple:
        """The model's batch shape: ``()`` for one network."""
        return self.model.batch_shape

    def __getitem__(self, index) -> "TrainRecord":
        """The record of member ``index`` of an ensemble run (a sub-ensemble's for slices)."""
        batch = self.batch_shape
        if not batch:
            raise TypeError("a single network's TrainRecord has no members; only an ensemble's can be indexed.")
        model = self.model[index]  # validates the index
        m = int(np.prod(batch, dtype=int))
        where = np.arange(m).reshape(batch)[index]
        u, k = self.losses.shape[-1], len(self.recorded_updates)
        diverged = np.asarray(self.diverged).reshape(-1)[where]
        diverged_at = np.asarray(self.diverged_at).reshape(-1)[where]
        done = np.where(diverged, diverged_at + 1, u)
        used = int(np.max(done)) if done.size else 0
        keep = self.recorded_updates < used
        parts = [
            a.reshape((m, u))[where]
            for a in (self.losses, self.grad_norm_before, self.grad_norm_after)
        ]
        norms = [
            a.reshape((m, k) + a.shape[len(batch) + 1:])[where][..., keep, :]
            for a in (self.hidden_grad_norms, self.state_grad_norms)
        ]
        if np.ndim(where) == 0:
            diverged, diverged_at = bool(diverged), (int(diverged_at) if diverged else None)
        f = len(self.floss_updates)
        floss_exponents = self.floss_exponents.reshape((m, f) + self.floss_exponents.shape[-1:])[where]
        floss_losses = self.floss_losses.reshape((m, f))[where]
        return TrainRecord(
            losses=parts[0][..., :used],
            grad_norm_before=parts[1][..., :used],
            grad_norm_after=parts[2][..., :used],
            recorded_updates=self.recorded_updates[keep],
            hidden_grad_norms=norms[0],
            state_grad_norms=norms[1],
            diverged=diverged,
            diverged_at=diverged_at,
            model=model,
            floss_updates=self.floss_updates,
            floss_exponents=floss_exponents,
            floss_losses=floss_losses,
        )


# ------------------------------------------------------------------------------------------
# gradient flossing during training (Engelken 2023; the loop itself is gradsim.training.floss)
@dataclass(frozen=True)
class Flossing:
    r"""The flossing option of :func:`train_model`: what to floss and when.

    A flossing update is one Adam step on the flossing loss alone,
    :math:`\frac{1}{k}\sum_{i \le k} (\lambda_i - \lambda^*)^2` over the top k finite-time
    exponents of a window of the task's inputs, the gradient exact by
    :func:`gradsim.lyapunov_vjp` (the loop of :func:`gradsim.training.floss.floss`). The
    schedule is the paper's (and its code's, ``GradientFlossing_ExampleCode.jl``):
    ``before`` flossing updates before the first training update (pre-flossing), then,
    before training updates E, 2E, ... (``every=E``), an episode of ``updates`` flossing
    updates (inter-flossing), at most ``episodes`` of them. One Adam state serves every
    flossing update of a run (as the code's one ``optFlossing``), separate from the training
    optimiser, whose moments flossing does not touch.

    Parameters
    ----------
    k : int
        Number of leading exponents flossed, 1 <= k <= the path size.
    target : float
        :math:`\lambda^*` per step (0: neither exploding nor vanishing).
    before : int
        Flossing updates before training (>= 0).
    every : int, optional
        E >= 1: an episode before every E-th training update (update indices E, 2E, ... <
        n_updates). None: no episodes during training.
    updates : int
        Flossing updates per episode (>= 1).
    episodes : int, optional
        At most this many episodes (None: no limit).
    steps : int, optional
        Length T of each flossing window (default: the task's sequence length). Each flossing
        update draws a fresh window: task input sequences drawn by ``task.sample(1, .)``
        from the flossing generator, concatenated in time until T steps and cut at T.
    learning_rate : float
        The flossing Adam's step size (> 0).
    warmup : int, optional
        Steps of each window before the exponents' average starts (default ``steps // 10``,
        the code's ``nStepTransientONS``).
    path : str
        Jacobian path of the flossed exponents.
    parameters : collection of str, optional
        Cell parameters flossed (None: all; the paper's code flosses the recurrent weights,
        input weights and bias). The readout never changes the exponents and is not
        flossed.
    clip_norm : float, optional
        Global-norm clipping of each flossing gradient (per member for an ensemble); None:
        none (the code clips the training gradient only: use ``train_model(clip_norm=)``).
    rng : seed or Generator
        The flossing windows' generator (seed 0 by default), separate from ``train_model``'s
        ``rng``, so the training mini-batches are the same with and without flossing. With
        ``batches="per_member"``, member i draws its windows from the i-th child
        ``as_rng(rng).spawn(B)[i]``, and so equals its lone run with ``Flossing(rng=child)``;
        with ``"shared"`` every member floss on the same windows. A Generator is consumed
        (a second run with the same object draws other windows).

    Notes
    -----
    There is no weight on the flossing loss: flossing updates use the flossing loss alone
    and Adam, whose steps do not depend on the loss's scale, so a weight would change only
    Adam's epsilon and the clipping threshold (scale ``clip_norm`` instead).

    Unlike a diverging training update, which :func:`train_model` records and stops at, a
    flossing update whose gradient or dynamics overflow raises ``FloatingPointError`` (from
    :func:`gradsim.training.floss.floss`'s loop): the window is too long for the network's
    top exponent, a setting to change rather than an outcome to record. Cost: a flossing
    update is one :func:`gradsim.lyapunov_spectrum` and one :func:`gradsim.lyapunov_vjp` of
    a window, about 1 to 3 BPTT updates of a 32-sequence batch of the same length
    (``python -m gradsim.bench.floss``).
    """

    k: int
    target: float = 0.0
    before: int = 0
    every: int | None = None
    updates: int = 1
    episodes: int | None = None
    steps: int | None = None
    learning_rate: float = 1e-3
    warmup: int | None = None
    path: str = "full"
    parameters: tuple | None = None
    clip_norm: float | None = None
    rng: object = 0

    def __post_init__(self):
        from .._validate import finite_number

        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Integral) or self.k < 1:
            raise ValueError(f"`k` must be a positive integer (exponents flossed); got {describe(self.k)}.")
        object.__setattr__(self, "target", finite_number(self.target, "target"))
        object.__setattr__(self, "before", positive_int(self.before, "before", minimum=0))
        if self.every is not None:
            object.__setattr__(self, "every", positive_int(self.every, "every"))
        object.__setattr__(self, "updates", positive_int(self.updates, "updates"))
        if self.episodes is not None:
            object.__setattr__(self, "episodes", positive_int(self.episodes, "episodes", minimum=0))
        if self.steps is not None:
            object.__setattr__(self, "steps", positive_int(self.steps, "steps", minimum=2))
        object.__setattr__(self, "learning_rate", positive_number(self.learning_rate, "learning_rate"))
        if self.warmup is not None:
            object.__setattr__(self, "warmup", positive_int(self.warmup, "warmup", minimum=0))
        if not isinstance(self.path, str):
            raise TypeError(f"`path` must be a Jacobian path name (str); got {describe(self.path)}.")
        if self.parameters is not None:
            names = (self.parameters,) if isinstance(self.parameters, str) else self.parameters
            try:
                object.__setattr__(self, "parameters", tuple(names))
            except TypeError:
                raise TypeError(
                    f"`parameters` must be None or a collection of parameter names; got {describe(names)}."
                ) from None
        if self.clip_norm is not None:
            object.__setattr__(self, "clip_norm", positive_number(self.clip_norm, "clip_norm"))
        as_rng(self.rng)  # validates; the generator is made per run
        if self.before == 0 and (self.every is None or self.episodes == 0):
            raise ValueError(
                "`Flossing` must floss: give `before` >= 1 or `every` (with `episodes` != 0); got "
                f"before={self.before}, every={self.every}, episodes={self.episodes}."
            )


class _FlossRun:
    """The flossing of one :func:`train_model` run: the schedule, the windows, one Adam state
    and the records."""

    def __init__(self, flossing, model, task, batches):
        from .floss import _check_k, _check_parameters

        if not isinstance(flossing, Flossing):
            raise TypeError(f"`floss` must be a gradsim.training.Flossing or None; got {describe(flossing)}.")
        cell = model.cell
        self.spec = flossing
        self.k = _check_k(cell, flossing.k, flossing.path)
        try:
            self.names = _check_parameters(cell, flossing.parameters)
        except (TypeError, ValueError) as error:
            raise type(error)(str(error).replace("`parameters`", "`floss.parameters`", 1)) from None
        self.steps = flossing.steps if flossing.steps is not None else task.length
        self.warmup = flossing.warmup if flossing.warmup is not None else self.steps // 10
        if self.warmup >= self.steps:
            raise ValueError(
                f"`floss.warmup` must be smaller than the window's steps ({self.steps}); got {self.warmup}."
            )
        self.task = task
        gen = as_rng(flossing.rng)
        batch = model.batch_shape
        self.streams = _member_rngs(gen, batch).reshape(-1) if batch and batches == "per_member" else [gen]
        self.optimizer = Adam(lr=flossing.learning_rate)
        self.state = self.optimizer.init({n: v for n, v in cell.parameters().items() if n in self.names})
        self.done_episodes = 0
        self.at, self.exponents = [], []

    def due(self, update) -> bool:
        spec = self.spec
        if update == 0:
            return spec.before > 0
        return (
            spec.every is not None and update % spec.every == 0
            and (spec.episodes is None or self.done_episodes < spec.episodes)
        )

    def _window(self):
        draws = [self._one(stream) for stream in self.streams]
        return draws[0] if len(draws) == 1 else np.stack(draws)

    def _one(self, gen):
        parts, have = [], 0
        while have < self.steps:
            x = self.task.sample(1, gen)[0][0]
            parts.append(x)
            have += x.shape[0]
        return np.concatenate(parts)[: self.steps]

    def episode(self, cell, update, active=None) -> dict:
        """Floss ``cell`` (a flat ensemble's with ``active`` members) before training update
        ``update``; returns the new cell parameters (flossed ones only)."""
        from .floss import _floss_updates

        spec = self.spec
        n = spec.before if update == 0 else spec.updates
        if update > 0:
            self.done_episodes += 1
        cell, self.state, exponents, _, _ = _floss_updates(
            cell, self._window, self.k, spec.target, n, self.optimizer, self.state, self.names,
            spec.clip_norm, self.warmup, spec.path, None,
        )
        for lam in exponents:
            if active is not None:
                lam = np.where(active[:, None], lam, math.nan)
            self.exponents.append(lam)
        self.at.extend([update] * n)
        return {name: value for name, value in cell.parameters().items() if name in self.names}

    def record(self, batch) -> dict:
        f, k = len(self.at), self.k
        if batch:
            m = int(np.prod(batch, dtype=int))
            lam = np.stack(self.exponents, axis=1) if f else np.empty((m, 0, k))
            lam = lam.reshape(tuple(batch) + (f, k))
        else:
            lam = np.array(self.exponents).reshape(f, k)
        return dict(
            floss_updates=np.array(self.at, dtype=np.int64),
            floss_exponents=lam,
            floss_losses=np.mean((lam - self.spec.target) ** 2, axis=-1),
        )


def _check_task(model, task):
    if not isinstance(model, Model):
        raise TypeError(f"`model` must be a gradsim.training.backprop.Model; got {describe(model)}.")
    if not isinstance(task, Task):
        raise TypeError(f"`task` must be a gradsim.training.tasks.Task; got {describe(task)}.")
    if model.cell.n_input != task.n_input or model.n_output != task.n_output:
        raise ValueError(
            f"`model` must have n_input={task.n_input} and n_output={task.n_output} for task "
            f"{task.name!r}; got n_input={model.cell.n_input}, n_output={model.n_output}."
        )


def _all_finite(arrays) -> bool:
    return all(np.all(np.isfinite(a)) for a in arrays.values())


def train_model(
    model,
    task,
    *,
    n_updates,
    batch_size=32,
    optimizer=None,
    clip_norm=None,
    clip_value=None,
    record_steps_at=(),
    rng=None,
    batches="shared",
    floss=None,
) -> TrainRecord:
    r"""Train ``model`` on ``task`` by BPTT on fresh mini-batches.

    Each update draws a batch, computes loss and gradients with :func:`bptt`, clips them
    (first by value, then by global norm, when asked), and applies the optimiser. A loss,
    gradient or parameter that becomes NaN or inf stops training cleanly and the record says
    ``diverged``; nothing is raised and no floating-point warning is emitted.

    An ensemble model (``model.batch_shape == E``) trains its members side by side, each as if
    alone: its own loss, its own gradient norm (``clip_norm`` clips each member by its own
    global norm), its own optimiser moments, its own divergence (a divergent member stops and
    keeps its last finite parameters while the others go on). Member i of the run equals
    ``train_model(model[i], task, ...)`` with the same mini-batches, to rounding.

    Parameters
    ----------
    model : Model
        Its cell's ``n_input`` and its ``n_output`` must match the task.
    task : Task
    n_updates : int
        >= 1.
    batch_size : int
    optimizer : SGD or Adam, optional
        ``Adam(1e-3)`` by default.
    clip_norm : float, optional
        Global-norm threshold (:func:`clip_by_global_norm`).
    clip_value : float, optional
        Per-entry threshold (:func:`clip_by_value`).
    record_steps_at : sequence of int
        Updates (0-based) at which to keep the per-step gradient norms.
    rng : seed or Generator
        Draws the mini-batches.
    batches : {"shared", "per_member"}
        Ensembles only. ``"shared"``: each update draws one mini-batch from ``rng`` that every
        member trains on (member i's run equals the single run with the same ``rng``).
        ``"per_member"``: member i draws its own from the i-th child ``rng.spawn(B)[i]`` (the
        seeding rule of :func:`init_model`), so that its run equals the single run with
        ``rng=`` that child. One network draws from ``rng`` either way.
    floss : Flossing, optional
        Gradient flossing (Engelken 2023): flossing-only updates before training and flossing
        episodes every E training updates (see :class:`Flossing`); the exponents of every
        flossing update are recorded (``record.floss_exponents``). The mini-batches are the
        same with and without flossing (the flossing windows have their own generator).

    Returns
    -------
    TrainRecord
        For an ensemble, with its batch shape in front of every array (see
        :class:`TrainRecord`); ``record[i]`` is member i's own record.
    """
    _check_task(model, task)
    choice(batches, "batches", ("shared", "per_member"))
    n_updates = positive_int(n_updates, "n_updates")
    batch_size = positive_int(batch_size, "batch_size")
    optimizer = Adam() if optimizer is None else optimizer
    if not isinstance(optimizer, (SGD, Adam)):
        raise TypeError(f"`optimizer` must be a gradsim.training.backprop.SGD or Adam; got {describe(optimizer)}.")
    if clip_norm is not None:
        clip_norm = positive_number(clip_norm, "clip_norm")
    if clip_value is not None:
        clip_value = positive_number(clip_value, "clip_value")
    record_at = set()
    for u in record_steps_at:
        if isinstance(u, bool) or not isinstance(u, numbers.Integral) or not 0 <= u < n_updates:
            raise ValueError(
                f"`record_steps_at` must hold update indices in [0, {n_updates}); got {describe(u)}."
            )
        record_at.add(int(u))
    rng = as_rng(rng)
    flossing = _FlossRun(floss, model, task, batches) if floss is not None else None
    if model.batch_shape:
        return _train_members(
            model, task, n_updates, batch_size, optimizer, clip_norm, clip_value, record_at, rng,
            batches, flossing,
        )

    losses, before, after = [], [], []
    recorded, hidden_norms, state_norms = [], [], []
    diverged_at = None
    params = {k: np.array(v) for k, v in model.params.items()}
    state = optimizer.init(params)
    with np.errstate(all="ignore"):  # overflow is detected below and recorded as divergence
        for update in range(n_updates):
            if flossing is not None and flossing.due(update):
                model = model.with_params(flossing.episode(model.cell, update))
                params = {k: np.array(v) for k, v in model.params.items()}
            inputs, targets = task.sample(batch_size, rng)
            result = _bptt(model, inputs, targets, task.readout, task.loss)
            losses.append(result.loss)
            if update in record_at:
                recorded.append(update)
                hidden_norms.append(result.hidden_grad_norms)
                state_norms.append(result.state_grad_norms)
            grads = result.grads
            if not (math.isfinite(result.loss) and _all_finite(grads)):
                norm = _norm(_flatten(grads))
                before.append(norm)
                after.append(norm)
                diverged_at = update
                break
            norm_before = norm_after = _norm(_flatten(grads))
            if clip_value is not None:
                grads = {k: np.clip(v, -clip_value, clip_value) for k, v in grads.items()}
                norm_after = _norm(_flatten(grads))
            if clip_norm is not None:
                grads, _, norm_after = _clip_norm(grads, clip_norm)
            before.append(norm_before)
            after.append(norm_after)
            new_params, state = optimizer.update(params, grads, state)
            if not _all_finite(new_params):
                diverged_at = update
                break
            params = new_params
            model = model.with_params(params)

    n_steps = task.length + 1
    return TrainRecord(
        losses=np.array(losses),
        grad_norm_before=np.array(before),
        grad_norm_after=np.array(after),
        recorded_updates=np.array(recorded, dtype=np.int64),
        hidden_grad_norms=np.array(hidden_norms).reshape(len(recorded), n_steps),
        state_grad_norms=np.array(state_norms).reshape(len(recorded), n_steps),
        diverged=diverged_at is not None,
        diverged_at=diverged_at,
        model=model,
        **(flossing.record(()) if flossing is not None else {}),
    )


def _keep(new, old, active):
    """The optimiser state (or parameters) ``new`` for active members, ``old`` for the others:
    arrays (M, ...) chosen member by member; scalars (Adam's step count) from ``new``."""
    if isinstance(new, dict):
        return {key: _keep(new[key], old[key], active) for key in new}
    if isinstance(new, np.ndarray) and new.ndim >= 1 and new.shape[0] == active.shape[0]:
        return np.where(active.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
    return new


def _train_members(model, task, n_updates, batch_size, optimizer, clip_norm, clip_value, record_at, rng,
                   batches, flossing=None):
    """:func:`train_model` for an ensemble: the single-network loop, member by member."""
    batch = model.batch_shape
    flat = _flat(model)
    m = flat.batch_shape[0]
    streams = _member_rngs(rng, batch).reshape(-1) if batches == "per_member" else None
    length = task.length
    losses = np.full((m, n_updates), math.nan)
    before = np.full((m, n_updates), math.nan)
    after = np.full((m, n_updates), math.nan)
    recorded, hidden_norms, state_norms = [], [], []
    diverged_at = np.full(m, -1, dtype=np.int64)
    active = np.ones(m, dtype=bool)
    params = {k: np.array(v) for k, v in flat.params.items()}
    state = optimizer.init(params)
    performed = 0
    with np.errstate(all="ignore"):  # overflow is detected below and recorded as divergence
        for update in range(n_updates):
            if flossing is not None and flossing.due(update):
                flossed = flossing.episode(flat.cell, update, active)
                params = _keep({**params, **flossed}, params, active)
                flat = flat.with_params(params)
            if streams is None:
                inputs, targets = task.sample(batch_size, rng)
                x_tm = _to_members(inputs, (), (m,), _INPUT_ORDER)
                targets = _member_targets(targets, (), (m,), task.readout, task.loss)
            else:
                draws = [task.sample(batch_size, stream) for stream in streams]
                x_tm = _to_members(np.stack([d[0] for d in draws]), (m,), (m,), _INPUT_ORDER)
                targets = _member_targets(np.stack([d[1] for d in draws]), (m,), (m,), task.readout, task.loss)
            values, grads, s_norms, h_norms = _bptt_members(flat, x_tm, targets, task.readout, task.loss)
            performed = update + 1
            losses[active, update] = values[active]
            if update in record_at:
                recorded.append(update)
                h_norms[~active] = math.nan
                s_norms[~active] = math.nan
                hidden_norms.append(h_norms)
                state_norms.append(s_norms)
            flat_grads = _rows(grads, m)
            norm = _row_norms(flat_grads)
            bad = active & ~(np.isfinite(values) & np.all(np.isfinite(flat_grads), axis=1))
            before[bad, update] = norm[bad]
            after[bad, update] = norm[bad]
            diverged_at[bad] = update
            active &= ~bad
            if not np.any(active):
                break
            flat_grads[~active] = 0.0  # stopped members: no update, no NaN noise
            norm_before = norm_after = norm
            if clip_value is not None:
                np.clip(flat_grads, -clip_value, clip_value, out=flat_grads)
                norm_after = _row_norms(flat_grads)
            if clip_norm is not None:
                flat_grads, _, norm_after = _clip_rows(flat_grads, clip_norm)
            before[active, update] = norm_before[active]
            after[active, update] = norm_after[active]
            new_params, new_state = optimizer.update(params, _unrows(flat_grads, grads, m), state)
            blown = active & ~np.all(np.isfinite(_rows(new_params, m)), axis=1)
            diverged_at[blown] = update
            active &= ~blown
            params = _keep(new_params, params, active)
            state = _keep(new_state, state, active)
            flat = flat.with_params(params)
            if not np.any(active):
                break

    n_steps = length + 1
    k = len(recorded)
    diverged = diverged_at >= 0
    return TrainRecord(
        losses=losses[:, :performed].reshape(batch + (performed,)),
        grad_norm_before=before[:, :performed].reshape(batch + (performed,)),
        grad_norm_after=after[:, :performed].reshape(batch + (performed,)),
        recorded_updates=np.array(recorded, dtype=np.int64),
        hidden_grad_norms=np.stack(hidden_norms, axis=1).reshape(batch + (k, n_steps))
        if k else np.empty(batch + (0, n_steps)),
        state_grad_norms=np.stack(state_norms, axis=1).reshape(batch + (k, n_steps))
        if k else np.empty(batch + (0, n_steps)),
        diverged=diverged.reshape(batch),
        diverged_at=diverged_at.reshape(batch),
        model=_unflat(flat, batch),
        **(flossing.record(batch) if flossing is not None else {}),
    )
