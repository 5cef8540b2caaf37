"""The claims registry: every built-in claim in quick mode, the registry's bookkeeping, the framework.

The parametrised test runs each claim through :func:`gradsim.claims.check_claims` with three
seeds, exactly as ``gradsim check --quick`` does, and checks what the table promises: no error,
a known verdict that does not depend on the seed, finite numbers, and, for the claims whose
verdict is a comparison of the reported numbers (``claim_library.COMPARISONS``), that the
verdict is "supported" exactly when the comparison holds. The predicate is re-implemented
here rather than imported, so that a wrong rule in the library cannot agree with itself.

The verdicts themselves are findings of the simulations (a refuted lecture-note claim is a
result, not a failure); they are pinned in EXPECTED so that a change in the numeric layer that
flips one is noticed.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradsim.claims.library import CLAIMS, COMPARISONS
from gradsim.claims import VERDICTS, Claim, Evidence, builtin_claims, check_claims, load_claims
from gradsim.workflow.runner import SerialExecutor, UsageError, make_executor

SEEDS_DIR = Path(__file__).resolve().parents[2] / "shared" / "seeds"
NOTE_NAME = re.compile(r"\b(\d{3}_[0-9a-f]{16}\.txt)\b")

EXPECTED = {
    "notes.small-slopes-vanish": "supported",
    "notes.sv-gt-1-explodes": "refuted",
    "notes.sv-lt-1-vanishes": "supported",
    "notes.relu-prevents-shrinking": "conditional",
    "notes.identity-init-helps": "conditional",
    "notes.clipping-bounds-step": "supported",
    "notes.skip-connections-help": "conditional",
    "notes.lstm-gates-flow-unchanged": "conditional",
    "notes.lstm-solves-vanishing": "conditional",
    "notes.gru-like-lstm": "conditional",
    "notes.rnn-short-memory": "supported",
    "notes.exploding-rare": "conditional",
    "theory.newman-spectrum": "supported",
    "theory.log-det-sum": "supported",
    "theory.tied-linear-eigenvalues": "supported",
    "theory.circular-law": "supported",
    "theory.quarter-circle-norm": "supported",
    "theory.pascanu-bound": "supported",
    "theory.linear-rho-sufficient": "supported",
    "theory.mean-field-lyapunov": "supported",
    "theory.orthogonal-exact": "supported",
    "theory.irnn-diagonal": "supported",
    "theory.lstm-zero-weight": "supported",
    "theory.h-only-misses-cell-path": "supported",
    "theory.gru-zero-weight": "supported",
    "theory.residual-tied-vs-untied": "supported",
    "theory.latching": "supported",
    "theory.adding-baseline": "supported",
    "theory.copy-baseline": "supported",
    "theory.dynamical-isometry": "supported",
    # issue 14, gradsim.claims.rate
    "notes.exponential-trace-memory": "conditional",
    "theory.rate-map-mean-exponent": "supported",
    "theory.rate-fixed-point-circular-law": "supported",
    "theory.rate-flow-sum-rule": "supported",
    "theory.rate-map-dmft-max-exponent": "supported",
    "theory.rate-input-suppresses-chaos": "supported",
    # issue 12, gradsim.claims.modern
    "theory.lru-exponents": "supported",
    "theory.indrnn-exponents": "supported",
    "theory.mingru-exponents": "supported",
    "theory.antisymmetric-exponents": "supported",
    "theory.antisymmetric-near-zero": "conditional",
    "theory.cornn-bounded-gradients": "supported",
    "theory.curse-of-memory": "supported",
    "theory.memory-normalisation-remedy": "supported",
    # issue 13, gradsim.claims.control
    "theory.critical-gain-mean-field": "supported",
    "theory.critical-gate-bias-zero-weight": "supported",
    # issue 13, gradsim.claims.flossing
    "theory.floss-exponents-at-target": "conditional",
    "theory.floss-condition-number": "supported",
}


def _holds(kind, measured, predicted, tolerance):
    if kind == "within":
        return abs(measured - predicted) <= tolerance
    if kind == "at most":
        return measured <= predicted + tolerance
    assert kind == "exceeds", kind
    return measured > predicted + tolerance


# ------------------------------------------------------------------------------------------
# every built-in claim, quick mode, three seeds
@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_builtin_claim_quick(claim):
    table = check_claims([claim], quick=True, seeds=(0, 1, 2))
    assert len(table) == 1
    row = table.iloc[0]
    assert row.verdict != "error", row.detail
    assert row.verdict in VERDICTS
    # check_claims marks a verdict that differs between seeds; a claim must not depend on one.
    assert "seed-dependent" not in row.detail, row.detail
    assert row.seeds == 3
    assert row.detail.strip()
    assert math.isfinite(row.measured) and math.isfinite(row.predicted), row.detail
    if claim.id in COMPARISONS:
        assert math.isfinite(row.tolerance) and row.tolerance >= 0
        holds = _holds(COMPARISONS[claim.id], row.measured, row.predicted, row.tolerance)
        assert holds == (row.verdict == "supported"), row.detail
    assert row.verdict == EXPECTED[claim.id], row.detail


def test_refuted_claim_names_its_counterexample():
    row = check_claims(CLAIMS, quick=True, seeds=(0,), only=["notes.sv-gt-1-explodes"]).iloc[0]
    assert row.verdict == "refuted"
    match = re.search(r"Counterexample: W with \|\|W\|\|_2 = ([0-9.]+)", row.detail)
    assert match and float(match.group(1)) > 1.0
    assert "spectral radius" in row.detail and row.measured < 0


# ------------------------------------------------------------------------------------------
# the registry
def test_registry_size_ids_and_checks():
    assert len(CLAIMS) >= 44
    assert builtin_claims() == list(CLAIMS)
    ids = [c.id for c in CLAIMS]
    assert len(set(ids)) == len(ids)
    assert set(ids) == set(EXPECTED)
    assert set(COMPARISONS) <= set(ids)
    assert set(COMPARISONS.values()) <= {"within", "at most", "exceeds"}
    for claim in CLAIMS:
        assert re.fullmatch(r"(notes|theory)\.[a-z0-9-]+", claim.id), claim.id
        # Each check is a module-level function of the library or of its rate-network or
        # modern-recurrence module (importable, picklable).
        assert claim.check.__module__ in ("gradsim.claims.library", "gradsim.claims.rate",
                                          "gradsim.claims.modern", "gradsim.claims.control",
                                          "gradsim.claims.flossing")
        assert claim.check.__name__.startswith("check_")
        assert claim.check.__qualname__ == claim.check.__name__


def test_the_issue_topics_are_covered():
    ids = {c.id for c in CLAIMS}
    for wanted in ("small-slopes", "sv-gt-1", "sv-lt-1", "relu", "identity", "clipping", "skip",
                   "lstm-gates", "gru-like-lstm", "lstm-solves"):
        assert any(wanted in i for i in ids if i.startswith("notes.")), wanted
    assert sum(i.startswith("theory.") for i in ids) >= 12


def test_lecture_note_claims_cite_existing_notes():
    cited = set()
    for claim in CLAIMS:
        names = NOTE_NAME.findall(claim.source)
        if claim.id.startswith("notes."):
            assert names, f"{claim.id} cites no lecture note: {claim.source!r}"
        else:
            assert "THEORY.md section" in claim.source, claim.id
        cited.update(names)
    if SEEDS_DIR.is_dir():  # the shared folder may be absent in CI: then the name format only
        existing = {p.name for p in SEEDS_DIR.glob("*.txt")}
        assert cited <= existing, cited - existing
        assert existing <= cited, f"lecture notes never cited: {existing - cited}"


# ------------------------------------------------------------------------------------------
# the framework
def _ok(quick, rng):
    return Evidence("supported", 1.0, 1.0, 0.0, "fine")


def _boom(quick, rng):
    raise RuntimeError("simulated failure")


def _claim(id_, check=_ok):
    return Claim(id=id_, statement="s", source="a paper", prediction="p", tolerance_reason="r",
                 check=check)


def test_evidence_rejects_unknown_verdict():
    with pytest.raises(ValueError, match=r"`verdict` must be one of 'supported', 'refuted', "
                                         r"'conditional'; got 'maybe'\."):
        Evidence("maybe")
    with pytest.raises(TypeError, match="`measured` must be a real number"):
        Evidence("supported", measured="1.0")
    assert math.isnan(Evidence("conditional").tolerance)


@pytest.mark.parametrize("field", ["id", "statement", "source", "prediction", "tolerance_reason"])
def test_claim_rejects_empty_fields(field):
    fields = dict(id="x", statement="s", source="src", prediction="p", tolerance_reason="r", check=_ok)
    fields[field] = "  "
    with pytest.raises(TypeError, match=f"`{field}` must be a non-empty string"):
        Claim(**fields)


def test_claim_rejects_uncallable_check():
    with pytest.raises(TypeError, match="`check` must be a callable"):
        Claim(id="x", statement="s", source="src", prediction="p", tolerance_reason="r", check=3)


def test_check_error_is_reported_and_others_go_on():
    table = check_claims([_claim("a", _boom), _claim("b"), _claim("c", lambda q, r: 42)], seeds=(0, 1))
    rows = table.set_index("id")
    assert rows.loc["a", "verdict"] == "error"
    assert "RuntimeError: simulated failure" in rows.loc["a", "detail"]
    assert rows.loc["b", "verdict"] == "supported"
    assert rows.loc["c", "verdict"] == "error"
    assert "not an Evidence" in rows.loc["c", "detail"]


def test_seed_dependent_verdicts_are_marked():
    def coin(quick, rng):
        return Evidence("supported" if rng.uniform() < 0.5 else "refuted")

    row = check_claims([_claim("coin", coin)], seeds=range(10)).iloc[0]
    assert row.verdict == "conditional"
    assert row.detail.startswith("seed-dependent:")


def test_rng_depends_on_claim_and_seed_only():
    def draw(quick, rng):
        return Evidence("supported", measured=float(rng.uniform()))

    alone = check_claims([_claim("x", draw)], seeds=(3,)).iloc[0].measured
    together = check_claims([_claim("w", draw), _claim("x", draw)], seeds=(3,))
    assert together.set_index("id").loc["x", "measured"] == alone
    assert together.set_index("id").loc["w", "measured"] != alone


def test_duplicate_and_unknown_ids_raise_usage_error():
    with pytest.raises(UsageError, match="repeated: a"):
        check_claims([_claim("a"), _claim("a")])
    with pytest.raises(UsageError, match="unknown claim id"):
        check_claims([_claim("a")], only=["nope"])
    table = check_claims([_claim("a"), _claim("b")], only=["b"])
    assert list(table.id) == ["b"]


# ------------------------------------------------------------------------------------------
# user claim files
USER_FILE = '''
from gradsim.claims import Claim, Evidence


def check_square(quick, rng):
    x = rng.uniform(1, 2)
    return Evidence("supported" if abs(x * x - x ** 2) <= 1e-12 else "refuted", x * x, x ** 2, 1e-12)


CLAIMS = [Claim(id="user.square", statement="x * x = x ** 2", source="arithmetic",
                prediction="equal", tolerance_reason="rounding", check=check_square)]
'''


def test_load_claims_from_user_file(tmp_path):
    path = tmp_path / "my_claims.py"
    path.write_text(USER_FILE)
    claims = load_claims(path)
    assert [c.id for c in claims] == ["user.square"]
    row = check_claims(claims + builtin_claims(), quick=True, seeds=(0,), only=["user.square"]).iloc[0]
    assert row.verdict == "supported"


def test_load_claims_errors(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(UsageError, match="must define CLAIMS"):
        load_claims(empty)
    broken = tmp_path / "broken.py"
    broken.write_text("raise ImportError('nope')\n")
    with pytest.raises(UsageError, match="failed to import"):
        load_claims(broken)
    with pytest.raises(UsageError, match="no file"):
        load_claims(tmp_path / "missing.py")
    wrong = tmp_path / "wrong.py"
    wrong.write_text("CLAIMS = [1, 2]\n")
    with pytest.raises(UsageError, match="must define CLAIMS"):
        load_claims(wrong)


def test_comparisons_predicate_matches_library():
    from gradsim.claims.library import comparison_holds

    rng = np.random.default_rng(0)
    for kind in ("within", "at most", "exceeds"):
        for m, p, t in rng.normal(size=(50, 3)):
            assert comparison_holds(kind, m, p, abs(t)) == _holds(kind, m, p, abs(t))
    with pytest.raises(ValueError, match="`kind` must be one of"):
        comparison_holds("about", 1.0, 1.0, 0.0)


# ------------------------------------------------------------------------------------------
# claims on an executor: one task per (claim, seed), the same table whichever ran it
def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gradsim.workflow.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


# Quick, and of several kinds: a Lyapunov estimate, singular values, ensembles of networks.
SOME = ["notes.sv-lt-1-vanishes", "theory.linear-rho-sufficient", "theory.pascanu-bound",
        "notes.lstm-solves-vanishing", "theory.log-det-sum"]


def test_claims_csv_identical_serial_and_on_processes(tmp_path):
    user = tmp_path / "my_claims.py"
    user.write_text(USER_FILE)
    tables = {}
    for name, extra in (("serial", []), ("jobs2", ["--jobs", "2"])):
        out = tmp_path / name
        result = run_cli("check", "--quick", *extra, "--claims", user, "--only", *SOME,
                         "user.square", "--out", out)
        assert result.returncode == 0, result.stderr
        tables[name] = (out / "claims-selected.csv").read_bytes()
        meta = (out / "claims-selected.meta.json").read_bytes()
        tables[name + ".meta"] = meta
    assert tables["serial"] == tables["jobs2"]
    assert tables["serial.meta"] == tables["jobs2.meta"]
    lines = tables["serial"].decode().splitlines()
    assert len(lines) == len(SOME) + 2 and lines[-1].startswith("user.square,")


def test_check_claims_same_table_on_every_executor(tmp_path):
    user = tmp_path / "my_claims.py"
    user.write_text(USER_FILE)
    claims = builtin_claims() + load_claims(user)
    only = ["theory.latching", "notes.gru-like-lstm", "user.square"]
    alone = check_claims(claims, quick=True, only=only)
    with make_executor() as serial:
        assert isinstance(serial, SerialExecutor)
        assert check_claims(claims, quick=True, only=only, executor=serial).equals(alone)
    with make_executor(2) as pool:
        assert check_claims(claims, quick=True, only=only, executor=pool).equals(alone)
    assert list(alone.id) == ["notes.gru-like-lstm", "theory.latching", "user.square"]
    assert set(alone.verdict) == {"conditional", "supported"}


def test_check_claims_on_dask(tmp_path):
    pytest.importorskip("dask.distributed")
    user = tmp_path / "my_claims.py"
    user.write_text(USER_FILE)
    claims = builtin_claims() + load_claims(user)
    only = ["theory.latching", "user.square"]
    alone = check_claims(claims, quick=True, seeds=(0, 1), only=only)
    with make_executor(scheduler="local") as dask:
        assert check_claims(claims, quick=True, seeds=(0, 1), only=only, executor=dask).equals(alone)


def test_load_claims_records_the_file(tmp_path):
    path = tmp_path / "my_claims.py"
    path.write_text(USER_FILE)
    (claim,) = load_claims(path)
    # The file travels by value: its path (for messages) and its text (what workers run).
    assert claim.origin.path == str(path.resolve())
    assert claim.origin.text == USER_FILE
    assert all(c.origin is None for c in CLAIMS)  # built-in checks are imported by module


_CALLS = []


def _boom_counted(quick, rng):
    _CALLS.append(1)
    raise RuntimeError("simulated failure")


def test_errors_on_executors_stop_at_the_first_seed_and_keep_the_others():
    expected = check_claims([_claim("a", _boom_counted), _claim("b")], seeds=(0, 1, 2))
    assert len(_CALLS) == 1  # the later seeds of a failing claim are not run
    with make_executor() as serial:
        table = check_claims([_claim("a", _boom_counted), _claim("b")], seeds=(0, 1, 2),
                             executor=serial)
    assert len(_CALLS) == 2
    assert table.equals(expected)
    with make_executor(2) as pool:
        table = check_claims([_claim("a", _boom_counted), _claim("b")], seeds=(0, 1, 2),
                             executor=pool)
    assert table.equals(expected)
    # A check that cannot be sent to a worker is that claim's error, not the run's.
    with make_executor(2) as pool:
        table = check_claims([_claim("lam", lambda q, r: Evidence("supported")), _claim("b")],
                             seeds=(0,), executor=pool).set_index("id")
    assert table.loc["lam", "verdict"] == "error"
    assert "could not run on the executor" in table.loc["lam", "detail"]
    assert table.loc["b", "verdict"] == "supported"


@pytest.mark.parametrize(
    "args, message",
    [(["check", "--jobs", "0"], "--jobs (`jobs`) must be a positive integer; got 0"),
     (["check", "--jobs", "two"], "argument --jobs: invalid int value: 'two'"),
     (["check", "--jobs", "2", "--scheduler", "local"], "not allowed with argument"),
     (["report", "--jobs", "-1"], "--jobs (`jobs`) must be a positive integer; got -1")],
)
def test_bad_jobs_print_one_line_and_exit_2(tmp_path, args, message):
    result = run_cli(*args, "--quick", "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------
# the library's ensembles compute the lone runs' numbers
def test_ensembled_checks_equal_their_lone_runs():
    from gradsim.claims import library as lib
    from gradsim.cells import RNN, make_cell

    rng = np.random.default_rng(5)
    runs = [(make_cell("rnn", 8, 3, activation=a, rng=rng), rng.standard_normal((60, 3)))
            for a in ("tanh", "relu", "tanh", "relu", "tanh")]
    runs.append((RNN(lib.gaussian(8, 0.9, rng), activation="tanh"), 60))  # a group of one
    times = [1, 7, 60]
    for (cell, inputs), found in zip(runs, lib._log_svs(runs, times)):
        assert np.array_equal(found, lib.log_singular_values(cell, inputs, times=times))
    cells = [make_cell("lstm", 6, 2, forget_bias=b, rng=rng) for b in (0.0, 2.0, 4.0)]
    x = rng.standard_normal((300, 2))
    for path in ("full", "cell"):
        assert lib._tops(cells, x, 30, path=path) == [lib._top(c, x, 30, path=path) for c in cells]
    xs = [rng.standard_normal((300, 2)) for _ in cells]
    assert lib._tops(cells, xs, 30) == [lib._top(c, xi, 30) for c, xi in zip(cells, xs)]
