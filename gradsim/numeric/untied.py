"""Untied weights: a fresh, reproducible cell at every step."""

from __future__ import annotations

import numpy as np

from .._validate import as_rng, describe
from ..cells import Cell


def untied(make, rng=None):
    """A callable ``t -> Cell`` with fresh, reproducible weights at every step.

    Parameters
    ----------
    make : callable (rng) -> Cell
        Builds one cell from a Generator, e.g. ``lambda r: make_cell("rnn", 64, rng=r)``.
    rng : seed or Generator
        Root of the per-step seeds: step t uses ``SeedSequence(root, spawn_key=(t,))``, so the
        cell of step t is the same on every call and independent of the other steps.

    Returns
    -------
    callable int -> Cell
    """
    if not callable(make):
        raise TypeError(f"`make` must be a callable rng -> Cell; got {describe(make)}.")
    root = int(as_rng(rng).integers(2**63))

    def cell_at(t: int) -> Cell:
        return make(np.random.default_rng(np.random.SeedSequence(root, spawn_key=(int(t),))))

    return cell_at
