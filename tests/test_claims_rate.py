"""The rate-network claims (gradsim.claims.rate): each check can fail, and its helpers are right.

tests/test_claims.py runs every claim in quick mode over three seeds and pins the verdicts; here
each check is fed a wrong prediction or a perturbed setting (through its test-only keyword) and
must refute it, so that none of the "supported" verdicts is one that could not have failed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gradsim as gs
from gradsim.claims import rate as rate_claims
from gradsim.claims.library import CLAIMS, COMPARISONS


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # As check_claims runs them (and much faster on these small matrices).
    with threadpool_limits(limits=1):
        yield


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_rate_claims_are_registered_with_their_rules():
    ids = [c.id for c in CLAIMS]
    for claim in rate_claims.RATE_CLAIMS:
        assert claim.id in ids
        assert claim.check.__module__ == "gradsim.claims.rate"
    assert {k: COMPARISONS[k] for k in rate_claims.RATE_COMPARISONS} == rate_claims.RATE_COMPARISONS
    # The trace-memory claim can be "conditional" with its comparison holding: no rule for it.
    assert "notes.exponential-trace-memory" not in COMPARISONS


def test_trace_memory_refutes_the_w_zero_time_scale():
    # With W = 0 the exponent would be log(1 - a) (THEORY.md section 12): memory time
    # -1/log(0.9) = 9.5 steps, not the network's ~18 at g = 0.5. Fed as the prediction, the
    # ratio tau(0.1)/tau(1) is off by ~2x, far outside its few-percent tolerance.
    found = rate_claims.check_exponential_trace_memory(True, _rng(), leak_exponent=math.log(0.9))
    assert found.verdict == "refuted", found.detail
    assert abs(found.measured - found.predicted) > 3 * found.tolerance


def test_trace_memory_holds_with_the_exact_exponent_and_names_its_condition():
    found = rate_claims.check_exponential_trace_memory(True, _rng())
    assert found.verdict == "conditional", found.detail
    assert abs(found.measured - found.predicted) <= found.tolerance
    assert "Condition g < 1" in found.detail and "perturbations grow" in found.detail


def test_mean_exponent_refutes_the_log_det_term_alone():
    # log g - 1/2 without <log phi'> is the trivial fixed point's mean exponent (+0.60 at g = 3),
    # the chaotic network's is -2.28.
    found = rate_claims.check_rate_map_mean_exponent(True, _rng(), prediction=math.log(3.0) - 0.5)
    assert found.verdict == "refuted", found.detail


def test_mean_exponent_tolerance_is_tight_enough_to_see_a_tenth():
    # A prediction 0.5 off (a fifth of the mean) must fail in quick mode.
    right = gs.map_mean_exponent(3.0, n=128)
    found = rate_claims.check_rate_map_mean_exponent(True, _rng(1), prediction=right + 0.5)
    assert found.verdict == "refuted", found.detail
    assert found.tolerance < 0.5


def test_circular_law_refutes_a_wrong_radius():
    # The disc of radius 0.6 instead of 0.5: F(log 0.5) = 0.69 instead of 1.
    found = rate_claims.check_rate_fixed_point_circular_law(True, _rng(), model_gain=0.6)
    assert found.verdict == "refuted", found.detail
    assert found.measured > 0.25


def test_kostlan_edge_term_matches_complex_ginibre():
    # The finite-N term of the tolerance: E F_N for complex Ginibre from Kostlan's theorem, against
    # a Monte Carlo of 300 complex Ginibre matrices (N = 32) at the circle |mu| = g, where the
    # sup is attained: fraction inside the unit disc, 1 - edge term.
    n, count = 32, 300
    rng = _rng(3)
    inside = []
    for _ in range(count):
        z = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / math.sqrt(2 * n)
        inside.append(np.mean(np.abs(np.linalg.eigvals(z)) <= 1.0))
    se = np.std(inside, ddof=1) / math.sqrt(count)
    edge = rate_claims._kostlan_distance(n, 1.0)
    assert abs((1.0 - np.mean(inside)) - edge) <= 4 * se + 1e-3
    assert rate_claims._kostlan_distance(4 * n, 1.0) < edge  # it shrinks with N


def test_flow_sum_rule_refutes_euler():
    # Euler's sum is off by ~delta/2 per unit: order 1, not 4.
    found = rate_claims.check_rate_flow_sum_rule(True, _rng(), integrator="euler")
    assert found.verdict == "refuted", found.detail
    assert abs(found.measured - 1.0) < 0.5


def test_dmft_max_exponent_refutes_the_flow_value_and_log_g():
    for wrong in (gs.continuous_time_max_exponent_dmft(3.0), math.log(3.0)):
        found = rate_claims.check_rate_map_dmft_max_exponent(True, _rng(), prediction=wrong)
        assert found.verdict == "refuted", (wrong, found.detail)


def test_input_claim_refutes_zero_input():
    # Zero input: the driven run is the free run (same J, same start): no drop at all.
    found = rate_claims.check_rate_input_suppresses_chaos(True, _rng(), input_std=0.0)
    assert found.verdict == "refuted", found.detail
    assert found.measured == 0.0


def test_log_sech2_is_log_tanh_prime_without_cancellation():
    x = np.array([-30.0, -3.0, 0.0, 0.5, 3.0, 30.0])
    small = np.abs(x) < 10
    np.testing.assert_allclose(rate_claims._log_sech2(x)[small], np.log1p(-np.tanh(x[small]) ** 2),
                               rtol=1e-12)
    # log sech^2(30) = log 4 - 60 - 2 log(1 + e^-60): finite where log(1 - tanh^2) is -inf.
    np.testing.assert_allclose(rate_claims._log_sech2(x)[~small], math.log(4.0) - 60.0, rtol=1e-14)
