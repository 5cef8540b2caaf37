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
part ``h`` (for the LSTM, the first N entries of the state ``concat(h, c)``), applied to the
last state (``readout="last"``, sequence to one) or to every state after an input
(``readout="sequence"``, sequence to sequence). Losses: mean squared error over all output
entries (``"mse"``) or mean softmax cross-entropy in nats (``"xent"``).

Parameters travel as a dict ``name -> array``: the cell's PyTorch names (``weight_hh``,
``weight_ih``, ``bias_hh``, ``bias_ih``) and ``weight_out``, ``bias_out``. Optimisers are small
immutable objects with pure ``init(params) -> state`` and ``update(params, grads, state) ->
(params, state)``.

Everything is float64 numpy; nothing here writes files or touches numpy's global random state.
"""

from __future__ import annotations

import dataclasses
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
    "evaluate",
    "CELL_PARAMS",
    "READOUT_PARAMS",
]

CELL_PARAMS = ("weight_hh", "weight_ih", "bias_hh", "bias_ih")
READOUT_PARAMS = ("weight_out", "bias_out")


# ------------------------------------------------------------------------------------------
# the model
@dataclass(frozen=True, eq=False)
class Model:
    r"""A recurrent cell with a linear readout of its hidden part.

    .. math::

        s_{t+1} = \mathrm{cell.step}(s_t, x_t), \qquad y_t = W_{out} h_t + b_{out}

    Parameters
    ----------
    cell : Cell
    weight_out : array, shape (O, N)
    bias_out : array, shape (O,)
    """

    cell: Cell
    weight_out: np.ndarray
    bias_out: np.ndarray

    def __post_init__(self):
        if not isinstance(self.cell, Cell):
            raise TypeError(f"`cell` must be a gradsim Cell; got {describe(self.cell)}.")
        weight = finite_array(self.weight_out, "weight_out", shape=(None, self.cell.n_hidden))
        if weight.shape[0] < 1:
            raise ValueError(f"`weight_out` must have at least one row; got shape {weight.shape}.")
        bias = finite_array(self.bias_out, "bias_out", shape=(weight.shape[0],))
        object.__setattr__(self, "weight_out", frozen(weight))
        object.__setattr__(self, "bias_out", frozen(bias))

    @property
    def n_output(self) -> int:
        return self.weight_out.shape[0]

    @property
    def params(self) -> dict:
        """All trainable arrays (read-only), cell parameters first."""
        out = {name: getattr(self.cell, name) for name in CELL_PARAMS}
        out["weight_out"] = self.weight_out
        out["bias_out"] = self.bias_out
        return out

    def with_params(self, params: dict) -> "Model":
        """A new model with the arrays of ``params`` (any subset of :attr:`params`' keys)."""
        unknown = set(params) - set(CELL_PARAMS) - set(READOUT_PARAMS)
        if unknown:
            raise ValueError(
                f"`params` must have keys among {CELL_PARAMS + READOUT_PARAMS}; got {sorted(unknown)}."
            )
        cell_part = {k: v for k, v in params.items() if k in CELL_PARAMS}
        cell = dataclasses.replace(self.cell, **cell_part) if cell_part else self.cell
        return Model(cell, params.get("weight_out", self.weight_out), params.get("bias_out", self.bias_out))


def init_model(cell, n_output, *, scale=1.0, rng=None) -> Model:
    r"""A model around ``cell`` with a fresh readout :math:`W_{out} \sim N(0, \text{scale}^2/N)`,
    :math:`b_{out} = 0`.

    Parameters
    ----------
    cell : Cell
    n_output : int
        O >= 1.
    scale : float
        Readout gain, >= 0.
    rng : seed or Generator
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"`cell` must be a gradsim Cell; got {describe(cell)}.")
    n_output = positive_int(n_output, "n_output")
    scale = positive_number(scale, "scale", allow_zero=True)
    rng = as_rng(rng)
    n = cell.n_hidden
    weight = rng.standard_normal((n_output, n)) * (scale / math.sqrt(n))
    return Model(cell, weight, np.zeros(n_output))


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


def _unroll(cell, x_tm, state0):
    """States (L + 1, B, S), time-major, from the cell's own step."""
    states = np.empty((x_tm.shape[0] + 1,) + state0.shape)
    states[0] = state0
    for t in range(x_tm.shape[0]):
        states[t + 1] = cell._step(states[t], x_tm[t])
    return states


def _outputs(model, states, readout):
    """Readout of the hidden parts: (B, O) for "last", (L, B, O) time-major for "sequence"."""
    n = model.cell.n_hidden
    hidden = states[-1, :, :n] if readout == "last" else states[1:, :, :n]
    return hidden @ model.weight_out.T + model.bias_out


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
    readout : {"last", "sequence"}

    Returns
    -------
    ndarray
        Shape (B, O) for ``"last"``; (B, L, O) for ``"sequence"``.
    """
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
    grads : dict name -> ndarray
        dL/dtheta for every array of :attr:`Model.params`, of the same shapes.
    state_grad_norms : ndarray, shape (L + 1,)
        ``[t] = ||dL/ds_t||`` (Frobenius norm over the batch and the whole state), t = 0 .. L.
    hidden_grad_norms : ndarray, shape (L + 1,)
        ``[t] = ||dL/dh_t||`` over the hidden part only (equal to the above but for the LSTM).
    """

    loss: float
    grads: dict
    state_grad_norms: np.ndarray
    hidden_grad_norms: np.ndarray


_ROWS = 512


def _bptt(model, inputs, targets, readout, loss):
    cell = model.cell
    n, size = cell.n_hidden, cell.state_size
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
        hidden = states[-1, :, :n]
        grad_w = d_out.T @ hidden
        grad_b = d_out.sum(axis=0)
    else:
        hidden = states[1:, :, :n].reshape(-1, n)
        flat = d_out.reshape(-1, d_out.shape[-1])
        grad_w = flat.T @ hidden
        grad_b = flat.sum(axis=0)
        direct = d_out @ w_out  # (L, B, N): dL/dh_t for t = 1 .. L

    cotangents = np.empty((length, batch, size))  # [t] = dL/ds_{t+1}
    state_norms = np.empty(length + 1)
    hidden_norms = np.empty(length + 1)
    g = np.zeros((batch, size))
    if readout == "last":
        g[:, :n] = d_out @ w_out
    for t in range(length, 0, -1):
        if readout == "sequence":
            g[:, :n] += direct[t - 1]
        state_norms[t] = math.sqrt(float(np.sum(g * g)))
        hidden_norms[t] = math.sqrt(float(np.sum(g[:, :n] * g[:, :n])))
        cotangents[t - 1] = g
        g = cell._vjp(states[t - 1], x_tm[t - 1], g, "full")
    state_norms[0] = math.sqrt(float(np.sum(g * g)))
    hidden_norms[0] = math.sqrt(float(np.sum(g[:, :n] * g[:, :n])))

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


def bptt(model, inputs, targets, *, readout: str = "last", loss: str = "mse") -> BPTTResult:
    r"""Loss and gradients of one mini-batch by back-propagation through time.

    Runs the cell forward from :math:`s_0 = 0`, reads out, and propagates
    :math:`g_t = \partial L / \partial s_t` back with ``cell.vjp`` (see the module docstring);
    parameter gradients come from ``cell.param_vjp``.

    Parameters
    ----------
    model : Model
    inputs : array, shape (B, L, I)
    targets : array
        ``"mse"``: float, shape (B, O) (``readout="last"``) or (B, L, O) (``"sequence"``).
        ``"xent"``: int class indices in [0, O), shape (B,) or (B, L).
    readout : {"last", "sequence"}
    loss : {"mse", "xent"}

    Returns
    -------
    BPTTResult
    """
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
        NaN or inf when the model's outputs overflow.
    """
    _check_task(model, task)
    inputs, targets = task.sample(batch_size, as_rng(rng))
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


def global_norm(grads) -> float:
    r"""The global norm :math:`\|g\| = (\sum_\theta \sum_i g_{\theta,i}^2)^{1/2}` of all arrays.

    Parameters
    ----------
    grads : dict name -> array

    Returns
    -------
    float
    """
    return _norm(_flatten(_check_grads(grads)))


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


def clip_by_global_norm(grads, max_norm):
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

    Returns
    -------
    clipped : dict name -> ndarray
    norm_before, norm_after : float
    """
    grads = _check_grads(grads)
    max_norm = positive_number(max_norm, "max_norm")
    clipped, before, after = _clip_norm(grads, max_norm)
    return {k: np.array(v) for k, v in clipped.items()}, before, after


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
) -> TrainRecord:
    r"""Train ``model`` on ``task`` by BPTT on fresh mini-batches.

    Each update draws a batch, computes loss and gradients with :func:`bptt`, clips them
    (first by value, then by global norm, when asked), and applies the optimiser. A loss,
    gradient or parameter that becomes NaN or inf stops training cleanly and the record says
    ``diverged``; nothing is raised and no floating-point warning is emitted.

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

    Returns
    -------
    TrainRecord
    """
    _check_task(model, task)
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

    losses, before, after = [], [], []
    recorded, hidden_norms, state_norms = [], [], []
    diverged_at = None
    params = {k: np.array(v) for k, v in model.params.items()}
    state = optimizer.init(params)
    with np.errstate(all="ignore"):  # overflow is detected below and recorded as divergence
        for update in range(n_updates):
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
    )
