"""PyTorch and Keras weight import and export, reservoirpy reservoir import, and `gradsim analyze`
of a trained layer or a saved reservoir."""

from .weights import (
    from_torch,
    load_torch,
    to_state_dict,
    from_keras,
    load_keras_npz,
    load_weights,
    TORCH_NONLINEARITIES,
    KERAS_KINDS,
)
from .reservoirpy import from_reservoirpy, load_reservoir, RESERVOIRPY_ACTIVATIONS
from .analysis import (
    analyze,
    analyze_cell,
    plot_analysis,
    read_inputs,
    AnalysisResult,
    add_arguments,
    run,
    DEFAULT_STEPS,
)

__all__ = [
    "from_torch",
    "load_torch",
    "to_state_dict",
    "from_keras",
    "load_keras_npz",
    "load_weights",
    "TORCH_NONLINEARITIES",
    "KERAS_KINDS",
    "from_reservoirpy",
    "load_reservoir",
    "RESERVOIRPY_ACTIVATIONS",
    "analyze",
    "analyze_cell",
    "plot_analysis",
    "read_inputs",
    "AnalysisResult",
    "add_arguments",
    "run",
    "DEFAULT_STEPS",
]
