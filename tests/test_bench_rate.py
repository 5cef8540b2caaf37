"""The rate benchmark's quick run: its tables, its rows, and the spectrum's sum rule. No timing
is asserted (the machine is shared); only that every time and ratio is finite and positive."""

import io
import math
import re

import numpy as np
import pytest

from gradsim.bench import rate

TANGENT_KEYS = {
    "members", "n_hidden", "steps", "tangent_time", "tangent_qr_time", "spectrum_time",
    "tangent_per_step", "tangent_qr_per_step", "spectrum_per_step", "matmuls_per_step",
    "floor_per_step", "tangent_over_matmuls", "tangent_qr_over_floor", "spectrum_over_floor",
}
SPECTRUM_KEYS = {
    "n_hidden", "gain", "dt", "input_std", "time_units", "steps", "warmup", "spectrum_time",
    "steps_per_second", "matmul_gflops", "spectrum_gflops", "matmul_fraction", "per_step",
    "floor_per_step", "over_floor", "largest", "largest_stderr", "mean", "dimension_per_n",
    "entropy_per_n", "positive_fraction", "dmft_largest",
}
TIMES = ("_time", "_per_step", "_over_matmuls", "_over_floor", "steps_per_second", "_gflops",
         "matmul_fraction")

# The sum rule. With J_ii = 0, tr(-I + J diag phi'(x)) = -N at every state, so the flow's
# exponents sum to exactly -N per unit time (Liouville), for any input. The exponents of the
# iterated RK4 tangent map sum to the average of log|det M_n| / dt over the measured steps, to
# rounding (the QR identity: the frame is orthonormal at the end of the warm-up), and M_n is the
# flow's Jacobian over one step up to RK4's local error O(dt^5), so the mean exponent per unit
# time is -1 + O(dt^4). For a constant A, log det T4(dt A) = sum_i [dt mu_i - (dt mu_i)^5 / 120
# + ...], whose mean over a circular-law spectrum mu = -1 + g z is dt^5 / 120 per step, i.e.
# 8e-7 per unit time at dt = 0.1; the state-dependent A(x) of the stages adds terms of the same
# order. Observed: 1e-6 to 4e-6 at N = 16 to 64, g = 2, 3. 1e-4 leaves a factor 25 over those
# and is 500 times smaller than forward Euler's offset -dt/2 = -0.05 at the same step, which it
# would reject.
SUM_RULE = 1e-4


def _finite_positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def _table(text: str, header: str) -> list[list[str]]:
    """The data lines of the table under the section line starting with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    assert lines[start + 1].split()[:3] == ["N", "T", "tangent"], lines[start + 1]
    rows = []
    for line in lines[start + 2:]:
        fields = line.split()
        if not fields or not fields[0].isdigit():
            break
        rows.append(fields)
    return rows


@pytest.fixture(scope="module")
def quick_run():
    out = io.StringIO()
    rows = rate.run(quick=True, out=out)
    return rows, out.getvalue()


def test_rows(quick_run):
    rows, _ = quick_run
    assert [r["section"] for r in rows] == ["tangent"] * 4 + ["spectrum"]
    tangent, spectrum = rows[:4], rows[4]
    assert [(r["members"], r["n_hidden"]) for r in tangent] == [(1, 16), (1, 32), (4, 16), (4, 32)]
    for row in tangent:
        assert set(row) == TANGENT_KEYS | {"section"}
    assert set(spectrum) == SPECTRUM_KEYS | {"section"}
    for row in rows:
        for key, value in row.items():
            if key.endswith(TIMES):
                assert _finite_positive(value), (row["section"], key, value)
    # Per-step times are the loop's time over its network-steps, and the ratios their quotients.
    for row in tangent:
        per = row["members"] * row["steps"]
        assert row["tangent_qr_per_step"] == pytest.approx(row["tangent_qr_time"] / per, rel=1e-12)
        assert row["tangent_qr_over_floor"] == pytest.approx(
            row["tangent_qr_per_step"] / row["floor_per_step"], rel=1e-12)
        # The floor's four matmuls are part of the floor.
        assert row["matmuls_per_step"] < row["floor_per_step"]
    # The floor is per network, measured once per N and shared by the ensemble's rows.
    assert tangent[0]["floor_per_step"] == tangent[2]["floor_per_step"]
    assert spectrum["floor_per_step"] == tangent[1]["floor_per_step"]  # N = 32 in both
    assert (spectrum["n_hidden"], spectrum["steps"], spectrum["warmup"]) == (32, 200, 20)
    assert spectrum["time_units"] == pytest.approx(20.0)


def test_printed_tables(quick_run):
    rows, text = quick_run
    assert text.startswith("BLAS:")
    for header, members in (("1a. RK4 tangent step, one network", 1),
                            ("1b. RK4 tangent step, ensemble of B=4 (per network)", 4)):
        table = _table(text, header)
        assert [int(fields[0]) for fields in table] == [16, 32]
        for fields, row in zip(table, (r for r in rows if r.get("members") == members)):
            assert len(fields) == 10
            values = [float(v) for v in fields[2:]]
            assert all(math.isfinite(v) and v > 0 for v in values), fields
            # The printed ratios are the rows' (to the printed digits).
            assert values[6] == pytest.approx(row["tangent_qr_over_floor"], abs=0.006)
    targets = text[text.index("\ntargets"):]
    assert len(re.findall(r"RK4 tangent step \+ QR, .*: (met|NOT met)$", targets, re.MULTILINE)) == 4
    assert re.search(r"sum rule \(J_ii = 0\): .*: met$", targets, re.MULTILINE)
    # The comparison with Clark's numbers says whose diagonal is kept.
    assert "lambda_1 0.23114, D_KY/N 0.060940, h/N 0.0031354" in text
    assert "their J_ii is kept" in text and "ours is zeroed" in text


def test_spectrum_summary(quick_run):
    rows, text = quick_run
    spectrum = rows[-1]
    assert abs(spectrum["mean"] + 1.0) <= SUM_RULE, spectrum["mean"]
    printed = float(re.search(r"mean exponent / dt\s+(\S+)", text).group(1))
    assert printed == pytest.approx(spectrum["mean"], abs=1e-7)
    # The observables are in range: D_KY/N and the positive fraction in [0, 1], h >= 0, and
    # lambda_1 at least the mean (a spectrum's largest is never below its average).
    assert 0.0 <= spectrum["dimension_per_n"] <= 1.0
    assert 0.0 <= spectrum["positive_fraction"] <= 1.0
    assert spectrum["entropy_per_n"] >= 0.0
    assert spectrum["largest"] > spectrum["mean"]
    # The mean-field largest exponent at g = 3 (Clark's stored s_*, delta -> 0).
    assert spectrum["dmft_largest"] == pytest.approx(0.235461, abs=2e-6)


def test_driven_spectrum_keeps_the_sum_rule():
    # Input does not enter tr(-I + J diag phi'), so the sum rule holds with a white-noise drive.
    out = io.StringIO()
    row = rate._spectrum(16, 2.0, 10.0, 5.0, 0.5, dict(rate.QUICK), out, {})
    assert row["input_std"] == 0.5 and row["steps"] == 100
    assert abs(row["mean"] + 1.0) <= SUM_RULE, row["mean"]
    assert "white-noise input N(0, 0.5^2)" in out.getvalue()
    assert "not comparable" in out.getvalue()


def test_main_options(capsys):
    assert rate.main(["--quick", "--members", "1", "--sizes", "8", "--spectrum-n", "8",
                      "--time-units", "2", "--burn", "1", "--gain", "2"]) == 0
    text = capsys.readouterr().out
    assert "1a. RK4 tangent step" in text and "1b." not in text  # B = 1: no ensemble table
    assert [int(fields[0]) for fields in _table(text, "1a.")] == [8]
    assert "rate network N=8, g=2" in text and "20 steps" in text
    assert "lambda_1 0.10996" in text  # Clark's g = 2 row


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads must be >= 1; got 0"),
    (["--sizes", "abc"], "must be integers >= 2"),
    (["--time-units", "0"], "--time-units must be >= 0.2"),
    (["--gain", "nan"], "--gain must be > 0; got nan"),
    (["--input-std", "-1"], "--input-std must be >= 0; got -1.0"),
])
def test_main_rejects_bad_options(capsys, argv, message):
    with pytest.raises(SystemExit):
        rate.main(argv)
    assert message in capsys.readouterr().err


def test_sum_rule_tolerance_rejects_euler():
    # The tolerance discriminates: a network of the same family stepped by forward Euler at
    # dt = 0.1 has a mean exponent log(1 - dt) / dt = -1.054 (log det((1 - dt) I + dt J D) / (N dt),
    # whose first correction tr(J D) vanishes with J_ii = 0), far outside it. (N = 64: at N = 16 the
    # second-order term tr(J D J D) / N can still move it by 0.05.)
    import gradsim as gs

    cell = gs.make_cell("rate", 64, 0, gain=3.0, dt=rate.DT, integrator="euler", zero_diagonal=True, rng=0)
    state = rate._on_attractor(cell, 300, seed=4)
    mean = float(np.mean(gs.lyapunov_spectrum(cell, 300, state, warmup=30).exponents)) / rate.DT
    assert abs(mean + 1.0) > 100 * SUM_RULE
    assert mean == pytest.approx(math.log(1.0 - rate.DT) / rate.DT, abs=0.01)
