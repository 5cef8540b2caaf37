"""Benchmark of BPTT training: ``python -m gradsim.bench.training [--quick] [--threads N]``.

Prints the number of training updates per second (one update = a forward pass over a
mini-batch, BPTT through every step with the cells' VJPs, the parameter gradients, global-norm
clipping and an Adam step) for each cell kind, at N = 64 hidden units, T = 100 steps and
batch 32 on the adding problem (``--quick``: N = 16, T = 20). The best of a few repeats is
reported, the least disturbed by other load on the machine.

``--ensemble B`` instead times an ensemble of B networks trained in one call against the same B
networks trained one after another, in network-updates per second (B x updates / time).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from ..cells import make_cell
from ..training.tasks import adding_problem
from ..training.backprop import Adam, init_model, train_model

CASES = (
    ("rnn", dict(init="orthogonal", activation="tanh")),
    ("lstm", dict(init="orthogonal", forget_bias=1.0)),
    ("gru", dict(init="orthogonal")),
)


def run(quick: bool = False, threads: int = 1, out=sys.stdout) -> list[dict]:
    """Time the training loop for each cell kind, print one line each and return the rows."""
    n, horizon, batch = (16, 20, 32) if quick else (64, 100, 32)
    n_updates, repeats = (5, 1) if quick else (20, 3)
    rows = []
    with threadpool_limits(limits=threads):
        blas = ", ".join(
            f"{i['internal_api']} {i.get('version', '?')}, {i['num_threads']} thread(s)"
            for i in threadpool_info() if i.get("user_api") == "blas"
        )
        print(f"BLAS: {blas}", file=out)
        task = adding_problem(horizon)
        for kind, options in CASES:
            cell = make_cell(kind, n, task.n_input, rng=0, **options)
            model = init_model(cell, task.n_output, rng=1)
            best = np.inf
            for _ in range(repeats):
                start = time.perf_counter()
                train_model(model, task, n_updates=n_updates, batch_size=batch, optimizer=Adam(1e-3),
                            clip_norm=1.0, rng=2)
                best = min(best, time.perf_counter() - start)
            rate = n_updates / best
            rows.append(dict(cell=kind, n_hidden=n, steps=horizon, batch=batch, updates_per_second=rate))
            print(f"train {kind:4}: N={n}, T={horizon}, batch {batch}: {rate:.1f} updates/s "
                  f"({best / n_updates * 1e3:.1f} ms per update)", file=out)
    return rows


def run_ensemble(members: int = 32, quick: bool = False, threads: int = 1, out=sys.stdout) -> list[dict]:
    """Time ``members`` networks trained as one ensemble vs one by one; print and return the rows."""
    cases = ((16, 20, 32), (32, 50, 32)) if quick else ((16, 20, 32), (16, 50, 8), (32, 50, 32), (64, 100, 32))
    n_updates = 3 if quick else 5
    rows = []
    with threadpool_limits(limits=threads):
        for n, horizon, batch in cases:
            task = adding_problem(horizon)
            for kind, options in CASES:
                ens = make_cell(kind, n, task.n_input, ensemble=members, rng=0, **options)
                model = init_model(ens, task.n_output, rng=1)
                singles = [model[i] for i in range(members)]
                kwargs = dict(n_updates=n_updates, batch_size=batch, optimizer=Adam(1e-3), clip_norm=1.0, rng=2)
                best_ens = best_one = np.inf
                for _ in range(1 if quick else 2):
                    start = time.perf_counter()
                    train_model(model, task, **kwargs)
                    best_ens = min(best_ens, time.perf_counter() - start)
                    start = time.perf_counter()
                    for single in singles:
                        train_model(single, task, **kwargs)
                    best_one = min(best_one, time.perf_counter() - start)
                ens_rate, one_rate = members * n_updates / best_ens, members * n_updates / best_one
                rows.append(dict(cell=kind, n_hidden=n, steps=horizon, batch=batch, members=members,
                                 ensemble_rate=ens_rate, single_rate=one_rate))
                print(f"train {kind:4}: N={n}, T={horizon}, batch {batch}, {members} networks: ensemble "
                      f"{ens_rate:.0f}, one by one {one_rate:.0f} network-updates/s "
                      f"({ens_rate / one_rate:.2f}x)", file=out)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsim.bench.training",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--ensemble", type=int, default=None, metavar="B",
                        help="time an ensemble of B networks against B single trainings")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    if args.ensemble is not None:
        if args.ensemble < 1:
            parser.error(f"--ensemble must be >= 1; got {args.ensemble}")
        run_ensemble(args.ensemble, quick=args.quick, threads=args.threads)
        return 0
    run(quick=args.quick, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
