"""Argument checks shared by the whole package.

Every message has the form "`name` must be <expectation>; got <received>." so that a user
sees which argument is wrong, what was expected and what arrived.
"""

from __future__ import annotations

import numbers

import numpy as np


def describe(value) -> str:
    """Short description of a received value for error messages."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_rng(rng, name: str = "rng") -> np.random.Generator:
    """Turn a seed, a SeedSequence or a Generator into a Generator (never numpy's global state)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng < 0:
            raise ValueError(f"`{name}` must be a non-negative seed; got {rng}.")
        return np.random.default_rng(rng)
    raise TypeError(
        f"`{name}` must be None, a non-negative int seed, a SeedSequence or a "
        f"numpy Generator; got {describe(rng)}."
    )


def positive_number(value, name: str, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or >= 0 with ``allow_zero``)."""
    kind = "non-negative" if allow_zero else "positive"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a {kind} finite number; got {describe(value)}.")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"`{name}` must be a {kind} finite number; got {value!r}.")
    return value


def finite_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a finite number; got {describe(value)}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number; got {value!r}.")
    return value


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer >= {minimum}; got {describe(value)}.")
    value = int(value)
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value}.")
    return value


def choice(value, name: str, options) -> str:
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"`{name}` must be one of {listed}; got {describe(value)}.")
    return value


def finite_array(value, name: str, *, shape=None, ndim=None) -> np.ndarray:
    """A float64 array with every entry finite, optionally of an exact shape.

    ``shape`` may contain ``None`` for a free dimension.
    """
    if np.iscomplexobj(value):
        raise TypeError(f"`{name}` must be an array of real numbers; got complex values.")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be an array of real numbers; got {describe(value)}.") from None
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"`{name}` must be a {ndim}-d array; got shape {array.shape}.")
    if shape is not None:
        wanted = tuple(shape)
        if array.ndim != len(wanted) or any(
            w is not None and w != s for w, s in zip(wanted, array.shape)
        ):
            pretty = "(" + ", ".join("*" if w is None else str(w) for w in wanted) + ")"
            if len(wanted) == 1:
                pretty = pretty[:-1] + ",)"
            raise ValueError(f"`{name}` must have shape {pretty}; got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must contain only finite values; got NaN or inf.")
    return array


def frozen(array: np.ndarray) -> np.ndarray:
    """A read-only float64 copy, so that an immutable cell cannot be changed through its arrays."""
    owner = np.array(array, dtype=np.float64, copy=True)
    owner.flags.writeable = False
    # A view of a read-only owner cannot be made writeable again (the owner itself could).
    return owner.view()


class UsageError(ValueError):
    """A bad invocation or argument: the command line prints its message on one line and exits 2."""
