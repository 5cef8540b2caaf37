"""Gradients of the exponents against the exponents: ``python -m gradsim.bench.lyapunov_grad``.

Prints, from one run on one BLAS thread count (default 1, pinned by ``threadpoolctl``), the best
of 3 wall times of, for the same cell, inputs, k and T:

* ``spectrum``: :func:`gradsim.lyapunov_spectrum` (k exponents; its adaptive QR schedule);
* ``vjp``: :func:`gradsim.lyapunov_vjp` (the same k exponents, a QR every step, and the
  gradient of ``c . lambda`` in every parameter by the adjoint of the QR method; no input
  gradient, as flossing uses it);
* ``vjp+x``: the same with the input gradient too;

and the ratios vjp / spectrum (the issue's figure of merit; target at most 4) and vjp+x /
spectrum, for the cells ``rnn`` (tanh, gain 2: the fused backward step of the RNN family),
``lstm``, ``gru`` and ``rate-rk4`` (the generic backward step: complex-step second-order
terms from the cell's own VJPs) at N in ``--sizes`` (64, 128) with k = N / 4, T = 200.
``--quick`` shrinks everything (N = 8, 16; T = 10; one repeat) into a smoke run; the target
printed is the issue's and is not a test.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from threadpoolctl import threadpool_limits

import gradsim as gs

from .ensembles import _best
from .rate import _blas
from .sensitivity import _sizes

TARGET = 4.0  # lyapunov_vjp / lyapunov_spectrum for the same k, at most (the issue's)
CELLS = {
    "rnn": dict(kind="rnn", activation="tanh", gain=2.0),
    "lstm": dict(kind="lstm"),
    "gru": dict(kind="gru", variant="torch"),
    "rate-rk4": dict(kind="rate", integrator="rk4", dt=0.1, gain=2.0),
}
FULL = dict(sizes=(64, 128), steps=200, repeats=3)
QUICK = dict(sizes=(8, 16), steps=10, repeats=1)


def _case(name: str, n: int, steps: int, seed: int = 0):
    options = dict(CELLS[name])
    kind = options.pop("kind")
    rng = np.random.default_rng(seed)
    cell = gs.make_cell(kind, n, 1, bias_std=0.1, rng=rng, **options)
    inputs = rng.standard_normal((steps, 1))
    return cell, inputs


def run(quick: bool = False, threads: int = 1, sizes=None, steps=None, repeats=None, out=None) -> list[dict]:
    """Time every (cell, N) pair; print one table (to ``out``, default the current sys.stdout)
    and return its rows."""
    out = sys.stdout if out is None else out
    settings = dict(QUICK if quick else FULL)
    sizes = tuple(sizes or settings["sizes"])
    steps = steps or settings["steps"]
    repeats = repeats or settings["repeats"]
    rows = []
    with threadpool_limits(limits=threads):
        blas = _blas()
        print(f"lyapunov_vjp against lyapunov_spectrum (same k = N/4); BLAS: {blas}; T = {steps}, "
              f"best of {repeats}", file=out)
        print(f"{'cell':<10} {'N':>5} {'k':>4} {'spectrum s':>11} {'vjp s':>9} {'vjp+x s':>9} "
              f"{'vjp/spec':>9} {'vjp+x/spec':>11}  target <= {TARGET:g}", file=out)
        for name in CELLS:
            for n in sizes:
                cell, inputs = _case(name, n, steps)
                k = max(1, n // 4)
                c = np.ones(k)
                spectrum, spec = _best(lambda: gs.lyapunov_spectrum(cell, inputs, k=k), repeats)
                vjp, grad = _best(lambda: gs.lyapunov_vjp(cell, inputs, k, c, input_gradient=False), repeats)
                vjp_x, _ = _best(lambda: gs.lyapunov_vjp(cell, inputs, k, c), repeats)
                agree = float(np.max(np.abs(grad.exponents - spec.exponents)))
                row = dict(cell=name, n_hidden=n, k=k, steps=steps, spectrum_time=spectrum, vjp_time=vjp,
                           vjp_inputs_time=vjp_x, ratio=vjp / spectrum, ratio_inputs=vjp_x / spectrum,
                           exponent_difference=agree)
                rows.append(row)
                verdict = "ok" if row["ratio"] <= TARGET else "over"
                print(f"{name:<10} {n:>5} {k:>4} {spectrum:>11.4f} {vjp:>9.4f} {vjp_x:>9.4f} "
                      f"{row['ratio']:>9.2f} {row['ratio_inputs']:>11.2f}  {verdict}", file=out)
    met = all(r["ratio"] <= TARGET for r in rows)
    print(f"target vjp/spectrum <= {TARGET:g}: {'met' if met else 'NOT met'} "
          f"(best {min(r['ratio'] for r in rows):.2f}, worst {max(r['ratio'] for r in rows):.2f}); "
          f"largest exponent difference {max(r['exponent_difference'] for r in rows):.1e}", file=out)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsim.bench.lyapunov_grad",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--sizes", type=_sizes, help="N (default '64 128')")
    parser.add_argument("--steps", type=int, help="T per timing (default 200)")
    args = parser.parse_args(argv)
    for ok, message in (
        (args.threads >= 1, f"--threads must be >= 1; got {args.threads}"),
        (args.steps is None or args.steps >= 1, f"--steps must be >= 1; got {args.steps}"),
    ):
        if not ok:
            parser.error(message)
    run(quick=args.quick, threads=args.threads, sizes=args.sizes, steps=args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
