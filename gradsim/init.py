"""Weight initialisers.

Every function takes ``rng`` (a seed, a ``SeedSequence`` or a ``numpy.random.Generator``) and
never touches numpy's global random state. A ``shape`` is an int ``n`` (meaning ``(n, n)``) or a
pair ``(fan_out, fan_in)`` in PyTorch's layout, where the weight acts as ``W @ x``.

==================  ==============================================================
name                distribution
==================  ==============================================================
``gaussian``        N(0, gain^2 / fan_in)  (circular law: spectral radius -> gain)
``orthogonal``      Haar-random orthogonal (semi-orthogonal if not square) times gain
``identity``        scale * I (Le, Jaitly & Hinton 2015)
``xavier_uniform``  U(-a, a), a = gain sqrt(6 / (fan_in + fan_out))
``xavier_normal``   N(0, gain^2 2 / (fan_in + fan_out))
``he_normal``       N(0, gain^2 2 / fan_in)  (Kaiming, ReLU gain sqrt 2 built in)
``he_uniform``      U(-a, a), a = gain sqrt(6 / fan_in)
``pytorch_uniform`` U(-1/sqrt(H), 1/sqrt(H)), PyTorch's default for nn.RNN/LSTM/GRU
==================  ==============================================================
"""

from __future__ import annotations

import numbers

import numpy as np

from ._validate import as_rng, describe, finite_number, positive_int, positive_number

__all__ = [
    "gaussian",
    "orthogonal",
    "identity",
    "xavier_uniform",
    "xavier_normal",
    "he_normal",
    "he_uniform",
    "pytorch_uniform",
    "forget_gate_bias",
    "chrono_bias",
    "INITIALISERS",
    "initialise",
]


def _shape(shape) -> tuple[int, int]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        n = positive_int(shape, "shape")
        return n, n
    if isinstance(shape, tuple) and len(shape) == 2:
        return positive_int(shape[0], "shape[0]", minimum=0), positive_int(
            shape[1], "shape[1]", minimum=0
        )
    raise TypeError(f"`shape` must be an int n or a pair (fan_out, fan_in); got {describe(shape)}.")


def gaussian(shape, gain: float = 1.0, rng=None) -> np.ndarray:
    """Gaussian weights with entries N(0, gain^2 / fan_in).

    For a square ``(N, N)`` matrix the eigenvalues fill the disc of radius ``gain`` and the largest
    singular value tends to ``2 gain`` (THEORY.md section 4).

    Parameters
    ----------
    shape : int or (int, int)
        ``N`` for ``(N, N)`` or ``(fan_out, fan_in)``.
    gain : float
        Standard deviation times sqrt(fan_in); must be >= 0.
    rng : seed or Generator

    Returns
    -------
    ndarray, shape (fan_out, fan_in)
    """
    rows, cols = _shape(shape)
    gain = positive_number(gain, "gain", allow_zero=True)
    std = gain / np.sqrt(cols) if cols else 0.0
    return as_rng(rng).standard_normal((rows, cols)) * std


def orthogonal(shape, gain: float = 1.0, rng=None) -> np.ndarray:
    """Haar-distributed orthogonal matrix times ``gain``.

    Uses the QR decomposition of a Gaussian matrix with the signs of R's diagonal folded into Q
    (Mezzadri 2007), which makes the distribution exactly Haar. A non-square shape gives
    orthonormal rows or columns, whichever are fewer (as ``torch.nn.init.orthogonal_``).

    Returns
    -------
    ndarray, shape (fan_out, fan_in)
        All singular values equal ``gain``.
    """
    rows, cols = _shape(shape)
    gain = positive_number(gain, "gain", allow_zero=True)
    big, small = max(rows, cols), min(rows, cols)
    a = as_rng(rng).standard_normal((big, small))
    q, r = np.linalg.qr(a)
    signs = np.sign(np.diagonal(r))
    signs[signs == 0] = 1.0
    q = q * signs
    return gain * (q if rows >= cols else q.T)


def identity(shape, scale: float = 1.0, rng=None) -> np.ndarray:
    """``scale`` times the identity (IRNN initialisation). ``rng`` is accepted and unused."""
    rows, cols = _shape(shape)
    scale = positive_number(scale, "scale", allow_zero=True)
    return scale * np.eye(rows, cols)


def xavier_uniform(shape, gain: float = 1.0, rng=None) -> np.ndarray:
    """Glorot & Bengio (2010) uniform: U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out))."""
    rows, cols = _shape(shape)
    gain = positive_number(gain, "gain", allow_zero=True)
    bound = gain * np.sqrt(6.0 / max(rows + cols, 1))
    return as_rng(rng).uniform(-bound, bound, (rows, cols))


def xavier_normal(shape, gain: float = 1.0, rng=None) -> np.ndarray:
    """Glorot & Bengio (2010) normal: N(0, gain^2 2 / (fan_in + fan_out))."""
    rows, cols = _shape(shape)
    gain = positive_number(gain, "gain", allow_zero=True)
    std = gain * np.sqrt(2.0 / max(rows + cols, 1))
    return as_rng(rng).standard_normal((rows, cols)) * std


def he_normal(shape, gain: float = 1.0, rng=None) -> np.ndarray:
    """He et al. (2015) normal: N(0, gain^2 2 / fan_in) (the ReLU factor 2 is built in)."""
    rows, cols = _shape(shape)
    gain = positive_number(gain, "gain", allow_zero=True)
    std = gain * np.sqrt(2.0 / cols) if cols else 0.0
    return as_rng(rng).standard_normal((rows, cols)) * std


def he_uniform(shape, gain: float = 1.0, rng=None) -> np.ndarray:
    """He et al. (2015) uniform: U(-a, a), a = gain sqrt(6 / fan_in) (variance gain^2 2 / fan_in)."""
    rows, cols = _shape(shape)
    gain = positive_number(gain, "gain", allow_zero=True)
    bound = gain * np.sqrt(6.0 / cols) if cols else 0.0
    return as_rng(rng).uniform(-bound, bound, (rows, cols))


def pytorch_uniform(shape, n_hidden: int, rng=None) -> np.ndarray:
    """PyTorch's default for recurrent layers: every weight and bias U(-1/sqrt(H), 1/sqrt(H)).

    Parameters
    ----------
    shape : int, (int,) or (int, int)
        Shape of the tensor to fill (a bias is 1-d).
    n_hidden : int
        H, the layer's hidden size (not the tensor's fan-in).
    """
    h = positive_int(n_hidden, "n_hidden")
    if isinstance(shape, tuple) and len(shape) == 1:
        size: tuple[int, ...] = (positive_int(shape[0], "shape[0]", minimum=0),)
    else:
        size = _shape(shape)
    bound = 1.0 / np.sqrt(h)
    return as_rng(rng).uniform(-bound, bound, size)


def forget_gate_bias(n_hidden: int, value: float = 1.0) -> np.ndarray:
    """An LSTM bias vector (i, f, g, o stacked, shape (4 H,)) that is ``value`` on the forget gate.

    With all weights zero the cell path multiplies by sigmoid(value) each step: memory time scale
    -1 / log sigmoid(value) steps (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1).
    """
    h = positive_int(n_hidden, "n_hidden")
    value = finite_number(value, "value")
    bias = np.zeros(4 * h)
    bias[h : 2 * h] = value
    return bias


def chrono_bias(n_hidden: int, t_max: float, rng=None) -> np.ndarray:
    """Chrono initialisation (Tallec & Ollivier 2018) of an LSTM bias, gates i, f, g, o stacked.

    b_f = log(u), u ~ U[1, t_max - 1], and b_i = -b_f, so that the forget gates' characteristic
    forgetting times spread over [1, t_max].

    Returns
    -------
    ndarray, shape (4 n_hidden,)
    """
    h = positive_int(n_hidden, "n_hidden")
    t_max = positive_number(t_max, "t_max")
    if t_max <= 2.0:
        raise ValueError(f"`t_max` must be a number > 2 (the longest memory in steps); got {t_max!r}.")
    b_f = np.log(as_rng(rng).uniform(1.0, t_max - 1.0, h))
    bias = np.zeros(4 * h)
    bias[:h] = -b_f
    bias[h : 2 * h] = b_f
    return bias


INITIALISERS = {
    "gaussian": gaussian,
    "orthogonal": orthogonal,
    "identity": identity,
    "xavier": xavier_uniform,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "he": he_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "pytorch": None,  # needs the hidden size; handled by `initialise`
}


def initialise(name: str, shape, gain: float = 1.0, rng=None, *, n_hidden: int | None = None):
    """Weights from the initialiser called ``name`` (one of ``INITIALISERS``)."""
    if not isinstance(name, str) or name not in INITIALISERS:
        listed = ", ".join(repr(k) for k in INITIALISERS)
        raise ValueError(f"`init` must be one of {listed}; got {describe(name)}.")
    if name == "pytorch":
        return pytorch_uniform(shape, n_hidden if n_hidden is not None else _shape(shape)[1], rng)
    return INITIALISERS[name](shape, gain, rng)
