"""The modern cells' spectra and the stacked LSTM's: ``python -m gradsim.bench.modern``.

Prints, from one run on one BLAS thread count (default 1, pinned by ``threadpoolctl``), every
time the best of 3 wall times (one run when it takes > 2 s), all ratios from the same run:

1. **A 3-layer stacked LSTM against a dense Jacobian.** ``gs.StackedCell`` of three
   ``make_cell("lstm", N, I_k, init="pytorch", forget_bias=1.0)`` layers (N = 128,
   ``--stack-n``; I_0 = 8 inputs, then I_1 = I_2 = N: the layers chained), state size
   P = 3 x 2N = 768, driven by N(0, 1) inputs. Per step:

   * ``tangent``: the stack's state step and its block lower-triangular tangent operator
     applied to a full P x P orthonormal frame (``cell._jacobian_operator(s, x, "full")`` then
     ``op @ frame``, as ``lyapunov_spectrum`` pushes its frame);
   * ``spectrum``: ``lyapunov_spectrum(stack, X)``, all P exponents, its own adaptive QR
     schedule (re-orthonormalising as often as the LSTM's wide spectrum requires);
   * ``dense mm``: one P x P @ P x P matmul, and ``dense``: one matmul plus one LAPACK
     ``dgeqrf`` of a P x P matrix (optimal workspace), timed on their own: what a QR-every-step
     spectrum of a dense P x P Jacobian costs at least.

   Ratios ``tangent / dense mm`` and ``spectrum / dense`` (the issue expects the block
   structure to make both < 1).

2. **Every modern cell's full spectrum against the LSTM's at equal N** (N = 64 and 256,
   ``--sizes``): ``lyapunov_spectrum(cell, X)`` (all P exponents; P = 2N for the LRU, the coRNN
   and the LSTM, N otherwise) per step, for the cells at the modern_cells study's published
   initialisations (LRU ring 0.9-0.999; minGRU, minLSTM, coRNN ``init="pytorch"``; IndRNN ReLU;
   antisymmetric eps = gamma = 0.01; LSTM ``init="pytorch"``, forget bias 1), 4 N(0, 1)
   inputs; the ratio cell / LSTM (below 1: cheaper than the LSTM).

``--quick`` shrinks everything (stack N = 16, sizes 8 and 16, a few steps, one repeat) into a
smoke run of a few seconds. Nothing printed is a test.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

import gradsim as gs

from .ensembles import LONG_RUN, _best, _geqrf_lwork
from .rate import _blas, _sizes

STACK_LAYERS = 3
STACK_INPUT = 8
N_INPUT = 4
# The modern_cells study's published initialisations (studies/modern_cells.py, CELLS).
CELLS = {
    "lru": dict(r_min=0.9, r_max=0.999),
    "mingru": dict(init="pytorch"),
    "minlstm": dict(init="pytorch"),
    "indrnn": dict(activation="relu"),
    "antisymmetric": dict(eps=0.01, gamma=0.01),
    "cornn": dict(dt=0.042, gamma=2.7, eps=4.7, init="pytorch"),
    "lstm": dict(init="pytorch", forget_bias=1.0),
}
FULL = dict(stack_n=128, stack_steps=40, sizes=(64, 256), steps={64: 400, 256: 60}, repeats=3)
QUICK = dict(stack_n=16, stack_steps=10, sizes=(8, 16), steps={8: 30, 16: 30}, repeats=1)


def stacked_lstm(n: int, n_input: int = STACK_INPUT, layers: int = STACK_LAYERS, rng=0):
    """``layers`` LSTM layers of N units, the first reading ``n_input`` inputs, the rest N."""
    rngs = np.random.default_rng(rng).spawn(layers)
    return gs.StackedCell(tuple(
        gs.make_cell("lstm", n, n_input if k == 0 else n, rng=rngs[k], **CELLS["lstm"])
        for k in range(layers)))


# -- 1. the stacked LSTM -------------------------------------------------------------------------
def _dense_times(p: int, steps: int, repeats: int) -> tuple[float, float]:
    """(time of T dense P x P matmuls, time of T times one matmul + one dgeqrf)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((p, p)) / np.sqrt(p)
    q = np.linalg.qr(rng.standard_normal((p, p)))[0]
    buf = np.empty((p, p))
    lwork = _geqrf_lwork(p)

    def products():
        for _ in range(steps):
            np.matmul(a, q, out=buf)

    def dense():
        for _ in range(steps):
            np.matmul(a, q, out=buf)
            lapack.dgeqrf(buf.T, lwork=lwork, overwrite_a=1)  # buf.T is Fortran-ordered: in place

    return _best(products, repeats)[0], _best(dense, repeats)[0]


def _stacked(settings: dict, out) -> dict:
    n, steps, repeats = settings["stack_n"], settings["stack_steps"], settings["repeats"]
    cell = stacked_lstm(n)
    p = cell.state_size
    inputs = np.random.default_rng(1).standard_normal((steps, cell.n_input))
    state0 = np.zeros(p)
    frame = np.linalg.qr(np.random.default_rng(2).standard_normal((p, p)))[0]

    def tangent():
        s = state0
        for t in range(steps):
            s, op = cell._jacobian_operator(s, inputs[t], "full")
            op @ frame
        return s

    t_tan = _best(tangent, repeats)[0]
    t_spec = _best(lambda: gs.lyapunov_spectrum(cell, inputs), repeats)[0]
    t_mm, t_dense = _dense_times(p, steps, repeats)
    row = dict(
        section="stacked", n_hidden=n, layers=STACK_LAYERS, state_size=p, steps=steps,
        tangent_time=t_tan, spectrum_time=t_spec, dense_mm_time=t_mm, dense_time=t_dense,
        tangent_per_step=t_tan / steps, spectrum_per_step=t_spec / steps,
        dense_mm_per_step=t_mm / steps, dense_per_step=t_dense / steps,
        tangent_over_dense_mm=t_tan / t_mm, spectrum_over_dense=t_spec / t_dense,
    )
    print(f"\n1. Stacked LSTM ({STACK_LAYERS} layers of N={n}, inputs {STACK_INPUT} -> {n} -> {n}; "
          f"state P={p}) against a dense P x P Jacobian; {steps} steps; ms per step", file=out)
    print(f"{'P':>5} {'T':>4} {'tangent':>8} {'spectrum':>8} {'dense mm':>8} {'dense':>8} "
          f"{'tan/mm':>7} {'spec/dense':>10}", file=out)
    print(f"{p:5d} {steps:4d} {row['tangent_per_step'] * 1e3:8.3f} {row['spectrum_per_step'] * 1e3:8.3f} "
          f"{row['dense_mm_per_step'] * 1e3:8.3f} {row['dense_per_step'] * 1e3:8.3f} "
          f"{row['tangent_over_dense_mm']:7.3f} {row['spectrum_over_dense']:10.3f}", file=out)
    print("  tangent: state step + the stack's block lower-triangular operator @ a P x P frame;"
          "\n  spectrum: lyapunov_spectrum(stack, X), all P exponents; dense mm: one P x P @ P x P"
          "\n  matmul; dense: one matmul + one dgeqrf of a P x P matrix (optimal lwork).", file=out)
    return row


# -- 2. the modern cells against the LSTM -------------------------------------------------------
def _cells(sizes, settings: dict, out) -> list[dict]:
    repeats = settings["repeats"]
    print("\n2. Full spectrum (lyapunov_spectrum, all P exponents) per step, each cell against the "
          "LSTM at equal N;\n   4 N(0, 1) inputs; ms per step", file=out)
    print(f"{'N':>4} {'T':>4} {'cell':>14} {'P':>4} {'ms/step':>9} {'/LSTM':>7}", file=out)
    rows = []
    for n in sizes:
        steps = settings["steps"][n]
        inputs = np.random.default_rng(3).standard_normal((steps, N_INPUT))
        times = {}
        for kind in ("lstm", *[k for k in CELLS if k != "lstm"]):
            cell = gs.make_cell(kind, n, N_INPUT, rng=0, **CELLS[kind])
            times[kind] = (_best(lambda: gs.lyapunov_spectrum(cell, inputs), repeats)[0],
                           cell.state_size)
        for kind, (elapsed, p) in times.items():
            row = dict(section="cells", cell=kind, n_hidden=n, state_size=p, steps=steps,
                       spectrum_time=elapsed, spectrum_per_step=elapsed / steps,
                       over_lstm=elapsed / times["lstm"][0])
            rows.append(row)
            print(f"{n:4d} {steps:4d} {kind:>14} {p:4d} {row['spectrum_per_step'] * 1e3:9.4f} "
                  f"{row['over_lstm']:7.3f}", file=out)
    return rows


def run(quick: bool = False, threads: int = 1, out=None, *, stack_n=None, sizes=None) -> list[dict]:
    """Run the benchmark, print its tables to ``out`` and return its rows (one dict each).

    Rows have ``section`` "stacked" (one) or "cells" (one per cell and size, the LSTM first);
    times (keys ending in ``_time``) in seconds, per-step times (``_per_step``) in seconds per
    step. Options left None take the ``--quick`` or the full run's defaults.
    """
    out = sys.stdout if out is None else out
    settings = dict(QUICK if quick else FULL)
    settings["steps"] = dict(settings["steps"])
    if stack_n is not None:
        settings["stack_n"] = stack_n
    if sizes is not None:
        settings["sizes"] = tuple(sizes)
        for n in sizes:  # about as many flops as the defaults: steps ~ 1 / N^2, at least 10
            settings["steps"].setdefault(n, max(10, int(400 * (64 / n) ** 2)) if not quick else 30)
    rows = []
    with threadpool_limits(limits=threads):
        print(f"BLAS: {_blas()}; best of {settings['repeats']} (one run when it takes > {LONG_RUN:g} s)",
              file=out)
        rows.append(_stacked(settings, out))
        rows += _cells(settings["sizes"], settings, out)
    stack = rows[0]
    print(f"\nstacked LSTM P={stack['state_size']}: tangent {stack['tangent_over_dense_mm']:.3f}x one dense "
          f"matmul, spectrum {stack['spectrum_over_dense']:.3f}x a dense matmul + dgeqrf per step "
          f"({'cheaper' if stack['spectrum_over_dense'] < 1 else 'NOT cheaper'} than dense)", file=out)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsim.bench.modern",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run of seconds")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--stack-n", type=int, help="N of each stacked LSTM layer (default 128)")
    parser.add_argument("--sizes", type=_sizes, help="N of the cell table (default '64 256')")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    if args.stack_n is not None and args.stack_n < 2:
        parser.error(f"--stack-n must be >= 2; got {args.stack_n}")
    run(quick=args.quick, threads=args.threads, stack_n=args.stack_n, sizes=args.sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
