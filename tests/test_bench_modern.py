"""gradsim.bench.modern: the --quick run's rows and printed tables are consistent.

Timings are not tested (a shared machine); the rows' structure, the ratios as quotients of the
rows' own times, the printed numbers against the rows, and the cells' state sizes are.
"""

from __future__ import annotations

import io
import math

import pytest

from gradsim.bench import modern

STACKED_KEYS = {
    "section", "n_hidden", "layers", "state_size", "steps", "tangent_time", "spectrum_time",
    "dense_mm_time", "dense_time", "tangent_per_step", "spectrum_per_step", "dense_mm_per_step",
    "dense_per_step", "tangent_over_dense_mm", "spectrum_over_dense",
}
CELL_KEYS = {"section", "cell", "n_hidden", "state_size", "steps", "spectrum_time",
             "spectrum_per_step", "over_lstm"}
# State size over N: two halves (Re, Im) for the LRU, (y, z) for the coRNN, (h, c) for the LSTM.
STATE_FACTOR = {"lstm": 2, "lru": 2, "cornn": 2, "mingru": 1, "minlstm": 1, "indrnn": 1,
                "antisymmetric": 1}


def _positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


def _table(text, header, first):
    """The data lines under the section starting with ``header``, whose column line starts
    with the field ``first``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    k = next(i for i in range(start, len(lines)) if lines[i].split()[:1] == [first])
    rows = []
    for line in lines[k + 1:]:
        fields = line.split()
        if not fields or not fields[0].isdigit():
            break
        rows.append(fields)
    return rows


@pytest.fixture(scope="module")
def quick_run():
    out = io.StringIO()
    rows = modern.run(quick=True, out=out)
    return rows, out.getvalue()


def test_rows(quick_run):
    rows, _ = quick_run
    sizes = modern.QUICK["sizes"]
    assert [r["section"] for r in rows] == ["stacked"] + ["cells"] * (len(modern.CELLS) * len(sizes))
    stack = rows[0]
    assert set(stack) == STACKED_KEYS
    n = modern.QUICK["stack_n"]
    assert (stack["n_hidden"], stack["layers"], stack["steps"]) == (n, 3, modern.QUICK["stack_steps"])
    assert stack["state_size"] == 3 * 2 * n  # three LSTM layers of (h, c)
    for key, value in stack.items():
        if key.endswith(("_time", "_per_step")):
            assert _positive(value), (key, value)
    assert stack["tangent_over_dense_mm"] == pytest.approx(stack["tangent_time"] / stack["dense_mm_time"],
                                                           rel=1e-12)
    assert stack["spectrum_over_dense"] == pytest.approx(stack["spectrum_time"] / stack["dense_time"],
                                                         rel=1e-12)
    # The dense floor's matmul is part of it.
    assert stack["dense_mm_time"] < stack["dense_time"]
    cells = rows[1:]
    for size in sizes:
        block = [r for r in cells if r["n_hidden"] == size]
        assert [r["cell"] for r in block] == ["lstm"] + [k for k in modern.CELLS if k != "lstm"]
        lstm = block[0]
        assert lstm["over_lstm"] == 1.0
        for r in block:
            assert set(r) == CELL_KEYS
            assert r["state_size"] == STATE_FACTOR[r["cell"]] * size
            assert _positive(r["spectrum_time"]) and _positive(r["spectrum_per_step"])
            assert r["spectrum_per_step"] == pytest.approx(r["spectrum_time"] / r["steps"], rel=1e-12)
            assert r["over_lstm"] == pytest.approx(r["spectrum_time"] / lstm["spectrum_time"], rel=1e-12)


def test_printed_tables(quick_run):
    rows, text = quick_run
    assert text.startswith("BLAS:")
    stack = rows[0]
    (fields,) = _table(text, "1. Stacked LSTM", "P")
    assert int(fields[0]) == stack["state_size"] and len(fields) == 8
    assert float(fields[6]) == pytest.approx(stack["tangent_over_dense_mm"], abs=6e-4)
    assert float(fields[7]) == pytest.approx(stack["spectrum_over_dense"], abs=6e-4)
    table = _table(text, "2. Full spectrum", "N")
    assert len(table) == len(rows) - 1
    for fields, row in zip(table, rows[1:]):
        assert (int(fields[0]), fields[2], int(fields[3])) == (row["n_hidden"], row["cell"],
                                                              row["state_size"])
        assert float(fields[5]) == pytest.approx(row["over_lstm"], abs=6e-4)
    verdict = "cheaper" if stack["spectrum_over_dense"] < 1 else "NOT cheaper"
    assert f"({verdict} than dense)" in text


def test_stacked_lstm_chains_the_layers():
    stack = modern.stacked_lstm(5, n_input=3, layers=3, rng=0)
    assert [layer.n_input for layer in stack.layers] == [3, 5, 5]
    assert stack.state_size == 30 and stack.n_input == 3


def test_main_options(capsys):
    assert modern.main(["--quick", "--stack-n", "4", "--sizes", "6"]) == 0
    text = capsys.readouterr().out
    assert "3 layers of N=4" in text and "state P=24" in text
    assert [int(f[0]) for f in _table(text, "2. Full spectrum", "N")] == [6] * len(modern.CELLS)


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads must be >= 1; got 0"),
    (["--stack-n", "1"], "--stack-n must be >= 2; got 1"),
    (["--sizes", "abc"], "must be integers >= 2"),
])
def test_main_rejects_bad_options(capsys, argv, message):
    with pytest.raises(SystemExit):
        modern.main(argv)
    assert message in capsys.readouterr().err
