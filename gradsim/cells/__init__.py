"""Recurrent cells: immutable parameter holders with pure step, Jacobian and VJP functions.

Parameters use PyTorch's layout and names (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``; gates stacked i, f, g, o for the LSTM and r, z, n for the GRU). One module per
family; :mod:`gradsim.cells.base` holds the protocol every cell follows.
"""

from .base import ACTIVATIONS, Cell
from .classic import RNN, ResidualRNN
from .ensemble import stack_cells
from .factory import CELL_KINDS, make_cell
from .gru import GRU, GRU_VARIANTS
from .lstm import LSTM
from .modern import CORNN_DAMPING, LRU, AntisymmetricRNN, CoRNN, IndRNN, MinGRU, MinLSTM, mingru_scan
from .rate import RATE_INTEGRATORS, LeakyRNN, RateRNN
from .stacked import StackedCell

__all__ = ["Cell", "RNN", "ResidualRNN", "LSTM", "GRU", "make_cell", "ACTIVATIONS", "CELL_KINDS", "GRU_VARIANTS", "stack_cells",
           "LeakyRNN", "RateRNN", "RATE_INTEGRATORS",
           "LRU", "MinGRU", "MinLSTM", "IndRNN", "mingru_scan",
           "AntisymmetricRNN", "CoRNN", "CORNN_DAMPING", "StackedCell"]
