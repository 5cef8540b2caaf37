"""The two training studies (BPTT), from their quick grids: horizon and clipping.

Each study's quick grid runs end to end (CSV, metadata, figure) through
gradsim.workflow.report.produce; the key numbers must carry their uncertainty (rates of seeds as
Rate, medians as Estimate, what the clip fixes as Exact), and the ensembles of simulate_batch
must give each configuration's own run. Training runs branch on rounding after many updates, so
the batch-equals-single checks use a few updates only, where rounding has not grown.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from gradsim.workflow.findings import Estimate, Exact, Rate
from gradsim.workflow.runner import config_rng
from study_helpers import STUDIES, run_quick


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Small matrices: extra BLAS threads only add contention (the runner pins one per config).
    with threadpool_limits(1):
        yield


def _module(name):
    spec = importlib.util.spec_from_file_location(f"_study_{name}", STUDIES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same_records(single, batch, rtol):
    """Equal records: numbers to ``rtol`` (NaN with NaN, inf with inf), the rest exactly."""
    assert len(single) == len(batch)
    for a, b in zip(single, batch):
        assert len(a) == len(b)
        for ra, rb in zip(a, b):
            assert ra.keys() == rb.keys()
            for key, value in ra.items():
                if isinstance(value, float):
                    assert np.allclose(value, rb[key], rtol=rtol, atol=0, equal_nan=True), key
                else:
                    assert value == rb[key], key


def test_horizon_quick_grid_findings(tmp_path):
    frame, summary = run_quick("horizon", tmp_path)
    rates = [v for k, v in summary.items() if k.startswith("success rate")]
    assert len(rates) == 4 and all(isinstance(r, Rate) and r.trials == 1 for r in rates)
    assert isinstance(summary["runs diverged"], Rate) and summary["runs diverged"].trials == 4
    drops = {k: v for k, v in summary.items() if "gradient drop" in k}
    assert len(drops) == 4 and all(isinstance(v, Estimate) for v in drops.values())
    # No threshold statistic of one seed among the key numbers.
    assert not any("longest T" in k for k in summary)
    # One seed: no Wilson interval clears 1/2 (1 of 1 has the interval 0.21-1), so every length
    # is "undecided" and the notes must not claim any.
    assert "solved at" not in summary["notes"] and "failed at" not in summary["notes"]
    # At the first update the tanh RNN is its initialisation, W orthogonal: each step back
    # multiplies dL/dh by W^T diag(1 - h^2), of norm <= 1, and the loss reads only the last
    # state, so ||dL/dh_t|| cannot grow with the steps back (a theorem; 1e-9 in log10 allows
    # the CSV's 12 digits and the rounding of the products).
    prof = frame[(frame.record == "profile") & (frame.model == "rnn") & (frame.at_update == "first")]
    for _, run in prof.groupby(["T", "seed"]):
        logs = run.sort_values("steps_back").log10_grad_norm.to_numpy()
        assert np.all(np.diff(logs) <= 1e-9)
    key = "RNN (tanh), orthogonal: median log10 gradient drop over 30 steps, first update"
    assert summary[key] < 0.0
    res = frame[frame.record == "result"]
    assert len(res) == 4 and set(res.updates_done) == {40}


def test_horizon_verdicts_are_wilson_not_half_the_seeds():
    horizon = _module("horizon")
    rates = pd.DataFrame({
        "model": ["rnn"] * 4, "T": [10, 25, 50, 100],
        "successes": [12, 9, 6, 0], "seeds": [12, 12, 12, 12],
    })
    # 12/12: interval 0.76-1 (above 1/2); 9/12: 0.47-0.91 (holds 1/2, although 3/4 of the seeds
    # succeed); 6/12: 0.25-0.75; 0/12: 0-0.24 (below).
    v = horizon.verdicts(rates)
    assert list(v.verdict) == ["solved", "undecided", "undecided", "failed"]
    assert horizon.longest_solved(rates, "rnn") == 10
    assert horizon.first_failed(rates, "rnn") == 100


def test_horizon_batch_is_each_configurations_own_run():
    horizon = _module("horizon")
    for model in ("rnn", "lstm_fb1"):
        configs = [dict(model=model, T=6, seed=s, n_hidden=6, n_updates=4) for s in range(3)]
        single = [horizon.simulate(c, config_rng(c, 0)) for c in configs]
        batch = horizon.simulate_batch(configs, [config_rng(c, 0) for c in configs])
        # Four updates: the members' shared BLAS calls differ from the lone runs' by rounding
        # (~1e-16), grown at most a few orders of magnitude; 1e-9 leaves room and is far below
        # any difference of draws (another seed changes every number at O(1)).
        _same_records(single, batch, rtol=1e-9)


def test_clipping_quick_grid_findings(tmp_path):
    frame, summary = run_quick("clipping", tmp_path)
    clipping = _module("clipping")
    res = frame[frame.record == "result"]
    # The CSV's rows are fixed by the grid: every 4th update and the last, for every run,
    # NaN after a divergence (the run stopped).
    n_updates = int(frame.n_updates.iloc[0])
    per_run = len(range(0, n_updates, 4)) + (1 if (n_updates - 1) % 4 else 0)
    assert (frame.record == "update").sum() == len(res) * per_run
    for key, value in summary.items():
        if key.endswith("(fraction of runs)"):
            assert isinstance(value, Rate)
        elif "median" in key:
            assert isinstance(value, Estimate)
    # Norm clipping rescales every clipped gradient to the threshold: exact to rounding.
    largest = summary["largest norm after norm clipping"]
    assert isinstance(largest, Exact)
    assert largest == pytest.approx(clipping.CLIP_NORM, rel=1e-9)
    # Gain 4 without clipping diverges (at update ~200 in every seed seen, well inside the
    # quick grid's 300 updates); no norm-clipped run does.
    assert summary["gain 4, no clipping: diverged (fraction of runs)"] == 1.0
    assert summary["gain 4, norm clipping: diverged (fraction of runs)"] == 0.0
    diverged = res[res.diverged.astype(str).str.lower() == "true"]
    after = frame[(frame.record == "update") & (frame.gain == 4.0) & (frame.clipping == "none")]
    assert after[after["update"] > int(diverged.diverged_at.max())].loss.isna().all()
    assert "95% CI" in summary["notes"]


def test_clipping_batch_is_each_configurations_own_run():
    clipping = _module("clipping")
    for clip in ("none", "norm", "value"):
        configs = [dict(gain=g, clipping=clip, seed=s, T=10, n_hidden=8, n_updates=6)
                   for g in (0.5, 1.0, 4.0) for s in range(2)]
        single = [clipping.simulate(c, config_rng(c, 0)) for c in configs]
        batch = clipping.simulate_batch(configs, [config_rng(c, 0) for c in configs])
        # Six updates at gains 0.5 and 1: rounding has not grown (see the horizon test for the
        # tolerance). At gain 4 the gradient explodes (||W||_2 ~ 8 over 10 steps), and so does
        # the rounding of the shared BLAS calls: 1e-6 after six updates (seen: 1e-6 relative).
        _same_records(single[:4], batch[:4], rtol=1e-9)
        _same_records(single[4:], batch[4:], rtol=1e-4)
