"""The flossing study's quick grid: rows, baselines, flags, bounds and summary consistent.

Checked from the CSV's raw columns with nothing that can flip with the seeds or BLAS kernels:
every configuration has its two probe rows and two training rows per delay; the baseline is the
closed form (T - d) log 2 / T with T = 2d + SCORED; the solved / above-chance flags follow from
the stored accuracies; the gradient's log gain over the horizon is at most the mean log s_1 of
the same products (||P^T u|| <= s_1 ||u||, per sequence, so for their means too), and the
spread log s_1 - log s_k is non-negative; the summary's rates and medians are recomputed from
the rows. The accuracy helper is checked against chance: a model whose two logits are equal
predicts class 0 everywhere, and scores the fraction of zero targets, a fair bit's mean.

Tolerances: the CSV keeps 12 significant digits, so 1e-9 absolute covers values recomputed from
rounded entries of size <= 100.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from study_helpers import STUDIES, run_quick
from threadpoolctl import threadpool_limits

import gradsim as gs
from gradsim.training.backprop import init_model
from gradsim.workflow.findings import Estimate, Rate


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    with threadpool_limits(1):
        frame, summary = run_quick("flossing", tmp_path_factory.mktemp("flossing"))
    spec = importlib.util.spec_from_file_location("flossing_grid", STUDIES / "flossing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frame, summary, module


def _flag(column):
    values = column.astype(str).str.lower()
    assert values.isin(["true", "false"]).all()
    return (values == "true").to_numpy()


def test_rows_complete(quick):
    frame, _, module = quick
    grid = module.QUICK_GRID
    delays = module.parse_delays(grid["delays"][0])
    for cell in grid["cell"]:
        for seed in grid["seed"]:
            sub = frame[(frame.cell == cell) & (frame.seed == seed)]
            probes, train = sub[sub.kind == "probe"], sub[sub.kind == "train"]
            assert sorted(_flag(probes.flossed)) == [False, True]
            assert sorted(zip(train.delay, _flag(train.flossed))) == sorted(
                (d, f) for d in delays for f in (False, True))
    assert len(frame) == len(grid["cell"]) * len(grid["seed"]) * (2 + 2 * len(delays))


def test_baseline_length_and_flags(quick):
    frame, _, module = quick
    train = frame[frame.kind == "train"]
    d, T = train.delay.to_numpy(int), train["T"].to_numpy(int)
    assert np.array_equal(T, 2 * d + module.SCORED)
    np.testing.assert_allclose(train.baseline.to_numpy(float), (T - d) * math.log(2) / T, rtol=1e-11)
    acc, diverged = train.accuracy.to_numpy(float), _flag(train.diverged)
    assert np.all((acc >= 0) & (acc <= 1))
    assert np.array_equal(_flag(train.success), (acc >= module.SUCCESS_ACCURACY) & ~diverged)
    assert np.array_equal(_flag(train.above_chance), (acc >= module.ABOVE_CHANCE) & ~diverged)
    assert np.all(np.isfinite(train.first_grad_norm.to_numpy(float)))


def test_probe_bounds(quick):
    frame, _, _ = quick
    probes = frame[frame.kind == "probe"]
    gain, top = probes.log_grad_gain.to_numpy(float), probes.log_sv_1.to_numpy(float)
    assert np.all(gain <= top + 1e-9)
    assert np.all(probes.log_sv_spread.to_numpy(float) >= -1e-9)
    lam1, lamk = probes.lambda_1.to_numpy(float), probes.lambda_k.to_numpy(float)
    assert np.all(lam1 >= lamk - 1e-12) and np.all(probes.lambda_1_se.to_numpy(float) > 0)
    # The flossing loss of the run is stored on both rows of a (cell, seed), and decreased.
    first, last = probes.floss_loss_first.to_numpy(float), probes.floss_loss_last.to_numpy(float)
    assert np.all(last < first)


def test_summary_recomputed_from_the_rows(quick):
    frame, summary, module = quick
    train = frame[frame.kind == "train"]
    count = 0
    for (cell, d, flag), idx in train.groupby(["cell", "delay", "flossed"]).groups.items():
        rows = train.loc[idx]
        label = module.CELLS[cell][0]
        tag = "flossed" if str(flag).lower() == "true" else "not flossed"
        for key, column in (("solved rate", "success"), ("above-chance rate", "above_chance")):
            rate = summary[f"{key}, {label}, d={d}, {tag}"]
            assert isinstance(rate, Rate)
            assert (rate.successes, rate.trials) == (int(_flag(rows[column]).sum()), len(rows))
        median = summary[f"median accuracy, {label}, d={d}, {tag}"]
        assert isinstance(median, Estimate)
        assert float(median) == pytest.approx(np.median(rows.accuracy.to_numpy(float)), rel=1e-11)
        count += 1
    assert count == len(module.QUICK_GRID["cell"]) * 2 * len(module.parse_delays(module.QUICK_GRID["delays"][0]))
    probes = frame[frame.kind == "probe"]
    for cell in module.QUICK_GRID["cell"]:
        for flag, tag in ((False, "not flossed"), (True, "flossed")):
            sub = probes[(probes.cell == cell) & (_flag(probes.flossed) == flag)]
            value = summary[f"lambda_1, {module.CELLS[cell][0]}, {tag}"]
            assert isinstance(value, Estimate)
            assert float(value) == pytest.approx(sub.lambda_1.mean(), rel=1e-11)


def test_accuracy_of_a_constant_model_is_chance():
    # Equal logits -> argmax 0 everywhere -> accuracy = fraction of zero targets on t >= 2d,
    # 500 sequences x 20 steps of fair bits: sd 0.5 / 100 = 0.005, 5 sd allowed.
    spec = importlib.util.spec_from_file_location("flossing_grid2", STUDIES / "flossing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cell = gs.make_cell("rnn", 4, 1, rng=0)
    model = init_model(cell, 2, rng=0)
    params = dict(model.params)
    params["weight_out"] = np.zeros_like(params["weight_out"])
    params["bias_out"] = np.zeros_like(params["bias_out"])
    model = model.with_params(params)
    task = module.task_for(5)
    acc = module.scored_accuracy(model, task, 5, np.random.default_rng(3))
    inputs, targets = task.sample(module.EVAL_SIZE, np.random.default_rng(3))
    assert acc == np.mean(targets[:, 10:] == 0)
    assert abs(acc - 0.5) < 5 * 0.005


def test_bad_configuration_is_a_clear_error():
    spec = importlib.util.spec_from_file_location("flossing_grid3", STUDIES / "flossing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ValueError, match=r"^`delays` must be increasing positive integers; got '8 4'\.$"):
        module.parse_delays("8 4")
    with pytest.raises(ValueError, match=r"^`delays` must be positive integers separated by spaces; got 'a'\.$"):
        module.parse_delays("a")
    with pytest.raises(ValueError, match=r"^`cell` must be one of \['gru', 'lstm', 'rnn'\]; got 'lru'\.$"):
        module.simulate({"cell": "lru", "delays": "2", "n_hidden": 4, "k": 2, "n_updates": 1,
                         "floss_updates": 1}, np.random.default_rng(0))
