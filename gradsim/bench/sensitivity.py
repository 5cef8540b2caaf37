"""Forward-mode parameter sensitivity against one reverse step: ``python -m gradsim.bench.sensitivity``.

Prints, from one run on one BLAS thread count (default 1, pinned by ``threadpoolctl``), the best
of 3 wall times of:

* ``jvp``: :func:`gradsim.numeric.parameter_jvp` over T steps of one sequence (a random tangent
  on every parameter, standard-normal input of ``--inputs`` channels, a random start), divided
  by T. Each step is one parameter JVP (``cell._param_jvp``) and the cell's Jacobian operator
  (``cell._jacobian_operator``, which also gives the next state) applied to the tangent vector:
  the forward pass, the tangent and the output write, everything the function does.
* ``vjp``: one reverse step of back-propagation through time, ``cell._vjp(s, x, v)`` plus
  ``cell._param_vjp(s, x, v)``, the two calls BPTT makes per step, looped over the same T
  stored states (unroll'd beforehand, not timed) with a fixed cotangent, divided by T. Both
  sides use the unchecked methods, so argument validation is in neither.

for the cells ``rnn`` (tanh), ``lstm``, ``gru`` (PyTorch variant) and ``rate`` (RK4, dt = 0.1)
at N in ``--sizes`` (64, 256). The ratio jvp / vjp is the issue's figure of merit: its target is
at most 2. ``--quick`` shrinks everything (N = 8, 16; T = 10; one repeat) into a smoke run of
about a second; the target printed is the issue's and is not a test.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import gradsim as gs
from gradsim.numeric import parameter_jvp

from .ensembles import _best

TARGET = 2.0  # parameter_jvp per step / (vjp + param_vjp) per step, at most (the issue's)
CELLS = {
    "rnn": dict(kind="rnn", activation="tanh"),
    "lstm": dict(kind="lstm"),
    "gru": dict(kind="gru", variant="torch"),
    "rate-rk4": dict(kind="rate", integrator="rk4", dt=0.1, gain=2.0),
}
FULL = dict(sizes=(64, 256), steps=400, repeats=3)
QUICK = dict(sizes=(8, 16), steps=10, repeats=1)


def _case(name: str, n: int, n_input: int, steps: int, seed: int = 0):
    options = dict(CELLS[name])
    kind = options.pop("kind")
    rng = np.random.default_rng(seed)
    cell = gs.make_cell(kind, n, n_input, bias_std=0.1, rng=rng, **options)
    inputs = rng.standard_normal((steps, n_input))
    state0 = 0.5 * rng.standard_normal(cell.state_size)
    tangent = {k: rng.standard_normal(v.shape) for k, v in cell.parameters().items()}
    cotangent = rng.standard_normal(cell.state_size)
    return cell, inputs, state0, tangent, cotangent


def _reverse(cell, states, inputs, cotangent):
    """One BPTT reverse step per stored state: vjp + param_vjp (the state gradient is kept
    fixed, so that the work per step does not depend on its size)."""
    out = None
    for t in range(inputs.shape[0]):
        s, x = states[t], inputs[t]
        cell._vjp(s, x, cotangent, "full")
        out = cell._param_vjp(s, x, cotangent)
    return out


def run(quick: bool = False, threads: int = 1, sizes=None, steps=None, repeats=None, n_input: int = 2,
        out=None) -> list[dict]:
    """Time every (cell, N) pair; print one table (to ``out``, default the current sys.stdout)
    and return its rows."""
    out = sys.stdout if out is None else out
    settings = dict(QUICK if quick else FULL)
    sizes = tuple(sizes or settings["sizes"])
    steps = steps or settings["steps"]
    repeats = repeats or settings["repeats"]
    rows = []
    with threadpool_limits(limits=threads):
        blas = ", ".join(sorted({f"{i['internal_api']} {i.get('num_threads')}" for i in threadpool_info()}))
        print(f"parameter_jvp per step against one reverse step (vjp + param_vjp); BLAS: {blas}; "
              f"T = {steps}, I = {n_input}, best of {repeats}", file=out)
        print(f"{'cell':<10} {'N':>5} {'jvp us/step':>12} {'vjp us/step':>12} {'jvp/vjp':>8}  target <= {TARGET:g}",
              file=out)
        for name in CELLS:
            for n in sizes:
                cell, inputs, state0, tangent, cotangent = _case(name, n, n_input, steps)
                states = gs.unroll(cell, inputs, state0)
                forward, sens = _best(lambda: parameter_jvp(cell, inputs, tangent, state0), repeats)
                reverse, _ = _best(lambda: _reverse(cell, states, inputs, cotangent), repeats)
                if not np.all(np.isfinite(sens)):
                    raise FloatingPointError(f"parameter_jvp gave non-finite values for {name}, N = {n}")
                row = dict(cell=name, n_hidden=n, steps=steps, jvp_per_step=forward / steps,
                           vjp_per_step=reverse / steps, ratio=forward / reverse)
                rows.append(row)
                verdict = "ok" if row["ratio"] <= TARGET else "over"
                print(f"{name:<10} {n:>5} {1e6 * row['jvp_per_step']:>12.1f} {1e6 * row['vjp_per_step']:>12.1f} "
                      f"{row['ratio']:>8.2f}  {verdict}", file=out)
    met = all(r["ratio"] <= TARGET for r in rows)
    print(f"target jvp/vjp <= {TARGET:g}: {'met' if met else 'NOT met'} "
          f"(worst {max(r['ratio'] for r in rows):.2f})", file=out)
    return rows


def _sizes(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be integers; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers; got {text!r}")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsim.bench.sensitivity",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run of about a second")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--sizes", type=_sizes, help="N (default '64 256')")
    parser.add_argument("--steps", type=int, help="T per timing (default 400)")
    parser.add_argument("--inputs", type=int, default=2, help="input channels I (default 2)")
    args = parser.parse_args(argv)
    for ok, message in (
        (args.threads >= 1, f"--threads must be >= 1; got {args.threads}"),
        (args.steps is None or args.steps >= 1, f"--steps must be >= 1; got {args.steps}"),
        (args.inputs >= 0, f"--inputs must be >= 0; got {args.inputs}"),
    ):
        if not ok:
            parser.error(message)
    run(quick=args.quick, threads=args.threads, sizes=args.sizes, steps=args.steps, n_input=args.inputs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
