"""Tests of the symbolic layer: derived Jacobians against the numeric layer, exact bounds and
closed forms, the matrix (block) forms against the explicit derivation, LaTeX that matplotlib
mathtext parses, the lecture notes' chain-rule example, and the error messages.

Tolerances (each test says which applies):

* SYM_TOL = 1e-12, symbolic (lambdified) vs numeric Jacobians and steps. Both evaluate the same
  formulas in float64 with the same primitives (numpy tanh, scipy expit) but in a different
  order of operations (sympy's common-subexpression code vs numpy broadcasting and BLAS). With
  O(1) states and weights every entry is a sum of a few O(1) products, so the two differ by a
  few ulps (~1e-15); 1e-12 leaves three orders of margin while any wrong term, gate or sign is
  an O(0.1) error.
* Exact sympy identities (closed forms, matrix forms vs explicit) are compared exactly: the
  difference must expand to 0.
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
import sympy as sp
from matplotlib import mathtext
from scipy.special import expit
from sympy.matrices.expressions.diagonal import DiagMatrix

import gradsim as gs
from gradsim import symbolic as S
from gradsim.cells import ACTIVATIONS, GRU_VARIANTS

SYM_TOL = 1e-12
EPS = np.finfo(np.float64).eps  # 2.2e-16; unit roundoff u = EPS / 2

CONFIGS = (
    [("rnn", a, "torch") for a in ACTIVATIONS]
    + [("irnn", "relu", "torch")]
    + [("residual", a, "torch") for a in ACTIVATIONS]
    + [("lstm", "tanh", "torch")]
    + [("gru", "tanh", v) for v in GRU_VARIANTS]
)
CONFIG_IDS = [f"{k}-{a}-{v}" for k, a, v in CONFIGS]


def _config_cell(kind, activation, variant, n, m, seed):
    """A numeric cell with O(1) weights and biases (bias_std=0.5, so the biases matter)."""
    return gs.make_cell(
        kind, n, m, activation=activation, variant=variant, bias_std=0.5, alpha=0.7, rng=seed
    )


def _renders(latex: str) -> bool:
    """True when matplotlib mathtext parses and draws ``$latex$`` (it raises ValueError if not)."""
    buf = io.BytesIO()
    mathtext.math_to_image(f"${latex}$", buf, format="png")
    return buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def _is_zero(matrix) -> bool:
    return all(sp.expand(e) == 0 for e in matrix)


# ------------------------------------------------------------------------------------------
# explicit cells vs the numeric layer
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize(("kind", "activation", "variant"), CONFIGS, ids=CONFIG_IDS)
def test_derived_jacobian_equals_numeric(kind, activation, variant, n):
    # Input sizes 1, 2, 0 across N so that the input-free cell is covered too. SYM_TOL: see top.
    m = n % 3
    cell_sym = S.symbolic_cell(kind, n, m, activation=activation, variant=variant)
    step = cell_sym.lambdify_update()
    for seed in range(3):
        cell = _config_cell(kind, activation, variant, n, m, seed)
        rng = np.random.default_rng(1000 + seed)
        state = rng.standard_normal(cell.state_size)
        x = rng.standard_normal(m)
        np.testing.assert_allclose(
            step(state, x, cell), cell.step(state, x), rtol=SYM_TOL, atol=SYM_TOL
        )
        for path in cell_sym.paths:
            got = cell_sym.lambdify_jacobian(path)(state, x, cell)
            want = cell.jacobian(state, x, path)
            assert got.shape == want.shape == (cell.path_size(path),) * 2
            np.testing.assert_allclose(got, want, rtol=SYM_TOL, atol=SYM_TOL)


def test_paths_mirror_numeric_cells():
    for kind, activation, variant in CONFIGS:
        cell = _config_cell(kind, activation, variant, 2, 1, 0)
        assert S.symbolic_cell(kind, 2, 1, activation, variant).paths == cell.paths


def test_params_as_mapping_and_fixed_alpha():
    # A mapping of PyTorch-layout arrays works like the cell; a numeric alpha is built in.
    cell = gs.make_cell("residual", 2, 1, activation="tanh", alpha=0.5, bias_std=0.5, rng=3)
    sym = S.symbolic_cell("residual", 2, 1, activation="tanh", alpha=0.5)
    assert sym.alpha == sp.Rational(1, 2)
    params = {
        name: getattr(cell, name) for name in ("weight_hh", "weight_ih", "bias_hh", "bias_ih")
    }
    state, x = np.array([0.3, -0.8]), np.array([1.2])
    want = cell.jacobian(state, x)
    np.testing.assert_allclose(
        sym.lambdify_jacobian()(state, x, params), want, rtol=SYM_TOL, atol=SYM_TOL
    )
    np.testing.assert_allclose(
        sym.lambdify_jacobian()(state, x, cell), want, rtol=SYM_TOL, atol=SYM_TOL
    )
    other = dataclasses.replace(cell, alpha=0.3)
    with pytest.raises(ValueError, match=r"`params` must have alpha = 1/2 .*; got 0\.3\."):
        sym.lambdify_jacobian()(state, x, other)


def test_relu_derivative_at_zero_matches_numeric_convention():
    # IRNN at the zero state with zero bias and input: every pre-activation is exactly 0, where
    # sympy's Heaviside would give 1/2; the derived Jacobian uses relu'(0) = 0 like PyTorch.
    cell = gs.make_cell("irnn", 3, 1, rng=0)
    sym = S.symbolic_cell("irnn", 3, 1)
    got = sym.lambdify_jacobian()(np.zeros(3), np.zeros(1), cell)
    assert np.array_equal(got, cell.jacobian(np.zeros(3), np.zeros(1)))
    assert np.array_equal(got, np.zeros((3, 3)))
    steps = set().union(*(e.atoms(sp.Heaviside) for e in sym.jacobian()))
    assert len(steps) == 3 and all(h.args[1] == 0 for h in steps)  # one step per unit


def test_sigmoid_function_is_the_logistic_function():
    a = sp.Symbol("a", real=True)
    # Its derivative (fdiff) equals sympy's derivative of the exponential form.
    assert (
        sp.simplify(sp.diff(S.sigmoid(a), a).rewrite(sp.exp) - sp.diff(1 / (1 + sp.exp(-a)), a))
        == 0
    )
    assert S.sigmoid(0) == sp.Rational(1, 2)
    # Lambdified through scipy's expit: no overflow at large |a| (warnings are errors here).
    f = sp.lambdify(a, S.sigmoid(a), modules=[{"sigmoid": expit}, "numpy"])
    assert f(-1000.0) == 0.0 and f(1000.0) == 1.0


def test_jacobians_have_the_known_forms():
    # RNN: J_ij = W_ij phi'(a_i) -- derived, and equal to the textbook form entry by entry.
    cell = S.symbolic_cell("rnn", 2, 1, activation="tanh")
    a = (
        cell.params["weight_hh"] * cell.state
        + cell.params["bias_hh"]
        + cell.params["weight_ih"] * cell.inputs
        + cell.params["bias_ih"]
    )
    expected = sp.Matrix(
        2, 2, lambda i, j: cell.params["weight_hh"][i, j] * (1 - sp.tanh(a[i]) ** 2)
    )
    assert _is_zero(cell.jacobian() - expected)
    # LSTM cell path: diag(f), f = sigmoid(a_f).
    lstm = S.symbolic_cell("lstm", 2, 1)
    cell_block = lstm.jacobian("cell")
    assert cell_block[0, 1] == 0 and cell_block[1, 0] == 0
    assert all(isinstance(cell_block[i, i], S.sigmoid) for i in range(2))
    assert cell_block[1, 1].args[0].has(lstm.params["bias_hh"][3])  # row 4 = unit 2 of gate f
    # GRU direct path: diag(z) (torch), diag(1 - z) (chung).
    torch_direct = S.symbolic_cell("gru", 2, 1, variant="torch").jacobian("direct")
    chung_direct = S.symbolic_cell("gru", 2, 1, variant="chung").jacobian("direct")
    assert torch_direct[0, 1] == 0 and isinstance(torch_direct[0, 0], S.sigmoid)
    assert sp.expand(chung_direct[0, 0] + torch_direct[0, 0]) == 1


def test_symbolic_cell_is_cached_and_immutable():
    cell = S.symbolic_cell("lstm", 2, 1)
    assert S.symbolic_cell("lstm", 2, 1) is cell
    assert cell.state_size == 4 and cell.params["weight_hh"].shape == (8, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.kind = "gru"
    with pytest.raises(TypeError):
        cell.params["weight_hh"] = None


# ------------------------------------------------------------------------------------------
# bounds
def test_activation_gamma_is_exact():
    assert S.activation_gamma("sigmoid") == sp.Rational(1, 4)
    assert isinstance(S.activation_gamma("sigmoid"), sp.Rational)
    for name in ("tanh", "relu", "linear"):
        assert S.activation_gamma(name) == 1


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_gamma_matches_numeric_slope(name):
    # The numeric layer's phi' on a grid never exceeds gamma and gets within 1e-6 of it (the
    # grid step 1e-3 around the maximiser a = 0 costs O(step^2) for the smooth slopes; relu and
    # linear reach it exactly on a > 0).
    phi, dphi = ACTIVATIONS[name]
    a = np.linspace(-20.0, 20.0, 40_001)
    slope = dphi(a, phi(a))
    gamma = float(S.activation_gamma(name))
    assert slope.max() <= gamma
    assert slope.max() >= gamma - 1e-6


def test_pascanu_bound_expression_and_simulation():
    T, norm = sp.Symbol("T", integer=True, positive=True), sp.Symbol("s", positive=True)
    assert S.pascanu_bound("sigmoid", norm, T) == (norm / 4) ** T
    assert S.pascanu_bound(sp.Rational(1, 4), 2, 3) == sp.Rational(1, 8)
    # On simulated trajectories ||P_T||_2 <= (gamma ||W||_2)^T. The factor 1 + 1e-12 covers the
    # rounding of the product and of the norms (a few ulps per step over 12 steps).
    for activation in ("tanh", "sigmoid"):
        for seed in range(3):
            cell = gs.make_cell(
                "rnn", 4, 1, activation=activation, gain=1.5, bias_std=0.5, rng=seed
            )
            inputs = np.random.default_rng(seed).standard_normal((12, 1))
            log_scale, product = gs.jacobian_product(cell, inputs)
            measured = np.exp(log_scale) * np.linalg.norm(product, 2)
            bound = S.pascanu_bound(activation, np.linalg.norm(cell.weight_hh, 2), 12)
            assert measured <= float(bound) * (1 + 1e-12)
            assert measured > 0


# ------------------------------------------------------------------------------------------
# scalar unrolling
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_scalar_product_equals_derivative_of_composition(name):
    result = S.scalar_unrolled_product(3, name)
    assert result.verify()
    w = result.cell.params["weight_hh"][0]
    # w appears once per step: w^3 times the three slopes (nothing else for linear).
    assert result.product.as_powers_dict()[w] == 3
    assert len(result.product.free_symbols) == (1 if name == "linear" else 4)


def test_scalar_product_against_independent_composition():
    # A tanh composition written here from scratch (effective bias b), differentiated by sympy.
    result = S.scalar_unrolled_product(3, "tanh")
    w, u, b, h0 = sp.symbols("w u b h0", real=True)
    xs = sp.symbols("x1:4", real=True)
    h, factors = h0, []
    for x in xs:
        a = w * h + u * x + b
        factors.append(w * (1 - sp.tanh(a) ** 2))
        h = sp.tanh(a)
    cell = result.cell
    rename = {
        cell.params["weight_hh"][0]: w,
        cell.params["weight_ih"][0]: u,
        cell.params["bias_hh"][0]: b,
        cell.params["bias_ih"][0]: 0,
        result.h0: h0,
        **dict(zip(result.x, xs)),
    }
    assert sp.expand(result.in_terms_of_h0().xreplace(rename) - sp.diff(h, h0)) == 0
    assert sp.expand(sp.Mul(*factors) - sp.diff(h, h0)) == 0


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_scalar_product_equals_numeric_product(name):
    # The lambdified product along the trajectory vs the numeric layer's product of one-step
    # Jacobians: five factors, each a few ulps apart (SYM_TOL, see top). Positive weights and
    # inputs keep every ReLU pre-activation > 0, so its product is not trivially zero.
    result = S.scalar_unrolled_product(5, name)
    f = result.lambdify()
    for seed in range(3):
        rng = np.random.default_rng(seed)
        w, u, b = rng.uniform(0.5, 1.5, size=3)
        cell = gs.RNN([[w]], [[u]], [b], [0.1], activation=name)
        x = rng.uniform(0.1, 1.0, size=(5, 1))
        h0 = 0.4
        log_scale, product = gs.jacobian_product(cell, x, state0=[h0])
        want = float(np.exp(log_scale) * product[0, 0])
        assert want != 0.0
        assert f(h0, x, cell) == pytest.approx(want, rel=SYM_TOL, abs=0)


def test_scalar_product_symbolic_horizon():
    T = sp.Symbol("T", integer=True, positive=True)
    tanh = S.scalar_unrolled_product(T, "tanh")
    assert isinstance(tanh.product, sp.Product) and tanh.derivative is None
    linear = S.scalar_unrolled_product(None, "linear")
    assert linear.product.doit() == linear.cell.params["weight_hh"][0] ** T
    with pytest.raises(
        ValueError, match=r"`T` must be an integer for an explicit unrolling; got the symbol T"
    ):
        tanh.verify()


# ------------------------------------------------------------------------------------------
# LSTM cell path and zero-weight limits
def test_lstm_cell_path_product_against_simulation():
    # prod_t sigmoid(a_f,t) at the forget pre-activations of a simulated trajectory vs the
    # numeric cell-path product (six factors, a few ulps each: SYM_TOL).
    T = 6
    product = S.lstm_cell_path_product(T)
    a_f = sorted(product.free_symbols, key=lambda s: s.name)
    f = sp.lambdify(a_f, product, modules=[{"sigmoid": expit}, "numpy"])
    cell = gs.make_cell("lstm", 1, 1, bias_std=0.5, forget_bias=1.0, rng=4)
    x = np.random.default_rng(4).standard_normal((T, 1))
    states = gs.unroll(cell, x)
    pre_f = [
        cell.weight_hh[1, 0] * states[t, 0]
        + cell.bias_hh[1]
        + cell.weight_ih[1, 0] * x[t, 0]
        + cell.bias_ih[1]
        for t in range(T)
    ]
    log_scale, want = gs.jacobian_product(cell, x, path="cell")
    assert f(*pre_f) == pytest.approx(float(np.exp(log_scale) * want[0, 0]), rel=SYM_TOL)
    assert isinstance(S.lstm_cell_path_product(), sp.Product)


def test_zero_weight_limits():
    T = sp.Symbol("T", integer=True, positive=True)
    b_f, b_z = sp.Symbol("b_f", real=True), sp.Symbol("b_z", real=True)
    limits = S.zero_weight_limits()
    assert limits["lstm_cell"] == S.sigmoid(b_f) ** T
    assert limits["gru_direct"] == S.sigmoid(b_z) ** T
    assert sp.simplify(limits["gru_chung_direct"] - (1 - S.sigmoid(b_z)) ** T) == 0
    assert S.zero_weight_limits(3)["lstm_cell"] == S.sigmoid(b_f) ** 3


def test_zero_weight_limits_against_simulation():
    # Twenty identical factors: relative error <= 20 ulps-ish; 1e-13 is a safe bound.
    T, n = 20, 1
    bias_hh = np.array([0.2, 0.7, -0.3, 0.1])
    bias_ih = np.array([0.0, 0.4, 0.0, 0.0])  # effective b_f = 1.1
    lstm = gs.LSTM(np.zeros((4, 1)), np.zeros((4, 1)), bias_ih, bias_hh)
    x = np.random.default_rng(0).standard_normal((T, 1))
    limits = S.zero_weight_limits(T)
    b_f = sp.Symbol("b_f", real=True)
    want = float(limits["lstm_cell"].subs(b_f, 1.1).rewrite(sp.exp))
    log_scale, product = gs.jacobian_product(lstm, x, path="cell")
    assert np.exp(log_scale) * product[0, 0] == pytest.approx(want, rel=1e-13)
    b_z = sp.Symbol("b_z", real=True)
    bias = np.array([0.3, -0.6, 0.2])  # effective b_z = -0.6 + 0.25
    for variant, key in (("torch", "gru_direct"), ("chung", "gru_chung_direct")):
        gru = gs.GRU(
            np.zeros((3, n)), np.zeros((3, n)), np.array([0, 0.25, 0]), bias, variant=variant
        )
        want = float(limits[key].subs(b_z, -0.35).rewrite(sp.exp))
        for path in ("direct", "full"):
            log_scale, product = gs.jacobian_product(gru, x, state0=[0.5], path=path)
            assert np.exp(log_scale) * product[0, 0] == pytest.approx(want, rel=1e-13)


# ------------------------------------------------------------------------------------------
# matrix forms
MATRIX_CASES = [
    ("rnn", "tanh", "torch"),
    ("residual", "sigmoid", "torch"),
    ("rnn", "relu", "torch"),
    ("lstm", None, "torch"),
] + [("gru", None, v) for v in GRU_VARIANTS]


@pytest.mark.parametrize(("kind", "activation", "variant"), MATRIX_CASES)
def test_matrix_form_equals_explicit_derivation(kind, activation, variant):
    form = S.matrix_form_jacobian(kind, activation, variant, n_hidden=2, n_input=1)
    cell = S.symbolic_cell(kind, 2, 1, activation=activation or "tanh", variant=variant)
    for path in form.paths:
        assert _is_zero(form.as_explicit(path) - cell.jacobian(path)), path


def test_rnn_matrix_form_agrees_with_sympy_matrix_calculus():
    # sympy's own matrix derivative (denominator layout) of phi.(W h + b), transposed.
    form = S.matrix_form_jacobian("rnn", "tanh", n_hidden=2, n_input=1)
    native = form.update["h"].diff(form.symbols["h"]).T
    assert _is_zero(native.as_explicit() - form.jacobian().as_explicit())


def test_matrix_forms_read_as_in_theory():
    rnn = "\n".join(S.matrix_form_jacobian("rnn").latex())
    assert (
        r"\frac{\partial h'}{\partial h} = \operatorname{diag}\left(\phi'\left(a\right)\right) W_{hh}"
        in rnn
    )
    lstm = S.matrix_form_jacobian("lstm")
    forget_gate = next(k for k, v in lstm.display.items() if v.name == "f")
    assert lstm.blocks["c", "c"] == DiagMatrix(forget_gate)
    text = "\n".join(lstm.latex())
    assert r"\frac{\partial c'}{\partial c} = \operatorname{diag}\left(f\right)" in text
    assert (
        r"\operatorname{diag}\left(o \circ \left(1 - \tanh^{2}{\left(c' \right)}\right) \circ f\right)"
        in text
    )
    gru = "\n".join(S.matrix_form_jacobian("gru").latex())
    assert r"\operatorname{diag}\left(\left(h - n\right) \circ" in gru  # diag((h - n) s'(a_z)) W_hz
    chung = "\n".join(S.matrix_form_jacobian("gru", variant="chung").latex("direct"))
    assert r"\frac{\partial h'}{\partial h_{skip}} = \operatorname{diag}\left(1 - z\right)" in chung


# ------------------------------------------------------------------------------------------
# LaTeX
def test_latex_renders_with_mathtext():
    lines = []
    for kind, activation, variant in MATRIX_CASES + [("rnn", None, "torch")]:
        lines += S.matrix_form_jacobian(kind, activation, variant).latex()
    lines += S.symbolic_cell("rnn", 2, 1, activation="relu").latex_entries()[:2]
    lines += S.symbolic_cell("residual", 1, 1, activation="sigmoid").latex_entries("update")
    lines += S.symbolic_cell("gru", 1, 1).latex_entries(path="direct")
    lines += S.symbolic_cell("lstm", 1, 1).latex_entries(path="cell")
    lines += [
        S.scalar_unrolled_product(3, "tanh").latex(),
        S.scalar_unrolled_product(None, "relu").latex(),
    ]
    lines += [S.to_latex(S.pascanu_bound("sigmoid")), S.chain_rule_example().latex()]
    lines += [S.to_latex(v) for v in S.zero_weight_limits().values()]
    lines = list(dict.fromkeys(lines))  # the GRU variants share most lines; draw each once
    assert len(lines) > 40
    for line in lines:
        assert _renders(line), line


def test_full_latex_is_a_matrix_equation():
    cell = S.symbolic_cell("lstm", 1, 1)
    text = cell.latex()
    assert text.startswith(
        r"\frac{\partial \left(h', c'\right)}{\partial \left(h, c\right)} = \left[\begin{matrix}"
    )
    assert r"\sigma\left(W_{hf} h + W_{if} x + b_{hf} + b_{if}\right)" in cell.latex("update")


# ------------------------------------------------------------------------------------------
# the lecture notes' example (seed note 004_c529f0233c26f347)
def test_chain_rule_example_default():
    ex = S.chain_rule_example()
    assert ex.factors == tuple(sp.Rational(k, 10) for k in (2, 1, 3, 1, 1, 1, 1, 1, 1))
    assert ex.product == sp.Rational(3, 500_000_000) == sp.Mul(*ex.factors)
    assert ex.value == 6e-9
    assert ex.estimate == sp.Rational(1, 10**9)
    # Rounding bound: 9 factors rounded to float (u each) and 8 float multiplications (u each)
    # against float(product) (u): |rel err| <= 18 u = 9 EPS = 2.0e-15 (about the 1e-15 asked).
    assert ex.relative_error <= 9 * EPS
    assert ex.simulated == pytest.approx(6e-9, rel=9 * EPS)


def test_chain_rule_example_custom_factors_and_tanh():
    # Floats are read by their decimal repr: 0.1 is 1/10, not the nearest binary fraction.
    ex = S.chain_rule_example([0.5, 2, -0.25, sp.Rational(1, 3), 0.1], activation="tanh")
    assert ex.factors[-1] == sp.Rational(1, 10)
    assert ex.product == sp.Rational(-1, 120)
    # 5 factors rounded to float, 4 products, 1 final rounding: <= 10 u = 5 EPS.
    assert ex.relative_error <= 5 * EPS
    assert ex.latex().endswith(r"\approx 1 \times 10^{-5}")


# ------------------------------------------------------------------------------------------
# errors
@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (
            lambda: S.symbolic_cell("rnn", activation="elu"),
            ValueError,
            r"`activation` must be one of 'tanh', .*; got 'elu'\.",
        ),
        (
            lambda: S.symbolic_cell("rnn", 5),
            ValueError,
            r"`n_hidden` must be an integer between 1 and 4 .*N <= 4.*; got 5\.",
        ),
        (
            lambda: S.symbolic_cell("rnn", 2, 7),
            ValueError,
            r"`n_input` must be an integer between 0 and 4 .*; got 7\.",
        ),
        (
            lambda: S.symbolic_cell("rnn", 1.5),
            TypeError,
            r"`n_hidden` must be an integer >= 1; got 1\.5\.",
        ),
        (
            lambda: S.symbolic_cell("transformer"),
            ValueError,
            r"`kind` must be one of 'rnn', .*; got 'transformer'\.",
        ),
        (
            lambda: S.symbolic_cell("gru", variant="keras"),
            ValueError,
            r"`variant` must be one of .*; got 'keras'\.",
        ),
        (
            lambda: S.symbolic_cell("lstm", alpha=0.5),
            ValueError,
            r"`alpha` applies to kind='residual' or kind='leaky' only; got kind='lstm'\.",
        ),
        (
            lambda: S.symbolic_cell("residual", alpha=math.inf),
            ValueError,
            r"`alpha` must be a finite real number; got inf\.",
        ),
        (
            lambda: S.symbolic_cell("rnn").jacobian("cell"),
            ValueError,
            r"`path` must be one of 'full'; got 'cell'\.",
        ),
        (
            lambda: S.symbolic_cell("rnn").latex("loss"),
            ValueError,
            r"`what` must be one of 'jacobian', 'update'; got 'loss'\.",
        ),
        (
            lambda: S.activation_gamma("elu"),
            ValueError,
            r"`activation` must be one of .*; got 'elu'\.",
        ),
        (
            lambda: S.matrix_form_jacobian("lstm", n_hidden=9),
            ValueError,
            r"`n_hidden` must be an integer between 1 and 4 .*; got 9\.",
        ),
        (
            lambda: S.matrix_form_jacobian("lstm").as_explicit(),
            ValueError,
            r"`n_hidden` and `n_input` must be integers .*; got N and I\.",
        ),
        (
            lambda: S.matrix_form_jacobian("rnn", n_hidden=2, n_input=1).as_explicit(),
            ValueError,
            r"`activation` must be a concrete activation .*; got None\.",
        ),
        (
            lambda: S.scalar_unrolled_product(0),
            ValueError,
            r"`T` must be an integer between 1 and 32 .*; got 0\.",
        ),
        (
            lambda: S.scalar_unrolled_product(33),
            ValueError,
            r"`T` must be an integer between 1 and 32 .*; got 33\.",
        ),
        (
            lambda: S.scalar_unrolled_product("3"),
            TypeError,
            r"`T` must be an integer between 1 and 32 .*; got '3'\.",
        ),
        (lambda: S.lstm_cell_path_product(2.0), TypeError, r"`T` must be .*; got 2\.0\."),
        (
            lambda: S.pascanu_bound(-1),
            ValueError,
            r"`gamma` must be a non-negative number; got -1\.",
        ),
        (
            lambda: S.pascanu_bound("elu"),
            ValueError,
            r"`activation` must be one of .*; got 'elu'\.",
        ),
        (
            lambda: S.pascanu_bound(1, -2.5),
            ValueError,
            r"`norm_w` must be a non-negative number; got -5/2\.",
        ),
        (lambda: S.pascanu_bound(1, 1, -1), ValueError, r"`T` must be an integer >= 0; got -1\."),
        (
            lambda: S.chain_rule_example([]),
            ValueError,
            r"`factors` must have between 1 and 32 entries; got 0\.",
        ),
        (
            lambda: S.chain_rule_example("0.1"),
            TypeError,
            r"`factors` must be a sequence of numbers; got '0\.1'\.",
        ),
        (
            lambda: S.chain_rule_example([0.1, math.nan]),
            ValueError,
            r"`factors\[1\]` must be a finite real number; got nan\.",
        ),
        (
            lambda: S.chain_rule_example([0.1, "x"]),
            TypeError,
            r"`factors\[1\]` must be a finite real number; got 'x'\.",
        ),
        (
            lambda: S.chain_rule_example(activation="relu"),
            ValueError,
            r"`activation` must be one of 'linear', 'tanh'; got 'relu'\.",
        ),
    ],
)
def test_errors_name_argument_expectation_and_value(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_lambdified_argument_errors():
    sym = S.symbolic_cell("rnn", 2, 1)
    f = sym.lambdify_jacobian()
    cell = gs.make_cell("rnn", 2, 1, rng=0)
    lstm = gs.make_cell("lstm", 2, 1, rng=0)
    with pytest.raises(
        ValueError,
        match=r"`params` must be a numeric RNN\(n_hidden=2, n_input=1, activation='tanh'\) .*; got LSTM\(n_hidden=2, n_input=1\)\.",
    ):
        f(np.zeros(2), None, lstm)
    relu = gs.make_cell("rnn", 2, 1, activation="relu", rng=0)
    with pytest.raises(ValueError, match=r"got RNN\(n_hidden=2, n_input=1, activation='relu'\)\."):
        f(np.zeros(2), None, relu)
    with pytest.raises(ValueError, match=r"`state` must have shape \(2,\); got shape \(3,\)\."):
        f(np.zeros(3), None, cell)
    with pytest.raises(ValueError, match=r"`x` must have shape \(1,\); got shape \(2,\)\."):
        f(np.zeros(2), np.zeros(2), cell)
    with pytest.raises(
        TypeError, match=r"`params` must be a numeric gradsim cell or a mapping .*; got \[1, 2\]\."
    ):
        f(np.zeros(2), None, [1, 2])
    with pytest.raises(
        ValueError, match=r"`params` must contain the keys weight_hh, .*; got \['weight_hh'\]\."
    ):
        f(np.zeros(2), None, {"weight_hh": np.eye(2)})
    bad = {
        "weight_hh": np.eye(3),
        "weight_ih": np.zeros((2, 1)),
        "bias_hh": np.zeros(2),
        "bias_ih": np.zeros(2),
    }
    with pytest.raises(
        ValueError, match=r"`params\['weight_hh'\]` must have shape \(2, 2\); got shape \(3, 3\)\."
    ):
        f(np.zeros(2), None, bad)
    # x=None means zero input, as in the numeric cells.
    np.testing.assert_allclose(
        f(np.ones(2), None, cell), cell.jacobian(np.ones(2)), rtol=SYM_TOL, atol=SYM_TOL
    )
