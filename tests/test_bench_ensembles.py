"""The ensembles benchmark's quick run: its rows, its times, and lyapynov being optional."""

import io
import math
import sys

import pytest

from gradsim.bench import ensembles

KEYS = {
    "ensemble": {
        "function", "members", "n_hidden", "steps", "ensemble_time", "single_time",
        "ensemble_per_network", "single_per_network", "single_over_ensemble", "max_deviation",
        "deviation_kind",
    },
    "spectrum": {
        "n_hidden", "steps", "gradsim_time", "floor_time", "gradsim_us_per_step", "floor_us_per_step",
        "gradsim_over_floor", "spread", "top_exponent", "lyapynov_time", "lyapynov_us_per_step",
        "lyapynov_over_gradsim", "lyapynov_diff",
    },
    "large": {
        "n_hidden", "steps", "matmul_time", "singular_time", "spectrum_time", "matmul_gflops",
        "singular_gflops", "spectrum_gflops", "singular_over_matmul", "spectrum_over_matmul", "spread",
    },
}
LYAPYNOV_KEYS = ("lyapynov_time", "lyapynov_us_per_step", "lyapynov_over_gradsim", "lyapynov_diff")


def _quick():
    out = io.StringIO()
    return ensembles.run(quick=True, out=out), out.getvalue()


def _positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def _check_rows(rows, with_lyapynov: bool):
    sections = [r["section"] for r in rows]
    assert sections == ["ensemble", "ensemble", "spectrum", "spectrum", "large"]
    for row in rows:
        assert set(row) == KEYS[row["section"]] | {"section"}
        for key, value in row.items():
            if key.endswith(("_time", "_per_network", "_per_step", "_gflops", "_over_floor",
                             "_over_matmul", "_over_ensemble")):
                if key.startswith("lyapynov") and not with_lyapynov:
                    continue
                assert _positive(value), (row["section"], key, value)
    for row in rows:
        if row["section"] == "ensemble":
            # The ensemble's members give the single calls' results (to rounding).
            assert 0.0 <= row["max_deviation"] < 1e-8, row
        if row["section"] == "spectrum":
            assert _positive(row["spread"])
            if with_lyapynov:
                assert _positive(row["lyapynov_over_gradsim"])
                assert 0.0 <= row["lyapynov_diff"] < 1e-8, row
            else:
                assert all(row[key] is None for key in LYAPYNOV_KEYS), row


@pytest.fixture(scope="module")
def quick_run():
    """One quick run with whatever is installed (lyapynov or not), shared by the tests below."""
    with_lyapynov = ensembles._lyapynov() is not None
    rows, text = _quick()
    return rows, text, with_lyapynov


def test_quick_run_rows(quick_run):
    rows, text, with_lyapynov = quick_run
    _check_rows(rows, with_lyapynov)
    assert "BLAS:" in text and "targets" in text
    for header in ("1. Ensemble vs single calls", "2. Full spectrum", "3. Large N"):
        assert header in text


def test_quick_run_lyapynov_columns(quick_run):
    pytest.importorskip("lyapynov")
    rows, text, with_lyapynov = quick_run
    assert with_lyapynov and "is not installed" not in text
    spectra = [r for r in rows if r["section"] == "spectrum"]
    assert all(_positive(r["lyapynov_time"]) and r["lyapynov_diff"] < 1e-8 for r in spectra)


def test_quick_run_without_lyapynov(monkeypatch):
    # A None entry in sys.modules makes `import lyapynov` raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, "lyapynov", None)
    rows, text = _quick()
    _check_rows(rows, with_lyapynov=False)
    assert "lyapynov is not installed (pip install 'gradsim[bench]'): its columns are skipped." in text
    assert "not measured, lyapynov is not installed" in text


def test_main_rejects_bad_threads():
    with pytest.raises(SystemExit):
        ensembles.main(["--threads", "0"])
