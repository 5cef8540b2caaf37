r"""The symbolic layer: the cells' update equations in sympy, their Jacobians derived by
differentiation, the unrolled products, closed forms, bounds and LaTeX.

Every formula here is *derived*: the update equations of :mod:`gradsim.cells` are written once
in sympy (same gate orders, same two biases, same GRU variants) and the Jacobians come from
``sympy`` differentiation, never typed in. Three views of the same equations:

* **explicit** (:func:`symbolic_cell`): a small N (at most :data:`MAX_EXPLICIT_N`) with a full
  symbol matrix per parameter, PyTorch names and layout. The Jacobian is
  ``update.jacobian(state)``; lambdified, it reproduces ``Cell.jacobian`` of the numeric layer.
* **matrix form** (:func:`matrix_form_jacobian`): general N with ``MatrixSymbol`` weights.
  sympy's matrix calculus carries the elementwise activations (it gives
  :math:`\operatorname{diag}(\phi'(a)) W` for the RNN) but not Hadamard products of two vector
  functions, so the gated cells are differentiated by a small matrix chain and product rule
  (:func:`_matrix_jacobian`), which yields THEORY.md's block formulas (sections 7 and 8).
* **scalar** (:func:`scalar_unrolled_product`, :func:`chain_rule_example`): one unit unrolled for
  T steps, :math:`\partial h_T / \partial h_0 = \prod_t w\, \phi'(a_t)`.

Conventions
-----------
* The logistic function is the sympy function :class:`sigmoid` (printed :math:`\sigma`), with
  derivative :math:`\sigma(1-\sigma)`; lambdified, it maps to :func:`scipy.special.expit`, the
  function the numeric layer uses, so large pre-activations never overflow.
* ReLU is ``Max(0, a)``. sympy differentiates it to ``Heaviside(a)``, which is 1/2 at 0; the
  derived Jacobians are rewritten to ``Heaviside(a, 0)`` so that relu'(0) = 0 as in PyTorch and
  :mod:`gradsim.cells`. The two conventions differ only on the measure-zero set a = 0.
* Symbols are real. Weight entries are named as PyTorch's documentation names the gate blocks:
  ``W_hh,12`` (RNN), ``W_hi,12``/``W_ii,12``/``b_hf,2`` (LSTM gates i, f, g, o), ``W_hr``,
  ``W_hz``, ``W_hn`` (GRU gates r, z, n); indices are 1-based and omitted for a 1 x 1 block.
  States are ``h_1 .. h_N`` (and ``c_1 .. c_N`` for the LSTM), inputs ``x_1 .. x_I``.

Nothing here writes files or draws: LaTeX comes back as strings.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
import types
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from scipy.special import expit
from sympy.core.function import ArgumentIndexError
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.diagonal import DiagMatrix
from sympy.matrices.expressions.hadamard import HadamardProduct
from sympy.printing.latex import LatexPrinter

from .._validate import choice, describe, finite_array, positive_int
from ..cells import (
    ACTIVATIONS,
    CELL_KINDS,
    AntisymmetricRNN,
    CoRNN,
    GRU,
    GRU_VARIANTS,
    LRU,
    LSTM,
    RATE_INTEGRATORS,
    RNN,
    Cell,
    IndRNN,
    LeakyRNN,
    MinGRU,
    MinLSTM,
    RateRNN,
    ResidualRNN,
)
from ..numeric import jacobian_product

__all__ = [
    "MAX_EXPLICIT_N",
    "MAX_EXPLICIT_T",
    "ChainRuleExample",
    "MatrixForm",
    "SymbolicCell",
    "UnrolledProduct",
    "activation_gamma",
    "chain_rule_example",
    "lstm_cell_path_product",
    "matrix_form_jacobian",
    "pascanu_bound",
    "scalar_unrolled_product",
    "sigmoid",
    "symbolic_cell",
    "to_latex",
    "zero_weight_limits",
]

#: Largest N (and input size) with explicit symbol matrices. An LSTM with N = I = 4 already has
#: 4N (N + I) + 8N = 160 parameter symbols and an 8 x 8 Jacobian of long expressions; beyond that
#: sympy's cost grows faster than anything it could show. General N: :func:`matrix_form_jacobian`.
MAX_EXPLICIT_N = 4
#: Longest explicit unrolling (compositions and products of T written-out steps).
MAX_EXPLICIT_T = 32

_GATES = {
    "rnn": ("h",),
    "irnn": ("h",),
    "residual": ("h",),
    "lstm": "ifgo",
    "gru": "rzn",
    "leaky": ("h",),
    "rate": ("h",),
}
# The numeric class of each kind, and the kinds that take `alpha` (residual: the branch weight;
# leaky: the leak rate).
_NUMERIC = {
    "rnn": RNN,
    "irnn": RNN,
    "residual": ResidualRNN,
    "lstm": LSTM,
    "gru": GRU,
    "leaky": LeakyRNN,
    "rate": RateRNN,
    "lru": LRU,
    "mingru": MinGRU,
    "minlstm": MinLSTM,
    "indrnn": IndRNN,
    "antisymmetric": AntisymmetricRNN,
    "cornn": CoRNN,
}
# The modern diagonal kinds (gradsim.cells.modern): their parameters by name, with the shape of
# each as a function of (N, I). The LRU's readout (C_re, C_im, D) does not enter the step and
# is not a symbol of its update.
_MODERN_PARAMS = {
    "lru": {
        "nu_log": lambda n, m: (n,), "theta_log": lambda n, m: (n,), "gamma_log": lambda n, m: (n,),
        "B_re": lambda n, m: (n, m), "B_im": lambda n, m: (n, m),
    },
    "mingru": {
        "weight_z": lambda n, m: (n, m), "weight_h": lambda n, m: (n, m),
        "bias_z": lambda n, m: (n,), "bias_h": lambda n, m: (n,),
    },
    "minlstm": {
        "weight_f": lambda n, m: (n, m), "weight_i": lambda n, m: (n, m), "weight_h": lambda n, m: (n, m),
        "bias_f": lambda n, m: (n,), "bias_i": lambda n, m: (n,), "bias_h": lambda n, m: (n,),
    },
    "indrnn": {
        "weight_hh": lambda n, m: (n,), "weight_ih": lambda n, m: (n, m), "bias_ih": lambda n, m: (n,),
    },
}
# The discretised-ODE kinds (AntisymmetricRNN, CoRNN), derived with explicit symbols like the
# modern diagonal kinds: their arrays, then their scalar options (shape ()), which enter the update
# as the symbols epsilon, gamma, dt (1 x 1 matrices) and are read from the numeric cell. The CoRNN
# is derived in its default form, damping="explicit" (the authors' code).
_ODE_PARAMS = {
    "antisymmetric": {
        "weight_hh": lambda n, m: (n, n), "weight_ih": lambda n, m: (n, m), "bias": lambda n, m: (n,),
        "eps": lambda n, m: (), "gamma": lambda n, m: (),
    },
    "cornn": {
        "weight_y": lambda n, m: (n, n), "weight_z": lambda n, m: (n, n), "weight_ih": lambda n, m: (n, m),
        "bias": lambda n, m: (n,), "dt": lambda n, m: (), "gamma": lambda n, m: (), "eps": lambda n, m: (),
    },
}
# Every kind derived with explicit symbols of its own parameters (not PyTorch's four arrays).
_EXPLICIT_PARAMS = {**_MODERN_PARAMS, **_ODE_PARAMS}
_ALPHA_KINDS = ("residual", "leaky")
_PARAM_NAMES = ("weight_hh", "weight_ih", "bias_hh", "bias_ih")
_PATHS = {"lstm": ("full", "cell", "hidden"), "gru": ("full", "direct")}
_LAMBDIFY_MODULES = [{"sigmoid": expit}, "numpy"]
_NORM_W = "||W||_2"
_CHAIN_RULE_FACTORS = ("0.2", "0.1", "0.3") + ("0.1",) * 6


# ------------------------------------------------------------------------------------------
# activations
class sigmoid(sp.Function):
    r"""The logistic function :math:`\sigma(a) = 1 / (1 + e^{-a})` as a sympy function.

    Kept as a named function (rather than its exponential form) so that derived Jacobians read
    as in the literature, :math:`\sigma'(a) = \sigma(a)(1 - \sigma(a))`, and so that lambdified
    code calls :func:`scipy.special.expit` (no overflow for large :math:`|a|`).
    ``sigmoid(a).rewrite(sympy.exp)`` gives the exponential form; the tests check that sympy's
    derivative of that form equals :meth:`fdiff`, the same way sympy defines ``tanh``'s.
    """

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.S.Half
        if arg is sp.S.Infinity:
            return sp.S.One
        if arg is sp.S.NegativeInfinity:
            return sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        s = self.func(self.args[0])
        return s * (1 - s)

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return 1 / (1 + sp.exp(-arg))

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_positive(self):
        return True if self.args[0].is_extended_real and self.args[0].is_finite else None

    def _latex(self, printer, exp=None):
        power = f"^{{{exp}}}" if exp is not None else ""
        return rf"\sigma{power}\left({printer._print(self.args[0])}\right)"


def _phi(name: str, a):
    """The activation ``name`` applied to the scalar sympy expression ``a``."""
    if name == "tanh":
        return sp.tanh(a)
    if name == "sigmoid":
        return sigmoid(a)
    if name == "relu":
        return sp.Max(0, a)
    if name == "linear":
        return a
    raise ValueError(
        f"`activation` must be one of {', '.join(map(repr, ACTIVATIONS))}; got {name!r}."
    )


def _relu_convention(expr):
    """Heaviside(a) (1/2 at 0, sympy's default) -> Heaviside(a, 0): relu'(0) = 0 as in PyTorch."""
    return expr.replace(
        lambda e: isinstance(e, sp.Heaviside) and e.args[1:] != (sp.S.Zero,),
        lambda e: sp.Heaviside(e.args[0], 0),
    )


def _slope(name: str, a):
    """phi'(a), derived by sympy differentiation (with the ReLU convention)."""
    return _relu_convention(sp.diff(_phi(name, a), a))


# ------------------------------------------------------------------------------------------
# argument helpers
def _explicit_size(value, name: str, minimum: int) -> int:
    value = positive_int(value, name, minimum=minimum)
    if value > MAX_EXPLICIT_N:
        raise ValueError(
            f"`{name}` must be an integer between {minimum} and {MAX_EXPLICIT_N} for explicit "
            f"symbol matrices (N <= {MAX_EXPLICIT_N}; use matrix_form_jacobian for general N); "
            f"got {value}."
        )
    return value


def _horizon(T):
    """An explicit horizon 1 .. MAX_EXPLICIT_T, or a sympy Symbol (None: the symbol T)."""
    if T is None:
        return sp.Symbol("T", integer=True, positive=True)
    if isinstance(T, sp.Symbol):
        return T
    expected = f"an integer between 1 and {MAX_EXPLICIT_T} or a sympy Symbol (None: the symbol T)"
    if isinstance(T, bool) or not isinstance(T, numbers.Integral):
        raise TypeError(f"`T` must be {expected}; got {describe(T)}.")
    if not 1 <= int(T) <= MAX_EXPLICIT_T:
        raise ValueError(f"`T` must be {expected}; got {int(T)}.")
    return int(T)


def _exact(value, name: str):
    """A finite real number as an exact sympy number; floats by their shortest decimal repr
    (0.2 -> 1/5, the number the user typed, not the nearest binary fraction)."""
    if isinstance(value, sp.Basic):
        if value.is_number and value.is_extended_real and value.is_finite:
            return value if value.is_Rational else sp.Rational(repr(float(value)))
        raise ValueError(f"`{name}` must be a finite real number; got {describe(value)}.")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a finite real number; got {describe(value)}.")
    if isinstance(value, numbers.Rational):
        return sp.Rational(int(value.numerator), int(value.denominator))
    as_float = float(value)
    if not math.isfinite(as_float):
        raise ValueError(f"`{name}` must be a finite real number; got {as_float!r}.")
    return sp.Rational(repr(as_float))


# ------------------------------------------------------------------------------------------
# LaTeX
class _Printer(LatexPrinter):
    """sympy's LaTeX, readable for the report and inside matplotlib mathtext's subset.

    ``Heaviside(a, 0)`` prints as an indicator, ``DiagMatrix(v)`` as diag(v), an elementwise
    function of a vector as the scalar formula applied to it (products of vectors act
    elementwise), ``OneMatrix`` as 1 and an undefined function's derivative as phi'.
    """

    def _print_Symbol(self, expr, style="plain"):
        if expr.name == _NORM_W:
            return r"\|W\|_{2}"
        return super()._print_Symbol(expr, style=style)

    def _print_Heaviside(self, expr, exp=None):
        arg = self._print(expr.args[0])
        if expr.args[1:] == (sp.S.Zero,):
            text = rf"\mathbf{{1}}\left[{arg} > 0\right]"
        else:
            text = rf"\theta\left({arg}\right)"
        return f"{text}^{{{exp}}}" if exp is not None else text

    def _print_DiagMatrix(self, expr):
        arg = expr.args[0]
        inner = (
            self._elementwise(arg, bare=True)
            if isinstance(arg, ElementwiseApplyFunction)
            else self._print(arg)
        )
        return rf"\operatorname{{diag}}\left({inner}\right)"

    def _print_OneMatrix(self, expr):
        return "1"

    def _print_Identity(self, expr):
        return "I"

    def _print_ElementwiseApplyFunction(self, expr):
        return self._elementwise(expr)

    def _elementwise(self, expr, bare=False):
        lam = expr.function
        var = lam.variables[0]
        arg = expr.expr
        name = self._print(arg)
        if not isinstance(arg, sp.MatrixSymbol):
            name = rf"\left({name}\right)"
        body = lam.expr.xreplace({var: sp.Symbol(name, real=True)})
        text = self._print(body)
        return rf"\left({text}\right)" if isinstance(body, sp.Add) and not bare else text

    def _print_MatMul(self, expr):
        # sympy's version negates the product to test for a minus sign, which runs ``doit``
        # (seconds on these trees); this one reads the scalar coefficient directly.
        coeff = sp.Mul(*[a for a in expr.args if not isinstance(a, sp.MatrixExpr)])
        parts = []
        for factor in (a for a in expr.args if isinstance(a, sp.MatrixExpr)):
            text = self._print(factor)
            if isinstance(factor, (sp.MatAdd, HadamardProduct)) or text.startswith("-"):
                text = rf"\left({text}\right)"
            parts.append(text)
        text = " ".join(parts)
        if coeff == 1:
            return text
        if coeff == -1:
            return f"- {text}"
        lead = self._print(coeff)
        if isinstance(coeff, sp.Add):
            lead = rf"\left({lead}\right)"
        return f"{lead} {text}"

    def _print_MatAdd(self, expr):
        # Positive terms first: "1 - z" rather than sympy's "- z + 1".
        terms = [self._print(t) for t in expr.args]
        terms = [t for t in terms if not t.startswith("-")] + [
            t for t in terms if t.startswith("-")
        ]
        out = terms[0]
        for t in terms[1:]:
            out += f" - {t[1:].lstrip()}" if t.startswith("-") else f" + {t}"
        return out

    def _print_Derivative(self, expr):
        inner = expr.expr
        if (
            isinstance(inner, sp.core.function.AppliedUndef)
            and len(inner.args) == 1
            and expr.variables == (inner.args[0],)
        ):
            return rf"{self._print(sp.Symbol(inner.func.__name__))}'\left({self._print(inner.args[0])}\right)"
        return super()._print_Derivative(expr)


def to_latex(expr, **settings) -> str:
    """LaTeX of a sympy expression with this module's conventions (see :class:`_Printer`).

    Scalars and matrix expressions print in matplotlib mathtext's subset of LaTeX; explicit
    sympy matrices use ``\\begin{matrix}``, which mathtext does not parse (print their entries
    one by one, e.g. :meth:`SymbolicCell.latex_entries`).
    """
    return _Printer(settings).doprint(expr)


# ------------------------------------------------------------------------------------------
# explicit cells
def _block(prefix: str, rows: int, cols: int) -> sp.ImmutableMatrix:
    """A rows x cols matrix of real symbols ``prefix,ij`` (or ``prefix`` when 1 x 1)."""
    if rows * cols == 1:
        return sp.ImmutableMatrix([[sp.Symbol(prefix, real=True)]])
    return sp.ImmutableMatrix(
        rows, cols, lambda i, j: sp.Symbol(f"{prefix},{i + 1}{j + 1}", real=True)
    )


def _vector(prefix: str, n: int) -> sp.ImmutableMatrix:
    """An n-vector (column) of real symbols ``prefix_1 .. prefix_n`` (or ``prefix`` when n = 1)."""
    if n == 1:
        return sp.ImmutableMatrix([[sp.Symbol(prefix, real=True)]])
    return sp.ImmutableMatrix(n, 1, lambda i, _: sp.Symbol(f"{prefix}_{i + 1}", real=True))


def _bias(prefix: str, n: int) -> sp.ImmutableMatrix:
    if n == 1:
        return sp.ImmutableMatrix([[sp.Symbol(prefix, real=True)]])
    return sp.ImmutableMatrix(n, 1, lambda i, _: sp.Symbol(f"{prefix},{i + 1}", real=True))


def _hadamard(u, v):
    return sp.ImmutableMatrix(u.multiply_elementwise(v))


def _apply(fn, v):
    return sp.ImmutableMatrix(v.applyfunc(fn))


@dataclass(frozen=True, eq=False)
class SymbolicCell:
    r"""One step of a recurrent cell in sympy, with explicit symbol matrices.

    Build with :func:`symbolic_cell`. The equations are those of :mod:`gradsim.cells`:

    * ``"rnn"`` / ``"irnn"``: :math:`h' = \phi(W_{hh} h + b_{hh} + W_{ih} x + b_{ih})`;
    * ``"residual"``: :math:`s' = s + \alpha\, \phi(W_{hh} s + b_{hh} + W_{ih} x + b_{ih})`;
    * ``"lstm"``: gates (i, f, g, o) from :math:`W_{ih} x + b_{ih} + W_{hh} h + b_{hh}`,
      :math:`c' = f \odot c + i \odot g`, :math:`h' = o \odot \tanh(c')`, state (h, c);
    * ``"gru"``: gates (r, z, n); ``variant`` "torch" (reset after the matmul), "reset_before"
      or "chung" (see :class:`gradsim.GRU`);
    * ``"leaky"``: :math:`h' = (1 - \alpha) h + \alpha\, \phi(W_{hh} h + b_{hh} + W_{ih} x + b_{ih})`;
    * ``"lru"``: :math:`\lambda = e^{-e^{\nu} + i e^{\theta}}`, :math:`h' = \lambda h +
      e^{\gamma} (B_{re} + i B_{im}) x` written in real and imaginary parts, state
      (hr, hi) of length 2 N (nu, theta, gamma are :class:`gradsim.cells.LRU`'s nu_log,
      theta_log, gamma_log; the normalised form, ``normalize=True``);
    * ``"mingru"``: :math:`z = \sigma(W_z x + b_z)`, :math:`h' = (1 - z) h + z (W_h x + b_h)`;
      ``"minlstm"``: :math:`f, i = \sigma(W_f x + b_f), \sigma(W_i x + b_i)`,
      :math:`h' = \frac{f}{f + i} h + \frac{i}{f + i} (W_h x + b_h)`;
    * ``"indrnn"``: :math:`h' = \phi(W_{ih} x + u \odot h + b_{ih})` (u is ``weight_hh``);
    * ``"rate"``: the rate ODE :math:`\dot h = f(h) = -h + W_{hh} \phi(h) + b_{hh} + W_{ih} x +
      b_{ih}` (the state h is the current, :class:`gradsim.RateRNN`'s x; the input x is held over
      the step), one ``integrator`` step of length ``dt``: Euler :math:`h' = (1 - dt) h + dt
      (f(h) + h)`, or classical RK4 written out stage by stage, so that its Jacobian is the
      derivative of the whole RK4 step.

    Attributes
    ----------
    kind : str
    n_hidden, n_input : int
        N and I.
    activation : str or None
        RNN and residual kinds only.
    variant : str or None
        GRU only.
    alpha : sympy expression or None
        Residual and leaky only: the symbol alpha, or an exact number.
    dt : sympy expression or None
        Rate only: the symbol dt, or an exact number.
    integrator : str or None
        Rate only: ``"euler"`` or ``"rk4"``.
    state : sympy ImmutableMatrix, shape (S, 1)
        ``h_1 .. h_N`` (then ``c_1 .. c_N`` for the LSTM, S = 2 N).
    inputs : sympy ImmutableMatrix, shape (I, 1)
    params : mapping str -> sympy ImmutableMatrix
        ``weight_hh`` (G N, N), ``weight_ih`` (G N, I), ``bias_hh`` and ``bias_ih`` (G N, 1),
        gate blocks stacked in PyTorch's order (G = 1, 4 or 3).
    update : sympy ImmutableMatrix, shape (S, 1)
        The next state as a function of ``state``, ``inputs`` and ``params``.
    """

    kind: str
    n_hidden: int
    n_input: int
    activation: str | None
    variant: str | None
    alpha: sp.Expr | None
    state: sp.ImmutableMatrix
    inputs: sp.ImmutableMatrix
    params: types.MappingProxyType
    update: sp.ImmutableMatrix
    dt: sp.Expr | None = None
    integrator: str | None = None
    # The parameter names, in the order of `arguments`: PyTorch's four, or a modern kind's.
    param_names: tuple = ("weight_hh", "weight_ih", "bias_hh", "bias_ih")
    # GRU: the update with the h of the skip term z * h replaced by `_skip` (the direct path).
    _skip: sp.ImmutableMatrix | None = field(default=None, repr=False)
    _split_update: sp.ImmutableMatrix | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def state_size(self) -> int:
        """S: N, or 2 N for the LSTM."""
        return self.state.shape[0]

    @property
    def paths(self) -> tuple[str, ...]:
        """The Jacobian paths, as in the numeric cell (``"full"``, ``"cell"``, ``"hidden"``, ``"direct"``)."""
        return _PATHS.get(self.kind, ("full",))

    @property
    def arguments(self) -> tuple[sp.Symbol, ...]:
        """Every free symbol in the order the lambdified functions take them: state, inputs,
        weight_hh, weight_ih, bias_hh, bias_ih (row-major), then alpha and dt if they are
        symbols."""
        out = list(self.state) + list(self.inputs)
        for name in self.param_names:
            out.extend(self.params[name])
        if isinstance(self.alpha, sp.Symbol):
            out.append(self.alpha)
        if isinstance(self.dt, sp.Symbol):
            out.append(self.dt)
        return tuple(out)

    def jacobian(self, path: str = "full") -> sp.ImmutableMatrix:
        r"""d update / d state along ``path``, derived by ``sympy`` differentiation.

        Parameters
        ----------
        path : str
            ``"full"`` (S x S); LSTM ``"cell"`` (dc'/dc, N x N, which comes out diag(f)) and
            ``"hidden"`` (dh'/dh with c held fixed); GRU ``"direct"`` (the derivative through the
            skip term alone: the h in :math:`z \odot h` is differentiated, the h inside the gates
            and the candidate is not; diag(z), or diag(1 - z) for chung).

        Returns
        -------
        sympy ImmutableMatrix, shape (P, P)
        """
        choice(path, "path", self.paths)
        key = ("jacobian", path)
        if key not in self._cache:
            n = self.n_hidden
            if path == "full":
                jac = self.update.jacobian(self.state)
            elif path == "cell":
                jac = self.update[n:, :].jacobian(self.state[n:, :])
            elif path == "hidden":
                jac = self.update[:n, :].jacobian(self.state[:n, :])
            else:  # "direct"
                back = dict(zip(self._skip, self.state))
                jac = self._split_update.jacobian(self._skip).xreplace(back)
            self._cache[key] = sp.ImmutableMatrix(jac.applyfunc(_relu_convention))
        return self._cache[key]

    # -- LaTeX ---------------------------------------------------------------------------
    def _labels(self, path: str):
        n = self.n_hidden
        rows = cols = list(self.state)
        if path == "cell":
            rows = cols = list(self.state[n:, :])
        elif path == "hidden":
            rows = cols = list(self.state[:n, :])
        return [_primed(s) for s in rows], [to_latex(s) for s in cols]

    def latex(self, what: str = "jacobian", path: str = "full") -> str:
        r"""LaTeX of the update or of the Jacobian as one matrix equation (``\begin{matrix}``).

        For matplotlib mathtext, which has no matrix environment, use :meth:`latex_entries`.
        """
        choice(what, "what", ("jacobian", "update"))
        if what == "update":
            lhs = r"\left(" + ", ".join(_primed(s) for s in self.state) + r"\right)^{T}"
            return f"{lhs} = {to_latex(self.update)}"
        choice(path, "path", self.paths)
        rows, cols = self._labels(path)
        return (
            rf"\frac{{\partial \left({', '.join(rows)}\right)}}"
            rf"{{\partial \left({', '.join(cols)}\right)}} = {to_latex(self.jacobian(path))}"
        )

    def latex_entries(self, what: str = "jacobian", path: str = "full") -> tuple[str, ...]:
        r"""One mathtext-compatible equation per entry: ``h'_{1} = ...`` for the update,
        ``\frac{\partial h'_{1}}{\partial h_{2}} = ...`` for the Jacobian (row-major)."""
        choice(what, "what", ("jacobian", "update"))
        if what == "update":
            return tuple(f"{_primed(s)} = {to_latex(e)}" for s, e in zip(self.state, self.update))
        choice(path, "path", self.paths)
        rows, cols = self._labels(path)
        jac = self.jacobian(path)
        return tuple(
            rf"\frac{{\partial {rows[i]}}}{{\partial {cols[j]}}} = {to_latex(jac[i, j])}"
            for i in range(jac.shape[0])
            for j in range(jac.shape[1])
        )

    # -- numeric evaluation -------------------------------------------------------------
    def lambdify_jacobian(self, path: str = "full"):
        """The derived Jacobian as a numpy function.

        Returns
        -------
        callable (state, x, params) -> ndarray, shape (P, P)
            ``state`` of shape (S,), ``x`` of shape (I,) or None (zeros), ``params`` a numeric
            cell of the same kind and sizes (:class:`gradsim.RNN`, ...) or a mapping with the
            arrays ``weight_hh``, ``weight_ih``, ``bias_hh``, ``bias_ih`` in PyTorch's layout
            (plus ``alpha`` when the symbolic alpha is a symbol). The result equals
            ``params.jacobian(state, x, path)`` to rounding.
        """
        choice(path, "path", self.paths)
        return self._lambdified(("jacobian", path), lambda: self.jacobian(path), vector=False)

    def lambdify_update(self):
        """The update equations as a numpy function ``(state, x, params) -> next state (S,)``,
        equal to ``params.step(state, x)`` to rounding (arguments as in :meth:`lambdify_jacobian`)."""
        return self._lambdified(("update",), lambda: self.update, vector=True)

    def _lambdified(self, key, build, vector):
        key = ("lambdify",) + key
        if key not in self._cache:
            expr = build()
            raw = sp.lambdify(self.arguments, expr, modules=_LAMBDIFY_MODULES, cse=True)
            self._cache[key] = _Lambdified(self, raw, expr.shape[:1] if vector else expr.shape)
        return self._cache[key]

    def _values(self, state, x, params) -> list:
        s, m = self.state_size, self.n_input
        state = finite_array(state, "state", shape=(s,))
        x = np.zeros(m) if x is None else finite_array(x, "x", shape=(m,))
        arrays, alpha, dt = self._numeric_params(params)
        values = list(state) + list(x)
        for name in self.param_names:
            values.extend(np.ravel(arrays[name]))
        if isinstance(alpha, np.ndarray) and self.alpha is not None:
            raise ValueError(
                "`params` must have one alpha for every unit (the symbolic cell's alpha is one "
                f"number); got an array of shape {alpha.shape}."
            )
        if isinstance(self.alpha, sp.Symbol):
            values.append(alpha)
        elif self.alpha is not None and alpha is not None and alpha != float(self.alpha):
            raise ValueError(
                f"`params` must have alpha = {self.alpha} (the symbolic cell's); got {alpha!r}."
            )
        if isinstance(self.dt, sp.Symbol):
            values.append(dt)
        elif self.dt is not None and dt is not None and dt != float(self.dt):
            raise ValueError(f"`params` must have dt = {self.dt} (the symbolic cell's); got {dt!r}.")
        return values

    def _numeric_params(self, params):
        if self.kind in _EXPLICIT_PARAMS:
            return self._modern_numeric_params(params), None, None
        gates = len(_GATES[self.kind]) if self.kind in ("lstm", "gru") else 1
        rows, n, m = gates * self.n_hidden, self.n_hidden, self.n_input
        if isinstance(params, Cell):
            expected = self._describe_numeric()
            ok = type(params) is _NUMERIC[self.kind]
            ok = ok and params.n_hidden == n and params.n_input == m
            if ok and self.activation is not None:
                ok = params.activation == self.activation
            if ok and self.variant is not None:
                ok = params.variant == self.variant
            if ok and self.integrator is not None:
                ok = params.integrator == self.integrator
            if not ok:
                got = (
                    f"{type(params).__name__}(n_hidden={params.n_hidden}, n_input={params.n_input}"
                )
                for attr in ("activation", "variant", "integrator"):
                    if hasattr(params, attr):
                        got += f", {attr}={getattr(params, attr)!r}"
                raise ValueError(f"`params` must be {expected}; got {got}).")
            arrays = {name: getattr(params, name) for name in _PARAM_NAMES}
            return arrays, getattr(params, "alpha", None), getattr(params, "dt", None)
        if not isinstance(params, (dict, types.MappingProxyType)):
            raise TypeError(
                f"`params` must be a numeric gradsim cell or a mapping of its arrays "
                f"({', '.join(_PARAM_NAMES)}); got {describe(params)}."
            )
        needed = _PARAM_NAMES + (("alpha",) if isinstance(self.alpha, sp.Symbol) else ())
        needed = needed + (("dt",) if isinstance(self.dt, sp.Symbol) else ())
        missing = [k for k in needed if k not in params]
        if missing:
            raise ValueError(
                f"`params` must contain the keys {', '.join(needed)}; got {sorted(params)}."
            )
        shapes = {
            "weight_hh": (rows, n),
            "weight_ih": (rows, m),
            "bias_hh": (rows,),
            "bias_ih": (rows,),
        }
        arrays = {
            k: finite_array(params[k], f"params[{k!r}]", shape=shapes[k]) for k in _PARAM_NAMES
        }
        alpha = params.get("alpha")
        if alpha is not None:
            alpha = float(finite_array(alpha, "params['alpha']", shape=()))
        dt = params.get("dt")
        if dt is not None:
            dt = float(finite_array(dt, "params['dt']", shape=()))
        return arrays, alpha, dt

    def _modern_numeric_params(self, params) -> dict:
        """The arrays of a modern kind's numeric cell (or mapping), checked against the sizes."""
        n, m = self.n_hidden, self.n_input
        shapes = {name: shape(n, m) for name, shape in _EXPLICIT_PARAMS[self.kind].items()}
        if isinstance(params, Cell):
            ok = type(params) is _NUMERIC[self.kind] and not params.batch_shape
            ok = ok and params.n_hidden == n and params.n_input == m
            if ok and self.activation is not None:
                ok = params.activation == self.activation
            if ok and self.kind == "lru":
                ok = params.normalize
            if ok and self.kind == "cornn":
                ok = params.damping == "explicit"
            if not ok:
                got = f"{type(params).__name__}(n_hidden={params.n_hidden}, n_input={params.n_input}"
                for attr in ("activation", "normalize", "damping"):
                    if hasattr(params, attr):
                        got += f", {attr}={getattr(params, attr)!r}"
                if params.batch_shape:
                    got += f", batch_shape={params.batch_shape}"
                raise ValueError(f"`params` must be {self._describe_numeric()}; got {got}).")
            return {name: getattr(params, name) for name in shapes}
        if not isinstance(params, (dict, types.MappingProxyType)):
            raise TypeError(
                f"`params` must be a numeric gradsim cell or a mapping of its arrays "
                f"({', '.join(shapes)}); got {describe(params)}."
            )
        missing = [k for k in shapes if k not in params]
        if missing:
            raise ValueError(f"`params` must contain the keys {', '.join(shapes)}; got {sorted(params)}.")
        return {k: finite_array(params[k], f"params[{k!r}]", shape=shapes[k]) for k in shapes}

    def _describe_numeric(self) -> str:
        cls = _NUMERIC[self.kind].__name__
        text = f"a numeric {cls}(n_hidden={self.n_hidden}, n_input={self.n_input}"
        if self.activation is not None:
            text += f", activation={self.activation!r}"
        if self.variant is not None:
            text += f", variant={self.variant!r}"
        if self.integrator is not None:
            text += f", integrator={self.integrator!r}"
        if self.kind == "lru":
            text += ", normalize=True"
        if self.kind == "cornn":
            text += ", damping='explicit'"
        return text + ") or a mapping of its arrays"


class _Lambdified:
    """A lambdified expression of a :class:`SymbolicCell`; call as ``f(state, x, params)``."""

    def __init__(self, cell: SymbolicCell, raw, shape):
        self._cell, self._raw, self._shape = cell, raw, shape

    def __call__(self, state, x, params) -> np.ndarray:
        out = np.asarray(self._raw(*self._cell._values(state, x, params)), dtype=np.float64)
        return out.reshape(self._shape)

    def __repr__(self):
        return (
            f"<lambdified {self._cell.kind} N={self._cell.n_hidden}: (state, x, params) -> array>"
        )


def _primed(symbol) -> str:
    """h_1 -> h'_{1}; h -> h'."""
    base, _, index = symbol.name.partition("_")
    return f"{base}'_{{{index}}}" if index else f"{base}'"


def symbolic_cell(
    kind: str,
    n_hidden: int = 1,
    n_input: int = 1,
    activation: str = "tanh",
    variant: str = "torch",
    alpha=None,
    dt=None,
    integrator: str = "euler",
) -> SymbolicCell:
    """The update equations of a cell in sympy, with explicit symbol matrices.

    Parameters
    ----------
    kind : {"rnn", "irnn", "residual", "lstm", "gru", "leaky", "rate", "lru", "mingru", "minlstm", "indrnn"}
        As in :func:`gradsim.make_cell`; ``"irnn"`` is an RNN with ReLU (its identity
        initialisation is a choice of values, not of equations); ``"lru"`` is the normalised
        LRU (a numeric LRU with ``normalize=False`` is rejected by the lambdified functions).
        ``"antisymmetric"`` and ``"cornn"`` (also accepted) keep their scalar options as the
        symbols epsilon, gamma (and dt), which the lambdified functions read from the numeric
        cell or the mapping (keys ``eps``, ``gamma``, ``dt``); ``"cornn"`` is the default
        ``damping="explicit"`` form (an implicit-damping cell is rejected).
    n_hidden : int
        N, between 1 and :data:`MAX_EXPLICIT_N`.
    n_input : int
        I, between 0 and :data:`MAX_EXPLICIT_N`.
    activation : {"tanh", "relu", "linear", "sigmoid"}
        RNN, residual, leaky and rate kinds; checked for every kind (as in make_cell), ignored
        for the others.
    variant : {"torch", "reset_before", "chung"}
        GRU only; checked for every kind.
    alpha : number, optional
        Residual: the residual branch's weight; leaky: the leak rate (one for all units). An
        exact number (floats by their decimal repr); None leaves it the symbol alpha.
    dt : number, optional
        Rate only: the step as an exact positive number; None leaves it the symbol dt.
    integrator : {"euler", "rk4"}
        Rate only; checked for every kind.

    Returns
    -------
    SymbolicCell
        Cached: the same arguments give the same object.

    Raises
    ------
    ValueError
        Unknown kind, activation or variant; N or I out of range (the explicit limit is
        N <= MAX_EXPLICIT_N); alpha for a kind other than "residual" and "leaky"; dt for a kind
        other than "rate", or not a positive finite number; an unknown integrator.
    """
    choice(kind, "kind", CELL_KINDS)
    n = _explicit_size(n_hidden, "n_hidden", 1)
    m = _explicit_size(n_input, "n_input", 0)
    choice(activation, "activation", tuple(ACTIVATIONS))
    choice(variant, "variant", GRU_VARIANTS)
    choice(integrator, "integrator", RATE_INTEGRATORS)
    activation, variant, alpha = _options(kind, activation, variant, alpha)
    dt, integrator = _rate_options(kind, dt, integrator)
    return _symbolic_cell(kind, n, m, activation, variant, alpha, dt, integrator)


def _options(kind, activation, variant, alpha):
    """The options that matter for ``kind`` (the rest set to None), so that caches share entries."""
    if alpha is not None:
        if kind not in _ALPHA_KINDS:
            raise ValueError(
                f"`alpha` applies to kind='residual' or kind='leaky' only; got kind={kind!r}."
            )
        alpha = _exact(alpha, "alpha")
        if kind == "leaky" and not 0 < alpha <= 1:
            raise ValueError(f"`alpha` must be a leak rate in (0, 1] for kind='leaky'; got {alpha}.")
    if kind in ("lstm", "gru", "lru", "mingru", "minlstm"):
        activation = None
    elif kind == "irnn":
        activation = "relu"
    if kind != "gru":
        variant = None
    return activation, variant, alpha


def _rate_options(kind, dt, integrator):
    """(dt, integrator) of a rate cell as exact values; (None, None) for the other kinds."""
    if kind != "rate":
        if dt is not None:
            raise ValueError(f"`dt` applies to kind='rate' only; got kind={kind!r}.")
        return None, None
    if dt is not None:
        dt = _exact(dt, "dt")
        if not dt > 0:
            raise ValueError(f"`dt` must be a positive finite number; got {dt}.")
    return dt, integrator


@functools.cache
def _symbolic_cell(kind, n, m, activation, variant, alpha, dt=None, integrator=None) -> SymbolicCell:
    if kind in _MODERN_PARAMS:
        return _modern_symbolic_cell(kind, n, m, activation)
    if kind in _ODE_PARAMS:
        return _ode_symbolic_cell(kind, n, m, activation)
    gates = _GATES[kind]
    if kind in ("lstm", "gru"):
        blocks = {
            "weight_hh": [_block(f"W_h{g}", n, n) for g in gates],
            "weight_ih": [_block(f"W_i{g}", n, m) for g in gates],
            "bias_hh": [_bias(f"b_h{g}", n) for g in gates],
            "bias_ih": [_bias(f"b_i{g}", n) for g in gates],
        }
        params = {k: sp.ImmutableMatrix(sp.Matrix.vstack(*v)) for k, v in blocks.items()}
    else:
        params = {
            "weight_hh": _block("W_hh", n, n),
            "weight_ih": _block("W_ih", n, m),
            "bias_hh": _bias("b_hh", n),
            "bias_ih": _bias("b_ih", n),
        }
    x = sp.ImmutableMatrix.zeros(0, 1) if m == 0 else _vector("x", m)
    h = _vector("h", n)
    affine_x = params["weight_ih"] * x + params["bias_ih"]
    skip = split = None
    if kind in ("rnn", "irnn", "residual"):
        a = params["weight_hh"] * h + params["bias_hh"] + affine_x
        new = _apply(lambda e: _phi(activation, e), a)
        if kind == "residual":
            if alpha is None:
                alpha = sp.Symbol("alpha", real=True)
            new = h + alpha * new
        state, update = h, sp.ImmutableMatrix(new)
    elif kind == "leaky":
        a = params["weight_hh"] * h + params["bias_hh"] + affine_x
        if alpha is None:
            alpha = sp.Symbol("alpha", real=True)
        new = (1 - alpha) * h + alpha * _apply(lambda e: _phi(activation, e), a)
        state, update = h, sp.ImmutableMatrix(new)
    elif kind == "rate":
        if dt is None:
            dt = sp.Symbol("dt", positive=True)
        drive = params["bias_hh"] + affine_x

        def recurrent(y):  # W_hh phi(y)
            return params["weight_hh"] * _apply(lambda e: _phi(activation, e), y)

        def field(y):  # the vector field f(y) = -y + W_hh phi(y) + W_ih x + b
            return -y + recurrent(y) + drive

        if integrator == "euler":
            new = (1 - dt) * h + dt * (recurrent(h) + drive)
        else:  # classical RK4, the input held over the step
            k1 = field(h)
            k2 = field(h + dt / 2 * k1)
            k3 = field(h + dt / 2 * k2)
            k4 = field(h + dt * k3)
            new = h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        state, update = h, sp.ImmutableMatrix(new)
    elif kind == "lstm":
        c = _vector("c", n)
        a = params["weight_hh"] * h + params["bias_hh"] + affine_x
        i = _apply(sigmoid, a[:n, :])
        f = _apply(sigmoid, a[n : 2 * n, :])
        g = _apply(sp.tanh, a[2 * n : 3 * n, :])
        o = _apply(sigmoid, a[3 * n :, :])
        c_new = _hadamard(f, c) + _hadamard(i, g)
        h_new = _hadamard(o, _apply(sp.tanh, c_new))
        state = sp.ImmutableMatrix.vstack(h, c)
        update = sp.ImmutableMatrix.vstack(h_new, c_new)
    else:  # gru
        skip = _vector("hskip", n)
        update, split = (_gru_update(params, affine_x, h, hs, n, variant) for hs in (h, skip))
        state = h
    return SymbolicCell(
        kind=kind,
        n_hidden=n,
        n_input=m,
        activation=activation,
        variant=variant,
        alpha=alpha,
        state=sp.ImmutableMatrix(state),
        inputs=x,
        params=types.MappingProxyType(params),
        update=sp.ImmutableMatrix(update),
        dt=dt,
        integrator=integrator,
        _skip=skip,
        _split_update=split,
    )


def _modern_symbolic_cell(kind, n, m, activation) -> SymbolicCell:
    """The explicit update of an LRU, minGRU, minLSTM or IndRNN (see :class:`SymbolicCell`)."""
    x = sp.ImmutableMatrix.zeros(0, 1) if m == 0 else _vector("x", m)
    names = {
        "lru": {"nu_log": "nu", "theta_log": "theta", "gamma_log": "gamma", "B_re": "B_re", "B_im": "B_im"},
        "mingru": {"weight_z": "W_z", "weight_h": "W_h", "bias_z": "b_z", "bias_h": "b_h"},
        "minlstm": {
            "weight_f": "W_f", "weight_i": "W_i", "weight_h": "W_h", "bias_f": "b_f", "bias_i": "b_i",
            "bias_h": "b_h",
        },
        "indrnn": {"weight_hh": "u", "weight_ih": "W_ih", "bias_ih": "b_ih"},
    }[kind]
    params = {}
    for name, shape in _MODERN_PARAMS[kind].items():
        dims = shape(n, m)
        params[name] = _bias(names[name], n) if len(dims) == 1 else _block(names[name], *dims)

    def affine(w, b):
        return sp.ImmutableMatrix(params[w] * x + params[b])

    ones = sp.ImmutableMatrix.ones(n, 1)
    if kind == "lru":
        h_re, h_im = _vector("hr", n), _vector("hi", n)
        modulus = _apply(lambda e: sp.exp(-sp.exp(e)), params["nu_log"])
        phase = _apply(sp.exp, params["theta_log"])
        lam_re = _hadamard(modulus, _apply(sp.cos, phase))
        lam_im = _hadamard(modulus, _apply(sp.sin, phase))
        gamma = _apply(sp.exp, params["gamma_log"])
        u_re = _hadamard(gamma, sp.ImmutableMatrix(params["B_re"] * x))
        u_im = _hadamard(gamma, sp.ImmutableMatrix(params["B_im"] * x))
        new_re = _hadamard(lam_re, h_re) - _hadamard(lam_im, h_im) + u_re
        new_im = _hadamard(lam_im, h_re) + _hadamard(lam_re, h_im) + u_im
        state = sp.ImmutableMatrix.vstack(h_re, h_im)
        update = sp.ImmutableMatrix.vstack(new_re, new_im)
    else:
        state = h = _vector("h", n)
        if kind == "mingru":
            z = _apply(sigmoid, affine("weight_z", "bias_z"))
            update = _hadamard(ones - z, h) + _hadamard(z, affine("weight_h", "bias_h"))
        elif kind == "minlstm":
            f = _apply(sigmoid, affine("weight_f", "bias_f"))
            i = _apply(sigmoid, affine("weight_i", "bias_i"))
            total = f + i
            keep = sp.ImmutableMatrix(n, 1, lambda r, _: f[r] / total[r])
            take = sp.ImmutableMatrix(n, 1, lambda r, _: i[r] / total[r])
            update = _hadamard(keep, h) + _hadamard(take, affine("weight_h", "bias_h"))
        else:  # indrnn
            a = _hadamard(params["weight_hh"], h) + affine("weight_ih", "bias_ih")
            update = _apply(lambda e: _phi(activation, e), a)
    return SymbolicCell(
        kind=kind,
        n_hidden=n,
        n_input=m,
        activation=activation,
        variant=None,
        alpha=None,
        state=sp.ImmutableMatrix(state),
        inputs=x,
        params=types.MappingProxyType(params),
        update=sp.ImmutableMatrix(update),
        param_names=tuple(params),
    )


def _ode_symbolic_cell(kind, n, m, activation) -> SymbolicCell:
    """The explicit update of an AntisymmetricRNN or a CoRNN (damping="explicit"), with the
    scalar options as the symbols epsilon, gamma and dt."""
    x = sp.ImmutableMatrix.zeros(0, 1) if m == 0 else _vector("x", m)
    names = {
        "weight_hh": "W", "weight_y": "W_y", "weight_z": "W_z", "weight_ih": "V", "bias": "b",
        "eps": "epsilon", "gamma": "gamma", "dt": "dt",
    }
    params = {}
    for name, shape in _ODE_PARAMS[kind].items():
        dims = shape(n, m)
        if not dims:
            params[name] = sp.ImmutableMatrix([[sp.Symbol(names[name], positive=True)]])
        elif len(dims) == 1:
            params[name] = _bias(names[name], n)
        else:
            params[name] = _block(names[name], *dims)
    eps, gamma = params["eps"][0], params["gamma"][0]
    drive = sp.ImmutableMatrix(params["weight_ih"] * x + params["bias"])
    eye = sp.eye(n)
    if kind == "antisymmetric":
        state = h = _vector("h", n)
        w = params["weight_hh"]
        a = (w - w.T - gamma * eye) * h + drive
        update = sp.ImmutableMatrix(h + eps * _apply(lambda e: _phi(activation, e), a))
    else:
        y, z = _vector("y", n), _vector("z", n)
        dt = params["dt"][0]
        a = params["weight_y"] * y + params["weight_z"] * z + drive
        z_new = sp.ImmutableMatrix(z + dt * (_apply(lambda e: _phi(activation, e), a) - gamma * y - eps * z))
        state = sp.ImmutableMatrix.vstack(y, z)
        update = sp.ImmutableMatrix.vstack(sp.ImmutableMatrix(y + dt * z_new), z_new)
    return SymbolicCell(
        kind=kind,
        n_hidden=n,
        n_input=m,
        activation=activation,
        variant=None,
        alpha=None,
        state=sp.ImmutableMatrix(state),
        inputs=x,
        params=types.MappingProxyType(params),
        update=sp.ImmutableMatrix(update),
        param_names=tuple(params),
    )


def _gru_update(params, affine_x, h, h_skip, n, variant):
    """h' = keep * h_skip + (1 - keep) * n, with the gates and the candidate computed from h."""
    w, b = params["weight_hh"], params["bias_hh"]
    r = _apply(sigmoid, affine_x[:n, :] + w[:n, :] * h + b[:n, :])
    z = _apply(sigmoid, affine_x[n : 2 * n, :] + w[n : 2 * n, :] * h + b[n : 2 * n, :])
    w_n, b_n = w[2 * n :, :], b[2 * n :, :]
    if variant == "torch":
        cand = _apply(sp.tanh, affine_x[2 * n :, :] + _hadamard(r, w_n * h + b_n))
    else:
        cand = _apply(sp.tanh, affine_x[2 * n :, :] + w_n * _hadamard(r, h) + b_n)
    ones = sp.ImmutableMatrix.ones(n, 1)
    keep = z if variant != "chung" else ones - z
    return sp.ImmutableMatrix(_hadamard(keep, h_skip) + _hadamard(ones - keep, cand))


# ------------------------------------------------------------------------------------------
# matrix form
# One bound variable for every elementwise function, so that equal functions compare equal.
_D = sp.Dummy("d", real=True)


def _mmul(factors):
    """MatMul without sympy's ``doit`` (whose DiagMatrix simplification queries the assumptions
    system and costs seconds); identities dropped, scalars gathered in front."""
    flat = []
    for f in factors:
        flat.extend(f.args if isinstance(f, sp.MatMul) else [f])
    factors = flat
    mats = [f for f in factors if isinstance(f, sp.MatrixExpr) and not isinstance(f, sp.Identity)]
    if not mats:
        mats = [f for f in factors if isinstance(f, sp.Identity)][:1]
    coeff = sp.Mul(*[f for f in factors if not isinstance(f, sp.MatrixExpr)])
    if coeff == 1:
        return mats[0] if len(mats) == 1 else sp.MatMul(*mats)
    return sp.MatMul(coeff, *mats)


def _madd(terms):
    flat = []
    for t in terms:
        flat.extend(t.args if isinstance(t, sp.MatAdd) else [t])
    terms = flat
    return terms[0] if len(terms) == 1 else sp.MatAdd(*terms)


def _matrix_jacobian(expr, wrt):
    """d expr / d wrt in numerator layout for vector-valued matrix expressions, or None if zero.

    Rules: sums; ``A B ... v`` with only the last factor depending on ``wrt``; the product rule
    for Hadamard products, d(u o v) = diag(v) du + diag(u) dv; the chain rule for elementwise
    functions, d phi.(a) = diag(phi'.(a)) da, phi' by sympy differentiation. (sympy's own
    matrix calculus handles phi.(W h + b) but fails on Hadamard products of two functions of h.)
    """
    if expr == wrt:
        return sp.Identity(wrt.shape[0])
    if not expr.has(wrt):
        return None
    if isinstance(expr, sp.MatAdd):
        terms = [t for t in (_matrix_jacobian(a, wrt) for a in expr.args) if t is not None]
        return _madd(terms) if terms else None
    if isinstance(expr, sp.MatMul):
        *head, last = expr.args
        if any(getattr(f, "has", lambda _: False)(wrt) for f in head):
            raise NotImplementedError(f"only the last factor of {expr} may depend on {wrt}")
        inner = _matrix_jacobian(last, wrt)
        return None if inner is None else _mmul(head + [inner])
    if isinstance(expr, HadamardProduct):
        terms = []
        for k, factor in enumerate(expr.args):
            inner = _matrix_jacobian(factor, wrt)
            if inner is not None:
                others = expr.args[:k] + expr.args[k + 1 :]
                other = others[0] if len(others) == 1 else HadamardProduct(*others)
                terms.append(_mmul([DiagMatrix(other), inner]))
        return _madd(terms) if terms else None
    if isinstance(expr, ElementwiseApplyFunction):
        inner = _matrix_jacobian(expr.expr, wrt)
        if inner is None:
            return None
        slope = _relu_convention(sp.diff(expr.function(_D), _D))
        return _mmul([DiagMatrix(ElementwiseApplyFunction(sp.Lambda(_D, slope), expr.expr)), inner])
    raise NotImplementedError(f"cannot differentiate {type(expr).__name__} {expr}")


def _hadamard_args(v) -> list:
    return list(v.args) if isinstance(v, HadamardProduct) else [v]


def _hadamard_of(args):
    return args[0] if len(args) == 1 else HadamardProduct(*args)


def _split_term(term):
    """A matrix term as (scalar coefficient, list of matrix factors)."""
    if isinstance(term, sp.MatMul):
        scalars = [f for f in term.args if not isinstance(f, sp.MatrixExpr)]
        return sp.Mul(*scalars), [f for f in term.args if isinstance(f, sp.MatrixExpr)]
    return sp.S.One, [term]


def _combine(members):
    """sum_k c_k v_k for Hadamard products v_k, with their common factors taken out."""
    arg_lists = [_hadamard_args(v) for _, v in members]
    common = [f for f in arg_lists[0] if all(f in args for args in arg_lists[1:])]
    if not common:
        return _madd([_mmul([c, v]) for c, v in members])
    rest = []
    for (coeff, _), args in zip(members, arg_lists):
        left = [f for f in args if f not in common]
        if not left:
            left = [sp.OneMatrix(*common[0].shape)]
        rest.append(_mmul([coeff, _hadamard_of(left)]))
    return _hadamard_of([_madd(rest)] + common)


def _merge_diagonals(expr):
    """Write derived blocks the way THEORY.md does: diag(u) diag(v) -> diag(u o v), and
    diag(u) A + diag(v) A -> diag(u + v) A with common Hadamard factors taken out (so that
    diag(h o s') W - diag(n o s') W becomes diag((h - n) o s') W). Pure rewriting: the tests
    check that the result still equals the explicit derivation."""
    if isinstance(expr, sp.MatMul):
        scalars, factors = [], []
        for factor in expr.args:
            if not isinstance(factor, sp.MatrixExpr):
                scalars.append(factor)
                continue
            factor = _merge_diagonals(factor)
            if factors and isinstance(factor, DiagMatrix) and isinstance(factors[-1], DiagMatrix):
                merged = _hadamard_args(factors[-1].args[0]) + _hadamard_args(factor.args[0])
                factors[-1] = DiagMatrix(_hadamard_of(merged))
            else:
                factors.append(factor)
        return _mmul(scalars + factors)
    if isinstance(expr, sp.MatAdd):
        groups, others = {}, []
        for term in (_merge_diagonals(a) for a in expr.args):
            coeff, mats = _split_term(term)
            if len(mats) > 1 and isinstance(mats[0], DiagMatrix):
                groups.setdefault(tuple(mats[1:]), []).append((coeff, mats[0].args[0]))
            else:
                others.append(term)
        out = others
        for rest, members in groups.items():
            if len(members) == 1:
                coeff, v = members[0]
                out.append(_mmul([coeff, DiagMatrix(v), *rest]))
            else:
                out.append(_mmul([DiagMatrix(_combine(members)), *rest]))
        return _madd(out)
    return expr


def _explicit(expr, values):
    """A matrix expression made explicit, given explicit matrices for its MatrixSymbols.

    A direct recursion: sympy's own ``as_explicit`` goes entry by entry through symbolic sums
    and is orders of magnitude slower on these trees."""
    if isinstance(expr, sp.MatrixSymbol):
        return sp.Matrix(values[expr])
    if isinstance(expr, sp.MatAdd):
        return functools.reduce(operator.add, [_explicit(a, values) for a in expr.args])
    if isinstance(expr, sp.MatMul):
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        mats = [_explicit(a, values) for a in expr.args if isinstance(a, sp.MatrixExpr)]
        return sp.Mul(*scalars).xreplace(values) * functools.reduce(operator.mul, mats)
    if isinstance(expr, HadamardProduct):
        return functools.reduce(
            lambda u, v: u.multiply_elementwise(v), [_explicit(a, values) for a in expr.args]
        )
    if isinstance(expr, ElementwiseApplyFunction):
        return _explicit(expr.expr, values).applyfunc(expr.function)
    if isinstance(expr, DiagMatrix):
        return sp.diag(*_explicit(expr.args[0], values))
    if isinstance(expr, sp.Identity):
        return sp.eye(expr.shape[0])
    if isinstance(expr, sp.OneMatrix):
        return sp.ones(*expr.shape)
    if isinstance(expr, sp.ZeroMatrix):
        return sp.zeros(*expr.shape)
    if isinstance(expr, sp.BlockMatrix):
        rows, cols = expr.blockshape
        return sp.Matrix.vstack(
            *[
                sp.Matrix.hstack(*[_explicit(expr.blocks[i, j], values) for j in range(cols)])
                for i in range(rows)
            ]
        )
    raise NotImplementedError(f"cannot make {type(expr).__name__} explicit")  # pragma: no cover


@dataclass(frozen=True, eq=False)
class MatrixForm:
    r"""A cell's update and Jacobian blocks for general N, as sympy matrix expressions.

    Build with :func:`matrix_form_jacobian`. Vectors and weight blocks are ``MatrixSymbol`` s
    (``h``, ``c``, ``x``, ``W_hi``, ``b_hf``, ...); ``diag`` is ``DiagMatrix``, :math:`\odot`
    ``HadamardProduct``, and an activation applied to a vector is an
    ``ElementwiseApplyFunction``.

    Attributes
    ----------
    kind, activation, variant : str or None
        ``activation=None``: a generic activation phi (display only).
    alpha : sympy expression or None
    n_hidden, n_input : int or sympy Symbol
    symbols : mapping str -> MatrixSymbol
    update : mapping str -> MatrixExpr
        ``{"h": h'}`` or ``{"h": h', "c": c'}`` (LSTM).
    blocks : mapping (str, str) -> MatrixExpr
        Derived Jacobian blocks, e.g. ``blocks["c", "h"]`` = dc'/dh; the GRU's direct path is
        ``blocks["h", "skip"]`` (differentiating only the h of the skip term).
    display : mapping MatrixExpr -> MatrixSymbol
        Named sub-expressions for printing (pre-activations a_f, gates f, the new cell c').
    """

    kind: str
    activation: str | None
    variant: str | None
    alpha: sp.Expr | None
    n_hidden: object
    n_input: object
    symbols: types.MappingProxyType
    update: types.MappingProxyType
    blocks: types.MappingProxyType
    display: types.MappingProxyType = field(repr=False)
    dt: sp.Expr | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        return _PATHS.get(self.kind, ("full",))

    def jacobian(self, path: str = "full"):
        """The Jacobian along ``path`` as a MatrixExpr (a BlockMatrix for the full LSTM)."""
        choice(path, "path", self.paths)
        if self.kind == "lstm":
            if path == "cell":
                return self.blocks["c", "c"]
            if path == "hidden":
                return self.blocks["h", "h"]
            return sp.BlockMatrix(
                [
                    [self.blocks["h", "h"], self.blocks["h", "c"]],
                    [self.blocks["c", "h"], self.blocks["c", "c"]],
                ]
            )
        if path == "direct":
            return self.blocks["h", "skip"]
        return self.blocks["h", "h"]

    def as_explicit(self, path: str = "full") -> sp.ImmutableMatrix:
        """The Jacobian made explicit with the symbols of :func:`symbolic_cell` (integer sizes
        and a concrete activation only), to compare with ``symbolic_cell(...).jacobian(path)``."""
        choice(path, "path", self.paths)
        if not isinstance(self.n_hidden, int) or not isinstance(self.n_input, int):
            raise ValueError(
                "`n_hidden` and `n_input` must be integers (build the form with "
                f"matrix_form_jacobian(..., n_hidden=2)); got {self.n_hidden} and {self.n_input}."
            )
        if self.activation is None and self.kind not in ("lstm", "gru"):
            raise ValueError(
                "`activation` must be a concrete activation to make the form explicit; got None."
            )
        cell = symbolic_cell(
            self.kind,
            self.n_hidden,
            self.n_input,
            self.activation or "tanh",
            self.variant or "torch",
            alpha=None if self.alpha is None or isinstance(self.alpha, sp.Symbol) else self.alpha,
            dt=None if self.dt is None or isinstance(self.dt, sp.Symbol) else self.dt,
        )
        n = self.n_hidden
        values = {self.symbols["h"]: cell.state[:n, :]}
        if "c" in self.symbols:
            values[self.symbols["c"]] = cell.state[n:, :]
        if "skip" in self.symbols:
            values[self.symbols["skip"]] = cell.state[:n, :]
        if "x" in self.symbols:
            values[self.symbols["x"]] = cell.inputs
        gates = _GATES[self.kind]
        for k, g in enumerate(gates):
            rows = slice(k * n, (k + 1) * n)
            tag = g if len(gates) > 1 else "h"
            values[self.symbols[f"W_h{tag}"]] = cell.params["weight_hh"][rows, :]
            values[self.symbols[f"b_h{tag}"]] = cell.params["bias_hh"][rows, :]
            values[self.symbols[f"b_i{tag}"]] = cell.params["bias_ih"][rows, :]
            if f"W_i{tag}" in self.symbols:
                values[self.symbols[f"W_i{tag}"]] = cell.params["weight_ih"][rows, :]
        if isinstance(self.alpha, sp.Symbol):
            values[self.alpha] = cell.alpha
        if isinstance(self.dt, sp.Symbol):
            values[self.dt] = cell.dt
        return sp.ImmutableMatrix(_explicit(self.jacobian(path), values))

    def latex(self, path: str = "full") -> tuple[str, ...]:
        r"""mathtext-compatible equations: the definitions, the update, then each derived block
        (functions and products of vectors act elementwise)."""
        choice(path, "path", self.paths)
        names = dict(self.display)

        def show(expr):
            # Every named sub-expression by its name, except the expression being defined.
            return to_latex(expr.xreplace({k: v for k, v in names.items() if k != expr}))

        updates = set(self.update.values())
        lines = [
            f"{to_latex(sym)} = {show(expr)}" for expr, sym in names.items() if expr not in updates
        ]
        lines += [f"{key}' = {show(expr)}" for key, expr in self.update.items()]
        wanted = {
            "full": [k for k in self.blocks if k[1] != "skip"],
            "cell": [("c", "c")],
            "hidden": [("h", "h")],
            "direct": [("h", "skip")],
        }[path]
        for out, inp in wanted:
            label = "h_{skip}" if inp == "skip" else inp
            lines.append(
                rf"\frac{{\partial {out}'}}{{\partial {label}}} = {show(self.blocks[out, inp])}"
            )
        return tuple(lines)


def matrix_form_jacobian(
    kind: str,
    activation: str | None = None,
    variant: str = "torch",
    alpha=None,
    n_hidden: int | None = None,
    n_input: int | None = None,
    dt=None,
) -> MatrixForm:
    r"""The update equations with ``MatrixSymbol`` weights and their derived Jacobian blocks.

    Derivation: sympy's matrix calculus for :math:`\phi.(W h + b)` and the chain and product
    rules of :func:`_matrix_jacobian` for the gated cells. Results, with
    :math:`\sigma' = \sigma(1-\sigma)`:

    * RNN: :math:`\operatorname{diag}(\phi'(a)) W_{hh}`; residual: :math:`I + \alpha
      \operatorname{diag}(\phi'(a)) W_{hh}`; leaky: :math:`(1 - \alpha) I + \alpha
      \operatorname{diag}(\phi'(a)) W_{hh}`; rate (the Euler step): :math:`(1 - dt) I + dt\,
      W_{hh} \operatorname{diag}(\phi'(h))`;
    * LSTM (THEORY.md section 7): :math:`\partial c'/\partial c = \operatorname{diag}(f)`,
      :math:`\partial c'/\partial h = \operatorname{diag}(c \odot \sigma'(a_f)) W_{hf} + \dots`,
      :math:`\partial h'/\partial c = \operatorname{diag}(o \odot \tanh'(c') \odot f)`, ...;
    * GRU (section 8): :math:`\operatorname{diag}(z) + \operatorname{diag}((h - n) \odot
      \sigma'(a_z)) W_{hz} + \dots` (torch), and the direct path diag(z) (diag(1 - z), chung).

    Parameters
    ----------
    kind : {"rnn", "irnn", "residual", "lstm", "gru", "leaky", "rate"}
        ``"rate"`` is the Euler step; the RK4 step's Jacobian (a chain through four stages)
        is derived with explicit symbols only, by :func:`symbolic_cell`.
    activation : str or None
        RNN, residual, leaky and rate: one of gradsim's activations, or None for a generic phi
        (printing only; :meth:`MatrixForm.as_explicit` needs a concrete one). Ignored for
        gated cells.
    variant : {"torch", "reset_before", "chung"}
    alpha : number, optional
        Residual and leaky only; None: the symbol alpha.
    n_hidden, n_input : int, optional
        None: the symbols N and I. Integers (at most :data:`MAX_EXPLICIT_N`) allow
        :meth:`MatrixForm.as_explicit`.
    dt : number, optional
        Rate only; None: the symbol dt.

    Returns
    -------
    MatrixForm
    """
    choice(kind, "kind", CELL_KINDS)
    if kind in _ODE_PARAMS:
        listed = ", ".join(repr(k) for k in _ODE_PARAMS)
        raise ValueError(
            f"`kind` must be a kind with recurrent weight matrices for matrix_form_jacobian; the "
            f"discretised-ODE kinds ({listed}) are derived with explicit symbols by symbolic_cell; got {kind!r}."
        )
    if kind in _MODERN_PARAMS:
        listed = ", ".join(repr(k) for k in _MODERN_PARAMS)
        raise ValueError(
            f"`kind` must be a kind with recurrent weight matrices for matrix_form_jacobian; the modern "
            f"diagonal kinds ({listed}) are derived with explicit symbols by symbolic_cell; got {kind!r}."
        )
    if activation is not None:
        choice(activation, "activation", tuple(ACTIVATIONS))
    choice(variant, "variant", GRU_VARIANTS)
    n = (
        sp.Symbol("N", integer=True, positive=True)
        if n_hidden is None
        else _explicit_size(n_hidden, "n_hidden", 1)
    )
    m = (
        sp.Symbol("I", integer=True, positive=True)
        if n_input is None
        else _explicit_size(n_input, "n_input", 0)
    )
    activation, variant, alpha = _options(kind, activation, variant, alpha)
    dt, _ = _rate_options(kind, dt, "euler")
    return _matrix_form(kind, activation, variant, alpha, n, m, dt)


@functools.cache
def _matrix_form(kind, activation, variant, alpha, n, m, dt=None) -> MatrixForm:
    def vec(name):
        return sp.MatrixSymbol(name, n, 1)

    sym = {"h": vec("h")}
    if m != 0:
        sym["x"] = sp.MatrixSymbol("x", m, 1)
    gates = _GATES[kind]
    tags = gates if kind in ("lstm", "gru") else ("h",)
    pre = {}
    for g in tags:
        sym[f"W_h{g}"] = sp.MatrixSymbol(f"W_h{g}", n, n)
        sym[f"b_h{g}"] = vec(f"b_h{g}")
        sym[f"b_i{g}"] = vec(f"b_i{g}")
        if m != 0:
            sym[f"W_i{g}"] = sp.MatrixSymbol(f"W_i{g}", n, m)

    def affine_x(g):
        out = sym[f"b_i{g}"]
        return sym[f"W_i{g}"] * sym["x"] + out if m != 0 else out

    def elementwise(fn, v):
        return ElementwiseApplyFunction(sp.Lambda(_D, fn(_D)), v)

    h = sym["h"]
    display = {}
    blocks = {}
    def activate(v):
        if activation == "linear":
            return v
        if activation is None:
            return elementwise(sp.Function("phi"), v)
        return elementwise(lambda d: _phi(activation, d), v)

    if kind in ("rnn", "irnn", "residual", "leaky"):
        a = sym["W_hh"] * h + sym["b_hh"] + affine_x("h")
        new = activate(a)
        display[a] = sp.MatrixSymbol("a", n, 1)
        if kind in ("residual", "leaky") and alpha is None:
            alpha = sp.Symbol("alpha", real=True)
        if kind == "residual":
            new = h + alpha * new
        elif kind == "leaky":
            new = (1 - alpha) * h + alpha * new
        update = {"h": new}
        blocks["h", "h"] = _matrix_jacobian(new, h)
    elif kind == "rate":  # the Euler step of dh/dt = -h + W_hh phi(h) + b_hh + W_ih x + b_ih
        if dt is None:
            dt = sp.Symbol("dt", positive=True)
        new = (1 - dt) * h + dt * (sym["W_hh"] * activate(h) + sym["b_hh"] + affine_x("h"))
        update = {"h": new}
        blocks["h", "h"] = _matrix_jacobian(new, h)
    elif kind == "lstm":
        sym["c"] = c = vec("c")
        gate = {}
        for g in gates:
            pre[g] = sym[f"W_h{g}"] * h + sym[f"b_h{g}"] + affine_x(g)
            gate[g] = elementwise(sp.tanh if g == "g" else sigmoid, pre[g])
        c_new = HadamardProduct(gate["f"], c) + HadamardProduct(gate["i"], gate["g"])
        h_new = HadamardProduct(gate["o"], elementwise(sp.tanh, c_new))
        update = {"h": h_new, "c": c_new}
        for out, expr in update.items():
            for inp in ("h", "c"):
                d = _matrix_jacobian(expr, sym[inp])
                blocks[out, inp] = sp.ZeroMatrix(n, n) if d is None else _merge_diagonals(d)
        display.update({pre[g]: vec(f"a_{g}") for g in gates})
        display.update({gate[g]: vec(g) for g in gates})
        display[c_new] = sp.MatrixSymbol("c'", n, 1)
    else:  # gru
        sym["skip"] = skip = sp.MatrixSymbol("h_skip", n, 1)
        pre["r"] = sym["W_hr"] * h + sym["b_hr"] + affine_x("r")
        pre["z"] = sym["W_hz"] * h + sym["b_hz"] + affine_x("z")
        r, z = elementwise(sigmoid, pre["r"]), elementwise(sigmoid, pre["z"])
        if variant == "torch":
            pre["n"] = affine_x("n") + HadamardProduct(r, sym["W_hn"] * h + sym["b_hn"])
        else:
            pre["n"] = affine_x("n") + sym["W_hn"] * HadamardProduct(r, h) + sym["b_hn"]
        cand = elementwise(sp.tanh, pre["n"])
        one = sp.OneMatrix(n, 1)
        keep, rest = (z, one - z) if variant != "chung" else (one - z, z)

        def new_state(h_skip):
            return HadamardProduct(keep, h_skip) + HadamardProduct(rest, cand)

        update = {"h": new_state(h)}
        blocks["h", "h"] = _merge_diagonals(_matrix_jacobian(update["h"], h))
        blocks["h", "skip"] = _merge_diagonals(_matrix_jacobian(new_state(skip), skip))
        display.update({pre[g]: vec(f"a_{g}") for g in gates})
        display.update({r: vec("r"), z: vec("z"), cand: vec("n")})
    if kind in ("rnn", "irnn", "residual", "leaky", "rate"):
        blocks = {k: _merge_diagonals(v) for k, v in blocks.items()}
    return MatrixForm(
        kind=kind,
        activation=activation,
        variant=variant,
        alpha=alpha,
        n_hidden=n,
        n_input=m,
        symbols=types.MappingProxyType(sym),
        update=types.MappingProxyType(update),
        blocks=types.MappingProxyType(blocks),
        display=types.MappingProxyType(display),
        dt=dt,
    )


# ------------------------------------------------------------------------------------------
# bounds
def activation_gamma(activation: str):
    r"""gamma = sup_a phi'(a), derived by calculus.

    phi' comes from sympy differentiation. For a smooth phi' the candidates are phi' at the real
    roots of phi'' = 0 (``solveset``) and the limits of phi' at +-infinity; gamma is their
    maximum. A constant phi' (linear) is its own maximum. ReLU's phi' is a step
    (``Heaviside``): gamma is the larger of its values on a < 0 and a > 0 (the value at the jump,
    a set of measure zero, does not matter for gradients: "1 almost everywhere").

    Returns
    -------
    sympy number
        1 (tanh, relu, linear) and ``Rational(1, 4)`` (sigmoid).
    """
    choice(activation, "activation", tuple(ACTIVATIONS))
    return _activation_gamma(activation)


@functools.cache
def _activation_gamma(activation: str):
    a = sp.Symbol("a", real=True)
    slope = _slope(activation, a).replace(sigmoid, lambda arg: 1 / (1 + sp.exp(-arg)))
    if not slope.has(a):
        return sp.nsimplify(slope)
    if slope.has(sp.Heaviside):
        p = sp.Symbol("p", positive=True)
        return sp.Max(slope.subs(a, p), slope.subs(a, -p))
    roots = sp.solveset(sp.diff(slope, a), a, sp.S.Reals)
    if not isinstance(roots, sp.FiniteSet):  # pragma: no cover - not reached for our activations
        return sp.calculus.util.maximum(slope, a, sp.S.Reals)
    candidates = [sp.simplify(slope.subs(a, r)) for r in roots]
    candidates += [sp.limit(slope, a, sp.oo), sp.limit(slope, a, -sp.oo)]
    return sp.Max(*candidates)


def pascanu_bound(gamma, norm_w=None, T=None):
    r"""Pascanu, Mikolov & Bengio's bound :math:`\|P_T\|_2 \le (\gamma \|W\|_2)^T`.

    Each one-step Jacobian diag(phi'(a_t)) W has norm at most gamma ||W||_2, and norms are
    submultiplicative. Vanishing is certain when gamma ||W||_2 < 1.

    Parameters
    ----------
    gamma : str or number or sympy expression
        An activation name (gamma derived by :func:`activation_gamma`) or the value.
    norm_w : number or sympy expression, optional
        The largest singular value of W_hh; None: the symbol :math:`\|W\|_2`.
    T : int or sympy Symbol, optional
        None: the symbol T.

    Returns
    -------
    sympy expression
    """
    if isinstance(gamma, str):
        gamma = activation_gamma(gamma)
    else:
        gamma = _nonnegative(gamma, "gamma")
    if norm_w is None:
        norm_w = sp.Symbol(_NORM_W, nonnegative=True)
    else:
        norm_w = _nonnegative(norm_w, "norm_w")
    if T is None:
        T = sp.Symbol("T", integer=True, positive=True)
    elif not isinstance(T, sp.Symbol):
        T = positive_int(T, "T", minimum=0)
    return (gamma * norm_w) ** T


def _nonnegative(value, name):
    if isinstance(value, sp.Basic) and not value.is_number:
        return value
    value = _exact(value, name)
    if value < 0:
        raise ValueError(f"`{name}` must be a non-negative number; got {value}.")
    return value


# ------------------------------------------------------------------------------------------
# unrolled products
@dataclass(frozen=True, eq=False)
class UnrolledProduct:
    r"""dh_T/dh_0 of a scalar RNN, :math:`h_t = \phi(w h_{t-1} + b_{hh} + u x_t + b_{ih})`.

    Attributes
    ----------
    activation : str
    T : int or sympy Symbol
    cell : SymbolicCell
        The one-unit RNN (symbols ``W_hh`` = w, ``W_ih`` = u, ``b_hh``, ``b_ih``, ``h``, ``x``).
    h0 : sympy Symbol
    x : tuple of sympy Symbol
        x_1 .. x_T (explicit T only).
    a : tuple of sympy Symbol or sympy IndexedBase
        The pre-activations a_1 .. a_T.
    product : sympy expression
        :math:`\prod_{t=1}^{T} w\, \phi'(a_t)` in terms of the a_t: an explicit product for an
        integer T, a ``sympy.Product`` for a symbolic T.
    preactivations : tuple of sympy expression or None
        a_t as functions of h_0, the inputs and the parameters (explicit T).
    derivative : sympy expression or None
        ``diff(h_T, h_0)`` of the T-fold composition (explicit T).
    """

    activation: str
    T: object
    cell: SymbolicCell
    h0: sp.Symbol
    x: tuple
    a: object
    product: sp.Expr
    preactivations: tuple | None
    derivative: sp.Expr | None

    def in_terms_of_h0(self) -> sp.Expr:
        """``product`` with every a_t replaced by its expression in h_0 and the inputs
        (explicit T only)."""
        if self.preactivations is None:
            raise ValueError(
                f"`T` must be an integer for an explicit unrolling; got the symbol {self.T}."
            )
        return self.product.xreplace(dict(zip(self.a, self.preactivations)))

    def verify(self) -> bool:
        """True when the closed-form product equals the derivative of the composition
        (checked by sympy: their difference simplifies to 0). Explicit T only."""
        closed = self.in_terms_of_h0()
        difference = self.derivative - closed
        return difference == 0 or sp.simplify(difference) == 0

    def latex(self) -> str:
        r"""``\frac{\partial h_T}{\partial h_0} = \prod ...`` (mathtext-compatible)."""
        lhs = rf"\frac{{\partial h_{{{to_latex(self.T)}}}}}{{\partial h_{{0}}}}"
        if isinstance(self.T, int):
            t = sp.Symbol("t", integer=True)
            a = sp.IndexedBase("a")
            closed = sp.Product(
                self.cell.params["weight_hh"][0] * _slope(self.activation, a[t]), (t, 1, self.T)
            )
            return f"{lhs} = {to_latex(closed)} = {to_latex(self.product)}"
        return f"{lhs} = {to_latex(self.product)}"

    def lambdify(self):
        """callable (h0, x, params) -> float: the product along the trajectory from h0 with
        inputs x (shape (T,) or (T, 1)); params a one-unit numeric RNN or a mapping of its arrays."""
        expr = self.in_terms_of_h0()
        args = (self.h0,) + self.x + self.cell.arguments[2:]
        raw = sp.lambdify(args, expr, modules=_LAMBDIFY_MODULES, cse=True)
        cell, steps = self.cell, self.T

        def evaluate(h0, x, params) -> float:
            xs = finite_array(x, "x").reshape(-1)
            if xs.shape != (steps,):
                raise ValueError(
                    f"`x` must have {steps} entries (one input per step); got shape {np.shape(x)}."
                )
            values = cell._values([h0], [0.0], params)[2:]
            return float(raw(float(finite_array(h0, "h0", shape=())), *xs, *values))

        return evaluate


def scalar_unrolled_product(T=None, activation: str = "tanh") -> UnrolledProduct:
    r"""The unrolled Jacobian product of a scalar RNN: :math:`\prod_{t=1}^{T} w\, \phi'(a_t)`.

    The closed form is built from the derived one-step Jacobian of the one-unit
    :func:`symbolic_cell` (w phi'(a)), and, for an integer T, checked against sympy's derivative
    of the T-fold composition h_T(h_0) (:meth:`UnrolledProduct.verify`).

    Parameters
    ----------
    T : int or sympy Symbol or None
        Integer 1 .. :data:`MAX_EXPLICIT_T`: explicit; a Symbol (None: T): a ``sympy.Product``.
    activation : {"tanh", "relu", "linear", "sigmoid"}

    Returns
    -------
    UnrolledProduct
    """
    choice(activation, "activation", tuple(ACTIVATIONS))
    T = _horizon(T)
    return _scalar_unrolled_product(T, activation)


@functools.cache
def _scalar_unrolled_product(T, activation) -> UnrolledProduct:
    cell = symbolic_cell("rnn", 1, 1, activation=activation)
    h, x = cell.state[0], cell.inputs[0]
    a_sym = sp.Symbol("a", real=True)
    pre = (
        cell.params["weight_hh"][0] * h
        + cell.params["bias_hh"][0]
        + cell.params["weight_ih"][0] * x
        + cell.params["bias_ih"][0]
    )
    # The derived one-step Jacobian, written in terms of its pre-activation a.
    step_jac = cell.jacobian()[0, 0].xreplace({pre: a_sym})
    if step_jac.has(h) or step_jac.has(x):
        raise RuntimeError(f"one-step Jacobian {step_jac} is not a function of the pre-activation")
    h0 = sp.Symbol("h_0", real=True)
    if not isinstance(T, int):
        t = sp.Symbol("t", integer=True, positive=True)
        a = sp.IndexedBase("a", real=True)
        product = sp.Product(step_jac.xreplace({a_sym: a[t]}), (t, 1, T))
        return UnrolledProduct(activation, T, cell, h0, (), a, product, None, None)
    xs = tuple(sp.Symbol(f"x_{t}", real=True) for t in range(1, T + 1))
    a = tuple(sp.Symbol(f"a_{t}", real=True) for t in range(1, T + 1))
    product = sp.Mul(*[step_jac.xreplace({a_sym: a_t}) for a_t in a])
    state, pres = h0, []
    for x_t in xs:
        pres.append(pre.xreplace({h: state, x: x_t}))
        state = cell.update[0].xreplace({h: state, x: x_t})
    derivative = _relu_convention(sp.diff(state, h0))
    return UnrolledProduct(activation, T, cell, h0, xs, a, product, tuple(pres), derivative)


def lstm_cell_path_product(T=None) -> sp.Expr:
    r"""The LSTM cell-path product :math:`\prod_{t=1}^{T} f_t`, :math:`f_t = \sigma(a_{f,t})`.

    Derived from the one-unit :func:`symbolic_cell` ("lstm"): its cell-path Jacobian dc'/dc is
    :math:`\sigma(a_f)` (for N units diag(f), so the product is diag of the elementwise product);
    the product over T steps is that block at each step's forget pre-activation a_{f,t}.

    Parameters
    ----------
    T : int or sympy Symbol or None
        Integer 1 .. :data:`MAX_EXPLICIT_T`: an explicit product of sigmoid(a_f_t);
        otherwise a ``sympy.Product`` over the IndexedBase ``a_f``.

    Returns
    -------
    sympy expression
    """
    T = _horizon(T)
    cell = symbolic_cell("lstm", 1, 1)
    block = cell.jacobian("cell")[0, 0]
    if not isinstance(block, sigmoid):
        raise RuntimeError(f"the LSTM cell-path block is {block}, expected sigmoid(a_f)")
    pre = block.args[0]
    if isinstance(T, int):
        return sp.Mul(
            *[block.xreplace({pre: sp.Symbol(f"a_f,{t}", real=True)}) for t in range(1, T + 1)]
        )
    t = sp.Symbol("t", integer=True, positive=True)
    return sp.Product(block.xreplace({pre: sp.IndexedBase("a_f", real=True)[t]}), (t, 1, T))


def zero_weight_limits(T=None) -> dict:
    r"""Products over T steps when every weight (recurrent and input) is zero.

    Derived by setting the weights of the one-unit symbolic cells to zero in their derived
    Jacobians and multiplying T identical steps (``sympy.Product(...).doit()``). The effective
    biases b_f = b_hf + b_if, b_z = b_hz + b_iz replace the two PyTorch biases.

    Returns
    -------
    dict str -> sympy expression
        ``"lstm_cell"``: :math:`\sigma(b_f)^T` (the cell path, THEORY.md section 7; memory time
        scale -1/log sigma(b_f)); ``"gru_direct"``: :math:`\sigma(b_z)^T` (torch and
        reset_before; at zero weights this is also the full Jacobian's product);
        ``"gru_chung_direct"``: :math:`(1 - \sigma(b_z))^T`.
    """
    T = _horizon(T)
    b_f, b_z = sp.Symbol("b_f", real=True), sp.Symbol("b_z", real=True)
    t = sp.Symbol("t", integer=True, positive=True)

    def limit(kind, path, variant, gate, b):
        cell = symbolic_cell(kind, 1, 1, variant=variant)
        zero = {s: 0 for name in ("weight_hh", "weight_ih") for s in cell.params[name]}
        k = _GATES[kind].index(gate)
        b_h, b_i = cell.params["bias_hh"][k], cell.params["bias_ih"][k]
        step = cell.jacobian(path)[0, 0].xreplace(zero).xreplace({b_i: b - b_h})
        return sp.Product(sp.simplify(step), (t, 1, T)).doit()

    return {
        "lstm_cell": limit("lstm", "cell", "torch", "f", b_f),
        "gru_direct": limit("gru", "direct", "torch", "z", b_z),
        "gru_chung_direct": limit("gru", "direct", "chung", "z", b_z),
    }


# ------------------------------------------------------------------------------------------
# the lecture notes' example
@dataclass(frozen=True, eq=False)
class ChainRuleExample:
    r"""The chain-rule product of the lecture notes, exact and simulated.

    Attributes
    ----------
    factors : tuple of sympy Rational
        The per-step slopes.
    product : sympy Rational
        Their product, derived as d h_T / d h_0 of the composition (exact).
    value : float
        ``float(product)``.
    simulated : float
        d h_T / d h_0 from the numeric layer (:func:`gradsim.jacobian_product` over a
        callable ``t -> RNN`` whose step t has weight ``factors[t]``).
    estimate : sympy Rational
        The notes' estimate (1/10)^n, every slope "about 0.1".
    activation : str
    """

    factors: tuple
    product: sp.Rational
    value: float
    simulated: float
    estimate: sp.Rational
    activation: str

    @property
    def relative_error(self) -> float:
        """|simulated - value| / |value| (nan for a zero product)."""
        return abs(self.simulated - self.value) / abs(self.value) if self.value != 0 else math.nan

    def latex(self) -> str:
        """``0.2 \\times 0.1 \\times ... = 6 \\times 10^{-9}`` (mathtext-compatible)."""
        factors = r" \times ".join(
            rf"\left({_decimal_latex(f)}\right)" if f < 0 else _decimal_latex(f)
            for f in self.factors
        )
        return (
            f"{factors} = {_decimal_latex(self.product)} \\approx {_decimal_latex(self.estimate)}"
        )


def _decimal_latex(q) -> str:
    """A number for display: 0.2, or 6 \\times 10^{-9} outside [0.01, 1000) (15 digits at most)."""
    value = float(q)
    if value == 0 or 1e-2 <= abs(value) < 1e3:
        return f"{value:.15g}"
    mantissa, exponent = f"{value:.14e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa} \\times 10^{{{int(exponent)}}}"


def chain_rule_example(factors=None, activation: str = "linear") -> ChainRuleExample:
    r"""The lecture notes' vanishing-gradient example: nine chain-rule factors of about 0.1.

    The notes (seed note 004_c529f0233c26f347, "chain rule in differentiation, slope at each
    step": :math:`(0.2) \times (0.1) \times (0.3) \times \dots` 9 times
    :math:`= (0.1)^9 = 10^{-9}`) give three slopes and an ellipsis. The default fills the six
    unnamed slopes with the notes' typical value 0.1, so the exact product is
    0.2 x 0.1 x 0.3 x 0.1^6 = 6e-9, and ``estimate`` is the notes' (0.1)^9 = 1e-9.

    Symbolically: the scalar recurrence :math:`h_t = \phi(w_t h_{t-1})` with per-step weights
    w_t is composed T times and differentiated by sympy at h_0 = 0, where phi'(0) = 1, so
    :math:`d h_T / d h_0 = \prod_t w_t`; substituting the factors gives an exact Rational.
    Numerically: the same recurrence as a callable ``t -> RNN`` through
    :func:`gradsim.jacobian_product`.

    Parameters
    ----------
    factors : sequence of numbers, optional
        The slopes w_1 .. w_T (1 <= T <= :data:`MAX_EXPLICIT_T`); floats are read by their
        decimal repr (0.2 is 1/5).
    activation : {"linear", "tanh"}
        Both have phi'(0) = 1, so the per-step slopes at the zero state are the factors.

    Returns
    -------
    ChainRuleExample
    """
    choice(activation, "activation", ("linear", "tanh"))
    if factors is None:
        factors = tuple(sp.Rational(f) for f in _CHAIN_RULE_FACTORS)
    else:
        if isinstance(factors, (str, bytes)) or not hasattr(factors, "__len__"):
            raise TypeError(f"`factors` must be a sequence of numbers; got {describe(factors)}.")
        if not 1 <= len(factors) <= MAX_EXPLICIT_T:
            raise ValueError(
                f"`factors` must have between 1 and {MAX_EXPLICIT_T} entries; got {len(factors)}."
            )
        factors = tuple(_exact(f, f"factors[{k}]") for k, f in enumerate(factors))
    steps = len(factors)
    w = [sp.Symbol(f"w_{t}", real=True) for t in range(1, steps + 1)]
    h0 = sp.Symbol("h_0", real=True)
    state = h0
    for w_t in w:
        state = _phi(activation, w_t * state)
    derivative = sp.diff(state, h0).xreplace({h0: 0})
    product = sp.nsimplify(derivative.xreplace(dict(zip(w, factors))))
    if not product.is_Rational:  # pragma: no cover - phi'(0) = 1 for both activations
        raise RuntimeError(f"the derived product {product} is not exact")

    weights = [np.array([[float(f)]]) for f in factors]

    def cell_at(t):
        return RNN(weights[t], activation=activation)

    log_scale, matrix = jacobian_product(cell_at, steps, state0=np.zeros(1))
    simulated = float(np.exp(log_scale) * matrix[0, 0])
    return ChainRuleExample(
        factors=factors,
        product=product,
        value=float(product),
        simulated=simulated,
        estimate=sp.Rational(1, 10) ** steps,
        activation=activation,
    )
