"""The numeric layer: unrolled trajectories and the Jacobian products along them.

Notation: states s_0 .. s_T with s_{t+1} = cell_t.step(s_t, x_t) for t = 0 .. T-1, one-step
Jacobians J_t = d s_t / d s_{t-1}, and the forward product P_t = J_t ... J_1 = d s_t / d s_0.
Back-propagation through time multiplies by the transposed J_t in reverse order.

Growth is reported as natural logarithms, per step for rates, so that a 100 000-step product
with gain 10 or 0.1 gives finite numbers. Nothing here stores a P x P matrix per step: memory
is that of a few P x P matrices plus the requested outputs.

``cell`` is a :class:`~gradsim.cells.Cell` (tied weights) or a callable ``t -> Cell`` giving
the cell of step t (untied weights, the mean-field setting); the callable must return the same
cell for the same t, because :func:`gradient_norms` calls it again on the way back.

Modules: :mod:`._problem` (arguments), :mod:`.qr` (re-orthonormalisation), :mod:`.trajectory`
(``unroll``, ``jacobian_product``), :mod:`.spectrum`, :mod:`.observables` (functions of a
spectrum: Kaplan-Yorke dimension, entropy rate, their standard errors), :mod:`.singular`,
:mod:`.gradients`, :mod:`.lyapunov_grad` (``lyapunov_vjp``, gradients of the exponents by the
adjoint of the QR method), :mod:`.sensitivity` (``parameter_jvp``, forward-mode
sensitivity of the states to the parameters), :mod:`.untied`.
"""

from .critical import CriticalInit, critical_init
from .gradients import gradient_norms
from .lyapunov_grad import LyapunovGradient, lyapunov_vjp
from .observables import (
    SpectrumObservables,
    entropy_rate,
    kaplan_yorke_dimension,
    positive_fraction,
    spectrum_observables,
)
from .sensitivity import parameter_jvp
from .singular import log_singular_values
from .spectrum import LyapunovSpectrum, lyapunov_spectrum
from .trajectory import jacobian_product, unroll
from .untied import untied

__all__ = [
    "unroll",
    "jacobian_product",
    "log_singular_values",
    "lyapunov_spectrum",
    "lyapunov_vjp",
    "LyapunovGradient",
    "gradient_norms",
    "parameter_jvp",
    "LyapunovSpectrum",
    "untied",
    "kaplan_yorke_dimension",
    "entropy_rate",
    "positive_fraction",
    "spectrum_observables",
    "SpectrumObservables",
    "critical_init",
    "CriticalInit",
]
