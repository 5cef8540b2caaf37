"""Ensembles: many networks of one kind, size and options, evaluated in one pass.

An ensemble is an ordinary cell whose parameter arrays carry leading batch dimensions
(``weight_hh`` of shape ``(B, N, N)``); ``cell.batch_shape == (B,)`` and ``cell[i]`` is member
i. Every numeric function treats the members as a leading batch, so B small networks cost a
few stacked BLAS calls per step instead of B Python loops.
"""

from __future__ import annotations

import numpy as np

from .._validate import describe
from .base import Cell

__all__ = ["stack_cells"]


def stack_cells(cells) -> Cell:
    """One ensemble from single cells (or from ensembles of one batch shape).

    Parameters
    ----------
    cells : sequence of Cell
        All of one class, with equal sizes (``n_hidden``, ``n_input``), equal options
        (activation, variant, alpha, ...) and equal batch shapes.

    Returns
    -------
    Cell
        Of the members' class, with ``batch_shape == (len(cells),) + cells[0].batch_shape``;
        ``result[i]`` holds the same parameters as ``cells[i]``.

    Examples
    --------
    >>> import gradsim as gs
    >>> ens = gs.stack_cells([gs.make_cell("rnn", 8, rng=seed) for seed in range(4)])
    >>> ens.batch_shape
    (4,)
    """
    if isinstance(cells, Cell):
        raise TypeError("`cells` must be a sequence of Cells; got a single Cell (it is already one network).")
    try:
        cells = list(cells)
    except TypeError:
        raise TypeError(f"`cells` must be a sequence of Cells; got {describe(cells)}.") from None
    if not cells:
        raise ValueError("`cells` must hold at least one Cell; got an empty sequence.")
    first = cells[0]
    for i, cell in enumerate(cells):
        if not isinstance(cell, Cell):
            raise TypeError(f"`cells` must hold only Cells; item {i} is {describe(cell)}.")
        if type(cell) is not type(first):
            raise ValueError(
                f"`cells` must all be of one kind; item 0 is {type(first).__name__}, item {i} is "
                f"{type(cell).__name__}."
            )
        sizes, sizes_i = _sizes(first), _sizes(cell)
        if sizes != sizes_i:
            raise ValueError(
                f"`cells` must all have one size; item 0 has {_show(sizes)}, item {i} has {_show(sizes_i)}."
            )
        options, options_i = first.options(), cell.options()
        for name, value in options.items():
            if options_i[name] != value:
                raise ValueError(
                    f"`cells` must all have the same {name}; item 0 has {name}={value!r}, item {i} has "
                    f"{name}={options_i[name]!r}."
                )
    stacked = {
        name: np.stack([getattr(cell, name) for cell in cells]) for name in first.parameter_names
    }
    return type(first)(**stacked, **first.options())


def _sizes(cell: Cell) -> dict:
    return {"n_hidden": cell.n_hidden, "n_input": cell.n_input, "batch_shape": cell.batch_shape}


def _show(sizes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())
