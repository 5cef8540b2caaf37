"""The rate_published study's quick grid: relations that hold exactly between its columns.

The quick grid's networks (N = 16, 32) are small enough that some settle on a fixed point or a
cycle, so nothing here assumes chaos; every check is a theorem about the leading N/4 exponents
of one network (descending, per unit time = per step / dt) or an identity of the summary's
arithmetic, recomputed from the CSV's raw columns. The CSV keeps 12 significant digits, so
every comparison between columns allows a relative rounding of RTOL = 1e-10 (with ATOL = 1e-12
for values that are exactly 0): far below any violation, far above the rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from study_helpers import run_quick
from threadpoolctl import threadpool_limits

from gradsim import Estimate, Exact, Rate
from gradsim.bench.rate import CLARK_FLOW

RTOL = 1e-10
ATOL = 1e-12


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    with threadpool_limits(1):
        return run_quick("rate_published", tmp_path_factory.mktemp("rate_published"))


def _le(a, b):
    """a <= b up to the CSV's rounding."""
    return np.all(np.asarray(a) <= np.asarray(b) + RTOL * np.abs(np.asarray(b)) + ATOL)


def test_rows_and_counts(quick):
    frame, _ = quick
    assert set(frame.gain) == set(CLARK_FLOW)
    assert (frame.k == frame.n_hidden // 4).all()
    assert (frame.steps == np.round(frame.t_obs / 0.1)).all()
    # positive_fraction is n_positive / N, and n_positive <= k (a partial spectrum whose last
    # exponent is still positive would give NaN instead).
    assert np.allclose(frame.positive_fraction * frame.n_hidden, frame.n_positive,
                       rtol=RTOL, atol=ATOL)
    assert (frame.n_positive <= frame.k).all()
    assert ((frame.n_positive > 0) == (frame.lambda1_per_unit_time > 0)).all()
    assert (frame.lambda1_per_unit_time_stderr > 0).all()


def test_spectrum_inequalities(quick):
    frame, _ = quick
    n = frame.n_hidden
    lam1 = frame.lambda1_per_unit_time
    entropy = frame.entropy_per_unit_time_over_n * n  # sum of the positive exponents
    dky = frame.dky_over_n * n
    # Descending spectrum: smallest <= mean <= largest.
    assert _le(frame.smallest_per_unit_time, frame.mean_exponent_per_unit_time)
    assert _le(frame.mean_exponent_per_unit_time, lam1)
    # lambda_1 <= sum of the positive exponents <= n_positive * lambda_1 where lambda_1 > 0;
    # all of it is 0 where no exponent is positive (D_KY = 0 for lambda_1 < 0).
    chaotic = frame.n_positive > 0
    assert _le(lam1[chaotic], entropy[chaotic])
    assert _le(entropy[chaotic], frame.n_positive[chaotic] * lam1[chaotic])
    assert (entropy[~chaotic] == 0).all() and (dky[~chaotic] == 0).all()
    # Kaplan-Yorke: the cumulative sum is positive through the last positive exponent, so
    # j >= n_positive and n_positive <= D_KY <= k (when the crossing lies within k).
    ok = frame.k_suffices.astype(bool)
    assert ok.any()
    assert _le(frame.n_positive[ok], dky[ok]) and _le(dky[ok], frame.k[ok])
    assert frame.dky_over_n[~ok].isna().all()
    assert np.allclose(frame.dky_lower_bound_over_n[ok], frame.dky_over_n[ok], rtol=RTOL)


def test_summary_arithmetic(quick):
    frame, summary = quick
    sizes = sorted(frame.n_hidden.unique())
    assert len(sizes) == 2  # the quick grid: the 1/N line passes through both points exactly
    for gain, part in frame.groupby("gain"):
        column, label = "lambda1_per_unit_time", "lambda_1 per unit time"
        means = [part[part.n_hidden == n][column].mean() for n in sizes]
        for n, m in zip(sizes, means):
            est = summary[f"g={gain:g}: {label}, N={n}"]
            assert isinstance(est, Estimate)
            assert math.isclose(float(est), m, rel_tol=1e-9, abs_tol=1e-12)
            rows = part[part.n_hidden == n]
            # The s.e. is at least the seeds' block errors combined (the module's rule).
            combined = np.sqrt(np.sum(rows[column + "_stderr"] ** 2)) / len(rows)
            assert est.stderr >= combined * (1 - 1e-9)
        # a + b/N through (1/N1, m1), (1/N2, m2), evaluated at 1/4096.
        (n1, n2), (m1, m2) = sizes, means
        slope = (m2 - m1) / (1 / n2 - 1 / n1)
        expected = m1 + slope * (1 / 4096 - 1 / n1)
        fit = summary[f"g={gain:g}: {label}, 1/N fit at N=4096"]
        assert math.isclose(float(fit), expected, rel_tol=1e-8, abs_tol=1e-10)
        clark = summary[f"g={gain:g}: {label}, Clark N=4096"]
        assert isinstance(clark, Exact) and float(clark) == CLARK_FLOW[gain][0]
        z = summary[f"g={gain:g}: {label}, (fit - Clark) / s.e."]
        assert math.isclose(z, (float(fit) - float(clark)) / fit.stderr, rel_tol=1e-9)
        dmft = float(summary[f"g={gain:g}: lambda_1 mean field (N = inf)"])
        assert math.isclose(dmft, part.theory_lambda1_dmft.iloc[0], rel_tol=1e-12)
    # The non-chaotic count: lambda_1 not above 0 by 2 block s.e. (the study's Z_AGREE).
    quiet = summary["rows with lambda_1 not above 0 by 2 s.e. (not chaotic)"]
    assert isinstance(quiet, Rate) and quiet.trials == len(frame)
    assert quiet.successes == int(
        (frame.lambda1_per_unit_time <= 2 * frame.lambda1_per_unit_time_stderr).sum())
    # A z-statistic carries one standard error of 1 (its own scale).
    assert all(summary[k].stderr == 1.0 for k in summary if k.endswith("(fit - Clark) / s.e."))
