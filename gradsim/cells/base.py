"""The cell protocol: the base class every recurrent cell derives from, and shared helpers.

Parameters use PyTorch's layout and names (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``; gates stacked i, f, g, o for the LSTM and r, z, n for the GRU), so that weights
move between gradsim and ``torch.nn`` without reshaping. The time loop lives in
:mod:`gradsim.numeric`; a cell only knows one step.

Every method accepts leading batch dimensions: ``state`` of shape ``(..., state_size)`` and
``x`` of shape ``(..., n_input)``; Jacobians then have shape ``(..., S, S)``.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping

import numpy as np
from scipy.special import expit

from .._validate import choice, describe, finite_array, frozen


# The complex step of Cell._input_vjp and Cell._frame_vjp: a power of two, so that h q is exact,
# and small enough that h^2 terms vanish below rounding even for entries of 1e10.
_COMPLEX_STEP = 2.0**-70


def _sigmoid_slope(s):
    return s * (1.0 - s)


def _sigmoid(a):
    """The logistic function; scipy's expit for real arrays, 0.5 (1 + tanh(a / 2)) for complex
    ones (expit has no complex loop), so that every cell's code can be evaluated at a complex
    state or input: the complex-step derivatives of :meth:`Cell._frame_vjp` and
    :meth:`Cell._input_vjp` need it. Real results are expit's, bit for bit."""
    if np.iscomplexobj(a):
        return 0.5 * (1.0 + np.tanh(0.5 * a))
    return expit(a)


# name -> (phi(a), phi'(a)); phi' takes the pre-activation a and the output phi(a).
ACTIVATIONS = {
    "tanh": (np.tanh, lambda a, y: 1.0 - y * y),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a, y: (a > 0).astype(np.float64)),
    "linear": (lambda a: a, lambda a, y: np.ones_like(a)),
    "sigmoid": (_sigmoid, lambda a, y: _sigmoid_slope(y)),
}


def _mv(weight, v):
    """weight @ v for every batch member: weight (*B, R, C), v (..., C) -> (..., R).

    A single network's weights (2-d) take the one-matmul path ``v @ weight.T``; an ensemble's
    (*B, R, C) weights multiply the members' vectors in one stacked matmul.
    """
    if weight.ndim == 2:
        return v @ weight.T
    return np.matmul(weight, v[..., None])[..., 0]


def _vm(v, weight):
    """v @ weight for every batch member: v (..., R), weight (*B, R, C) -> (..., C)."""
    if weight.ndim == 2:
        return v @ weight
    return np.matmul(v[..., None, :], weight)[..., 0, :]


def _affine(x, weight, bias):
    """weight @ x + bias per member, tolerating an input size of zero."""
    if weight.shape[-1] == 0:
        shape = np.broadcast_shapes(x.shape[:-1], bias.shape[:-1])
        return np.broadcast_to(bias, shape + bias.shape[-1:])
    return _mv(weight, x) + bias


def _outer_sum(grad, inp, batch=()):
    """The weight gradient of an affine map: sum of grad[..., :, None] * inp[..., None, :].

    grad (..., *batch, R), inp (..., *batch, C) -> (*batch, R, C): summed over the leading
    dimensions, kept per member over the cell's own batch shape ``batch`` (an ensemble).
    """
    shape = np.broadcast_shapes(grad.shape[:-1], inp.shape[:-1], batch)
    members = int(np.prod(batch, dtype=int))
    # The leading size is given, not inferred: reshape cannot infer -1 for an input of size 0.
    lead = int(np.prod(shape, dtype=int)) // members
    grad = np.broadcast_to(grad, shape + grad.shape[-1:]).reshape(lead, members, grad.shape[-1])
    inp = np.broadcast_to(inp, shape + inp.shape[-1:]).reshape(lead, members, inp.shape[-1])
    if members == 1 and not batch:
        return grad[:, 0].T @ inp[:, 0]
    out = np.matmul(grad.transpose(1, 2, 0), inp.transpose(1, 0, 2))
    return out.reshape(tuple(batch) + out.shape[-2:])


def _batch_sum(grad, shape, batch=()):
    """grad (..., *batch, R) summed over the batch shape ``shape`` it broadcasts to, except the
    cell's own ``batch`` dimensions -> (*batch, R)."""
    shape = np.broadcast_shapes(tuple(shape), tuple(batch))
    full = np.broadcast_to(grad, shape + grad.shape[-1:])
    members = int(np.prod(batch, dtype=int))
    return full.reshape((-1, members, grad.shape[-1])).sum(axis=0).reshape(tuple(batch) + grad.shape[-1:])


def _affine_grads(grad_x, x, grad_h, h, shape, batch=()):
    """Parameter gradients of the two affine maps a_x = W_ih x + b_ih and a_h = W_hh h + b_hh,
    given the gradients ``grad_x`` (of a_x) and ``grad_h`` (of a_h); ``shape`` is the batch shape
    of the step and ``batch`` the cell's own (its ensemble's)."""
    return {
        "weight_hh": _outer_sum(grad_h, h, batch),
        "weight_ih": _outer_sum(grad_x, x, batch),
        "bias_hh": _batch_sum(grad_h, shape, batch),
        "bias_ih": _batch_sum(grad_x, shape, batch),
    }


def _affine_tangent(x, h, tangent, rows=slice(None)):
    """d(W_ih x + b_ih + W_hh h + b_hh) along a parameter tangent (the weights' rows ``rows``),
    the input and state held fixed: dW_ih x + db_ih + dW_hh h + db_hh."""
    return (
        _affine(x, tangent["weight_ih"][..., rows, :], tangent["bias_ih"][..., rows])
        + _mv(tangent["weight_hh"][..., rows, :], h)
        + tangent["bias_hh"][..., rows]
    )


def _sum_to_members(grad, batch, core: int = 2):
    """grad (..., *batch, *core dims) summed over its leading dimensions beyond the cell's own
    (ensemble) ``batch`` -> (*batch, *core dims)."""
    extra = grad.ndim - core - len(batch)
    return grad.sum(axis=tuple(range(extra))) if extra > 0 else grad


def _batch_shape(*arrays):
    return np.broadcast_shapes(*(a.shape[:-1] for a in arrays))


class Cell:
    """Base class of the recurrent cells.

    Subclasses are frozen dataclasses holding read-only float64 arrays and implement
    ``_forward`` (the step with its intermediates), ``_jacobian``, ``_vjp``, ``_param_vjp``
    (the gradient with respect to the weights, for BPTT training in :mod:`gradsim.training.backprop`)
    and ``_param_jvp`` (its transpose, the forward-mode derivative along a parameter direction,
    for :func:`gradsim.numeric.parameter_jvp`).

    Attributes
    ----------
    state_size : int
        Length S of the state vector (2 N for the LSTM, whose state is concat(h, c)).
    n_hidden : int
        N, the number of hidden units.
    n_input : int
        Length of the input vector (0 when the cell has no input weights).
    paths : tuple of str
        The Jacobian paths this cell supports (see :meth:`path_size`).
    batch_shape : tuple of int
        ``()`` for one network; ``(B,)`` (or any leading shape) for an ensemble of networks of one
        kind, size and options, whose parameters carry these leading dimensions (``weight_hh`` of
        shape ``(B, N, N)`` for an RNN). ``cell[i]`` is member i. Every method and numeric
        function treats the members as a leading batch: states ``(..., *batch_shape, S)``.

    Notes
    -----
    An ensemble is built by :func:`stack_cells` from single cells, by
    ``make_cell(..., ensemble=B)``, or by passing batched arrays to a cell's constructor.
    """

    paths: tuple[str, ...] = ("full",)
    n_gates: int = 1  # blocks of N rows stacked in weight_hh and weight_ih
    # The array-valued fields, in constructor order; every other dataclass field is an option
    # (activation, variant, alpha) that all members of an ensemble share.
    parameter_names: tuple[str, ...] = ("weight_hh", "weight_ih", "bias_hh", "bias_ih")

    @property
    def n_hidden(self) -> int:
        return self.weight_hh.shape[-1]

    @property
    def n_input(self) -> int:
        return self.weight_ih.shape[-1]

    @property
    def batch_shape(self) -> tuple:
        return self.weight_hh.shape[:-2]

    def _freeze_weights(self):
        """Validate the PyTorch-layout weights and store read-only float64 copies."""
        arrays = _check_weights(
            type(self).__name__, self.n_gates, self.weight_hh, self.weight_ih, self.bias_hh, self.bias_ih
        )
        for name, value in zip(("weight_hh", "weight_ih", "bias_hh", "bias_ih"), arrays):
            object.__setattr__(self, name, value)

    # -- ensembles ---------------------------------------------------------------------------
    def parameters(self) -> dict:
        """The parameter arrays by name (read-only views), in constructor order."""
        return {name: getattr(self, name) for name in self.parameter_names}

    def options(self) -> dict:
        """The non-array fields (activation, variant, alpha, ...), shared by an ensemble's members."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in self.parameter_names
        }

    def with_parameters(self, mapping) -> "Cell":
        """A new cell of this kind and options with the arrays of ``mapping`` in place of the
        parameters of those names (any subset of :meth:`parameters`' keys); the others kept.

        The new arrays go through the constructor's checks, so they may carry other leading
        (ensemble) dimensions than the current ones, as long as all parameters agree.

        Parameters
        ----------
        mapping : dict
            Parameter name -> array.

        Returns
        -------
        Cell
            ``self`` itself when ``mapping`` is empty.
        """
        self._check_parameter_names(mapping)
        if not mapping:
            return self
        return dataclasses.replace(self, **mapping)

    def _check_parameter_names(self, mapping, name: str = "mapping"):
        """Raise unless ``mapping`` is a mapping whose keys are all parameter names."""
        known = ", ".join(repr(k) for k in self.parameters())
        if not isinstance(mapping, Mapping):
            raise TypeError(
                f"`{name}` must be a dict mapping parameter names ({known}) to arrays; got {describe(mapping)}."
            )
        unknown = [k for k in mapping if k not in self.parameters()]
        if unknown:
            raise ValueError(
                f"`{name}` has unknown parameter name(s) {', '.join(repr(k) for k in unknown)} for "
                f"{type(self).__name__}; the known names are {known}."
            )

    def __getitem__(self, index):
        """Member ``index`` of an ensemble (an int gives one network; a slice, a sub-ensemble)."""
        if not self.batch_shape:
            raise TypeError(
                f"a single {type(self).__name__} has no members; only an ensemble (batch_shape != ()) "
                "can be indexed."
            )
        parts = index if isinstance(index, tuple) else (index,)
        if sum(part is Ellipsis for part in parts) > 1:
            raise IndexError(f"an ensemble index can have only one Ellipsis; got {index!r}.")
        if Ellipsis in parts:
            # The Ellipsis stands for batch dimensions only, never for the weights' own axes.
            at = parts.index(Ellipsis)
            fill = (slice(None),) * max(0, len(self.batch_shape) - len(parts) + 1)
            parts = parts[:at] + fill + parts[at + 1 :]
            index = parts
        for part in parts:
            integers = isinstance(part, (numbers.Integral, slice)) and not isinstance(part, bool)
            if not integers and not (
                isinstance(part, (list, np.ndarray)) and np.asarray(part).dtype.kind in "iu"
            ):
                raise TypeError(
                    "an ensemble index must be an int, a slice, an integer array or an Ellipsis per batch dimension "
                    f"(batch_shape {self.batch_shape}); got {index!r}."
                )
        if len(parts) > len(self.batch_shape):
            raise IndexError(
                f"ensemble index {index!r} has {len(parts)} entries for batch_shape {self.batch_shape}."
            )
        try:
            np.empty(self.batch_shape)[index]
        except IndexError:
            raise IndexError(
                f"ensemble index {index!r} is out of range for batch_shape {self.batch_shape}."
            ) from None
        members = {name: np.asarray(a[index]) for name, a in self.parameters().items()}
        return type(self)(**members, **self.options())

    def __len__(self):
        if not self.batch_shape:
            raise TypeError(f"a single {type(self).__name__} has no len(); it is not an ensemble.")
        return self.batch_shape[0]

    # -- public API -----------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        return self.n_hidden

    def path_size(self, path: str = "full") -> int:
        """Size of the (square) Jacobian along ``path``."""
        self._check_path(path)
        return self.state_size if path == "full" else self.n_hidden

    def step(self, state, x=None):
        """The next state, shape ``(..., state_size)``."""
        state, x = self._check_args(state, x)
        return self._step(state, x)

    def jacobian(self, state, x=None, path: str = "full"):
        """d step(state, x) / d state along ``path``, shape ``(..., P, P)``, P = path_size(path)."""
        state, x = self._check_args(state, x)
        self._check_path(path)
        return self._jacobian(state, x, path)[1]

    def vjp(self, state, x, cotangent, path: str = "full"):
        """cotangent @ jacobian(state, x, path): the back-propagated gradient, shape ``(..., P)``."""
        state, x = self._check_args(state, x)
        self._check_path(path)
        p = self.path_size(path)
        cotangent = finite_array(cotangent, "cotangent")
        if cotangent.ndim == 0 or cotangent.shape[-1] != p:
            raise ValueError(
                f"`cotangent` must have last dimension {p} (path {path!r}); got shape {cotangent.shape}."
            )
        self._check_cotangent_batch(state, x, cotangent)
        return self._vjp(state, x, cotangent, path)

    def param_vjp(self, state, x, cotangent) -> dict:
        r"""Gradient of :math:`\langle v, \mathrm{step}(s, x)\rangle` with respect to every weight.

        With :math:`v` = ``cotangent`` (the gradient reaching the next state), returns
        :math:`\partial (v \cdot s') / \partial \theta` for each parameter array
        :math:`\theta`, summed over the leading batch dimensions. In BPTT, summing this over the
        steps t with :math:`v = \partial L/\partial s_{t+1}` gives :math:`\partial L/\partial
        \theta` of the tied weights. Scalar hyper-parameters (``alpha``, the activation) are not
        parameters.

        Parameters
        ----------
        state : array, shape (..., state_size)
        x : array, shape (..., n_input), or None for zero input
        cotangent : array, shape (..., state_size)
            Batch shapes of the three broadcast together.

        Returns
        -------
        dict
            ``"weight_hh"``, ``"weight_ih"``, ``"bias_hh"``, ``"bias_ih"`` -> arrays of the
            parameters' shapes.
        """
        state, x = self._check_args(state, x)
        cotangent = finite_array(cotangent, "cotangent")
        if cotangent.ndim == 0 or cotangent.shape[-1] != self.state_size:
            raise ValueError(
                f"`cotangent` must have last dimension state_size={self.state_size}; got shape "
                f"{cotangent.shape}."
            )
        self._check_cotangent_batch(state, x, cotangent)
        return self._param_vjp(state, x, cotangent)

    def param_jvp(self, state, x, tangent):
        r"""Forward-mode derivative of one step along a parameter direction.

        With :math:`\delta\theta` = ``tangent``, returns
        :math:`\sum_\theta (\partial\, \mathrm{step}(s, x) / \partial \theta)\, \delta\theta`,
        the change of the next state when every parameter array moves by
        :math:`\epsilon\, \delta\theta` (to first order in :math:`\epsilon`), the state and
        input held fixed. It is the transpose of :meth:`param_vjp`: for every cotangent v,
        ``sum(v * param_jvp(s, x, t)) == sum(sum(param_vjp(s, x, v)[k] * t[k]) for k in t)``.

        Parameters
        ----------
        state : array, shape (..., state_size)
        x : array, shape (..., n_input), or None for zero input
        tangent : dict
            Parameter name (see :meth:`parameters`) -> array of that parameter's shape (for an
            ensemble, with the members' leading dimensions, like the parameter). Missing names
            are taken as zero.

        Returns
        -------
        ndarray, shape (..., state_size)
            The batch shape of ``state``, ``x`` and the ensemble broadcast together.
        """
        state, x = self._check_args(state, x)
        tangent = self._check_tangent(tangent)
        return self._param_jvp(state, x, tangent)

    def _check_tangent(self, tangent, name: str = "tangent") -> dict:
        """Validate a parameter tangent; return it complete (every name, missing ones zero)."""
        params = self.parameters()
        known = ", ".join(repr(k) for k in params)
        if not isinstance(tangent, Mapping):
            raise TypeError(
                f"`{name}` must be a dict mapping parameter names ({known}) to arrays of the "
                f"parameters' shapes; got {describe(tangent)}."
            )
        unknown = [k for k in tangent if k not in params]
        if unknown:
            raise ValueError(
                f"`{name}` has unknown parameter name(s) {', '.join(repr(k) for k in unknown)} for "
                f"{type(self).__name__}; the known names are {known}."
            )
        out = {}
        for key, param in params.items():
            if key not in tangent:
                out[key] = np.zeros(param.shape)
                continue
            value = tangent[key]
            if np.iscomplexobj(value):
                raise TypeError(f"`{name}[{key!r}]` must be an array of real numbers; got complex values.")
            try:
                array = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(
                    f"`{name}[{key!r}]` must be an array of real numbers; got {describe(value)}."
                ) from None
            if array.shape != param.shape:
                raise ValueError(
                    f"`{name}[{key!r}]` must have the shape of the parameter {key!r}, "
                    f"{param.shape}; got shape {array.shape}."
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"`{name}[{key!r}]` must contain only finite values; got NaN or inf.")
            out[key] = array
        return out

    def _check_cotangent_batch(self, state, x, cotangent):
        try:
            np.broadcast_shapes(state.shape[:-1], x.shape[:-1], cotangent.shape[:-1], self.batch_shape)
        except ValueError:
            ensemble = f" and the ensemble's {self.batch_shape}" if self.batch_shape else ""
            raise ValueError(
                f"`cotangent` must have a batch shape broadcastable with the state's and x's{ensemble}; "
                f"got shape {cotangent.shape} for state {state.shape} and x {x.shape}."
            ) from None

    def step_and_jacobian(self, state, x=None, path: str = "full"):
        """``(step(state, x), jacobian(state, x, path))`` from one forward pass."""
        state, x = self._check_args(state, x)
        self._check_path(path)
        return self._jacobian(state, x, path)

    # -- unchecked fast paths used by the time loops ------------------------------------
    def _step(self, state, x):
        return self._forward(state, x)[0]

    def _param_jvp(self, state, x, tangent):
        """d step(state, x) / d theta . tangent, ``tangent`` complete and checked (see
        :meth:`param_jvp`); every cell implements it."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement the parameter JVP (_param_jvp)."
        )

    def _jacobian_operator(self, state, x, path):
        """(next state, J) where J supports ``J @ M``; a structured operator where that is
        cheaper than the dense matrix (the LSTM's diagonal blocks)."""
        return self._jacobian(state, x, path)

    # -- second order: what the adjoint of the QR method needs ------------------------------
    def _path_coordinates(self, path):
        """The state coordinates (a slice) whose principal sub-block of the full Jacobian is the
        Jacobian along ``path``. Cells with a path that is not such a sub-block (the GRU's
        ``"direct"`` term) override :meth:`_frame_vjp` for it."""
        if path == "full":
            return slice(None)
        raise NotImplementedError(
            f"{type(self).__name__} has no second-order rule for path {path!r} (_frame_vjp)."
        )

    def _input_vjp(self, state, x, cotangent):
        r"""d (cotangent . step(state, x)) / d x, shape ``(..., n_input)``: the gradient that
        reaches the input of a step.

        Computed by the complex step (Squire & Trapp 1998): for each input coordinate i,
        :math:`\partial f / \partial x_i = \operatorname{Im} f(s, x + i h e_i) / h` with
        :math:`h = 2^{-70}`, exact to rounding (no difference is taken, so no cancellation),
        at the cost of n_input forward steps. The cells' step code is real-analytic in x
        (no abs, no real-only special functions: see :func:`_sigmoid`).
        """
        batch = np.broadcast_shapes(state.shape[:-1], x.shape[:-1], cotangent.shape[:-1], self.batch_shape)
        n_in = self.n_input
        if n_in == 0:
            return np.zeros(batch + (0,))
        x_full = np.broadcast_to(x, batch + (n_in,))
        probes = x_full + (1j * _COMPLEX_STEP) * np.eye(n_in).reshape((n_in,) + (1,) * len(batch) + (n_in,))
        derivative = self._step(state, probes).imag / _COMPLEX_STEP
        derivative = np.broadcast_to(derivative, (n_in,) + batch + (self.state_size,))
        return np.moveaxis(np.sum(derivative * cotangent, axis=-1), 0, -1)

    def _frame_vjp(self, state, x, frame, cotangent, path, inputs=True):
        r"""Gradients of :math:`\sum_j a_j^\top J(s, x)\, q_j` (J the Jacobian along ``path``,
        q_j and a_j the columns of ``frame`` and ``cotangent``) with respect to the state, the
        input and the parameters: the second-order term of the adjoint of the QR method
        (:func:`gradsim.numeric.lyapunov_vjp`), where the frame's cotangent meets the
        Jacobian's dependence on the trajectory and the weights.

        By the symmetry of second derivatives, the state and parameter gradients are the
        derivatives of the first-order VJPs along the frame's columns,
        :math:`\nabla_{s,\theta}(a^\top J q) = \tfrac{d}{d\epsilon}
        \nabla_{s,\theta}\, a^\top f(s + \epsilon q, x)`, and the input gradient is
        :math:`q^\top \partial_{x_i} (J^\top a)`; both are taken by the complex step
        (:meth:`_input_vjp`), exact to rounding, from the cell's own ``_vjp`` and
        ``_param_vjp``: k (and, for the input, k n_input) complex evaluations.

        Parameters
        ----------
        state : array, shape (..., S)
        x : array, shape (..., I)
        frame, cotangent : array, shape (..., P, k)
            P = path_size(path).
        path : str
        inputs : bool
            Also return the input gradient (else None).

        Returns
        -------
        (grad_state (..., S), grad_x (..., I) or None, grad_params dict)
            The parameter gradients are summed over the batch, as :meth:`param_vjp`'s.
        """
        coordinates = self._path_coordinates(path)
        q = np.moveaxis(frame, -1, 0)  # (k, ..., P): the columns lead, as a batch
        a = np.moveaxis(cotangent, -1, 0)
        if coordinates != slice(None):
            q_full = np.zeros(q.shape[:-1] + (self.state_size,))
            a_full = np.zeros(a.shape[:-1] + (self.state_size,))
            q_full[..., coordinates] = q
            a_full[..., coordinates] = a
            q, a = q_full, a_full
        probe = state + (1j * _COMPLEX_STEP) * q
        grad_state = np.sum(self._vjp(probe, x, a, "full").imag, axis=0) / _COMPLEX_STEP
        grad_params = {
            name: value.imag / _COMPLEX_STEP for name, value in self._param_vjp(probe, x, a).items()
        }
        grad_x = None
        if inputs:
            batch = np.broadcast_shapes(state.shape[:-1], x.shape[:-1], q.shape[1:-1], self.batch_shape)
            n_in = self.n_input
            if n_in == 0:
                grad_x = np.zeros(batch + (0,))
            else:
                x_full = np.broadcast_to(x, batch + (n_in,))
                eye = np.eye(n_in).reshape((n_in, 1) + (1,) * len(batch) + (n_in,))
                probes = x_full + (1j * _COMPLEX_STEP) * eye  # (I, 1, *batch, I)
                back = self._vjp(state, probes, a, "full").imag / _COMPLEX_STEP
                # (I, k, *batch, S); a Jacobian that does not depend on x gives no I axis.
                back = np.broadcast_to(back, (n_in,) + q.shape[:1] + batch + (self.state_size,))
                grad_x = np.moveaxis(np.sum(back * q, axis=(1, -1)), 0, -1)
        return grad_state, grad_x, grad_params

    def _lyapunov_backward(self, state, x, frame, pushed, frame_cotangent, state_cotangent, path, inputs):
        r"""One step back through :math:`s' = f(s, x)` and :math:`A = J(s, x)\, Q`, for the
        adjoint of the QR method (:func:`gradsim.numeric.lyapunov_vjp`).

        Given the cotangents :math:`\bar A` (``frame_cotangent``, of the pushed frame) and
        :math:`\bar s'` (``state_cotangent``), returns :math:`(\bar Q, \bar s, \bar\theta,
        \bar x)`: :math:`\bar Q = J^\top \bar A`, :math:`\bar s = J_{\text{full}}^\top
        \bar s' + \nabla_s \operatorname{tr}(\bar A^\top J Q)`, the parameter gradient
        :math:`\nabla_\theta(\bar s' \cdot f) + \nabla_\theta \operatorname{tr}(\bar
        A^\top J Q)` (a dict, summed over the batch as :meth:`param_vjp`'s) and the input's
        likewise (None unless ``inputs``). The base class composes :meth:`_vjp`,
        :meth:`_param_vjp`, :meth:`_input_vjp` and :meth:`_frame_vjp`; a cell may fuse them.

        Shapes: state (..., S), x (..., I), frame Q, pushed A = J Q (as the forward pass
        computed it) and frame_cotangent (..., P, k), state_cotangent (..., S).
        """
        columns = np.moveaxis(frame_cotangent, -1, 0)
        frame_back = np.moveaxis(self._vjp(state, x, columns, path), 0, -1)
        g_state, g_x, g_params = self._frame_vjp(state, x, frame, frame_cotangent, path, inputs)
        params = self._param_vjp(state, x, state_cotangent)
        params = {name: params[name] + g_params[name] for name in params}
        state_back = self._vjp(state, x, state_cotangent, "full") + g_state
        x_back = self._input_vjp(state, x, state_cotangent) + g_x if inputs else None
        return frame_back, state_back, params, x_back

    # -- checks ----------------------------------------------------------------------------
    def _check_path(self, path):
        choice(path, "path", self.paths)

    def _check_args(self, state, x):
        state = finite_array(state, "state")
        batch = self.batch_shape
        if state.ndim == 0 or state.shape[-1] != self.state_size:
            raise ValueError(
                f"`state` must have last dimension state_size={self.state_size}; got shape {state.shape}."
            )
        if x is None:
            x = np.zeros(state.shape[:-1] + (self.n_input,))
        x = finite_array(x, "x")
        if x.ndim == 0 or x.shape[-1] != self.n_input:
            raise ValueError(
                f"`x` must have last dimension n_input={self.n_input}; got shape {x.shape}."
            )
        try:
            np.broadcast_shapes(state.shape[:-1], x.shape[:-1])
        except ValueError:
            raise ValueError(
                f"`state` and `x` must have broadcastable batch shapes; got {state.shape[:-1]} "
                f"and {x.shape[:-1]}."
            ) from None
        if batch:
            try:
                np.broadcast_shapes(state.shape[:-1], x.shape[:-1], batch)
            except ValueError:
                raise ValueError(
                    f"`state` and `x` must have batch shapes that broadcast with the ensemble's "
                    f"batch_shape {batch}; got {state.shape[:-1]} and {x.shape[:-1]}."
                ) from None
        return state, x


def _check_weights(cls_name, n_gates, weight_hh, weight_ih, bias_hh, bias_ih):
    """Validate PyTorch-layout weights; return frozen (weight_hh, weight_ih, bias_hh, bias_ih).

    Leading dimensions of ``weight_hh`` beyond its last two are an ensemble's batch shape; the
    other arrays carry the same leading dimensions or none (shared by every member).
    """
    weight_hh = finite_array(weight_hh, "weight_hh")
    if weight_hh.ndim < 2:
        raise ValueError(
            f"`weight_hh` must be a 2-d array (or (..., rows, N) for an ensemble); got shape {weight_hh.shape}."
        )
    batch = weight_hh.shape[:-2]
    rows, n = weight_hh.shape[-2:]
    if rows != n_gates * n:
        want = "square (N, N)" if n_gates == 1 else f"of shape ({n_gates} N, N)"
        raise ValueError(f"`weight_hh` must be {want} for {cls_name}; got shape {weight_hh.shape}.")
    if n == 0:
        raise ValueError(f"`weight_hh` must have at least one hidden unit; got shape {weight_hh.shape}.")
    if weight_ih is None:
        weight_ih = np.zeros((rows, 0))
    weight_ih = finite_array(weight_ih, "weight_ih")
    if weight_ih.ndim < 2:
        raise ValueError(
            f"`weight_ih` must be a 2-d array (or (..., rows, I) for an ensemble); got shape {weight_ih.shape}."
        )
    if weight_ih.shape[-2] != rows:
        raise ValueError(
            f"`weight_ih` must have {rows} rows (n_input columns); got shape {weight_ih.shape}."
        )
    arrays = [weight_ih]
    for name, bias in (("bias_hh", bias_hh), ("bias_ih", bias_ih)):
        bias = np.zeros(rows) if bias is None else finite_array(bias, name)
        if bias.shape not in ((rows,), batch + (rows,)):
            want = f"({rows},)" if not batch else f"({rows},) or {batch + (rows,)}"
            raise ValueError(f"`{name}` must have shape {want}; got shape {bias.shape}.")
        arrays.append(bias)
    for name, array, core in zip(("weight_ih", "bias_hh", "bias_ih"), arrays, (2, 1, 1)):
        if array.shape[:-core] not in ((), batch):
            raise ValueError(
                f"`{name}` must have the ensemble's batch shape {batch} (that of `weight_hh`) or none; "
                f"got shape {array.shape}."
            )
    weight_ih, bias_hh, bias_ih = (
        np.broadcast_to(a, batch + a.shape[a.ndim - core :]) for a, core in zip(arrays, (2, 1, 1))
    )
    return frozen(weight_hh), frozen(weight_ih), frozen(bias_hh), frozen(bias_ih)


def _diag(v):
    """Batched diagonal matrix: (..., n) -> (..., n, n)."""
    out = np.zeros(v.shape + (v.shape[-1],), dtype=v.dtype)
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


def _members(arrays, core_ndims, index):
    """Batch member ``index`` of each array, after broadcasting their leading (batch) dimensions
    together; ``core_ndims`` says how many trailing dimensions of each array are not batch."""
    batch = np.broadcast_shapes(*(a.shape[: a.ndim - c] for a, c in zip(arrays, core_ndims)))
    if not batch:  # one network's operator serves every member
        return list(arrays)
    return [np.broadcast_to(a, batch + a.shape[a.ndim - c :])[index] for a, c in zip(arrays, core_ndims)]
