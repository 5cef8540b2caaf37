"""The claims registry: each statement about gradients, checked against simulation.

A :class:`Claim` is data: an id, the statement in plain words, its source (a lecture note in
``shared/seeds/`` by file name, or a paper), what theory predicts, and a ``check`` function
that simulates and returns :class:`Evidence` (measured and predicted values, the tolerance
and why, and a verdict). :func:`check_claims` runs claims over several seeds and tabulates
them; ``gradsim check`` prints the table and writes ``reports/claims.csv``.

Each (claim, seed) is one task, run in this process or on an executor (a process pool or Dask,
``gradsim check --jobs N``): its generator depends on the claim's id and the seed only, it runs
with one BLAS thread wherever it runs, and the table is assembled in the registry's order, so
that it is byte-identical whichever executor ran it. Workers import a built-in check from its
module (:mod:`gradsim.claims.library`) and a user's claim from its file (:attr:`Claim.origin`).

Verdicts
--------
``supported``
    The statement holds in every seed within the stated tolerance.
``refuted``
    A counterexample was found (its description is in ``detail``).
``conditional``
    The statement holds under the conditions named in ``detail`` and fails outside them.

The built-in claims live in :mod:`gradsim.claims.library`; a user file defines ``CLAIMS``, a
list of :class:`Claim`, written the same way (see :func:`load_claims`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import numbers
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .._source import SourceFile
from .._validate import UsageError, describe

__all__ = [
    "Claim",
    "Evidence",
    "VERDICTS",
    "check_claims",
    "load_claims",
]

VERDICTS = ("supported", "refuted", "conditional")


@dataclass(frozen=True)
class Evidence:
    """What one check found.

    Attributes
    ----------
    verdict : {"supported", "refuted", "conditional"}
    measured, predicted : float
        The simulated quantity and its prediction (NaN where there is none).
    tolerance : float
        The largest |measured - predicted| (or margin) accepted; NaN if not numeric.
    detail : str
        The conditions, the counterexample found, or what was compared.
    """

    verdict: str
    measured: float = math.nan
    predicted: float = math.nan
    tolerance: float = math.nan
    detail: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(
                f"`verdict` must be one of {', '.join(map(repr, VERDICTS))}; got {describe(self.verdict)}."
            )
        for name in ("measured", "predicted", "tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"`{name}` must be a real number; got {describe(value)}.")
            object.__setattr__(self, name, float(value))


@dataclass(frozen=True)
class Claim:
    """A statement and the simulation that checks it.

    Attributes
    ----------
    id : str
        Short stable identifier, e.g. ``"notes.sv-gt-1-explodes"``.
    statement : str
        The claim in plain words, as its source makes it.
    source : str
        A seed lecture note by file name (``"001_d4c0ab13ebbd5c19.txt"``) or a paper.
    prediction : str
        What theory predicts, in words or a formula.
    tolerance_reason : str
        Why the tolerance is what it is (standard error, finite-N correction, rounding).
    check : callable (quick: bool, rng: numpy.random.Generator) -> Evidence
        Runs the simulation. Must use ``rng`` for all randomness. To run on a process pool or
        Dask, it must be a module-level function (workers import it by its module path) or
        come from a claims file (see ``origin``).
    origin : gradsim._source.SourceFile, optional
        The text and path of the file that defines the claim (set by :func:`load_claims`); it
        goes with the claim's tasks, and workers execute it to find the claim by id.
    """

    id: str
    statement: str
    source: str
    prediction: str
    tolerance_reason: str
    check: Callable
    origin: SourceFile | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        for name in ("id", "statement", "source", "prediction", "tolerance_reason"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"`{name}` must be a non-empty string; got {describe(value)}.")
        if not callable(self.check):
            raise TypeError(f"`check` must be a callable (quick, rng) -> Evidence; got {describe(self.check)}.")



#: Claims of the files loaded in this process: resolved path -> {id: Claim} (the latest load).
def load_claims(path) -> list[Claim]:
    """The ``CLAIMS`` list of a user's Python file, each claim with ``origin`` set to the file's
    text (so that workers run it without reading the file)."""
    source = SourceFile.read(path, "file", prefix="--claims: ")
    try:
        claims = _claims_of(source)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"--claims: {source.path} failed to import: {type(exc).__name__}: {exc}") from None
    return list(claims.values())


def _claims_of(source: SourceFile) -> dict[str, Claim]:
    """Claim id -> claim, for the ``CLAIMS`` of ``source`` (executed once per process)."""
    claims = getattr(source.module(), "CLAIMS", None)
    if not isinstance(claims, (list, tuple)) or not all(isinstance(c, Claim) for c in claims):
        raise UsageError(f"--claims: {source.path} must define CLAIMS, a list of gradsim.claims.Claim")
    return {c.id: dataclasses.replace(c, origin=source) for c in claims}


def _claim_at(origin: SourceFile, claim_id: str) -> Claim:
    """Claim ``claim_id`` of the file whose text is ``origin`` (a worker's task)."""
    try:
        return _claims_of(origin)[claim_id]
    except KeyError:
        raise LookupError(f"{origin.path} defines no claim {claim_id!r}") from None


def _seed_rng(claim_id: str, seed: int) -> np.random.Generator:
    # The generator depends on the claim and the seed only, not on which claims run with it.
    key = tuple(claim_id.encode())
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def check_claims(claims, *, quick: bool = False, seeds=(0, 1, 2), only=None,
                 executor: concurrent.futures.Executor | None = None) -> pd.DataFrame:
    """Run every claim for every seed; one row per claim.

    The verdict of a claim is its verdict in every seed when they agree; when seeds disagree
    it is ``conditional`` and the detail says how many seeds gave which verdict. A check that
    raises is reported with verdict ``error`` (and its message, from the first seed that
    raised).

    Parameters
    ----------
    executor : concurrent.futures.Executor, optional
        Runs one task per (claim, seed): a process pool or a Dask executor (see
        :func:`gradsim.workflow.make_executor`). By default every check runs here, one after
        the other. The table is the same either way, byte for byte.

    Returns
    -------
    DataFrame
        Columns: id, statement, source, prediction, verdict, measured, predicted, tolerance,
        tolerance_reason, detail, seeds (no timings: the table is reproducible byte for byte).
    """
    claims = list(claims)
    ids = [c.id for c in claims]
    duplicated = [i for i, n in Counter(ids).items() if n > 1]
    if duplicated:
        raise UsageError(f"claim ids must be unique; repeated: {', '.join(duplicated)}")
    if only:
        unknown = [i for i in only if i not in ids]
        if unknown:
            raise UsageError(f"--only: unknown claim id(s) {', '.join(unknown)}; see `gradsim check --list`")
        claims = [c for c in claims if c.id in set(only)]
    seeds = list(seeds)
    # outcomes[i][j]: the Evidence of claims[i] at seeds[j], or the message of its error.
    outcomes = [[None] * len(seeds) for _ in claims]
    if executor is None:
        for i, claim in enumerate(claims):
            for j, seed in enumerate(seeds):
                outcomes[i][j] = _check_one(claim, quick, seed)
                if isinstance(outcomes[i][j], str):  # the later seeds would not be reported
                    break
    else:
        futures = {}
        for i, claim in enumerate(claims):
            # A claim from a file travels as (file text, id) and is executed there; a built-in
            # one is pickled by reference (its check's module and name).
            task = claim if claim.origin is None else (claim.origin, claim.id)
            for j, seed in enumerate(seeds):
                earlier = [futures[i, s] for s in range(j)]
                # An executor that runs tasks at submission (the serial one) skips the seeds
                # after an error, as the loop above; a pool runs them (they are not reported).
                if any(f.done() and isinstance(_outcome(f), str) for f in earlier):
                    break
                try:
                    futures[i, j] = executor.submit(_check_one, task, quick, seed)
                except Exception as exc:  # e.g. a check that cannot be pickled
                    futures[i, j] = _failed(exc)
        for (i, j), future in futures.items():
            outcomes[i][j] = _outcome(future)
    rows = []
    for claim, found in zip(claims, outcomes):
        evidence, error = [], None
        for outcome in found:
            if outcome is None:
                break
            if isinstance(outcome, str):
                error = outcome
                break
            evidence.append(outcome)
        rows.append(_row(claim, evidence, error, len(seeds)))
    return pd.DataFrame(rows)


def _check_one(claim, quick: bool, seed: int):
    """One claim at one seed (in any process): its Evidence, or the message of its error.

    ``claim`` is a Claim or, for one defined in a file, ``(origin, id)``.
    """
    try:
        if isinstance(claim, tuple):
            claim = _claim_at(*claim)
        # One BLAS thread, as in the runner: the matrices are small, and OpenBLAS threads
        # on them are ~100x slower (N = 100 Lyapunov spectra), not faster.
        with threadpool_limits(limits=1):
            result = claim.check(quick, _seed_rng(claim.id, seed))
        if not isinstance(result, Evidence):
            raise TypeError(f"check returned {describe(result)}, not an Evidence")
        return result
    except Exception as exc:  # reported in the table; the other claims go on
        return _describe_error(exc)


def _describe_error(exc) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _failed(exc) -> concurrent.futures.Future:
    future = concurrent.futures.Future()
    future.set_exception(exc)
    return future


def _outcome(future):
    """The Evidence or error message of a task; an executor's own failure (a check that cannot
    be sent to a worker, a worker that died) is the claim's error."""
    try:
        return future.result()
    except Exception as exc:
        return f"could not run on the executor: {_describe_error(exc)}"


def _row(claim, evidence, error, n_seeds):
    row = {
        "id": claim.id, "statement": claim.statement, "source": claim.source,
        "prediction": claim.prediction, "tolerance_reason": claim.tolerance_reason,
    }
    if error is not None:
        return {**row, "verdict": "error", "measured": math.nan, "predicted": math.nan,
                "tolerance": math.nan, "detail": error, "seeds": n_seeds}
    verdicts = Counter(e.verdict for e in evidence)
    if len(verdicts) == 1:
        verdict = evidence[0].verdict
        detail = evidence[0].detail
    else:
        verdict = "conditional"
        split = ", ".join(f"{v} in {n}/{len(evidence)} seeds" for v, n in sorted(verdicts.items()))
        detail = f"seed-dependent: {split}. {evidence[0].detail}"
    # The reported numbers are those of the first seed; the verdict covers them all.
    first = evidence[0]
    return {**row, "verdict": verdict, "measured": first.measured, "predicted": first.predicted,
            "tolerance": first.tolerance, "detail": detail, "seeds": len(evidence)}
