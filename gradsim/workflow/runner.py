"""Parameter studies: grids, per-configuration seeding, executors, resume, tidy CSV + metadata.

A :class:`Study` is a grid of configurations and a pure function ``simulate(config, rng)`` from
one configuration to a list of tidy records (dicts). :func:`run_study` expands the grid, runs
each configuration on an executor, stores each finished configuration at once (so that a run
killed at any moment can be resumed), and writes ``<out>/<name>.csv`` with a
``<name>.meta.json`` sidecar. The CSV is byte-identical whichever executor ran it: every
configuration runs with one BLAS thread and its seed comes from a hash of the configuration
itself, never from its position in the grid.

Batches. A study may also give ``simulate_batch(configs, rngs)``, the records of several
configurations from one call (typically one ensemble of networks, ``gradsim.stack_cells``), and
``batch_key(config)``, which says which configurations may share a call: those with equal keys
(same cell kind, size, horizon, ...). The runner cuts the grid into batches once, from the grid
alone (configurations of one key in grid order, at most ``max_batch`` per batch), so a batch's
members are the same whichever executor runs it and whether or not the run was resumed. Each
member keeps its own generator ``config_rng(config)`` and is stored as its own partial result;
a resumed run computes again, whole, every batch with a member missing.

This module and the studies are the only places, with the command line, that write files.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import importlib.util
import io
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info, threadpool_limits
# scipy carries its own OpenBLAS, and threadpool_limits reaches only the libraries already
# loaded: a study that first touches scipy.linalg inside simulate() would run it unpinned (seen:
# an 8 ms solve_triangular of a 16 x 16 matrix instead of 23 us). Loaded here, it is pinned.
import scipy.linalg  # noqa: E402,F401

from .._source import SourceFile
from .._validate import UsageError

__all__ = [
    "Study",
    "StudyResult",
    "UsageError",
    "expand_grid",
    "canonical_json",
    "config_hash",
    "config_rng",
    "load_study",
    "find_studies",
    "resolve_study",
    "make_executor",
    "run_study",
    "plan_batches",
    "apply_overrides",
    "atomic_write",
    "prepare_out",
    "write_table",
    "DEFAULT_STUDIES_DIR",
    "default_out",
]

_PARTIAL = ".partial"


def default_out(quick: bool) -> Path:
    """``reports``, or ``reports/quick`` for quick runs, so a smoke run never replaces the report."""
    return Path("reports") / "quick" if quick else Path("reports")


@dataclass(frozen=True)
class Study:
    """One question answered by a grid of simulations.

    Attributes
    ----------
    name : str
        File stem of the outputs (``<name>.csv``).
    question : str
        The question, one sentence, for the report.
    grid, quick_grid : dict or sequence of dict
        Parameter name -> list of values; the configurations are the Cartesian product. A
        sequence of such dicts is the union of their products.
    simulate : callable (config: dict, rng: numpy.random.Generator) -> list of dict
        Pure: the same configuration and generator give the same records.
    simulate_batch : callable (configs: list of dict, rngs: list of Generator) -> list of list of dict, optional
        The records of every configuration of a batch, in order: item i must be what
        ``simulate(configs[i], rngs[i])`` returns, to rounding (an ensemble's member equals the
        single network to ~1e-12 relative), and must not depend on the other members, so that
        adding a grid point leaves the other rows as they are. If the call raises, the batch's
        configurations are run one by one with ``simulate``, so that the failing one is
        recorded with its error and the others keep their rows.
    batch_key : callable (config: dict) -> JSON-able value or None, optional
        Configurations with equal keys may go to one ``simulate_batch`` call; ``None`` runs the
        configuration alone with ``simulate``. Required with ``simulate_batch``.
    max_batch : int
        Most configurations in one batch (bounds a batch's memory, and leaves several batches
        for a process pool to share).
    plot : callable (DataFrame) -> matplotlib Figure, optional
    summarize : callable (DataFrame) -> dict, optional
        Key numbers for the report, computed from the CSV's contents.
    root_seed : int
        Root of every configuration's seed.
    source : gradsim._source.SourceFile, optional
        The text of the file defining the study, and its path (set by :func:`load_study`);
        it goes with every task, so that process and Dask workers run the study without
        reading any file. A Study made in Python without it runs serially as it is, and on a
        pool or cluster only if it pickles (its functions defined in an importable module).
    """

    name: str
    question: str
    grid: object
    quick_grid: object
    simulate: Callable
    plot: Callable | None = None
    summarize: Callable | None = None
    root_seed: int = 0
    source: SourceFile | None = field(default=None, compare=False, repr=False)
    simulate_batch: Callable | None = None
    batch_key: Callable | None = None
    max_batch: int = 32

    def __post_init__(self):
        if (self.simulate_batch is None) != (self.batch_key is None):
            raise TypeError(
                "`simulate_batch` and `batch_key` go together: give both or neither; got "
                f"simulate_batch={self.simulate_batch!r}, batch_key={self.batch_key!r}."
            )
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ValueError(f"`max_batch` must be a positive integer; got {self.max_batch!r}.")


@dataclass(frozen=True)
class StudyResult:
    study: Study
    csv_path: Path
    meta_path: Path
    frame: pd.DataFrame
    n_errors: int


# ------------------------------------------------------------------------------------------
# grids and seeds
def _grid_parts(grid):
    if isinstance(grid, dict):
        return [grid]
    if isinstance(grid, (list, tuple)) and all(isinstance(g, dict) for g in grid):
        return list(grid)
    raise TypeError(f"`grid` must be a dict or a sequence of dicts; got {type(grid).__name__}.")


def expand_grid(grid) -> list[dict]:
    """All configurations of ``grid`` in a deterministic order (first key varies slowest)."""
    configs = []
    for part in _grid_parts(grid):
        keys = list(part)
        values = []
        for key in keys:
            value = part[key]
            values.append(list(value) if isinstance(value, (list, tuple)) else [value])
        for combo in itertools.product(*values):
            configs.append(dict(zip(keys, combo)))
    return configs


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def canonical_json(obj) -> str:
    """Canonical JSON (sorted keys, no spaces): the form that is hashed."""
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"))


def config_hash(config: dict) -> str:
    """sha256 of the canonical configuration."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def config_rng(config: dict, root_seed: int = 0) -> np.random.Generator:
    """The generator of one configuration: SeedSequence(root_seed, spawn_key=hash words).

    The key comes from the configuration's own hash, so adding, removing or reordering other
    grid points never changes this configuration's numbers.
    """
    digest = config_hash(config)
    key = tuple(int(digest[i : i + 8], 16) for i in range(0, 32, 8))
    return np.random.default_rng(np.random.SeedSequence(root_seed, spawn_key=key))


def apply_overrides(grid, overrides: dict):
    """``grid`` with the values of ``overrides`` (parameter -> value or list) put in."""
    parts = _grid_parts(grid)
    known = {key for part in parts for key in part}
    for key in overrides:
        if key not in known:
            raise UsageError(
                f"--set: unknown parameter {key!r}; this study's parameters are {', '.join(sorted(known))}"
            )
    new = []
    for part in parts:
        part = dict(part)
        for key, value in overrides.items():
            if key in part:
                part[key] = list(value) if isinstance(value, (list, tuple)) else [value]
        new.append(part)
    return new if len(new) > 1 else new[0]


# ------------------------------------------------------------------------------------------
# studies on disk
def _builtin_studies_dir() -> Path:
    """The built-in studies: the package ``gradsim.studies`` (the checkout's top-level
    ``studies/`` folder, installed with the package), or that folder beside a checkout that
    is used without being installed."""
    spec = importlib.util.find_spec("gradsim.studies")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parents[2] / "studies"


DEFAULT_STUDIES_DIR = _builtin_studies_dir()


def load_study(path) -> Study:
    """Read the study file at ``path`` and return its ``STUDY``, carrying the file's text.

    The text (:class:`gradsim._source.SourceFile`) goes with every task, so a worker runs the
    study without reading the file. Errors (a UsageError, one line): no file at ``path``, not a
    ``*.py`` file, a file that fails to import, or one that defines no ``STUDY``.
    """
    source = SourceFile.read(path, "study file")
    try:
        return _study_of(source)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"the study file {source.path} failed to import: {type(exc).__name__}: {exc}"
        ) from None


def _study_of(source) -> Study:
    """The ``STUDY`` of ``source`` (executed once per process and text); a Study made in
    Python rather than read from a file travels as itself (pickled: by reference for functions
    of importable modules)."""
    if isinstance(source, Study):
        return source
    study = getattr(source.module(), "STUDY", None)
    if not isinstance(study, Study):
        found = "it has no STUDY" if study is None else f"its STUDY is a {type(study).__name__}"
        raise UsageError(
            f"{source.path} defines no study: it must set STUDY = gradsim.Study(...); {found}"
        )
    return dataclasses.replace(study, source=source)


def find_studies(studies_dir=None) -> dict[str, Path]:
    """Study name -> file, for every ``*.py`` in the studies folder not starting with ``_``."""
    folder = Path(studies_dir) if studies_dir is not None else DEFAULT_STUDIES_DIR
    if not folder.is_dir():
        raise UsageError(f"no studies folder at {folder}")
    return {p.stem: p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")}


def resolve_study(name_or_path, studies_dir=None) -> Path:
    """The file of a study given by name (in ``studies_dir``, default the built-in studies) or
    by path (anything with a suffix or a path separator, or an existing file)."""
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix or os.sep in text or "/" in text or candidate.is_file():
        return candidate
    studies = find_studies(studies_dir)
    if text not in studies:
        raise UsageError(
            f"unknown study {text!r}; known: {', '.join(studies)} (or give the path of a study file)"
        )
    return studies[text]


# ------------------------------------------------------------------------------------------
# executors
class SerialExecutor(concurrent.futures.Executor):
    """Runs each task at submission, in this process: no server, no pickling."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)
        return future


def _pin_blas():
    """Worker initialiser: one BLAS thread per worker process (no oversubscription)."""
    threadpool_limits(limits=1)


def make_executor(jobs: int | None = None, scheduler: str | None = None):
    """A ``concurrent.futures.Executor``: serial (default), process pool, or Dask.

    Parameters
    ----------
    jobs : int, optional
        Worker processes of a local pool (or of a local Dask cluster).
    scheduler : str, optional
        ``"local"`` for an in-process Dask LocalCluster bound to 127.0.0.1, or the address
        of a running Dask scheduler (``tcp://host:port``).
    """
    # Checked here, at the call, not when the context is entered.
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise UsageError(f"--jobs (`jobs`) must be a positive integer; got {jobs!r}")
    if scheduler is not None and not isinstance(scheduler, str):
        raise UsageError(f"--scheduler (`scheduler`) must be 'local' or an address; got {scheduler!r}")
    return _executor(jobs, scheduler)


@contextlib.contextmanager
def _executor(jobs, scheduler):
    if scheduler is None:
        if jobs is None or jobs == 1:
            yield SerialExecutor()
            return
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, initializer=_pin_blas) as pool:
            yield pool
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(
            "--scheduler needs Dask: pip install 'gradsim[dask]'"
        ) from None
    cluster = None
    try:
        if scheduler == "local":
            cluster = LocalCluster(
                n_workers=jobs or 2, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None,
                # No dashboard, but the scheduler's HTTP server (health, metrics) still binds
                # 8787 by default and warns when another scheduler holds it: any free port.
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        client.run(_pin_blas)
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ------------------------------------------------------------------------------------------
# running
def _run_config(source, config: dict, root_seed: int) -> dict:
    """Run one configuration (in any process): the study is executed from its text."""
    study = _study_of(source)
    try:
        with threadpool_limits(limits=1):
            records = study.simulate(dict(config), config_rng(config, root_seed))
        return _result(config, records)
    except Exception as exc:  # recorded with the configuration; the others go on
        return {"config": _jsonable(config), "records": [], "error": _describe_error(exc)}


def _run_batch(source, configs: list, root_seed: int) -> list:
    """Run one batch (in any process): ``simulate`` for a single unbatched configuration,
    ``simulate_batch`` otherwise; a batch that raises is run again one configuration at a time."""
    study = _study_of(source)
    if study.simulate_batch is None or study.batch_key(dict(configs[0])) is None:
        return [_run_config(source, config, root_seed) for config in configs]
    try:
        with threadpool_limits(limits=1):
            rows = study.simulate_batch([dict(c) for c in configs],
                                        [config_rng(c, root_seed) for c in configs])
            rows = list(rows)
    except Exception:
        # Which member failed (and why) is found by running them alone.
        return [_run_config(source, config, root_seed) for config in configs]
    if len(rows) != len(configs):
        raise ValueError(
            f"{study.name}: `simulate_batch` must return one list of records per configuration; "
            f"got {len(rows)} for {len(configs)} configurations."
        )
    return [_result(config, records) for config, records in zip(configs, rows)]


def _result(config, records) -> dict:
    return {"config": _jsonable(config), "records": [_jsonable(dict(r)) for r in records],
            "error": None}


def _describe_error(exc) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})"


def plan_batches(study: Study, configs: list) -> list[list[int]]:
    """The batches of ``configs`` (lists of indices), from the configurations alone.

    Configurations whose ``batch_key`` is equal (compared as canonical JSON) share batches of
    at most ``study.max_batch`` (as few as that allows, of near-equal sizes), in grid order; a
    study without ``simulate_batch``, or a key of ``None``, gives one batch per configuration.
    Batches are ordered by their first member.
    """
    if study.simulate_batch is None:
        return [[i] for i in range(len(configs))]
    groups: dict[str, list[int]] = {}
    batches = []
    for i, config in enumerate(configs):
        key = study.batch_key(dict(config))
        if key is None:
            batches.append([i])
        else:
            groups.setdefault(canonical_json(key), []).append(i)
    for members in groups.values():
        # As few batches as max_batch allows, of near-equal sizes (consecutive in grid order).
        n_batches = -(-len(members) // study.max_batch)
        cuts = [len(members) * b // n_batches for b in range(n_batches + 1)]
        batches += [members[cuts[b] : cuts[b + 1]] for b in range(n_batches)]
    return sorted(batches, key=lambda batch: batch[0])


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def prepare_out(out) -> Path:
    """The output folder, created if needed; a UsageError if it cannot be created or written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"the output folder {out} is not writable")
    return out


def _read_partial(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not {"config", "records", "error"} <= set(data):
            raise ValueError("missing keys")
        return data
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"corrupt partial result {path} ({exc}); delete it and run again with --resume"
        ) from None


def _frame(configs, results) -> pd.DataFrame:
    keys = list(dict.fromkeys(k for c in configs for k in c))
    rows = []
    any_error = any(r["error"] for r in results)
    for config, result in zip(configs, results):
        base = {k: config.get(k) for k in keys}
        if result["error"]:
            rows.append({**base, "error": result["error"]})
        for record in result["records"]:
            row = {**base, **record}
            if any_error:
                row["error"] = ""
            rows.append(row)
    return pd.DataFrame(rows)


def _versions() -> dict:
    import matplotlib
    import scipy

    from .. import __version__

    # Sorted: threadpoolctl lists the libraries in load order, which can vary between runs.
    blas = sorted(
        ({k: info.get(k) for k in ("internal_api", "version", "architecture")}
         for info in threadpool_info() if info.get("user_api") == "blas"),
        key=lambda entry: json.dumps(entry, sort_keys=True),
    )
    return {
        "gradsim": __version__, "python": platform.python_version(), "numpy": np.__version__,
        "scipy": scipy.__version__, "pandas": pd.__version__, "matplotlib": matplotlib.__version__,
        "blas": blas, "machine": _machine(),
    }


def _machine() -> dict:
    """What decides the floating-point kernels: architecture, CPU model, a forced OpenBLAS core.

    Recorded so that a difference between two reports can be judged (``gradsim compare``):
    the same code on another CPU picks other BLAS kernels, whose rounding differs.
    """
    cpu = platform.processor() or None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    return {"arch": platform.machine(), "cpu": cpu, "system": platform.system(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True, timeout=10, check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_table(frame: pd.DataFrame, csv_path, meta: dict) -> dict:
    """Write ``frame`` to ``csv_path`` and ``meta`` plus provenance to the ``.meta.json`` beside it.

    Provenance added to ``meta``: row count, the CSV's sha256, library versions and BLAS, git
    commit (no timestamps, so the sidecar depends on the inputs only). Both files are written
    atomically. Returns the full metadata.
    """
    csv_path = Path(csv_path)
    data = csv_bytes(frame)
    meta = {**meta, "rows": len(frame), "csv_sha256": hashlib.sha256(data).hexdigest(),
            "versions": _versions(), "git_commit": _git_commit()}
    atomic_write(csv_path, data)
    atomic_write(csv_path.with_suffix(".meta.json"),
                 (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return meta


# Significant digits of the floats in a CSV. Machines that differ only in their BLAS kernels or
# library versions change results by ~1e-16 times the condition of the computation, so the
# 16th-17th digits of a round-trip repr differ on nearly every line while the 12th rarely does;
# 12 digits keep 1000 times the precision any key number of the report is stated to (4
# significant digits, or a tolerance of 1e-9 relative), and a quantity that is itself rounding
# (3.3e-15) keeps its 12 digits too: the rounding is relative.
CSV_SIGNIFICANT_DIGITS = 12


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The CSV form of a frame: floats to ``CSV_SIGNIFICANT_DIGITS`` significant digits, '\\n'
    line ends."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n",
                 float_format=f"%.{CSV_SIGNIFICANT_DIGITS}g")
    return buffer.getvalue().encode()


def run_study(
    study: Study,
    *,
    quick: bool = False,
    out=None,
    executor: concurrent.futures.Executor | None = None,
    resume: bool = False,
    overrides: dict | None = None,
    progress: bool = True,
) -> StudyResult:
    """Run every configuration of ``study`` and write ``<out>/<name>.csv`` and its sidecar.

    Each finished configuration is stored at once under ``<out>/.partial/<name>/``; with
    ``resume=True`` those are kept and only the rest are run. Without it, existing partial
    results stop the run (nothing already computed is overwritten by a new invocation).
    The partial folder is removed once the CSV is written.
    """
    if not isinstance(study, Study):
        raise TypeError(f"`study` must be a gradsim Study (see load_study); got {type(study).__name__}.")
    out = prepare_out(Path(out) if out is not None else default_out(quick))
    grid = study.quick_grid if quick else study.grid
    if overrides:
        grid = apply_overrides(grid, overrides)
    configs = expand_grid(grid)
    if not configs:
        raise UsageError(f"study {study.name!r} has an empty grid")
    hashes = [config_hash(c) for c in configs]
    partial_dir = out / _PARTIAL / (study.name + ("-quick" if quick else ""))
    if partial_dir.exists() and any(partial_dir.iterdir()) and not resume:
        raise UsageError(
            f"partial results of {study.name!r} exist in {partial_dir}; pass --resume to finish "
            "them or delete that folder to start over"
        )
    partial_dir.mkdir(parents=True, exist_ok=True)
    done = {}
    for digest in hashes:
        path = partial_dir / f"{digest}.json"
        if path.exists():
            done[digest] = _read_partial(path)
    # Batches are cut from the whole grid, so that a resumed run computes every batch with the
    # members an uninterrupted one does; a batch is rerun if any member is missing.
    batches = plan_batches(study, configs)
    todo = [batch for batch in batches if any(hashes[i] not in done for i in batch)]

    bar = _progress(len(configs), len(done), study.name, progress)
    own_executor = executor is None
    context = make_executor() if own_executor else contextlib.nullcontext(executor)
    try:
        with context as pool:
            # A bounded window of tasks in flight: results are stored as they finish (the
            # serial executor runs each task at submission, so its window is one task).
            window = 1 if isinstance(pool, SerialExecutor) else 64
            queue = iter(todo)
            in_flight = {}
            while True:
                for batch in itertools.islice(queue, window - len(in_flight)):
                    # A study from a file travels as its text; one made in Python, as itself.
                    task = study.source if study.source is not None else study
                    future = pool.submit(_run_batch, task, [configs[i] for i in batch],
                                         study.root_seed)
                    in_flight[future] = batch
                if not in_flight:
                    break
                finished, _ = concurrent.futures.wait(in_flight, return_when="FIRST_COMPLETED")
                for future in finished:
                    batch = in_flight.pop(future)
                    for i, result in zip(batch, future.result()):
                        digest = hashes[i]
                        if digest in done:  # stored by an earlier run: never overwritten
                            continue
                        # Round-tripped through the stored form, so that a resumed run
                        # assembles exactly what an uninterrupted one does (key order included).
                        data = json.dumps(result)
                        atomic_write(partial_dir / f"{digest}.json", data.encode())
                        done[digest] = json.loads(data)
                        bar.update(1)
    finally:
        bar.close()

    results = [done[h] for h in hashes]
    frame = _frame(configs, results)
    csv_path = out / f"{study.name}.csv"
    meta = write_table(frame, csv_path, {
        "study": study.name,
        "question": study.question,
        "quick": quick,
        "grid": _jsonable(grid),
        "grid_sha256": hashlib.sha256(canonical_json(grid).encode()).hexdigest(),
        "root_seed": study.root_seed,
        "n_configs": len(configs),
        "n_batches": len(batches),
        "n_errors": sum(1 for r in results if r["error"]),
    })
    # Everything stored is now in the CSV; leftovers of killed writes (.tmp) go too.
    for path in partial_dir.iterdir():
        path.unlink()
    with contextlib.suppress(OSError):
        partial_dir.rmdir()
        (out / _PARTIAL).rmdir()
    return StudyResult(study, csv_path, csv_path.with_suffix(".meta.json"), frame, meta["n_errors"])


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(total, initial, name, enabled):
    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="config", file=sys.stderr)
