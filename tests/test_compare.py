"""``gradsim compare DIR_A DIR_B``: two report folders agree within their uncertainties.

A small report (two quick studies and two claims) is made once per module; copies of it are
altered to check each outcome: the same folder agrees (exit 0), a key number moved far outside
its uncertainty disagrees (exit 1), and bad invocations exit 2 with one line, writing nothing.
The slow test makes two whole quick reports in separate processes under different OpenBLAS
kernels and checks that they agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gradsim.workflow.cli import main
from gradsim.workflow.compare import compare_reports

STUDIES = ("chain_rule", "activations")
CLAIMS = ("theory.latching", "notes.lstm-gates-flow-unchanged")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    for name in STUDIES:
        assert main(["run", name, "--quick", "--out", str(out)]) == 0
    assert main(["check", "--quick", "--seeds", "2", "--out", str(out), "--only", *CLAIMS]) == 0
    # `--only` names the table claims-selected.csv; the report's name is claims.csv.
    for suffix in (".csv", ".meta.json"):
        os.replace(out / f"claims-selected{suffix}", out / f"claims{suffix}")
    return out


def _copy(report, tmp_path, name="copy"):
    return Path(shutil.copytree(report, tmp_path / name))


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _compare(capsys, *args):
    status = main(["compare", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err.splitlines()


def test_a_folder_agrees_with_its_copy(report, tmp_path, capsys):
    status, out, err = _compare(capsys, report, _copy(report, tmp_path))
    assert status == 0, out
    assert out[-1].startswith("gradsim compare: 2 studies (") and "2 claims: all agree" in out[-1]
    assert err == []


def test_a_key_number_moved_outside_its_uncertainty_disagrees(report, tmp_path, capsys):
    moved = _copy(report, tmp_path)
    csv = moved / "chain_rule.csv"
    frame = pd.read_csv(csv)
    # Every measured log10 gradient one decade higher: the chain rule's key numbers are exact
    # (deterministic to rounding), so each that reads this column moves by 1 >> 1e-9.
    frame["log10_gradient"] += 1.0
    frame.to_csv(csv, index=False, lineterminator="\n")
    status, out, _ = _compare(capsys, report, moved)
    assert status == 1
    flagged = [line for line in out if line.startswith("chain_rule: ")]
    assert flagged and all("differ by" in line for line in flagged)
    assert any(line.startswith("note: ") and "chain_rule.csv was changed" in line for line in out)
    assert "disagree" in out[-1]


def test_a_changed_verdict_disagrees(report, tmp_path, capsys):
    changed = _copy(report, tmp_path)
    table = pd.read_csv(changed / "claims.csv", keep_default_na=False)
    table.loc[0, "verdict"] = "refuted" if table.loc[0, "verdict"] != "refuted" else "supported"
    table.to_csv(changed / "claims.csv", index=False, lineterminator="\n")
    status, out, _ = _compare(capsys, report, changed)
    assert status == 1
    assert any(line.startswith(f"claims: {table.loc[0, 'id']}: ") and "verdicts differ" in line
               for line in out)


def test_compare_is_the_same_in_python(report, tmp_path):
    result = compare_reports(report, _copy(report, tmp_path))
    assert result.agree and result.studies == tuple(sorted(STUDIES)) and result.n_claims == 2
    assert result.n_numbers > 10


def _bad(capsys, *args):
    status, out, err = _compare(capsys, *args)
    assert status == 2 and out == [] and len(err) == 1 and err[0].startswith("gradsim: error: ")
    return err[0]


def test_bad_invocations_exit_2_and_write_nothing(report, tmp_path, capsys):
    before = _digests(report)
    assert "no report folder" in _bad(capsys, report, tmp_path / "missing")
    assert "holds no study results" in _bad(capsys, report, tmp_path)

    fewer = _copy(report, tmp_path, "fewer")
    (fewer / "activations.csv").unlink()
    (fewer / "activations.meta.json").unlink()
    message = _bad(capsys, report, fewer)
    assert "different studies" in message and "only in" in message and "activations" in message

    truncated = _copy(report, tmp_path, "truncated")
    lines = (truncated / "chain_rule.csv").read_text().splitlines(keepends=True)
    (truncated / "chain_rule.csv").write_text("".join(lines[: len(lines) // 2]))
    assert "corrupt CSV" in _bad(capsys, report, truncated) and "rows" in _bad(capsys, truncated, report)

    garbled = _copy(report, tmp_path, "garbled")
    rows = json.loads((garbled / "chain_rule.meta.json").read_text())["rows"]
    (garbled / "chain_rule.csv").write_text("a,b\n" + "1,2\n" * rows)  # right length, wrong columns
    assert "cannot summarize" in _bad(capsys, report, garbled)

    binary = _copy(report, tmp_path, "binary")
    (binary / "chain_rule.csv").write_bytes(b"\x00\xff\x00" * 100)
    assert "corrupt CSV" in _bad(capsys, report, binary)

    quick_vs_full = _copy(report, tmp_path, "full")
    meta = json.loads((quick_vs_full / "activations.meta.json").read_text())
    (quick_vs_full / "activations.meta.json").write_text(json.dumps({**meta, "quick": False}))
    assert "quick run, the other its full run" in _bad(capsys, report, quick_vs_full)

    assert "required: DIR_B" in _bad(capsys, report)
    assert _digests(report) == before  # compare only reads


def _blas_kernels(folder: Path) -> set:
    meta = json.loads((folder / "chain_rule.meta.json").read_text())
    return {entry["architecture"] for entry in meta["versions"]["blas"]}


@pytest.mark.slow
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="OPENBLAS_CORETYPE names x86 kernels; other CPUs have other types")
def test_two_quick_reports_under_different_blas_kernels_agree(tmp_path):
    # Two whole quick reports, in two processes at once: one with the environment as it is
    # (OPENBLAS_CORETYPE may already be set by CI: left alone), one with another kernel type
    # forced. Sandybridge kernels (AVX, no FMA) round differently from Haswell/SkylakeX/Zen
    # (FMA), so these are two machines as far as floating point goes.
    default, forced = tmp_path / "default", tmp_path / "forced"
    current = os.environ.get("OPENBLAS_CORETYPE", "")
    other = "Haswell" if current.lower() == "sandybridge" else "Sandybridge"
    command = [sys.executable, "-m", "gradsim.workflow.cli", "report", "--quick", "--out"]
    env = {k: v for k, v in os.environ.items() if k != "GRADSIM_DEBUG"}
    runs = [
        subprocess.Popen([*command, str(default)], env=env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        subprocess.Popen([*command, str(forced)], env={**env, "OPENBLAS_CORETYPE": other},
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
    ]
    for run in runs:
        output, _ = run.communicate(timeout=1200)
        assert run.returncode == 0, output
    kernels_default, kernels_forced = _blas_kernels(default), _blas_kernels(forced)
    assert kernels_forced == {other} and kernels_default != kernels_forced
    result = subprocess.run([*command[:3], "compare", str(default), str(forced)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith("all agree within their uncertainties")


def test_an_estimate_from_one_draw_is_named_not_judged(tmp_path, monkeypatch):
    # A quick grid's single seed gives estimates with no standard error: a change in one cannot
    # be called a disagreement or an agreement, so compare names it and does not count it.
    from gradsim.workflow import compare as compare_module

    class OneDraw:
        summarize = staticmethod(lambda frame: {"x": __import__("gradsim").Estimate(
            float(frame.value.iloc[0]), float("nan"), 1)})

    for name, value in (("a", 1.0), ("b", 2.0)):
        folder = tmp_path / name
        folder.mkdir()
        pd.DataFrame({"value": [value]}).to_csv(folder / "toy.csv", index=False)
        (folder / "toy.meta.json").write_text(json.dumps({"study": "toy", "quick": True, "rows": 1}))
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "toy.py").write_text("")
    monkeypatch.setattr(compare_module, "load_study", lambda path: OneDraw())
    result = compare_reports(tmp_path / "a", tmp_path / "b", studies)
    assert result.agree and result.n_numbers == 1
    assert result.notes == ("not judged: toy: x: 1 (one draw) vs 2 (one draw) "
                            "(an estimate from one draw has no standard error)",)
