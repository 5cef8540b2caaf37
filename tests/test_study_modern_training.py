"""The modern_training study's quick grid: rows, baselines, success and summary consistent.

Checked from the CSV's raw columns only, with nothing that can flip with the seeds or the BLAS
kernels: every configuration has one complete row; the baseline column is the task's
closed-form memoryless baseline (adding: 1/6; copy with 8 symbols and 10 to copy: 10 log 8 /
(T + 20)), recomputed here; the ratio and the success flag follow from the stored loss and
baseline; the summary's rates and medians are recomputed from the rows.

Tolerances: the CSV keeps 12 significant digits (relative rounding <= 5e-13 per value), so a
ratio recomputed from two rounded values agrees to ~1.5e-12 relative; 1e-11 leaves a margin.
"""

from __future__ import annotations

import importlib.util
import itertools
import math

import numpy as np
import pytest
from study_helpers import STUDIES, run_quick
from threadpoolctl import threadpool_limits

from gradsim.workflow.findings import Estimate, Rate

RTOL = 1e-11


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    with threadpool_limits(1):
        frame, summary = run_quick("modern_training", tmp_path_factory.mktemp("modern_training"))
    spec = importlib.util.spec_from_file_location("modern_training_grid",
                                                  STUDIES / "modern_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frame, summary, module


def _flag(column):
    values = column.astype(str).str.lower()
    assert values.isin(["true", "false"]).all()
    return (values == "true").to_numpy()


def _closed_form_baseline(task, T):
    if task == "adding":
        return 1.0 / 6.0
    assert task == "copy"
    return 10 * math.log(8) / (T + 20)


def test_rows_complete_and_finite(quick):
    frame, _, module = quick
    grid = module.QUICK_GRID
    keys = list(grid)
    expected = set(itertools.product(*(grid[k] for k in keys)))
    seen = [tuple(row) for row in frame[keys].itertuples(index=False)]
    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected
    diverged = _flag(frame.diverged)
    loss = frame.eval_loss.to_numpy(float)
    # A finite positive held-out loss for every run that did not diverge; the full budget done.
    assert np.all(np.isfinite(loss[~diverged])) and np.all(loss > 0)
    done = frame.updates_done.to_numpy(int)
    assert np.all(done[~diverged] == frame.n_updates.to_numpy(int)[~diverged])
    assert np.all(np.isfinite(frame[["train_loss_first_10", "train_loss_last_10"]]
                              .to_numpy(float)[~diverged]))


def test_baseline_is_the_closed_form(quick):
    frame, _, _ = quick
    expected = [_closed_form_baseline(r.task, int(r.T)) for r in frame.itertuples()]
    np.testing.assert_allclose(frame.baseline.to_numpy(float), expected, rtol=RTOL, atol=0)


def test_ratio_and_success_follow_from_the_stored_losses(quick):
    frame, _, module = quick
    loss, base = frame.eval_loss.to_numpy(float), frame.baseline.to_numpy(float)
    np.testing.assert_allclose(frame.ratio_to_baseline.to_numpy(float), loss / base,
                               rtol=RTOL, atol=0)
    # Success: loss at most a fifth of the baseline and no divergence.
    assert module.MARGIN == 0.8
    expected = (loss <= (1 - module.MARGIN) * base * (1 + RTOL)) & ~_flag(frame.diverged)
    assert np.array_equal(_flag(frame.success), expected)


def test_summary_recomputed_from_the_rows(quick):
    frame, summary, module = quick
    success = _flag(frame.success)
    n_rates = 0
    for (cell, task, T), idx in frame.groupby(["cell", "task", "T"]).groups.items():
        label = module.CELLS[cell][0]
        rate = summary[f"success rate, {label}, {task}, T={T}"]
        assert isinstance(rate, Rate)
        rows = frame.index.get_indexer(idx)
        assert (rate.successes, rate.trials) == (int(success[rows].sum()), len(rows))
        median = summary[f"median loss / baseline, {label}, {task}, T={T}"]
        assert isinstance(median, Estimate)
        assert float(median) == pytest.approx(
            np.median(frame.ratio_to_baseline.to_numpy(float)[rows]), rel=RTOL)
        n_rates += 1
    assert n_rates == len(module.QUICK_GRID["cell"]) * len(module.QUICK_GRID["task"]) * len(
        module.QUICK_GRID["T"])
    diverged = summary["runs diverged"]
    assert (diverged.successes, diverged.trials) == (int(_flag(frame.diverged).sum()), len(frame))
    # The note's longest T per cell and task: the largest T with at least half the seeds
    # successful, recomputed here.
    for cell in module.QUICK_GRID["cell"]:
        for task in module.QUICK_GRID["task"]:
            sub = frame[(frame.cell == cell) & (frame.task == task)]
            ok = [int(T) for T, g in sub.groupby("T")
                  if 2 * _flag(g.success).sum() >= len(g)]
            best = max(ok) if ok else "none"
            assert f"{module.CELLS[cell][0]}: " in summary["notes"]
            assert f"{task} {best}" in summary["notes"].split(f"{module.CELLS[cell][0]}: ")[1]


def test_unknown_task_is_a_clear_error(quick):
    _, _, module = quick
    with pytest.raises(ValueError, match=r"`task` must be one of .*'copy'.*got 'sort'"):
        module.make_task("sort", 10)
