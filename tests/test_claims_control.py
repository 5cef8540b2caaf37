"""The critical-initialisation claims (gradsim.claims.control): registered, supported, and refutable.

tests/test_claims.py runs every registered claim in quick mode over three seeds and pins the
verdicts; here each check is also fed a wrong prediction (through its test-only keyword) and must
refute it, so that neither "supported" verdict is one that could not have failed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logit
from threadpoolctl import threadpool_limits

from gradsim.claims import control
from gradsim.claims.library import CLAIMS, COMPARISONS


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_control_claims_are_registered_with_their_rules():
    ids = [c.id for c in CLAIMS]
    assert len(set(ids)) == len(ids)
    for claim in control.CONTROL_CLAIMS:
        assert claim.id in ids
        assert claim.check.__module__ == "gradsim.claims.control"
        assert claim.check.__qualname__ == claim.check.__name__
    assert {k: COMPARISONS[k] for k in control.CONTROL_COMPARISONS} == control.CONTROL_COMPARISONS
    assert set(control.CONTROL_COMPARISONS) == {c.id for c in control.CONTROL_CLAIMS}
    assert "theory.critical-gain-mean-field" in ids


def test_critical_gain_is_supported_and_above_one():
    found = control.check_critical_gain_mean_field(True, _rng())
    assert found.verdict == "supported", found.detail
    assert abs(found.measured - found.predicted) <= found.tolerance
    assert found.measured - found.tolerance > 1.0
    assert "chi_1 = 1 at g = 1.85559" in found.detail


@pytest.mark.parametrize("wrong", [1.0, 1.75])
def test_critical_gain_refutes_the_no_input_edge_and_a_low_gain(wrong):
    # g = 1 is the edge without input; 1.75 is 0.1 below the N = inf edge 1.856: both are far
    # outside the ~0.1 tolerance of the N = 64 quick check (the measured root is ~1.93-1.95).
    found = control.check_critical_gain_mean_field(True, _rng(), prediction=wrong)
    assert found.verdict == "refuted", found.detail
    assert abs(found.measured - found.predicted) > found.tolerance


def test_gate_bias_is_supported():
    found = control.check_critical_gate_bias_zero_weight(True, _rng(1))
    assert found.verdict == "supported", found.detail
    assert "equal logit(e^(-1/H))" in found.detail and "Jensen" in found.detail


def test_gate_bias_refutes_the_no_input_formula():
    # Ignoring the input noise, logit(e^(-1/50)) = 3.90 is ~0.48 below the with-input root 4.386,
    # against a tolerance of ~0.03.
    found = control.check_critical_gate_bias_zero_weight(True, _rng(1),
                                                         prediction=float(logit(math.exp(-1 / 50))))
    assert found.verdict == "refuted", found.detail
    assert abs(found.measured - found.predicted) > 5 * found.tolerance
