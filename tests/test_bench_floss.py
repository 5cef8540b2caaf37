"""gradsim.bench.floss: the --quick run's rows and printed table are consistent.

Timings are not tested (a shared machine); the rows' structure, the ratios and rates as
quotients of the rows' own times, and the printed numbers against the rows are.
"""

from __future__ import annotations

import io
import math

import pytest

from gradsim.bench import floss as bench

KEYS = {"cell", "n_hidden", "state_size", "steps", "k", "batch", "updates", "floss_time", "bptt_time",
        "floss_per_second", "bptt_per_second", "ratio"}
STATE_FACTOR = {"rnn": 1, "lstm": 2, "gru": 1}


def _positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_run():
    out = io.StringIO()
    rows = bench.run(quick=True, out=out)
    return rows, out.getvalue()


def test_rows(quick_run):
    rows, _ = quick_run
    sizes = bench.QUICK["sizes"]
    assert [(r["cell"], r["n_hidden"]) for r in rows] == [(c, n) for c in bench.CELLS for n in sizes]
    for r in rows:
        assert set(r) == KEYS
        assert r["state_size"] == STATE_FACTOR[r["cell"]] * r["n_hidden"]
        assert (r["steps"], r["k"], r["batch"], r["updates"]) == (
            bench.QUICK["steps"], bench.QUICK["k"], bench.QUICK["batch"], bench.QUICK["updates"])
        for key in ("floss_time", "bptt_time", "floss_per_second", "bptt_per_second", "ratio"):
            assert _positive(r[key]), (key, r[key])
        assert r["ratio"] == pytest.approx(r["floss_time"] / r["bptt_time"], rel=1e-12)
        assert r["floss_per_second"] == pytest.approx(r["updates"] / r["floss_time"], rel=1e-12)
        assert r["bptt_per_second"] == pytest.approx(r["updates"] / r["bptt_time"], rel=1e-12)


def test_printed_table(quick_run):
    rows, text = quick_run
    lines = text.splitlines()
    assert lines[0].startswith("flossing updates against BPTT updates") and "BLAS:" in lines[0]
    assert lines[1].split()[:2] == ["cell", "N"]
    table = [line.split() for line in lines[2:]]
    assert len(table) == len(rows)
    for fields, row in zip(table, rows):
        assert (fields[0], int(fields[1])) == (row["cell"], row["n_hidden"])
        assert float(fields[6]) == pytest.approx(row["ratio"], abs=6e-3)
        assert float(fields[2]) == pytest.approx(1e3 * row["floss_time"] / row["updates"], abs=6e-3)


def test_main_options(capsys):
    assert bench.main(["--quick", "--sizes", "6", "--k", "1", "--steps", "8"]) == 0
    text = capsys.readouterr().out
    assert "T = 8, k = 1" in text
    assert [line.split()[1] for line in text.splitlines()[2:]] == ["6"] * len(bench.CELLS)


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads must be >= 1; got 0"),
    (["--steps", "1"], "--steps must be >= 2; got 1"),
    (["--k", "0"], "--k must be >= 1; got 0"),
    (["--sizes", "abc"], "sizes must be integers"),
])
def test_main_rejects_bad_options(capsys, argv, message):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err
