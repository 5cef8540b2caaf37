"""Compare two report folders: every study's key numbers and every claim's verdict.

``gradsim compare DIR_A DIR_B`` reads two folders written by ``gradsim report`` (or ``run``), for
example the committed ``reports/`` and a fresh ``gradsim report --out /tmp/r`` on another
machine. Each study's key numbers are computed again from each folder's CSV by the study's own
``summarize`` and compared within what they can be trusted to (:func:`gradsim.workflow.findings.agree`):
exact ones to rounding, estimates within their standard errors, rates within their binomial
noise. An estimate from a single draw (a quick grid's one seed) states no noise; where it moved
it is named in a note and not counted either way. Claims are compared by verdict. Reading only,
never writing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .._validate import UsageError
from .findings import Z_AGREE, Estimate, agree, describe_finding
from .report import format_value
from .runner import find_studies, load_study

__all__ = ["Disagreement", "Comparison", "compare_reports"]


@dataclass(frozen=True)
class Disagreement:
    """One key number (or claim verdict) that differs beyond its uncertainty."""

    study: str
    key: str
    a: object
    b: object
    account: str

    def line(self) -> str:
        return (f"{self.study}: {self.key}: {_show(self.a)} vs {_show(self.b)} ({self.account})")


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_reports` found."""

    studies: tuple[str, ...]
    n_numbers: int
    n_claims: int
    disagreements: tuple[Disagreement, ...]
    notes: tuple[str, ...]

    @property
    def agree(self) -> bool:
        return not self.disagreements

    def summary(self) -> str:
        what = (f"{len(self.studies)} studies ({self.n_numbers} key numbers) and "
                f"{self.n_claims} claims")
        if self.agree:
            return f"{what}: all agree within their uncertainties"
        return f"{what}: {len(self.disagreements)} disagree"


def _show(value) -> str:
    if value is None:
        return "(absent)"
    return describe_finding(value, format_value)


def _folder(path, name) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{name}: no report folder at {path}")
    return path


def _study_metas(folder: Path) -> dict[str, dict]:
    metas = {}
    for meta_path in sorted(folder.glob("*.meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"corrupt sidecar {meta_path}: {exc}") from None
        if isinstance(meta, dict) and "study" in meta:
            metas[meta["study"]] = meta
    return metas


def _read_csv(path: Path, meta: dict, notes: list) -> pd.DataFrame:
    try:
        data = path.read_bytes()
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UsageError(f"corrupt CSV {path}: {str(exc).splitlines()[0]}") from None
    rows = meta.get("rows")
    if rows is not None and rows != len(frame):
        raise UsageError(f"corrupt CSV {path}: {len(frame)} rows, its sidecar says {rows}")
    if meta.get("csv_sha256") not in (None, hashlib.sha256(data).hexdigest()):
        notes.append(f"note: {path} was changed after it was written (its sha256 is not the sidecar's)")
    return frame


def _summary(study, frame: pd.DataFrame, path: Path) -> dict:
    if study.summarize is None:
        return {}
    try:
        summary = dict(study.summarize(frame))
    except Exception as exc:
        raise UsageError(
            f"cannot summarize {path} (corrupt or from another version of the study?): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    summary.pop("notes", None)
    return summary


def compare_reports(dir_a, dir_b, studies_dir=None, z: float = Z_AGREE) -> Comparison:
    """Compare the report folders ``dir_a`` and ``dir_b``.

    Parameters
    ----------
    dir_a, dir_b : path
        Folders holding ``<study>.csv`` with ``<study>.meta.json`` (and ``claims.csv``).
    studies_dir : path, optional
        Where the studies' files are (default: the built-in studies); each study's
        ``summarize`` computes its key numbers from either folder's CSV.
    z : float
        Standard errors allowed between two estimates (see ``gradsim.workflow.findings``).

    Returns
    -------
    Comparison

    Raises
    ------
    UsageError
        A folder that does not exist or holds no study; folders of different studies, or one
        quick and one full; a study that is not in ``studies_dir``; a corrupt CSV or sidecar.
    """
    folder_a, folder_b = _folder(dir_a, "DIR_A"), _folder(dir_b, "DIR_B")
    metas_a, metas_b = _study_metas(folder_a), _study_metas(folder_b)
    for folder, metas in ((folder_a, metas_a), (folder_b, metas_b)):
        if not metas:
            raise UsageError(f"{folder} holds no study results (no <study>.meta.json)")
    if set(metas_a) != set(metas_b):
        only_a = ", ".join(sorted(set(metas_a) - set(metas_b))) or "none"
        only_b = ", ".join(sorted(set(metas_b) - set(metas_a))) or "none"
        raise UsageError(
            f"the folders hold different studies: only in {folder_a}: {only_a}; only in {folder_b}: {only_b}"
        )
    available = find_studies(studies_dir)
    disagreements, notes, n_numbers = [], [], 0
    for name in sorted(metas_a):
        if metas_a[name].get("quick") != metas_b[name].get("quick"):
            raise UsageError(f"{name}: one folder holds its quick run, the other its full run")
        if name not in available:
            raise UsageError(f"unknown study {name!r}: pass --studies DIR with its study file")
        study = load_study(available[name])
        summaries = []
        for folder, metas in ((folder_a, metas_a), (folder_b, metas_b)):
            path = folder / f"{name}.csv"
            if not path.is_file():
                raise UsageError(f"{name}: {path} is missing (its sidecar is there)")
            summaries.append(_summary(study, _read_csv(path, metas[name], notes), path))
        sum_a, sum_b = summaries
        for key in list(dict.fromkeys([*sum_a, *sum_b])):
            n_numbers += 1
            if key not in sum_a or key not in sum_b:
                disagreements.append(Disagreement(name, key, sum_a.get(key), sum_b.get(key),
                                                  "in one folder only"))
                continue
            ok, account = agree(sum_a[key], sum_b[key], z)
            if not ok and _one_draw(sum_a[key], sum_b[key]):
                # An estimate from one draw (a quick grid's single seed) states no noise: its
                # change cannot be judged either way, so it is named, not counted.
                notes.append(f"not judged: {name}: {key}: {_show(sum_a[key])} vs {_show(sum_b[key])} "
                             "(an estimate from one draw has no standard error)")
            elif not ok:
                disagreements.append(Disagreement(name, key, sum_a[key], sum_b[key], account))
    n_claims = _compare_claims(folder_a, folder_b, disagreements)
    return Comparison(tuple(sorted(metas_a)), n_numbers, n_claims, tuple(disagreements), tuple(notes))


def _one_draw(a, b) -> bool:
    return any(isinstance(v, Estimate) and v.n == 1 for v in (a, b))


def _claims_table(folder: Path):
    path = folder / "claims.csv"
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UsageError(f"corrupt CSV {path}: {str(exc).splitlines()[0]}") from None
    if not {"id", "verdict"} <= set(table.columns):
        raise UsageError(f"corrupt CSV {path}: no id and verdict columns")
    return dict(zip(table["id"], table["verdict"]))


def _compare_claims(folder_a, folder_b, disagreements) -> int:
    verdicts_a, verdicts_b = _claims_table(folder_a), _claims_table(folder_b)
    if verdicts_a is None and verdicts_b is None:
        return 0
    if verdicts_a is None or verdicts_b is None:
        missing = folder_a if verdicts_a is None else folder_b
        raise UsageError(f"claims.csv is missing in {missing} (the other folder has one)")
    ids = list(dict.fromkeys([*verdicts_a, *verdicts_b]))
    for claim_id in ids:
        a, b = verdicts_a.get(claim_id), verdicts_b.get(claim_id)
        if a != b:
            account = "in one folder only" if a is None or b is None else "verdicts differ"
            disagreements.append(Disagreement("claims", claim_id, a, b, account))
    return len(ids)
