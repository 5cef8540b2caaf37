r"""Long-range tasks for BPTT training, each a seeded generator with its exact trivial baseline.

A :class:`Task` draws mini-batches ``(inputs, targets)`` from a generator and states how the
network is read out and scored:

- ``readout="last"`` (sequence to one): one output from the last hidden state;
  ``readout="sequence"`` (sequence to sequence): one output per step.
- ``loss="mse"``: mean squared error over all output entries, targets float;
  ``loss="xent"``: mean softmax cross-entropy (nats) over the scored outputs, targets int.

``baseline`` is the exact loss of the best predictor that uses no memory of the input
(THEORY.md section 11); a model has learnt something about the long-range structure only when
it beats it. Every baseline is checked by Monte Carlo in ``tests/test_tasks.py``.

=================  ========  ====  =========  ============================================
task               readout   loss  I          baseline
=================  ========  ====  =========  ============================================
adding problem     last      mse   2          Var(X_a + X_b) = 1/6
copy task          sequence  xent  K + 2      n_copy log K / (T + 2 n_copy)
periodic sequence  sequence  xent  A          entropy of the pattern's symbol frequencies
long-gap recall    last      xent  K + F + 1  log K (K keys, F filler words)
delayed XOR        sequence  xent  1          (T - d) log 2 / T (delay d)
=================  ========  ====  =========  ============================================

Inputs have shape ``(B, L, I)`` (batch, steps, features), float64; ``L`` is the sequence length
(``T`` for every task but the copy task, whose length is ``T + 2 n_copy``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._validate import as_rng, choice, describe, positive_int
from ..theory.predictions import adding_problem_baseline_mse, copy_task_baseline

__all__ = [
    "Task",
    "TASK_KINDS",
    "make_task",
    "adding_problem",
    "copy_task",
    "periodic_sequence",
    "long_gap_recall",
    "periodic_baseline",
    "delayed_xor",
    "delayed_xor_baseline",
]

READOUTS = ("last", "sequence")
LOSSES = ("mse", "xent")


@dataclass(frozen=True, eq=False)
class Task:
    """A long-range task: a seeded batch generator, its readout, loss and trivial baseline.

    Attributes
    ----------
    name : str
    T : int
        The task's horizon parameter (the sequence length, or the copy task's delay).
    length : int
        Number of steps L of every input sequence.
    n_input, n_output : int
        Input features I; outputs O (1 for regression, the number of classes for ``xent``).
    readout : {"last", "sequence"}
    loss : {"mse", "xent"}
    baseline : float
        Exact loss of the best memoryless predictor (see the module docstring).
    sampler : callable (batch_size: int, rng: Generator) -> (inputs, targets)
    """

    name: str
    T: int
    length: int
    n_input: int
    n_output: int
    readout: str
    loss: str
    baseline: float
    sampler: Callable

    def sample(self, batch_size, rng=None):
        """Draw a mini-batch.

        Parameters
        ----------
        batch_size : int
            B >= 1.
        rng : seed or Generator

        Returns
        -------
        inputs : ndarray, shape (B, L, n_input), float64
        targets : ndarray
            ``mse``: float64, shape (B, n_output) for ``readout="last"``, (B, L, n_output) for
            ``"sequence"``. ``xent``: int64 class indices, shape (B,) or (B, L).
        """
        batch_size = positive_int(batch_size, "batch_size")
        return self.sampler(batch_size, as_rng(rng))


def _one_hot(indices, size):
    out = np.zeros(indices.shape + (size,))
    np.put_along_axis(out, indices[..., None], 1.0, axis=-1)
    return out


# ------------------------------------------------------------------------------------------
def adding_problem(T) -> Task:
    r"""The adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015).

    Each step carries two features: a value :math:`X_t \sim U[0, 1]` and a marker in {0, 1}.
    Exactly two steps are marked, one uniformly in the first half :math:`[0, \lfloor T/2
    \rfloor)` and one in the second half; the target, read out after the last step, is
    :math:`Y = X_a + X_b`. Predicting the mean :math:`E Y = 1` scores

    .. math::

        \mathrm{MSE} = \operatorname{Var} Y = 2 \cdot \tfrac1{12} = \tfrac16,

    the best any predictor can do without remembering the marked values.

    Parameters
    ----------
    T : int
        Sequence length, >= 2.

    Returns
    -------
    Task
        ``readout="last"``, ``loss="mse"``, I = 2, O = 1; targets of shape (B, 1).
    """
    T = positive_int(T, "T", minimum=2)
    half = T // 2

    def sample(batch_size, rng):
        values = rng.uniform(0.0, 1.0, size=(batch_size, T))
        first = rng.integers(0, half, size=batch_size)
        second = rng.integers(half, T, size=batch_size)
        markers = np.zeros((batch_size, T))
        rows = np.arange(batch_size)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        inputs = np.stack([values, markers], axis=-1)
        targets = (values[rows, first] + values[rows, second])[:, None]
        return inputs, targets

    return Task("adding", T, T, 2, 1, "last", "mse", adding_problem_baseline_mse(), sample)


def copy_task(T, n_symbols=8, n_copy=10) -> Task:
    r"""The copy task (Hochreiter & Schmidhuber 1997; Arjovsky, Shah & Bengio 2016).

    Tokens: 0 blank, 1 .. K the symbols (K = ``n_symbols``), K + 1 the delimiter; inputs are
    their one-hot codes (I = K + 2). The input is ``n_copy`` symbols drawn uniformly, T - 1
    blanks, the delimiter, ``n_copy`` blanks (L = T + 2 n_copy steps). The target (O = K + 1
    classes: blank and the symbols) is blank for the first T + n_copy steps and then the
    ``n_copy`` symbols in order. The best memoryless predictor knows the step but not the
    symbols: it predicts blank with certainty, then the uniform distribution, so its mean
    cross-entropy per step is

    .. math::

        \frac{n_{copy} \log K}{T + 2 n_{copy}} \quad (= 10 \log 8 / (T + 20)).

    Parameters
    ----------
    T : int
        Delay (blanks plus delimiter) between the symbols and their recall, >= 1.
    n_symbols : int
        K >= 1.
    n_copy : int
        Number of symbols to copy, >= 1.

    Returns
    -------
    Task
        ``readout="sequence"``, ``loss="xent"``; targets int, shape (B, T + 2 n_copy).
    """
    T = positive_int(T, "T")
    k = positive_int(n_symbols, "n_symbols")
    n_copy = positive_int(n_copy, "n_copy")
    length = T + 2 * n_copy
    delimiter = k + 1

    def sample(batch_size, rng):
        symbols = rng.integers(1, k + 1, size=(batch_size, n_copy))
        tokens = np.zeros((batch_size, length), dtype=np.int64)
        tokens[:, :n_copy] = symbols
        tokens[:, n_copy + T - 1] = delimiter
        targets = np.zeros((batch_size, length), dtype=np.int64)
        targets[:, T + n_copy :] = symbols
        return _one_hot(tokens, k + 2), targets

    baseline = copy_task_baseline(T, k, n_copy)
    return Task("copy", T, length, k + 2, k + 1, "sequence", "xent", baseline, sample)


def periodic_baseline(pattern: str) -> float:
    r"""Cross-entropy of predicting the pattern's symbol frequencies at every step (nats).

    With a uniformly random phase, the next symbol at any step has the distribution :math:`p`
    of symbol frequencies in one period, whatever the step; the best predictor that ignores
    the input therefore scores the entropy :math:`H(p) = -\sum_a p_a \log p_a` (log 3 for
    "ABC").
    """
    counts = np.array([pattern.count(a) for a in sorted(set(pattern))], dtype=np.float64)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def periodic_sequence(T, pattern: str = "ABC") -> Task:
    r"""Next-symbol prediction on a periodic sequence ("A B C A B C A B ... what comes next?").

    Each sequence is ``pattern`` repeated, started at a uniformly random phase; the input at
    step t is the one-hot code of symbol t and the target is symbol t + 1 (classes are the
    pattern's distinct symbols in sorted order). The trivial baseline ignores the input and
    predicts the symbol frequencies of one period (:func:`periodic_baseline`, log 3 for "ABC").
    With distinct symbols the current symbol determines the next one, so the loss can reach 0
    with one step of memory; a pattern with repeated symbols ("AABB") needs more.

    Parameters
    ----------
    T : int
        Sequence length, >= 1.
    pattern : str
        One period, at least one character.

    Returns
    -------
    Task
        ``readout="sequence"``, ``loss="xent"``; targets int, shape (B, T).
    """
    T = positive_int(T, "T")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"`pattern` must be a non-empty string; got {describe(pattern)}.")
    alphabet = sorted(set(pattern))
    codes = np.array([alphabet.index(a) for a in pattern], dtype=np.int64)
    period, n_classes = len(pattern), len(alphabet)

    def sample(batch_size, rng):
        phase = rng.integers(0, period, size=batch_size)
        index = (phase[:, None] + np.arange(T + 1)[None, :]) % period
        sequence = codes[index]
        return _one_hot(sequence[:, :T], n_classes), sequence[:, 1:].copy()

    return Task(
        "periodic", T, T, n_classes, n_classes, "sequence", "xent", periodic_baseline(pattern), sample
    )


def long_gap_recall(T, n_keys=7, n_fillers=8, shift=1) -> Task:
    r"""Recall one token far back: "Yesterday it was Sunday, so today it must be ...".

    Tokens: ``n_keys`` keys (the days), ``n_fillers`` filler words, one query token; inputs are
    their one-hot codes (I = n_keys + n_fillers + 1). Step 0 holds a uniformly drawn key k,
    steps 1 .. T - 2 uniformly drawn fillers, step T - 1 the query. The target, read out after
    the query, is :math:`(k + \text{shift}) \bmod n_{keys}` (the day after). It depends on the
    token T - 1 steps back and on nothing else, so without memory of it the best prediction is
    uniform over the keys:

    .. math::

        \text{baseline cross-entropy} = \log n_{keys} \quad (\log 7 = 1.946 \text{ for days}).

    Parameters
    ----------
    T : int
        Sequence length, >= 2 (the gap between key and query is T - 1 steps).
    n_keys : int
        >= 2.
    n_fillers : int
        >= 1.
    shift : int
        Offset of the answer from the key (1: "today" after "yesterday").

    Returns
    -------
    Task
        ``readout="last"``, ``loss="xent"``; targets int, shape (B,).
    """
    T = positive_int(T, "T", minimum=2)
    n_keys = positive_int(n_keys, "n_keys", minimum=2)
    n_fillers = positive_int(n_fillers, "n_fillers")
    shift = positive_int(shift, "shift", minimum=0)
    size = n_keys + n_fillers + 1
    query = size - 1

    def sample(batch_size, rng):
        keys = rng.integers(0, n_keys, size=batch_size)
        tokens = rng.integers(n_keys, n_keys + n_fillers, size=(batch_size, T))
        tokens[:, 0] = keys
        tokens[:, -1] = query
        return _one_hot(tokens, size), (keys + shift) % n_keys

    return Task("recall", T, T, size, n_keys, "last", "xent", math.log(n_keys), sample)


def delayed_xor_baseline(T, delay) -> float:
    r"""Per-step cross-entropy of the memoryless delayed-XOR (or delayed-copy) baseline (nats).

    The targets of :func:`delayed_xor` are 0 for the first ``delay`` steps (every term is a
    zero before the sequence) and afterwards the parity of at least one fair bit that is not the
    current input, hence a fair bit independent of everything a memoryless predictor knows (the
    step and the current input). Predicting 0 with certainty, then (1/2, 1/2), scores

    .. math::

        \frac{(T - d) \log 2}{T}.
    """
    T = positive_int(T, "T")
    delay = positive_int(delay, "delay")
    if delay >= T:
        raise ValueError(f"`delay` must be smaller than T = {T}; got {delay}.")
    return (T - delay) * math.log(2.0) / T


def delayed_xor(T, delay=None, n_bits=2) -> Task:
    r"""The delayed temporal XOR task of gradient flossing (Engelken 2023), and its delayed copy.

    A stream of fair bits :math:`x_t \in \{0, 1\}` (one input feature, the bit itself) and, at
    every step, the parity of the bits ``delay``, 2 ``delay``, ..., ``n_bits`` ``delay`` steps
    back (two classes, read out at every step):

    .. math::

        y_t = x_{t-d} \oplus x_{t-2d} \quad (n_{bits} = 2, \text{ the delayed XOR}), \qquad
        y_t = x_{t-d} \quad (n_{bits} = 1, \text{ the delayed copy}), \qquad
        y_t = \bigoplus_{j=1}^{n_{bits}} x_{t - j d},

    with :math:`x_t = 0` for t < 0. This is the generator ``generateInputOutput`` of the public
    code (github.com/RainerEngelken/GradientFlossing, ``GradientFlossing_XOR.jl``): ``task = 0``
    is the delayed copy, ``task = -h`` the hierarchical XOR of :math:`2^h` bits spaced by the
    delay (``task = -1``: the XOR of the inputs d and 2d steps back, its README's example), scored
    by the binary cross-entropy of one logit. Differences: here the loss is a two-class softmax
    cross-entropy (the same loss in the logit difference) at every step, because a
    :class:`Task` has no mask; the code scores only the steps from :math:`2^h d` on and shows no
    input before them (it drops the first d of its bits), which the zero padding replaces. The
    steps t >= ``n_bits * delay`` are the ones whose target needs the whole horizon: score a
    model's accuracy there (chance 1/2).

    The memoryless baseline is :func:`delayed_xor_baseline`, (T - d) log 2 / T.

    Parameters
    ----------
    T : int
        Sequence length, > ``n_bits * delay``.
    delay : int, optional
        d >= 1; by default ``max(1, T // (n_bits + 1))`` (a third of the sequence for the XOR is
        scored at the full horizon), so that ``make_task("xor", T)`` works like the other kinds.
    n_bits : int
        Number of delayed bits in the parity, >= 1 (1: copy; 2: XOR; 4: the code's ``task = -2``).

    Returns
    -------
    Task
        ``name="xor"`` (``"delayed_copy"`` for ``n_bits=1``), ``readout="sequence"``,
        ``loss="xent"``, I = 1, O = 2; inputs (B, T, 1) float64 in {0, 1}, targets int64 (B, T).
    """
    T = positive_int(T, "T")
    n_bits = positive_int(n_bits, "n_bits")
    delay = max(1, T // (n_bits + 1)) if delay is None else positive_int(delay, "delay")
    if n_bits * delay >= T:
        raise ValueError(
            f"`T` must exceed n_bits * delay = {n_bits * delay} (at least one step whose target needs "
            f"the whole horizon); got {T}."
        )

    def sample(batch_size, rng):
        bits = rng.integers(0, 2, size=(batch_size, T), dtype=np.int64)
        targets = np.zeros((batch_size, T), dtype=np.int64)
        for j in range(1, n_bits + 1):
            targets[:, j * delay :] ^= bits[:, : T - j * delay]
        return bits[..., None].astype(np.float64), targets

    name = "delayed_copy" if n_bits == 1 else "xor"
    return Task(name, T, T, 1, 2, "sequence", "xent", delayed_xor_baseline(T, delay), sample)


TASK_KINDS = ("adding", "copy", "periodic", "recall", "xor")
_BUILDERS = {
    "adding": adding_problem,
    "copy": copy_task,
    "periodic": periodic_sequence,
    "recall": long_gap_recall,
    "xor": delayed_xor,
}


def make_task(kind: str, T, **options) -> Task:
    """Build a task by name: ``"adding"``, ``"copy"``, ``"periodic"``, ``"recall"`` or ``"xor"``.

    ``options`` go to the task's function (:func:`adding_problem`, :func:`copy_task`,
    :func:`periodic_sequence`, :func:`long_gap_recall`, :func:`delayed_xor`, which needs
    ``delay``: ``make_task("xor", 100, delay=20)``).
    """
    choice(kind, "kind", TASK_KINDS)
    return _BUILDERS[kind](T, **options)
