"""Gradient flossing updates against plain BPTT training updates: ``python -m gradsim.bench.floss``.

Prints, from one run on one BLAS thread count (default 1, pinned by ``threadpoolctl``), the best
of 3 wall times per update of:

* ``floss``: one flossing update of :func:`gradsim.training.floss.floss`: the window's top k
  exponents by :func:`gradsim.lyapunov_spectrum`, their exact gradient by
  :func:`gradsim.lyapunov_vjp` (parameters only), the global norm, one Adam step and the new
  cell; on one window of T steps of the adding problem's inputs (the loop ``floss`` runs,
  ``--updates`` updates timed together, without ``floss``'s final measurement);
* ``bptt``: one update of :func:`gradsim.training.train_model` on the adding problem of the
  same T: a mini-batch of ``--batch`` (32) sequences, forward, BPTT, global-norm clipping at
  1 and an Adam step (``--updates`` updates timed together);

for the cells ``rnn`` (tanh), ``lstm`` and ``gru`` (PyTorch variant) at N in ``--sizes`` (32,
64), T = ``--steps`` (100), k = ``--k`` (4). The ratio floss / bptt is the cost of a flossing
update in training updates (a flossing episode of F updates costs F * ratio training updates).
Both are measured in the same run, so the ratio is immune to the machine's speed on the day.
``--quick`` shrinks everything (N = 8, T = 10, 2 updates, one repeat) into a smoke run.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from threadpoolctl import threadpool_limits

from ..cells import make_cell
from ..training.backprop import Adam, init_model, train_model
from ..training.floss import _floss_updates
from ..training.tasks import adding_problem
from .ensembles import _best
from .rate import _blas
from .sensitivity import _sizes

CELLS = {
    "rnn": dict(kind="rnn", activation="tanh", gain=1.5),
    "lstm": dict(kind="lstm"),
    "gru": dict(kind="gru", variant="torch"),
}
FULL = dict(sizes=(32, 64), steps=100, updates=10, repeats=3, k=4, batch=32)
QUICK = dict(sizes=(8,), steps=10, updates=2, repeats=1, k=2, batch=4)


def _case(name, n, steps, seed=0):
    options = dict(CELLS[name])
    kind = options.pop("kind")
    task = adding_problem(steps)
    cell = make_cell(kind, n, task.n_input, rng=seed, bias_std=0.1, **options)
    model = init_model(cell, task.n_output, rng=seed + 1)
    window = task.sample(1, np.random.default_rng(seed + 2))[0][0]  # (T, I)
    return task, model, window


def _floss(cell, window, k, updates):
    optimizer = Adam(1e-3)
    names = tuple(cell.parameters())
    state = optimizer.init(dict(cell.parameters()))
    return _floss_updates(cell, lambda: window, k, 0.0, updates, optimizer, state, names, None, 0, "full",
                          None)


def run(quick: bool = False, threads: int = 1, sizes=None, steps=None, updates=None, repeats=None, k=None,
        batch=None, out=None) -> list[dict]:
    """Time every (cell, N) pair; print one table (to ``out``, default stdout) and return its rows."""
    out = sys.stdout if out is None else out
    settings = dict(QUICK if quick else FULL)
    sizes = tuple(sizes or settings["sizes"])
    steps = steps or settings["steps"]
    updates = updates or settings["updates"]
    repeats = repeats or settings["repeats"]
    k = k or settings["k"]
    batch = batch or settings["batch"]
    rows = []
    with threadpool_limits(limits=threads):
        blas = _blas()
        print(f"flossing updates against BPTT updates (adding problem); BLAS: {blas}; T = {steps}, k = {k}, "
              f"BPTT batch {batch}, {updates} updates per timing, best of {repeats}", file=out)
        print(f"{'cell':<6} {'N':>4} {'floss ms/upd':>13} {'bptt ms/upd':>12} {'floss/s':>9} {'bptt/s':>9} "
              f"{'floss/bptt':>10}", file=out)
        for name in CELLS:
            for n in sizes:
                task, model, window = _case(name, n, steps)
                kk = min(k, model.cell.state_size)
                t_floss, result = _best(lambda: _floss(model.cell, window, kk, updates), repeats)
                t_bptt, record = _best(
                    lambda: train_model(model, task, n_updates=updates, batch_size=batch, optimizer=Adam(1e-3),
                                        clip_norm=1.0, rng=3),
                    repeats,
                )
                if not np.all(np.isfinite(np.array(result[2]))) or record.diverged:
                    raise FloatingPointError(f"non-finite flossing exponents or a diverged training for {name}, N = {n}")
                row = dict(cell=name, n_hidden=n, state_size=model.cell.state_size, steps=steps, k=kk, batch=batch,
                           updates=updates, floss_time=t_floss, bptt_time=t_bptt,
                           floss_per_second=updates / t_floss, bptt_per_second=updates / t_bptt,
                           ratio=t_floss / t_bptt)
                rows.append(row)
                print(f"{name:<6} {n:>4} {1e3 * t_floss / updates:>13.2f} {1e3 * t_bptt / updates:>12.2f} "
                      f"{row['floss_per_second']:>9.1f} {row['bptt_per_second']:>9.1f} {row['ratio']:>10.2f}",
                      file=out)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsim.bench.floss", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--sizes", type=_sizes, help="N (default '32 64')")
    parser.add_argument("--steps", type=int, help="T, the flossing window and the task length (default 100)")
    parser.add_argument("--updates", type=int, help="updates per timing (default 10)")
    parser.add_argument("--k", type=int, help="exponents flossed (default 4)")
    parser.add_argument("--batch", type=int, help="BPTT mini-batch size (default 32)")
    args = parser.parse_args(argv)
    for ok, message in (
        (args.threads >= 1, f"--threads must be >= 1; got {args.threads}"),
        (args.steps is None or args.steps >= 2, f"--steps must be >= 2; got {args.steps}"),
        (args.updates is None or args.updates >= 1, f"--updates must be >= 1; got {args.updates}"),
        (args.k is None or args.k >= 1, f"--k must be >= 1; got {args.k}"),
        (args.batch is None or args.batch >= 1, f"--batch must be >= 1; got {args.batch}"),
    ):
        if not ok:
            parser.error(message)
    run(quick=args.quick, threads=args.threads, sizes=args.sizes, steps=args.steps, updates=args.updates,
        k=args.k, batch=args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
