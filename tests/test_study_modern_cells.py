"""The modern_cells study's findings hold on its quick grid.

Checked from the CSV's raw columns against values recomputed here from rebuilt networks (the
configuration's generator config_rng(config) draws the cell, by the study's ``build``, then the
inputs N(0, 1) of shape (t_max, 4)): the exact spectra from the cells' own Jacobians (products
of diagonals), not from the study's gate formulas.
"""

from __future__ import annotations

import importlib.util
import itertools
import math

import numpy as np
import pytest
from study_helpers import STUDIES, run_quick
from threadpoolctl import threadpool_limits

from gradsim import Estimate, Rate, unroll
from gradsim.workflow.runner import config_rng


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    with threadpool_limits(1):
        frame, summary = run_quick("modern_cells", tmp_path_factory.mktemp("modern_cells"))
    spec = importlib.util.spec_from_file_location("modern_cells_grid", STUDIES / "modern_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frame, summary, module


def _configs(grid):
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values))


def _rebuild(module, config):
    rng = config_rng(config)
    cell = module.build(config, rng)
    inputs = rng.normal(0.0, module.INPUT_STD, size=(int(config["t_max"]), module.N_INPUT))
    return cell, inputs


def _diagonal_logs(cell, inputs, t):
    """sum over steps s <= t of log|diag J_s| from the cell's own Jacobians (diagonal cells)."""
    states = unroll(cell, inputs[:t])
    with np.errstate(divide="ignore"):
        return sum(np.log(np.abs(np.diagonal(cell.jacobian(states[s], inputs[s]))))
                   for s in range(t))


def _rates(logs, t):
    logs = np.sort(logs)[::-1]
    return logs[0] / t, np.median(logs) / t, logs[-1] / t


def _rows(frame, config):
    rows = frame[(frame.cell == config["cell"]) & (frame.seed == config["seed"])]
    assert len(rows) == len(set(rows["T"])) > 0
    return rows


def test_diagonal_cells_equal_their_exact_spectra(quick):
    frame, _, module = quick
    checked = 0
    for config in _configs(module.QUICK_GRID):
        if config["cell"] not in ("lru", "mingru", "minlstm", "indrnn"):
            continue
        cell, inputs = _rebuild(module, config)
        for _, row in _rows(frame, config).iterrows():
            t = int(row["T"])
            if config["cell"] == "lru":
                # A constant block of scaled rotations: singular values |lambda_i|^t, each twice.
                want = _rates(t * np.repeat(np.log(np.abs(cell.eigenvalues)), 2), t)
            else:
                want = _rates(_diagonal_logs(cell, inputs, t), t)
            got = (row.top_per_step, row.median_per_step, row.bottom_per_step)
            exact = (row.exact_top, row.exact_median, row.exact_bottom)
            for g, e, w in zip(got, exact, want):
                if np.isneginf(w):  # IndRNN: a unit silent on some step, P_t's entry exactly 0
                    assert np.isneginf(g) and np.isneginf(e)
                    continue
                # Products of diagonal (rotation-block) Jacobians: log_singular_values is exact
                # to rounding (observed <= 2.2e-16 per step); 1e-12 per step covers t steps of
                # rounding (t eps / t) and the CSV's 12 significant digits on values <= 1.
                assert abs(g - w) <= 1e-12 and abs(e - w) <= 1e-12, (config, t, g, e, w)
            checked += 1
    assert checked == 4 * 2 * 2  # four cells, two seeds, two horizons


def test_singular_values_are_ordered(quick):
    frame, summary, _ = quick
    rows = frame[np.isfinite(frame.top_per_step)]
    assert len(rows) > 0
    assert (rows.top_per_step >= rows.median_per_step).all()
    assert (rows.median_per_step >= rows.bottom_per_step).all()
    assert "Top >= median >= bottom in every row" in summary["notes"]
    # Every cell but the ReLU IndRNN (exactly zero products) has finite spectra at every T.
    assert np.isfinite(frame[frame.cell != "indrnn"].bottom_per_step).all()


def test_antisymmetric_gradients_within_the_norm_bound(quick):
    frame, summary, module = quick
    for config in _configs(module.QUICK_GRID):
        if config["cell"] != "antisymmetric":
            continue
        cell, _ = _rebuild(module, config)
        # J = I + eps diag(tanh') A with 0 < tanh' <= 1: every singular value of J is within
        # [1 - eps ||A||, 1 + eps ||A||], so over t steps the gradient's log10 norm moves by at
        # most t log10(1 / (1 - eps ||A||)) (the larger side). A theorem, no tolerance.
        bound_per_step = -math.log10(1.0 - cell.eps * np.linalg.norm(cell.recurrent_matrix, 2))
        for _, row in _rows(frame, config).iterrows():
            assert row.grad_max_excursion <= row["T"] * bound_per_step
            assert abs(row.grad_log10_ratio) <= row.grad_max_excursion
        # ... and that bound is below 3 decades on the quick grid's 30 steps.
        assert 30 * bound_per_step < module.KEEP_DECADES
    kept = summary["antisymmetric RNN: gradients within 1e±3 over T=30"]
    assert isinstance(kept, Rate) and kept == 1.0 and kept.trials == 2


def test_summary_key_numbers(quick):
    frame, summary, module = quick
    last = frame[frame["T"] == 30]
    for kind, model in module.NAMES.items():
        top = summary[f"{model}: top Lyapunov exponent (per step)"]
        assert isinstance(top, Estimate)
        values = last[last.cell == kind].lyap_top
        if np.all(np.isfinite(values)):
            assert float(top) == pytest.approx(values.mean(), rel=1e-12)
        kept = summary[f"{model}: gradients within 1e±3 over T=30"]
        assert isinstance(kept, Rate)
        assert kept.successes == int((last[last.cell == kind].grad_max_excursion <= 3).sum())
    # The ReLU IndRNN at u ~ U(0, 1), zero bias: every unit falls silent within 30 steps of
    # N(0, 1) input in both seeds (recomputed in the exact-spectra test), so P_T = 0.
    assert summary["IndRNN (ReLU): P_T exactly 0 at T=30 (top exponent -inf)"] == 1.0
    # The minimal gated cells' exact columns are reproduced to rounding (the study's own gap).
    for model in ("LRU (ring 0.9-0.999)", "minGRU", "minLSTM"):
        assert summary[f"{model}: max |measured - exact| log singular value per step"] <= 1e-12
