"""The study runner and the command line: reproducibility, executors, resume, bad invocations."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gradsim as gs
from gradsim.workflow import cli
from gradsim.workflow.report import produce, write_report
from gradsim.workflow.runner import (
    Study,
    apply_overrides,
    canonical_json,
    config_rng,
    expand_grid,
    find_studies,
    load_study,
    make_executor,
    plan_batches,
    run_study,
)

TOY = textwrap.dedent(
    '''
    """Is the toy study reproducible?"""
    import time
    from gradsim.workflow.runner import Study

    def simulate(config, rng):
        if config["x"] == config.get("fail_at"):
            raise RuntimeError("boom at " + str(config["x"]))
        time.sleep(config.get("sleep", 0.0))
        # Matrix work, so that a BLAS thread count could show in the bits if it were not pinned.
        a = rng.standard_normal((64, 64))
        return [{"i": i, "value": float(rng.standard_normal()), "trace": float((a @ a).trace())}
                for i in range(3)]

    def plot(frame):
        from gradsim.workflow.plotting import new_figure, plot_lines
        fig, ax = new_figure()
        plot_lines(ax, frame, "i", "value", "x")
        ax.set_xlabel("i"); ax.set_ylabel("value")
        ax.legend()
        return fig

    def summarize(frame):
        return {"mean value": frame.value.mean()}

    STUDY = Study(name="toy", question=__doc__.strip(),
                  grid={"x": [1, 2, 3, 4, 5, 6], "sleep": [0.0], "fail_at": [0]},
                  quick_grid={"x": [1, 2]}, simulate=simulate, plot=plot, summarize=summarize)
    '''
)


# The same records as a batched study: ``simulate_batch`` draws each member from its own
# generator and computes with elementwise arithmetic only (exactly rounded, so a member's bits
# cannot depend on the batch), so its rows must equal the unbatched ones bit for bit. Odd and
# even x form two keys; max_batch=2 cuts x = 1..6 into [1], [2], [3, 5], [4, 6]. Each call's
# batch (its x values) is appended to $TOY_BATCH_LOG; $TOY_INTERRUPT_AT=x interrupts the run
# (KeyboardInterrupt) in the batch holding x, as a kill would.
TOY_BATCH = textwrap.dedent(
    '''
    """Is the batched toy study reproducible?"""
    import os
    import time

    import numpy as np
    from gradsim.workflow.runner import Study

    def _draw(config, rng):
        if config["x"] == config.get("fail_at"):
            raise RuntimeError("boom at " + str(config["x"]))
        return rng.standard_normal(3)

    def _records(config, z):
        return [{"i": i, "value": float(v), "scaled": float(config["x"] * v)}
                for i, v in enumerate(z)]

    def simulate(config, rng):
        time.sleep(config.get("sleep", 0.0))
        return _records(config, _draw(config, rng) * 2.0 + 0.5)

    def batch_key(config):
        return None if config["x"] == config.get("alone") else ["parity", config["x"] % 2]

    def simulate_batch(configs, rngs):
        xs = [c["x"] for c in configs]
        if os.environ.get("TOY_BATCH_LOG"):
            with open(os.environ["TOY_BATCH_LOG"], "a") as log:
                log.write(" ".join(map(str, xs)) + "\\n")
        if os.environ.get("TOY_INTERRUPT_AT") in map(str, xs):
            raise KeyboardInterrupt
        time.sleep(sum(c.get("sleep", 0.0) for c in configs))
        z = np.stack([_draw(c, r) for c, r in zip(configs, rngs)]) * 2.0 + 0.5
        return [_records(c, row) for c, row in zip(configs, z)]

    STUDY = Study(name="toybatch", question=__doc__.strip(),
                  grid={"x": [1, 2, 3, 4, 5, 6], "sleep": [0.0], "fail_at": [0], "alone": [0]},
                  quick_grid={"x": [1, 2]}, simulate=simulate, simulate_batch=simulate_batch,
                  batch_key=batch_key, max_batch=2)
    '''
)
# The batched toy with its batch functions removed: the unbatched path of the same records.
TOY_UNBATCHED = TOY_BATCH.replace("simulate_batch=simulate_batch,", "").replace(
    "batch_key=batch_key, max_batch=2", "").replace('name="toybatch"', 'name="toyalone"')


@pytest.fixture
def studies(tmp_path):
    folder = tmp_path / "studies"
    folder.mkdir()
    (folder / "toy.py").write_text(TOY)
    (folder / "toybatch.py").write_text(TOY_BATCH)
    (folder / "toyalone.py").write_text(TOY_UNBATCHED)
    return folder


def run_cli(*args, cwd=None):
    """The command in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "gradsim.workflow.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------
# grids and seeds
def test_expand_grid_order_and_union():
    assert gs.expand_grid({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert gs.expand_grid([{"a": [1]}, {"a": 2, "b": [3, 4]}]) == [{"a": 1}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]


def test_config_seed_depends_on_the_configuration_only():
    """Key order and the rest of the grid never change a configuration's numbers."""
    one = gs.config_rng({"a": 1, "b": 2.5}).standard_normal(4)
    same = gs.config_rng({"b": 2.5, "a": 1}).standard_normal(4)
    other = gs.config_rng({"a": 2, "b": 2.5}).standard_normal(4)
    np.testing.assert_array_equal(one, same)
    assert not np.array_equal(one, other)
    assert not np.array_equal(one, gs.config_rng({"a": 1, "b": 2.5}, root_seed=1).standard_normal(4))
    assert canonical_json({"b": 1, "a": np.float64(0.5)}) == '{"a":0.5,"b":1}'


def test_adding_grid_points_keeps_other_rows(studies, tmp_path):
    small = produce(studies / "toy.py", out=tmp_path / "a", progress=False,
                    overrides={"x": [2, 5]}).frame
    large = produce(studies / "toy.py", out=tmp_path / "b", progress=False,
                    overrides={"x": [7, 5, 1, 2]}).frame
    for x in (2, 5):
        pd.testing.assert_frame_equal(small[small.x == x].reset_index(drop=True),
                                      large[large.x == x].reset_index(drop=True))


def test_overrides_reject_unknown_parameters():
    with pytest.raises(gs.UsageError, match="unknown parameter 'gain'"):
        apply_overrides({"x": [1]}, {"gain": 1})


# ------------------------------------------------------------------------------------------
# executors give the same bytes
def test_serial_process_and_dask_give_identical_csv(studies, tmp_path):
    pytest.importorskip("dask.distributed", reason="the dask extra is installed by .ci/run")
    outputs = {}
    for name, kwargs in {"serial": {}, "process": {"jobs": 2}, "dask": {"scheduler": "local", "jobs": 2}}.items():
        with make_executor(**kwargs) as executor:
            result = produce(studies / "toy.py", out=tmp_path / name, executor=executor, progress=False)
        outputs[name] = result.csv_path.read_bytes()
        meta = json.loads(result.meta_path.read_text())
        assert meta["csv_sha256"] == hashlib.sha256(outputs[name]).hexdigest()
        assert meta["rows"] == 18 and meta["n_errors"] == 0
    assert outputs["serial"] == outputs["process"] == outputs["dask"]


def test_a_failing_configuration_is_recorded_and_the_others_go_on(studies, tmp_path):
    result = produce(studies / "toy.py", out=tmp_path, progress=False, overrides={"fail_at": 3})
    frame = pd.read_csv(result.csv_path, keep_default_na=False)
    failed = frame[frame.x == 3]
    assert len(failed) == 1 and failed.error.iloc[0].startswith("RuntimeError: boom at 3")
    assert (frame[frame.x != 3].error == "").all() and len(frame) == 1 + 5 * 3
    assert result.n_errors == 1


# ------------------------------------------------------------------------------------------
# batches
def test_plan_batches_by_key_near_equal_and_alone(studies):
    study = load_study(studies / "toybatch.py")
    configs = expand_grid(study.grid)
    assert [[configs[i]["x"] for i in b] for b in plan_batches(study, configs)] == [
        [1], [2], [3, 5], [4, 6]]
    configs = expand_grid({**study.grid, "x": list(range(1, 10)), "alone": [4]})
    # Odd x: 5 members in batches of at most 2 -> 3 batches of near-equal sizes, in grid
    # order; x = 4 runs alone, so the even ones are 3 -> 2 batches.
    assert [[configs[i]["x"] for i in b] for b in plan_batches(study, configs)] == [
        [1], [2], [3, 5], [4], [6, 8], [7, 9]]
    unbatched = load_study(studies / "toyalone.py")
    assert plan_batches(unbatched, configs) == [[i] for i in range(len(configs))]


def test_study_checks_its_batch_fields():
    def simulate(config, rng):
        return []

    with pytest.raises(TypeError, match="`simulate_batch` and `batch_key` go together"):
        Study("s", "q", {"x": [1]}, {"x": [1]}, simulate, simulate_batch=lambda c, r: [])
    with pytest.raises(ValueError, match="`max_batch` must be a positive integer; got 0"):
        Study("s", "q", {"x": [1]}, {"x": [1]}, simulate, simulate_batch=lambda c, r: [],
              batch_key=lambda c: 0, max_batch=0)


def test_batched_rows_equal_unbatched_rows(studies, tmp_path, monkeypatch):
    log = tmp_path / "batches.log"
    monkeypatch.setenv("TOY_BATCH_LOG", str(log))
    batched = produce(studies / "toybatch.py", out=tmp_path / "batched", progress=False)
    alone = produce(studies / "toyalone.py", out=tmp_path / "alone", progress=False)
    assert log.read_text().split("\n")[:-1] == ["1", "2", "3 5", "4 6"]
    assert batched.csv_path.read_bytes() == alone.csv_path.read_bytes()
    assert len(batched.frame) == 18
    assert json.loads(batched.meta_path.read_text())["n_batches"] == 4
    assert json.loads(alone.meta_path.read_text())["n_batches"] == 6


def test_adding_grid_points_keeps_other_rows_when_batched(studies, tmp_path, monkeypatch):
    log = tmp_path / "batches.log"
    monkeypatch.setenv("TOY_BATCH_LOG", str(log))
    small = produce(studies / "toybatch.py", out=tmp_path / "a", progress=False,
                    overrides={"x": [2, 5]}).frame
    large = produce(studies / "toybatch.py", out=tmp_path / "b", progress=False,
                    overrides={"x": [7, 5, 1, 2, 4, 9]}).frame
    # The points shared batches with different partners in the two runs.
    assert log.read_text().split("\n")[:-1] == ["2", "5", "7 5", "1 9", "2 4"]
    for x in (2, 5):
        pd.testing.assert_frame_equal(small[small.x == x].reset_index(drop=True),
                                      large[large.x == x].reset_index(drop=True))


def test_a_failing_member_is_recorded_and_its_batch_goes_on(studies, tmp_path):
    result = produce(studies / "toybatch.py", out=tmp_path / "batched", progress=False,
                     overrides={"fail_at": 3})
    alone = produce(studies / "toyalone.py", out=tmp_path / "alone", progress=False,
                    overrides={"fail_at": 3})
    frame = pd.read_csv(result.csv_path, keep_default_na=False)
    failed = frame[frame.x == 3]
    assert len(failed) == 1 and failed.error.iloc[0].startswith("RuntimeError: boom at 3")
    assert result.n_errors == 1 and len(frame) == 1 + 5 * 3
    # Its batch partner (x = 5) ran alone after the batch failed: the same bytes either way
    # (the error names the file it was raised in).
    assert result.csv_path.read_text() == alone.csv_path.read_text().replace("toyalone.py", "toybatch.py")


def test_a_batch_of_the_wrong_length_is_an_error(studies, tmp_path):
    broken = TOY_BATCH.replace("return [_records(c, row) for c, row in zip(configs, z)]",
                               "return []")
    (studies / "broken.py").write_text(broken.replace('name="toybatch"', 'name="broken"'))
    with pytest.raises(ValueError, match="one list of records per configuration; got 0 for 1"):
        produce(studies / "broken.py", out=tmp_path, progress=False)


def test_resume_after_a_batched_run_was_interrupted(studies, tmp_path, monkeypatch):
    """Each member is stored on its own; a batch with any member missing is run again whole,
    so the resumed run computes every batch with the members an uninterrupted one does."""
    study = load_study(studies / "toybatch.py")
    out = tmp_path / "interrupted"
    monkeypatch.setenv("TOY_INTERRUPT_AT", "6")  # in the last batch, [4, 6]
    with pytest.raises(KeyboardInterrupt):
        run_study(study, out=out, progress=False)
    partial = out / ".partial" / "toybatch"
    digests = {c["x"]: gs.config_hash(c) for c in expand_grid(study.grid)}
    assert sorted(p.stem for p in partial.glob("*.json")) == sorted(digests[x] for x in (1, 2, 3, 5))
    # As if killed between the two members' writes: batch [3, 5] is half stored.
    (partial / f"{digests[5]}.json").unlink()
    stored_3 = (partial / f"{digests[3]}.json").read_bytes()
    monkeypatch.delenv("TOY_INTERRUPT_AT")
    log = tmp_path / "batches.log"
    monkeypatch.setenv("TOY_BATCH_LOG", str(log))
    resumed = run_study(study, out=out, progress=False, resume=True)
    assert log.read_text().split("\n")[:-1] == ["3 5", "4 6"]
    uninterrupted = run_study(study, out=tmp_path / "uninterrupted", progress=False)
    assert resumed.csv_path.read_bytes() == uninterrupted.csv_path.read_bytes()
    assert not partial.exists()
    assert json.loads(stored_3)["records"] == [
        {k: v for k, v in row.items() if k in ("i", "value", "scaled")}
        for row in resumed.frame[resumed.frame.x == 3].to_dict("records")]


def test_batched_runs_give_identical_csv_on_every_executor(studies, tmp_path):
    pytest.importorskip("dask.distributed", reason="the dask extra is installed by .ci/run")
    outputs = {}
    for name, kwargs in {"serial": {}, "process": {"jobs": 2}, "dask": {"scheduler": "local", "jobs": 2}}.items():
        with make_executor(**kwargs) as executor:
            result = produce(studies / "toybatch.py", out=tmp_path / name, executor=executor,
                             progress=False, overrides={"x": list(range(1, 12))})
        outputs[name] = result.csv_path.read_bytes()
    alone = produce(studies / "toyalone.py", out=tmp_path / "alone", progress=False,
                    overrides={"x": list(range(1, 12))})
    assert outputs["serial"] == outputs["process"] == outputs["dask"] == alone.csv_path.read_bytes()


def test_batched_process_pool_gives_the_serial_bytes(studies, tmp_path):
    """The process pool alone (no Dask needed): the batches are the grid's, not the pool's."""
    with make_executor(jobs=2) as executor:
        pooled = produce(studies / "toybatch.py", out=tmp_path / "pool", executor=executor,
                         progress=False)
    serial = produce(studies / "toybatch.py", out=tmp_path / "serial", progress=False)
    assert pooled.csv_path.read_bytes() == serial.csv_path.read_bytes()


BATCHED_STUDIES = [name for name, path in find_studies().items()
                   if load_study(path).simulate_batch is not None]


def test_the_simulation_heavy_studies_run_as_ensembles():
    assert {"activations", "forget_bias", "norm_rule"} <= set(BATCHED_STUDIES)


@pytest.mark.parametrize("name", BATCHED_STUDIES)
def test_batched_studies_match_their_unbatched_records(name):
    """Every batch of the quick grid, through simulate_batch, against simulate alone.

    Tolerance: an ensemble member equals the single network to rounding (the cells layer
    promises ~1e-12 relative; 3e-16 is seen), hence rtol 1e-9; quantities that are zero up to
    rounding (the block standard error of an exactly periodic linear RNN, ~1e-17; the bound
    excess of an orthogonal linear RNN, ~1e-16) compare absolutely, atol 1e-12.
    """
    study = load_study(find_studies()[name])
    configs = expand_grid(study.quick_grid)
    batches = plan_batches(study, configs)
    assert any(len(b) > 1 for b in batches)
    for batch in batches:
        members = [configs[i] for i in batch]
        if study.batch_key(members[0]) is None:
            continue
        together = study.simulate_batch([dict(c) for c in members], [config_rng(c) for c in members])
        for config, records in zip(members, together):
            alone = study.simulate(dict(config), config_rng(config))
            assert len(records) == len(alone)
            for got, want in zip(records, alone):
                assert list(got) == list(want)
                for key, value in want.items():
                    if isinstance(value, (float, np.floating)):
                        np.testing.assert_allclose(got[key], value, rtol=1e-9, atol=1e-12,
                                                   err_msg=f"{name} {config} {key}")
                    else:
                        assert got[key] == value, (name, config, key)


@pytest.mark.parametrize("name", BATCHED_STUDIES)
def test_a_members_records_do_not_depend_on_its_batch_partners(name):
    """Adding a grid point changes which configurations share a batch; the rows of the others
    must stay bit for bit (members of ensembles of two or more are computed independently)."""
    study = load_study(find_studies()[name])
    configs = expand_grid(study.quick_grid)
    members = [configs[i] for i in max(plan_batches(study, configs), key=len)]

    def run(batch):
        return study.simulate_batch([dict(c) for c in batch], [config_rng(c) for c in batch])

    together = run(members)
    for j in range(len(members)):
        pair = run([members[j], members[j - 1]])[0]
        pd.testing.assert_frame_equal(pd.DataFrame(pair), pd.DataFrame(together[j]),
                                      check_exact=True)


# ------------------------------------------------------------------------------------------
# resume after kill -9
@pytest.mark.parametrize("name", ["toy", "toybatch"])
def test_kill_9_then_resume_gives_the_same_bytes(studies, tmp_path, name):
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "gradsim.workflow.cli", "run", name, "--out", str(out), "--studies",
            str(studies), "--set", "sleep=0.4"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = out / ".partial" / name
    deadline = time.time() + 60
    while time.time() < deadline and len(list(partial.glob("*.json"))) < 2:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = len(list(partial.glob("*.json")))
    assert 2 <= finished_before < 6, "the kill must land mid-run"
    assert not (out / f"{name}.csv").exists()
    # A new run without --resume must not overwrite what was computed.
    refused = run_cli(*args[3:], cwd=None)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    assert len(list(partial.glob("*.json"))) == finished_before
    resumed = run_cli(*args[3:], "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # sleep is part of the configuration, so compare with an uninterrupted run of the same grid.
    uninterrupted = tmp_path / "uninterrupted"
    again = run_cli("run", name, "--out", uninterrupted, "--studies", studies, "--set", "sleep=0.4")
    assert again.returncode == 0
    assert (out / f"{name}.csv").read_bytes() == (uninterrupted / f"{name}.csv").read_bytes()
    assert not partial.exists()


def test_corrupt_partial_result_is_a_clean_error(studies, tmp_path):
    partial = tmp_path / ".partial" / "toy"
    partial.mkdir(parents=True)
    digest = gs.config_hash({"x": 1, "sleep": 0.0, "fail_at": 0})
    (partial / f"{digest}.json").write_text("{not json")
    result = run_cli("run", "toy", "--out", tmp_path, "--studies", studies, "--resume")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "corrupt partial result" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------
# reproducible figures and report
def test_two_runs_give_identical_figures_and_report(studies, tmp_path):
    hashes = []
    for name in ("one", "two"):
        out = tmp_path / name
        produce(studies / "toy.py", out=out, progress=False)
        write_report(out, studies)
        hashes.append({p.name: sha(p) for p in sorted(out.iterdir())})
    assert hashes[0] == hashes[1]
    assert {"toy.csv", "toy.meta.json", "toy.png", "toy.svg", "toy.pdf", "README.md"} <= set(hashes[0])
    report = (tmp_path / "one" / "README.md").read_text()
    frame = pd.read_csv(tmp_path / "one" / "toy.csv")
    assert f"| mean value | {frame.value.mean():.4g} |" in report


# ------------------------------------------------------------------------------------------
# the command line
@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nosuch"], "unknown study 'nosuch'"),
        (["run", "toy", "--set", "gain=1"], "unknown parameter 'gain'"),
        (["run", "toy", "--set", "x=__import__('os').getcwd()"], "is not a literal"),
        (["run", "toy", "--set", "novalue"], "--set expects key=value"),
        (["run", "toy", "--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
        (["run", "toy", "--jobs", "0"], "--jobs (`jobs`) must be a positive integer"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_invocations_print_one_line_and_exit_2(studies, tmp_path, args, message):
    if "--scheduler" in args:
        pytest.importorskip("dask.distributed")
    result = run_cli(*args, "--studies", studies, "--out", tmp_path) if args[0] == "run" else run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.csv"))


def test_unwritable_output_folder(studies, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("run", "toy", "--studies", studies, "--out", blocker / "sub")
    assert result.returncode == 2 and "cannot create the output folder" in result.stderr
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["report", "--help"], ["list", "--help"]])
def test_help_everywhere(args):
    result = run_cli(*args)
    assert result.returncode == 0 and "usage: gradsim" in result.stdout


def test_list_and_set_parsing(studies):
    result = run_cli("list", "--studies", studies)
    assert result.returncode == 0 and result.stdout.startswith("toy") and "reproducible" in result.stdout
    assert cli.parse_set(["gain=[0.5, 1]", "cell=lstm", "name='a b'", "flag=True"]) == {
        "gain": [0.5, 1], "cell": "lstm", "name": "a b", "flag": True}


# ------------------------------------------------------------------------------------------
# gradsim check
USER_CLAIMS = textwrap.dedent(
    '''
    import numpy as np
    from gradsim.claims import Claim, Evidence

    def check_mean(quick, rng):
        sample = rng.standard_normal(4000)
        stderr = 1 / np.sqrt(sample.size)
        measured = float(sample.mean())
        verdict = "supported" if abs(measured) <= 4 * stderr else "refuted"
        return Evidence(verdict, measured, 0.0, 4 * stderr, "sample mean of N(0, 1)")

    def check_broken(quick, rng):
        raise RuntimeError("broken check")

    CLAIMS = [
        Claim("user.mean", "Gaussian samples average to zero.", "my notebook", "mean 0",
              "4 standard errors of the mean", check_mean),
        Claim("user.broken", "A check that crashes.", "my notebook", "-", "-", check_broken),
    ]
    '''
)


def test_check_user_claims_in_the_same_table(tmp_path):
    claims_file = tmp_path / "my_claims.py"
    claims_file.write_text(USER_CLAIMS)
    result = run_cli("check", "--quick", "--claims", claims_file, "--only", "user.mean",
                     "theory.latching", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "claims-selected.csv")
    assert list(table.id) == ["theory.latching", "user.mean"]
    assert set(table.verdict) == {"supported"}
    assert "supported    user.mean" in result.stdout
    assert not (tmp_path / "claims.csv").exists()  # a selection never replaces the full table


def test_check_reports_a_crashing_claim_and_exits_1(tmp_path):
    claims_file = tmp_path / "my_claims.py"
    claims_file.write_text(USER_CLAIMS)
    result = run_cli("check", "--claims", claims_file, "--only", "user.broken", "user.mean",
                     "--out", tmp_path)
    assert result.returncode == 1
    table = pd.read_csv(tmp_path / "claims-selected.csv")
    broken = table[table.id == "user.broken"].iloc[0]
    assert broken.verdict == "error" and "RuntimeError: broken check" in broken.detail
    assert table[table.id == "user.mean"].verdict.iloc[0] == "supported"


@pytest.mark.parametrize(
    "args, message",
    [(["--only", "no.such.claim"], "unknown claim id(s) no.such.claim"),
     (["--claims", "missing.py"], "--claims: no file at missing.py"),
     (["--seeds", "0"], "--seeds must be a positive integer")],
)
def test_check_bad_invocations(tmp_path, args, message):
    result = run_cli("check", "--quick", *args, "--out", tmp_path, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_quick_runs_never_replace_the_report(studies, tmp_path):
    """Without --out, a quick run goes to reports/quick, a full run to reports."""
    quick = run_cli("run", "toy", "--quick", "--studies", studies, cwd=tmp_path)
    assert quick.returncode == 0, quick.stderr
    assert (tmp_path / "reports" / "quick" / "toy.csv").exists()
    assert not (tmp_path / "reports" / "toy.csv").exists()
    full = run_cli("run", "toy", "--studies", studies, cwd=tmp_path)
    assert full.returncode == 0 and (tmp_path / "reports" / "toy.csv").exists()
    quick_rows = len(pd.read_csv(tmp_path / "reports" / "quick" / "toy.csv"))
    assert quick_rows == 2 * 3 and len(pd.read_csv(tmp_path / "reports" / "toy.csv")) == 6 * 3


def test_make_executor_checks_its_arguments_at_the_call():
    with pytest.raises(ValueError, match=r"`jobs`\) must be a positive integer; got 'foo'"):
        make_executor("foo")
    with pytest.raises(ValueError, match=r"`scheduler`\) must be 'local' or an address; got 5"):
        make_executor(scheduler=5)


def test_a_study_made_in_python_runs_without_a_file(tmp_path):
    # A notebook user's Study (no file, so no text to send): it runs serially as it is, with
    # the same per-configuration seeding as a study read from a file.
    study = Study(name="inline", question="Does an inline study run?", grid={"x": [1, 2, 3]},
                  quick_grid={"x": [1]},
                  simulate=lambda config, rng: [{"y": 2 * config["x"], "draw": rng.random()}])
    result = run_study(study, out=tmp_path, progress=False)
    frame = pd.read_csv(result.csv_path)
    assert list(frame.y) == [2, 4, 6]
    expected = [config_rng({"x": x}).random() for x in (1, 2, 3)]
    assert frame.draw.tolist() == [float(f"{v:.12g}") for v in expected]  # the CSV's 12 digits
