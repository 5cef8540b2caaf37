"""Shared by the study-finding tests: run a study's quick grid the way the report does."""

from pathlib import Path

import pandas as pd

from gradsim.workflow.report import produce

STUDIES = Path(__file__).resolve().parent.parent / "studies"


def run_quick(name, tmp_path):
    """Quick grid through ``produce`` (CSV, metadata, figure); returns (frame read back, summary)."""
    result = produce(STUDIES / f"{name}.py", quick=True, out=tmp_path, progress=False)
    assert result.n_errors == 0
    assert (tmp_path / f"{name}.png").exists()
    frame = pd.read_csv(result.csv_path)
    summary = result.study.summarize(frame)
    assert isinstance(summary.get("notes"), str) and summary["notes"]
    return frame, summary
