"""gradsim.bench.lyapunov_grad: the --quick run's rows and printed table are consistent.

Timings are not tested (a shared machine): the rows' structure, the ratios as quotients of the
rows' own times, the verdicts against the target, and the exponents of lyapunov_vjp against
lyapunov_spectrum's (within the latter's stated 1e-8) are.
"""

from __future__ import annotations

import io
import math

from gradsim.bench import lyapunov_grad


def test_quick_rows_and_table():
    out = io.StringIO()
    rows = lyapunov_grad.run(quick=True, out=out)
    printed = out.getvalue()
    sizes = lyapunov_grad.QUICK["sizes"]
    assert [(r["cell"], r["n_hidden"]) for r in rows] == [(c, n) for c in lyapunov_grad.CELLS for n in sizes]
    for r in rows:
        for key in ("spectrum_time", "vjp_time", "vjp_inputs_time"):
            assert math.isfinite(r[key]) and r[key] > 0
        assert r["ratio"] == r["vjp_time"] / r["spectrum_time"]
        assert r["ratio_inputs"] == r["vjp_inputs_time"] / r["spectrum_time"]
        assert r["k"] == max(1, r["n_hidden"] // 4)
        assert r["exponent_difference"] <= 1e-8
    lines = [line.split() for line in printed.splitlines() if line.split()[:1] and line.split()[0] in lyapunov_grad.CELLS]
    assert len(lines) == len(rows)
    for line, r in zip(lines, rows):
        assert line[-1] == ("ok" if r["ratio"] <= lyapunov_grad.TARGET else "over")
    assert f"target vjp/spectrum <= {lyapunov_grad.TARGET:g}" in printed


def test_main_rejects_bad_arguments(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        lyapunov_grad.main(["--steps", "0"])
    assert exit_info.value.code == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
