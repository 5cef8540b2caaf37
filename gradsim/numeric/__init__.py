"""The numeric layer: unrolled trajectories, Jacobian products, singular values, Lyapunov spectra
and back-propagated gradient norms."""

from .products import (
    unroll,
    jacobian_product,
    log_singular_values,
    lyapunov_spectrum,
    gradient_norms,
    LyapunovSpectrum,
    untied,
)

__all__ = [
    "unroll",
    "jacobian_product",
    "log_singular_values",
    "lyapunov_spectrum",
    "gradient_norms",
    "LyapunovSpectrum",
    "untied",
]
