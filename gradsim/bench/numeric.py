"""Benchmark of the numeric layer: ``python -m gradsim.bench [--quick] [--threads N]``.

Prints, from one run on one thread count (so that ratios are meaningful on a shared, noisy
machine): the GFLOP/s of a plain numpy matmul of the product's size (the machine's limit),
the GFLOP/s of the full Jacobian product and of the full Lyapunov spectrum, with their ratios,
and the time of ``gradient_norms`` over a long horizon.

The flop count of a step is the matmul's, 2 P^3 for a P x P product, for all three rates:
the spectrum's rate is an *effective* rate (same work counted, more time taken). ``spread``
is the gap between the largest and smallest Lyapunov exponent per step (nats): the wider it is,
the more often the frame must be re-orthonormalised (see ``gradsim.numeric``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from ..cells import make_cell
from ..numeric import gradient_norms, jacobian_product, lyapunov_spectrum


def _best_time(run, repeats: int) -> float:
    """Best of ``repeats`` wall times: the least disturbed by other load on the machine."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _matmul_rate(size: int, steps: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)) / np.sqrt(size)

    def run():
        p = np.eye(size)
        for _ in range(steps):
            p = a @ p
    return 2.0 * size**3 * steps / _best_time(run, repeats) / 1e9


# (cell kind, initialisation, make_cell keywords). The initialisation matters for the spectrum:
# it sets the per-step spread of growth rates, hence how often the frame must be re-orthonormalised.
CASES = (
    ("rnn", "gaussian", dict(init="gaussian", gain=1.0, activation="tanh")),
    ("rnn", "orthogonal", dict(init="orthogonal", gain=1.0, activation="tanh")),
    ("lstm", "pytorch", dict(init="pytorch")),
    ("lstm", "orthogonal", dict(init="orthogonal", forget_bias=1.0)),
)


def _cell(kind: str, n_hidden: int, keywords: dict):
    return make_cell(kind, n_hidden, 8, rng=1, **keywords)


def run(quick: bool = False, threads: int = 1, out=sys.stdout) -> list[dict]:
    """Run the benchmark, print a table to ``out`` and return its rows."""
    sizes = (32, 64) if quick else (128, 256)
    horizons = (20, 50) if quick else (200, 2000)
    long_horizon = 2_000 if quick else 100_000
    repeats = 1 if quick else 3
    rows = []
    with threadpool_limits(limits=threads):
        blas = ", ".join(
            f"{i['internal_api']} {i.get('version', '?')} ({i.get('architecture', '?')}), "
            f"{i['num_threads']} thread(s)"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        )
        print(f"BLAS: {blas}", file=out)
        print(
            f"{'cell':5} {'init':10} {'N':>4} {'P':>4} {'T':>5} {'matmul':>8} {'product':>8} "
            f"{'prod/mm':>8} {'spectrum':>9} {'spec/prod':>9} {'spread':>7}",
            file=out,
        )
        for kind, init, keywords in CASES:
            for n in sizes:
                cell = _cell(kind, n, keywords)
                size = cell.state_size
                for horizon in horizons:
                    inputs = np.random.default_rng(2).standard_normal((horizon, cell.n_input))
                    flops = 2.0 * size**3 * horizon
                    # One repeat for runs of more than ~1 s: their noise is already averaged.
                    reps = repeats if flops < 5e10 else 1
                    mm = _matmul_rate(size, horizon, reps)
                    t_prod = _best_time(lambda: jacobian_product(cell, inputs), reps)
                    spectrum = []
                    t_spec = _best_time(lambda: spectrum.append(lyapunov_spectrum(cell, inputs)), reps)
                    exponents = spectrum[-1].exponents
                    row = dict(
                        cell=kind, init=init, n_hidden=n, size=size, steps=horizon,
                        spread=float(exponents[0] - exponents[-1]),
                        matmul_gflops=mm, product_gflops=flops / t_prod / 1e9,
                        spectrum_gflops=flops / t_spec / 1e9,
                        product_time=t_prod, spectrum_time=t_spec,
                    )
                    row["product_over_matmul"] = row["product_gflops"] / mm
                    row["spectrum_over_product"] = t_spec / t_prod
                    rows.append(row)
                    print(
                        f"{kind:5} {init:10} {n:4d} {size:4d} {horizon:5d} {mm:8.1f} "
                        f"{row['product_gflops']:8.1f} {row['product_over_matmul']:8.2f} "
                        f"{row['spectrum_gflops']:9.1f} {row['spectrum_over_product']:9.2f} "
                        f"{row['spread']:7.2f}",
                        file=out,
                    )
        n = sizes[-1]
        cell = _cell("rnn", n, CASES[0][2])
        inputs = np.random.default_rng(3).standard_normal((long_horizon, cell.n_input))
        t_grad = _best_time(lambda: gradient_norms(cell, inputs), 1)
        print(
            f"gradient_norms: tanh RNN N={n}, T={long_horizon}: {t_grad:.2f} s "
            f"({t_grad / long_horizon * 1e6:.1f} us/step)",
            file=out,
        )
        rows.append(dict(cell="rnn", n_hidden=n, steps=long_horizon, gradient_norms_time=t_grad))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsim.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    run(quick=args.quick, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
