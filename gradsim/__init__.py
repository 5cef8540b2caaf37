"""gradsim: analysis and simulation of gradient dynamics in recurrent neural networks.

The whole public API is re-exported here by name.
"""

from .cells import ACTIVATIONS, CELL_KINDS, GRU, LSTM, RNN, Cell, ResidualRNN, make_cell
from .init import (
    INITIALISERS,
    chrono_bias,
    forget_gate_bias,
    gaussian,
    he_normal,
    he_uniform,
    identity,
    initialise,
    orthogonal,
    pytorch_uniform,
    xavier_normal,
    xavier_uniform,
)
from .products import (
    LyapunovSpectrum,
    gradient_norms,
    jacobian_product,
    log_singular_values,
    lyapunov_spectrum,
    unroll,
    untied,
)

from .runner import (
    Study,
    StudyResult,
    UsageError,
    config_hash,
    config_rng,
    expand_grid,
    load_study,
    make_executor,
    run_study,
)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "CELL_KINDS",
    "Cell",
    "GRU",
    "INITIALISERS",
    "LSTM",
    "LyapunovSpectrum",
    "RNN",
    "Study",
    "StudyResult",
    "UsageError",
    "config_hash",
    "config_rng",
    "expand_grid",
    "load_study",
    "make_executor",
    "run_study",
    "ResidualRNN",
    "chrono_bias",
    "forget_gate_bias",
    "gaussian",
    "gradient_norms",
    "he_normal",
    "he_uniform",
    "identity",
    "initialise",
    "jacobian_product",
    "log_singular_values",
    "lyapunov_spectrum",
    "make_cell",
    "orthogonal",
    "pytorch_uniform",
    "unroll",
    "untied",
    "xavier_normal",
    "xavier_uniform",
    "__version__",
]
