"""The QR planner's two forms agree, and an ensemble member's result does not depend on its
partners (gradsim.numeric.qr).

A member of an ensemble must give the same bits whatever else shares its ensemble: the runner's
promise that adding a grid point never changes another configuration's rows rests on it. Thin
frames (a few leading exponents) are factored in stacked QRs on power-of-two schedules, planned
one member at a time (``_plan``) or all at once (``_plan_many``) depending on how many are due,
so the two forms must be the same function.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradsim as gs
from gradsim.numeric.qr import _plan, _plan_many

rates = st.one_of(
    st.floats(min_value=0.0, max_value=50.0, allow_nan=False),
    st.floats(min_value=1e-12, max_value=1e-3),
    st.sampled_from([0.0, math.inf, math.nan, 8.8, 17.6, 4.4, 0.275]),
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(rates, rates), min_size=1, max_size=12))
def test_plan_many_is_plan_element_by_element(pairs):
    loss, log = (np.array(column, dtype=float) for column in zip(*pairs))
    intervals, cholesky = _plan_many(loss, log)
    for i, (a, b) in enumerate(pairs):
        steps, kernel = _plan(a, b)
        assert (int(intervals[i]), bool(cholesky[i])) == (steps, kernel == "cholesky"), (a, b)


@pytest.mark.parametrize("kind, options", [
    ("rnn", {"gain": 1.5}), ("lstm", {"forget_bias": 1.0}), ("gru", {"bias_std": 0.3}),
])
@pytest.mark.parametrize("k", [1, 2, None])
def test_a_members_spectrum_does_not_depend_on_its_partners(kind, options, k):
    # Members 0..11 of one draw, in ensembles of different sizes and orders: member 3's exponents
    # and block estimates must be the same bits in each, and equal to its lone run's. Twelve
    # members make more than _FEW due at once, so both planner forms are exercised.
    cells = [gs.make_cell(kind, 12, 2, rng=seed, **options) for seed in range(12)]
    x = np.random.default_rng(0).standard_normal((300, 2))
    alone = gs.lyapunov_spectrum(cells[3], x, k=k, rng=4)
    for members in ([3], [3, 5], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [11, 3, 7]):
        result = gs.lyapunov_spectrum(gs.stack_cells([cells[m] for m in members]), x, k=k, rng=4)
        i = members.index(3)
        assert np.array_equal(result.exponents[i], alone.exponents), members
        assert np.array_equal(result.block_exponents[:, i], alone.block_exponents), members
