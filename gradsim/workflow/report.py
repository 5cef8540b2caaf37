"""Produce a study's outputs (CSV, metadata, figures) and assemble ``reports/README.md``.

Every number the report shows is computed from the CSVs the runner wrote, never typed in.
"""

from __future__ import annotations

import numbers
import time
from pathlib import Path

import pandas as pd

from .findings import describe_finding
from .plotting import save_figure
from .runner import (
    StudyResult,
    atomic_write,
    find_studies,
    load_study,
    prepare_out,
    run_study,
    write_table,
)

__all__ = ["produce", "write_report", "write_claims", "claims_section", "format_value"]


def produce(study, *, quick=False, out=None, executor=None, resume=False, overrides=None,
            progress=True) -> StudyResult:
    """Run ``study`` (a Study or a path to its file) and save its figure next to its CSV."""
    if not hasattr(study, "simulate"):
        study = load_study(study)
    result = run_study(study, quick=quick, out=out, executor=executor, resume=resume,
                       overrides=overrides, progress=progress)
    if study.plot is not None:
        frame = pd.read_csv(result.csv_path)
        save_figure(study.plot(frame), result.csv_path.with_suffix(""))
    return result


def format_value(value) -> str:
    """A number for the report: 4 significant digits, integers as they are."""
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return f"{value:.4g}"


def write_claims(claims, *, out, quick=False, only=None, seeds=(0, 1, 2), name="claims",
                 executor=None):
    """Check ``claims`` (on ``executor``, one task per claim and seed, if given) and write
    ``<out>/<name>.csv`` with its sidecar; the files do not depend on the executor.

    Returns ``(table, csv_path, seconds)``.
    """
    from ..claims.framework import check_claims

    out = prepare_out(out)
    start = time.perf_counter()
    table = check_claims(claims, quick=quick, seeds=seeds, only=only, executor=executor)
    seconds = time.perf_counter() - start
    path = out / f"{name}.csv"
    write_table(table, path, {
        "claims": [c.id for c in claims if not only or c.id in only], "quick": quick,
        "seeds": list(seeds),
        "verdicts": {k: int(v) for k, v in sorted(table.verdict.value_counts().items())},
    })
    return table, path, seconds


def claims_section(out: Path) -> str:
    """The report's claims table, from ``<out>/claims.csv``."""
    path = Path(out) / "claims.csv"
    if not path.exists():
        return ""
    table = pd.read_csv(path, keep_default_na=False)
    counts = table.verdict.value_counts()
    lines = [
        "## Claims checked against simulation", "",
        f"{len(table)} claims from the lecture notes and the literature, each checked over "
        f"{int(table.seeds.max())} seeds by `gradsim check` ([`claims.csv`](claims.csv)): "
        + ", ".join(f"{int(counts[v])} {v}" for v in ("supported", "conditional", "refuted", "error") if v in counts)
        + ".", "",
        "| claim | source | verdict | measured | predicted | detail |", "|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        cells = [f"**{row.id}**: {row.statement}", row.source, row.verdict,
                 _number(row.measured), _number(row.predicted), row.detail]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines + [""])


def _cell(text) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _number(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "" if value != value else format_value(value)


def _section(study, out: Path) -> str:
    csv = out / f"{study.name}.csv"
    lines = [f"## {study.name}", "", f"**Question.** {study.question}", ""]
    if not csv.exists():
        return "\n".join(lines + ["(not run)", ""])
    frame = pd.read_csv(csv)
    if (out / f"{study.name}.png").exists():
        lines += [f"![{study.name}]({study.name}.png)", ""]
    if study.summarize is not None:
        summary = study.summarize(frame)
        notes = summary.pop("notes", None) if isinstance(summary, dict) else None
        if summary:
            lines += ["| quantity | value |", "|---|---|"]
            lines += [f"| {_cell(key)} | {_cell(describe_finding(value, format_value))} |"
                      for key, value in summary.items()]
            lines.append("")
        if notes:
            lines += [notes, ""]
    lines += [f"Data: [`{study.name}.csv`]({study.name}.csv) ({len(frame)} rows; "
              f"configuration and versions in `{study.name}.meta.json`).", ""]
    return "\n".join(lines)


def write_report(out, studies_dir=None, extra_sections=()) -> Path:
    """Write ``<out>/README.md`` from the CSVs in ``out``; returns its path."""
    out = Path(out)
    parts = [
        "# gradsim report",
        "",
        "Generated by `gradsim report`: every figure, table and number below is computed from",
        "the CSV files in this folder, which the study scripts in `studies/` wrote.",
        "",
        "Each key number carries what it can be trusted to on another machine (other CPU kernels,",
        "other library versions, the same seeds): `x ± s` is an estimate from random draws or a",
        "chaotic trajectory with one standard error; `p (k/n; 95% CI a-b)` a success rate with its",
        "Wilson interval; a bare number is exact up to floating-point rounding (relative 1e-9).",
        "`gradsim compare DIR_A DIR_B` checks two report folders against each other within these.",
        "",
    ]
    parts += list(extra_sections)
    claims = claims_section(out)
    if claims:
        parts.append(claims)
    for name, path in find_studies(studies_dir).items():
        parts.append(_section(load_study(path), out))
    path = out / "README.md"
    atomic_write(path, ("\n".join(parts).rstrip() + "\n").encode())
    return path
