"""The flossing claims (gradsim.claims.flossing): each check can fail, and its verdicts.

Every check is called directly in quick mode. Each is also fed a wrong prediction or a
perturbed setting (through its test-only keyword) and must refute it, so that no verdict is one
that could not have failed: the flossed lambda_1 judged against -0.1 instead of 0 (it sits
within ~0.01 of 0, its band is ~0.02 wide); the condition number compared for the unflossed cell
with itself (a reduction of exactly 0 cannot exceed 0); the trainability at d = 4, which the
tanh RNN learns with and without flossing (no difference to find).

The claims are not registered here (gradsim/claims/library.py is edited elsewhere); the
registration lines are in the module's docstring and the helper's report.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from gradsim.claims import flossing as fc
from gradsim.claims.framework import Claim


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_claims_are_well_formed():
    ids = [c.id for c in fc.FLOSSING_CLAIMS]
    assert len(ids) == len(set(ids)) == 2
    assert fc.TRAINABILITY_CLAIM.id not in ids
    for claim in fc.FLOSSING_CLAIMS + (fc.TRAINABILITY_CLAIM,):
        assert isinstance(claim, Claim)
        assert claim.check.__module__ == "gradsim.claims.flossing"
    assert set(fc.FLOSSING_COMPARISONS) <= set(ids)


@pytest.mark.parametrize("seed", [0, 1])
def test_exponents_reach_the_target_at_the_top_only(seed):
    found = fc.check_floss_exponents_at_target(True, _rng(seed))
    assert found.verdict == "conditional", found.detail
    assert abs(found.measured - found.predicted) <= found.tolerance
    assert "Condition: the leading exponents only" in found.detail


def test_exponents_refute_a_wrong_target():
    found = fc.check_floss_exponents_at_target(True, _rng(), judged_target=-0.1)
    assert found.verdict == "refuted", found.detail
    assert abs(found.measured - found.predicted) > found.tolerance


@pytest.mark.parametrize("seed", [0, 1])
def test_condition_number_reduced(seed):
    found = fc.check_floss_condition_number(True, _rng(seed))
    assert found.verdict == "supported", found.detail
    assert found.measured > found.tolerance > 0


def test_condition_number_refutes_no_flossing():
    found = fc.check_floss_condition_number(True, _rng(), flossed=False)
    assert found.verdict == "refuted", found.detail
    assert found.measured == 0.0


# The trainability claim's supporting run (61 s: 16 networks trained) is not repeated here: the
# claim is outside the registry (see gradsim/claims/flossing.py) and studies/flossing.py measures
# it; its refutation below shows the check can fail.


def test_trainability_refuted_where_there_is_nothing_to_gain():
    found = fc.check_floss_trainability(True, _rng(), delay=4)
    assert found.verdict == "refuted", found.detail
    assert found.measured <= found.predicted


def test_wilson_matches_the_findings_helper():
    from gradsim.workflow.findings import wilson_interval

    for s, n in [(0, 4), (4, 4), (2, 5), (1, 6)]:
        assert fc._wilson(s, n) == pytest.approx(wilson_interval(s, n), abs=1e-15)
