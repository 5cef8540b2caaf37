"""The symbolic layer (sympy): update equations, Jacobians derived by differentiation, unrolled
products, bounds and LaTeX."""

from .derivations import (
    MAX_EXPLICIT_N,
    MAX_EXPLICIT_T,
    ChainRuleExample,
    MatrixForm,
    SymbolicCell,
    UnrolledProduct,
    activation_gamma,
    chain_rule_example,
    lstm_cell_path_product,
    matrix_form_jacobian,
    pascanu_bound,
    scalar_unrolled_product,
    sigmoid,
    symbolic_cell,
    to_latex,
    zero_weight_limits,
)

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
