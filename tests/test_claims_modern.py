"""The modern-recurrence and curse-of-memory claims (gradsim.claims.modern): each check can fail.

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
from gradsim.claims import modern as modern_claims
from gradsim.claims.library import CLAIMS, COMPARISONS


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_modern_claims_are_registered_with_their_rules():
    ids = [c.id for c in CLAIMS]
    for claim in modern_claims.MODERN_CLAIMS:
        assert claim.id in ids
        assert claim.check.__module__ == "gradsim.claims.modern"
    assert {k: COMPARISONS[k] for k in modern_claims.MODERN_COMPARISONS} == modern_claims.MODERN_COMPARISONS
    # The near-zero claim can be "conditional" with its comparison holding: no rule for it.
    assert set(modern_claims.MODERN_COMPARISONS) == {c.id for c in modern_claims.MODERN_CLAIMS} - {
        "theory.antisymmetric-near-zero"}


def test_lru_refutes_the_real_part_modulus():
    # log|Re lambda| ignores the rotation: off by log|cos theta|, up to many nats.
    found = modern_claims.check_lru_exponents(True, _rng(), prediction=lambda c: np.log(np.abs(c.eigenvalues.real)))
    assert found.verdict == "refuted", found.detail


def test_lru_refutes_a_tiny_modulus_error():
    # A relative error of 1e-6 in |lambda| (1e-6 in the exponent) is 100 x the tolerance.
    found = modern_claims.check_lru_exponents(
        True, _rng(), prediction=lambda c: np.log(np.abs(c.eigenvalues)) + 1e-6)
    assert found.verdict == "refuted", found.detail
    assert found.measured == pytest.approx(1e-6, rel=1e-3)


def test_indrnn_refutes_the_linear_unit_exponent():
    found = modern_claims.check_indrnn_exponents(True, _rng(), ignore_slope=True)
    assert found.verdict == "refuted", found.detail


def test_mingru_refutes_the_wrong_gate():
    found = modern_claims.check_mingru_exponents(True, _rng(), wrong_gate=True)
    assert found.verdict == "refuted", found.detail


def test_antisymmetric_refutes_the_continuous_time_rate():
    # Ignoring eps^2 omega^2 (the exponent of the ODE's damping alone, log(1 - eps gamma)) is off
    # by up to ~0.03, far beyond the ~1e-4 bounds.
    found = modern_claims.check_antisymmetric_exponents(
        True, _rng(), prediction=lambda c: np.full(c.n_hidden, math.log(1.0 - c.eps * c.gamma)))
    assert found.verdict == "refuted", found.detail
    assert found.measured > 10.0


def test_antisymmetric_bound_is_rigorous_on_a_second_draw():
    found = modern_claims.check_antisymmetric_exponents(True, _rng(5))
    assert found.verdict == "supported", found.detail
    assert found.measured <= 1.0


def test_antisymmetric_near_zero_names_its_condition():
    # Without diffusion the forward-Euler step expands: 1/2 log(1 + eps^2 omega^2) > 0.
    found = modern_claims.check_antisymmetric_near_zero(True, _rng(2))
    assert found.verdict == "conditional", found.detail
    assert found.measured <= found.tolerance
    assert "Condition gamma > 0" in found.detail and "expands" in found.detail


def test_antisymmetric_near_zero_refutes_a_bound_below_the_exponents():
    found = modern_claims.check_antisymmetric_near_zero(True, _rng(), bound=1e-6)
    assert found.verdict == "refuted", found.detail


def test_cornn_refutes_a_state_bound_below_the_trajectory():
    # The steady response to sigma = 1 per unit is 1/gamma = 0.37; 0.05 is below what the
    # driven trajectory reaches (~0.13).
    found = modern_claims.check_cornn_bounded_gradients(True, _rng(), state_bound=0.05)
    assert found.verdict == "refuted", found.detail
    assert "|y| exceeds its bound" in found.detail


def test_cornn_state_bound_is_the_impulse_response_l1_norm():
    # At the defaults the y impulse response is positive (overdamped), so its l1 norm equals its
    # sum, the DC gain of the 2 x 2 map: y = y + dt z, z = k z + dt (1 - gamma y) at a fixed
    # point gives y = 1/gamma exactly.
    cell = gs.make_cell("cornn", 4, 1, rng=0)
    (bound_y, _), rho = modern_claims._cornn_state_bounds(cell)
    assert rho < 1.0
    assert bound_y == pytest.approx(1.0 / cell.gamma, rel=1e-9)


def test_curse_of_memory_refutes_the_normalised_value():
    wrong = gs.linear_sensitivity_second_moment(0.99, normalized=True)
    found = modern_claims.check_curse_of_memory(True, _rng(), prediction=wrong)
    assert found.verdict == "refuted", found.detail


def test_normalisation_remedy_refutes_the_plain_recurrence():
    # Plain slope ~ -2.98 against the normalised secant ~ -1.96.
    found = modern_claims.check_memory_normalisation_remedy(True, _rng(), normalized=False)
    assert found.verdict == "refuted", found.detail
    assert abs(found.measured - found.predicted) > 3 * found.tolerance
