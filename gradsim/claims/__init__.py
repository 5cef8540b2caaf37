"""The claims registry: the framework (Claim, Evidence, verdicts) and the built-in claims."""

from .framework import (
    Claim,
    Evidence,
    VERDICTS,
    check_claims,
    load_claims,
)
from .library import (
    CLAIMS,
    COMPARISONS,
    builtin_claims,
    comparison_holds,
    Z,
    P_FALSE_ALARM,
)

__all__ = [
    "Claim",
    "Evidence",
    "VERDICTS",
    "check_claims",
    "load_claims",
    "CLAIMS",
    "COMPARISONS",
    "builtin_claims",
    "comparison_holds",
    "Z",
    "P_FALSE_ALARM",
]
