"""Studies travel: from a wheel to any folder, and as text to workers that cannot read them.

- The package's file list (pyproject.toml) names every subpackage, and a wheel of the checkout,
  installed into a fresh virtual environment, lists and runs every built-in study from an empty
  folder, with the same bytes as the checkout.
- A separate-process Dask worker that has only that wheel (no checkout, no study file: the file
  is deleted before the run) gives the serial CSV and claims table, bit for bit.
- The README's example study is correct: it runs by path, serially and on a local Dask cluster
  with the same bytes, and reports key numbers with their uncertainty.
- A bad study file fails in one line (exit 2) and leaves existing outputs as they were.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import gradsim as gs
from gradsim.claims import check_claims, load_claims
from gradsim.workflow import cli
from gradsim.workflow.runner import load_study, make_executor, run_study

CHECKOUT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # this venv's scripts (gradsim, dask), not resolved

# A user's claims file (as in tests/test_claims.py): one claim, checked from the file's text.
USER_CLAIMS = '''
from gradsim.claims import Claim, Evidence


def check_square(quick, rng):
    x = rng.uniform(1, 2)
    return Evidence("supported" if abs(x * x - x ** 2) <= 1e-12 else "refuted", x * x, x ** 2, 1e-12)


CLAIMS = [Claim(id="user.square", statement="x * x = x ** 2", source="arithmetic",
                prediction="equal", tolerance_reason="rounding", check=check_square)]
'''


def readme_example() -> str:
    """The ```python block that follows the line ``<!-- example: my_study.py -->`` in README.md."""
    text = (CHECKOUT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^<!-- example: my_study\.py -->\n```python\n(.*?)^```$", text,
                      re.DOTALL | re.MULTILINE)
    assert match, "README.md has no ```python block after <!-- example: my_study.py -->"
    return match.group(1)


def clean_env() -> dict:
    """This process's environment without anything that would put the checkout on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(args, cwd=None, timeout=300) -> str:
    """Run a command; its stdout, or a failure showing both streams."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def script(name) -> list:
    """The command of one of this venv's console scripts (`python -m` if it is not there)."""
    path = BIN / name
    if path.exists():
        return [path]
    return [sys.executable, "-m", {"gradsim": "gradsim.workflow.cli", "dask": "dask"}[name]]


def builtin_studies(root) -> list:
    """The built-in studies of the tree at ``root``: the stems of studies/*.py not starting with _."""
    return sorted(p.stem for p in (Path(root) / "studies").glob("*.py") if not p.name.startswith("_"))


def inside(path, folder) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def on_checkout(sys_path, wheel_env) -> list:
    """The entries of ``sys_path`` inside the checkout, but for the borrowed site-packages
    (which sit in the checkout when its venv does, as .venv/ in development)."""
    borrowed = {Path(p).resolve() for p in wheel_env.borrowed}
    return [p for p in sys_path if p and inside(p, CHECKOUT) and Path(p).resolve() not in borrowed]


def chain_rule_serial(study_file, out) -> bytes:
    """The CSV of ``chain_rule --quick`` run serially in this process: the reference.

    ``run_study`` writes the CSV that ``report.produce`` (what `gradsim run` calls) writes
    before it draws the figure; the figure (5 s here) is left out."""
    return run_study(load_study(study_file), quick=True, out=out, progress=False).csv_path.read_bytes()


# ------------------------------------------------------------------------------------------
# the package's file list
def test_pyproject_lists_every_subpackage():
    """pyproject.toml lists packages by hand (the studies/ folder is mapped to gradsim.studies),
    so a new subpackage left off the list would be missing from every wheel: the list must be
    exactly the folders of gradsim/ holding an __init__.py, plus gradsim.studies."""
    config = tomllib.loads((CHECKOUT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = config["tool"]["setuptools"]["packages"]
    found = {".".join(p.parent.relative_to(CHECKOUT).parts)
             for p in (CHECKOUT / "gradsim").rglob("__init__.py")}
    assert len(listed) == len(set(listed)), f"a package is listed twice: {listed}"
    assert set(listed) == found | {"gradsim.studies"}
    assert config["tool"]["setuptools"]["package-dir"] == {"gradsim.studies": "studies"}
    assert (CHECKOUT / "studies" / "__init__.py").is_file()


# ------------------------------------------------------------------------------------------
# a wheel in a fresh virtual environment
@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """A wheel of the checkout, installed alone into a fresh venv that borrows this venv's
    third-party packages (numpy, scipy, pandas, dask, ...) so that nothing is downloaded."""
    root = tmp_path_factory.mktemp("wheel")
    # Built from a clean copy: an in-tree build would write build/ and *.egg-info into the
    # checkout, and a stale build/lib could put modules that no longer exist into the wheel.
    source = root / "source"
    shutil.copytree(CHECKOUT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info", "__pycache__", "reports",
        ".pytest_cache", ".hypothesis"))
    wheels = root / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, source],
        timeout=600)
    (wheel,) = wheels.glob("gradsim-*.whl")

    # The fresh venv gets no pip of its own (ensurepip alone takes 5-20 s here): this venv's
    # pip installs into it with --python, as the fresh venv's own pip would.
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    # A .pth line only appends its directory to sys.path: the .pth files inside that directory
    # are not processed, so this venv's editable install of gradsim (its __editable__*.pth and
    # finder) stays inert there, and the fresh venv can import gradsim only from the wheel.
    borrowed = list(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    (site / "zz_borrowed_site_packages.pth").write_text("".join(f"{p}\n" for p in borrowed))
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--quiet", wheel])
    return SimpleNamespace(wheel=wheel, venv=venv, python=python, bin=venv / "bin", site=site,
                           borrowed=borrowed, source=source)


@pytest.mark.slow
def test_wheel_holds_the_studies_as_gradsim_studies(wheel_env):
    """The wheel installs studies/ as gradsim/studies/, every built-in study included, and no
    top-level studies/ package (which would clash with any other project's)."""
    with zipfile.ZipFile(wheel_env.wheel) as archive:
        names = archive.namelist()
    assert "gradsim/studies/chain_rule.py" in names
    assert "gradsim/studies/__init__.py" in names
    builtin = builtin_studies(wheel_env.source)
    assert "chain_rule" in builtin
    assert [s for s in builtin if f"gradsim/studies/{s}.py" not in names] == []
    assert [n for n in names if n.startswith("studies/")] == []


@pytest.mark.slow
def test_wheel_install_lists_and_runs_builtin_studies_anywhere(wheel_env, tmp_path):
    """Installed from the wheel (not the checkout), `gradsim list` and `gradsim run chain_rule
    --quick` work from an empty folder: the built-in studies come with the package, the outputs
    go to ./reports/quick of the working folder (never into site-packages), and the CSV is the
    one this process writes from the same study file, byte for byte."""
    work = tmp_path / "empty"
    work.mkdir()
    code = ("import gradsim, sys; from gradsim.workflow.runner import DEFAULT_STUDIES_DIR; "
            "print(gradsim.__file__); print(DEFAULT_STUDIES_DIR); print(*sys.path, sep='\\n')")
    where = run([wheel_env.python, "-c", code], cwd=work)
    module, studies_dir, *path = where.splitlines()
    assert inside(module, wheel_env.site), module
    assert inside(studies_dir, wheel_env.site / "gradsim" / "studies"), studies_dir
    assert on_checkout(path, wheel_env) == []

    listed = run([wheel_env.bin / "gradsim", "list"], cwd=work)
    assert [line.split()[0] for line in listed.splitlines()] == builtin_studies(wheel_env.source)

    run([wheel_env.bin / "gradsim", "run", "chain_rule", "--quick"], cwd=work)
    csv = work / "reports" / "quick" / "chain_rule.csv"
    # The reference runs the study file of the copy the wheel was built from (the checkout's
    # files may be edited meanwhile).
    reference = chain_rule_serial(wheel_env.source / "studies" / "chain_rule.py", tmp_path / "here")
    assert csv.read_bytes() == reference
    assert (work / "reports" / "quick" / "chain_rule.meta.json").is_file()
    assert list(wheel_env.site.rglob("reports")) == []


# ------------------------------------------------------------------------------------------
# a Dask worker in its own process, with the wheel only
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """End a process this test started (and the processes it started: its own session)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def dask_worker(wheel_env, tmp_path_factory):
    """A scheduler (this venv's dask) and one worker process run by the fresh venv's Python:
    the worker has the installed wheel only, and its working folder is empty.

    Even with --no-dashboard the scheduler's HTTP server (health, metrics) binds port 8787
    unless told otherwise; it is put on a free port, so that it cannot collide with a
    LocalCluster started meanwhile (which warns, an error under pytest, when 8787 is taken)."""
    distributed = pytest.importorskip("distributed", reason="Dask tests need dask[distributed]")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask_logs")
    worker_cwd = tmp_path_factory.mktemp("worker_empty")
    procs = []
    client = None
    try:
        with open(logs / "scheduler.log", "w") as log:
            procs.append(subprocess.Popen(
                [str(a) for a in script("dask")] + ["scheduler", "--host", "127.0.0.1", "--port",
                                                   str(port), "--no-dashboard",
                                                   "--dashboard-address", "127.0.0.1:0"],
                cwd=logs, env=clean_env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
        with open(logs / "worker.log", "w") as log:
            procs.append(subprocess.Popen(
                [str(wheel_env.python), "-m", "dask", "worker", address, "--nworkers", "1",
                 "--nthreads", "1", "--no-dashboard"],
                cwd=worker_cwd, env=clean_env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
        try:
            client = distributed.Client(address, timeout=60)
            client.wait_for_workers(1, timeout=60)
        except (OSError, TimeoutError) as exc:
            pytest.fail(f"no Dask worker came up ({exc}):\n"
                        + (logs / "scheduler.log").read_text() + (logs / "worker.log").read_text())
        yield SimpleNamespace(address=address, client=client, cwd=worker_cwd)
    finally:
        if client is not None:
            client.close()
        for proc in reversed(procs):
            stop(proc)


def worker_file_modules(client, stem) -> list:
    """The modules a worker executed from the text of files named ``stem``.py."""
    def probe(stem=stem):
        import sys

        return sorted(m for m in sys.modules if m.startswith(f"gradsim_file_{stem}_"))

    return sorted({name for names in client.run(probe).values() for name in names})


@pytest.mark.slow
def test_dask_worker_runs_from_the_wheel_without_the_checkout(wheel_env, dask_worker):
    """The worker is what it should be: gradsim from the wheel, an empty working folder, and
    no part of the checkout on its sys.path."""
    def probe():
        import os
        import sys

        import gradsim

        return gradsim.__file__, os.getcwd(), list(sys.path)

    ((module, cwd, path),) = dask_worker.client.run(probe).values()
    assert inside(module, wheel_env.site), module
    assert Path(cwd).resolve() == dask_worker.cwd.resolve()
    assert on_checkout(path, wheel_env) == []


@pytest.mark.slow
def test_readme_study_on_dask_worker_without_its_file(dask_worker, tmp_path):
    """The README's example, loaded and then deleted (file and folder, so the worker cannot
    read it: it can only run the text that goes with each task), gives on the worker the
    serial run's CSV byte for byte."""
    folder = tmp_path / "mine"
    folder.mkdir()
    path = folder / "my_study.py"
    path.write_text(readme_example(), encoding="utf-8")
    study = load_study(path)
    serial = run_study(study, quick=True, out=tmp_path / "serial", progress=False)
    shutil.rmtree(folder)  # the worker cannot read it: it only has the text sent with each task
    assert not path.exists()
    with make_executor(scheduler=dask_worker.address) as executor:
        remote = run_study(study, quick=True, out=tmp_path / "dask", executor=executor,
                           progress=False)
    assert remote.csv_path.read_bytes() == serial.csv_path.read_bytes()
    assert len(worker_file_modules(dask_worker.client, "my_study")) == 1  # ran there, from text


@pytest.mark.slow
def test_builtin_study_on_dask_worker_through_the_cli(dask_worker, tmp_path):
    """`gradsim run chain_rule --quick --scheduler tcp://...` (this venv's command) on the
    wheel-only worker writes the serial CSV byte for byte: the worker runs the text of the
    checkout's study file that the command sends, not the copy inside its wheel."""
    serial = chain_rule_serial(CHECKOUT / "studies" / "chain_rule.py", tmp_path / "serial")
    out = tmp_path / "out"
    run(script("gradsim") + ["run", "chain_rule", "--quick", "--scheduler", dask_worker.address,
                             "--out", out], cwd=tmp_path)
    assert (out / "chain_rule.csv").read_bytes() == serial
    assert len(worker_file_modules(dask_worker.client, "chain_rule")) == 1


@pytest.mark.slow
def test_user_claims_on_dask_worker_without_the_file(dask_worker, tmp_path):
    """A user's claims file, loaded and deleted, is checked on the worker from its text: the
    table equals the serial one."""
    folder = tmp_path / "claims"
    folder.mkdir()
    (folder / "my_claims.py").write_text(USER_CLAIMS, encoding="utf-8")
    claims = load_claims(folder / "my_claims.py")
    serial = check_claims(claims, quick=True, seeds=(0,))
    shutil.rmtree(folder)  # the worker cannot read it
    with make_executor(scheduler=dask_worker.address) as executor:
        table = check_claims(claims, quick=True, seeds=(0,), executor=executor)
    assert table.equals(serial)
    assert list(table.verdict) == ["supported"]
    assert len(worker_file_modules(dask_worker.client, "my_claims")) == 1


# ------------------------------------------------------------------------------------------
# the README's example, run by path
@pytest.fixture(scope="module")
def readme_study(tmp_path_factory):
    """The README's example written to a folder of its own, and its serial quick run by path
    through the command (in this process: `gradsim.workflow.cli.main`)."""
    root = tmp_path_factory.mktemp("readme")
    folder = root / "studies"
    folder.mkdir()
    path = folder / "my_study.py"
    path.write_text(readme_example(), encoding="utf-8")
    out = root / "serial"
    assert cli.main(["run", str(path), "--quick", "--out", str(out)]) == 0
    return SimpleNamespace(root=root, folder=folder, path=path, csv=out / "my_study.csv")


def test_readme_example_runs_by_path(readme_study, capsys):
    """The example runs by path with its figure, its summary gives key numbers with their
    uncertainty (an Estimate per gain, a Rate) and notes, and `gradsim list --studies` lists it."""
    frame = pd.read_csv(readme_study.csv)
    study = load_study(readme_study.path)
    assert len(frame) == len(gs.expand_grid(study.quick_grid)) and "error" not in frame
    assert (readme_study.csv.parent / "my_study.png").is_file()
    summary = study.summarize(frame)
    assert isinstance(summary.pop("notes"), str)
    estimates = [v for v in summary.values() if isinstance(v, gs.Estimate)]
    rates = [v for v in summary.values() if isinstance(v, gs.Rate)]
    assert len(estimates) == frame.gain.nunique() and all(e.stderr > 0 for e in estimates)
    assert len(rates) == 1 and rates[0].trials == len(frame)
    capsys.readouterr()
    assert cli.main(["list", "--studies", str(readme_study.folder)]) == 0
    assert capsys.readouterr().out.split(None, 1) == ["my_study", study.question + "\n"]


@pytest.mark.slow
def test_readme_example_same_bytes_on_local_dask(readme_study):
    """`gradsim run PATH --quick --scheduler local` writes the serial run's CSV byte for byte."""
    pytest.importorskip("distributed", reason="Dask tests need dask[distributed]")
    out = readme_study.root / "local_dask"
    # In a process of its own (this venv's command), so that the cluster's start-up warnings
    # are the command's, not errors of this test run (pytest turns warnings into errors).
    run(script("gradsim") + ["run", readme_study.path, "--quick", "--scheduler", "local",
                             "--out", out], cwd=readme_study.root)
    assert (out / "my_study.csv").read_bytes() == readme_study.csv.read_bytes()


# ------------------------------------------------------------------------------------------
# bad study files
BAD_FILES = {
    "missing.py": None,  # not written
    "notes.txt": "README",  # the README's example study, but not in a .py file
    "no_study.py": "x = 1\n",
    "wrong_study.py": "STUDY = 42\n",
    "raises.py": "raise RuntimeError('broken on purpose')\n",
    "syntax.py": "def broken(:\n",
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_study_file_one_line_exit_2_outputs_kept(name, tmp_path, capsys):
    """`gradsim run FILE` of a missing file, a non-.py file, a file without a STUDY (or with a
    wrong one), or one that fails to import: exit 2, one line on stderr naming the file, and
    the output CSV already in --out is untouched."""
    path = tmp_path / name
    text = readme_example() if BAD_FILES[name] == "README" else BAD_FILES[name]
    if text is not None:
        path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    existing = {"my_study.csv": b"gain,top_exponent\n0.5,-0.6\n",
                f"{path.stem}.csv": b"kept,as,it,was\n"}
    for file, data in existing.items():
        (out / file).write_bytes(data)

    assert cli.main(["run", str(path), "--quick", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("gradsim: error:")
    assert str(path) in lines[0] or str(path.resolve()) in lines[0], lines[0]
    assert captured.out == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == existing


def test_failing_run_of_a_good_study_keeps_the_csv(tmp_path, capsys):
    """A study that loads but is invoked wrongly (--set of an unknown parameter) fails in one
    line with exit 2 and leaves the CSV of an earlier run as it was."""
    path = tmp_path / "my_study.py"
    path.write_text(readme_example(), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "my_study.csv").write_bytes(b"earlier,run\n")
    assert cli.main(["run", str(path), "--quick", "--out", str(out), "--set", "nope=1"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradsim: error: --set: unknown parameter 'nope'")
    assert [p.name for p in out.iterdir()] == ["my_study.csv"]
    assert (out / "my_study.csv").read_bytes() == b"earlier,run\n"
