"""The rate network's RK4 tangent step and full spectrum: ``python -m gradsim.bench.rate``.

Prints, from one run on one BLAS thread count (default 1, pinned by ``threadpoolctl``), every
time the best of 3 wall times (one run when it takes > 2 s):

1. **The RK4 tangent step against its floor.** Random rate networks dx/dt = -x + J tanh(x)
   (``make_cell("rate", N, 0, gain=g, dt=0.1, integrator="rk4", zero_diagonal=True)``, zero
   input, started on the attractor after a burn-in) for N in ``--sizes`` (128, 256, 512):

   * ``tangent``: one step of the state and of the tangent map applied to a full N x N
     orthonormal frame, through the cell's own operator as ``lyapunov_spectrum`` uses it
     (``state, op = cell._jacobian_operator(state, x, "full")``, then ``op @ frame``): four
     products W @ (.) of N x N matrices and the elementwise work of the RK4 stages;
   * ``tan+qr``: the same plus one LAPACK ``dgeqrf`` of the pushed N x N frame, the step of a
     QR-every-step (Benettin) spectrum;
   * ``spectrum``: ``lyapunov_spectrum(cell, T, state)`` per step (all N exponents, its own
     adaptive QR schedule, which may re-orthonormalise less often than every step);
   * ``4 mm``: four N x N @ N x N matmuls, and ``floor``: four matmuls plus one ``dgeqrf`` of an
     N x N matrix (optimal workspace), each timed on its own, the least a QR-every-step RK4
     tangent step could cost.

   The target (the issue's) is ``tan+qr / floor <= 1.5``; ``tangent / 4 mm`` is the operator's
   overhead over its four products alone. The same for an ensemble of B = 8 networks
   (``make_cell(..., ensemble=B)``, one stacked operator, ``--members``, sizes
   ``--ensemble-sizes``, the same as ``--sizes`` by default), per network, against the same
   per-network floor (its ``dgeqrf`` runs once per member).

2. **The full spectrum of one N = 512 network** (``--spectrum-n``; gain g = 3, ``--gain``;
   J_ii = 0; RK4, dt = 0.1; zero input, or with ``--input-std s`` one input channel of white
   noise N(0, s^2) held over each step and input weights N(0, 1)) over ``--time-units`` (1000
   time units = 10 000 steps) after a state burn-in of ``--burn`` time units (300; state only),
   the first tenth of the steps warming the frame up: the wall time, steps per second, the
   effective rate (8 N^3 flops per step, the four products) as a fraction of the matmul's, and
   the spectrum per unit time: the largest exponent / dt, the mean exponent / dt (exactly -1
   for the flow with J_ii = 0, up to RK4's O(dt^4) error), the Kaplan-Yorke dimension / N, the
   entropy rate (sum of positive exponents) / N / dt and the fraction of positive exponents,
   next to D. G. Clark's rnn-lyapunov numbers (N = 4096, RK4 dt = 0.1, t_obs 2000, leading
   1024 exponents, J_ii kept) and the mean-field largest exponent
   (:func:`gradsim.continuous_time_max_exponent_dmft`).

``--quick`` shrinks everything (N = 16, 32; B = 4; a spectrum of N = 32 over 20 time units; one
repeat) into a smoke run of a few seconds; options given explicitly still apply. The targets
printed at the end are the issue's; none is a test.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys

import numpy as np
from scipy.linalg import lapack
from threadpoolctl import threadpool_info, threadpool_limits

import gradsim as gs

from .ensembles import LONG_RUN, _best, _geqrf_lwork, _verdict

TARGET_OVER_FLOOR = 1.5  # (RK4 tangent step + one dgeqrf) / (4 matmuls + one dgeqrf), at most
# |mean exponent per unit time + 1| with J_ii = 0 (RK4's O(dt^4) error: ~1e-6 at dt = 0.1).
TOLERANCE_SUM_RULE = 1e-4

DT = 0.1
# D. G. Clark, rnn-lyapunov (research notes, "Numbers we can try to reproduce", item 4): flow,
# RK4 dt = 0.1, N = 4096, leading k = 1024 exponents, t_obs 2000, QR every 5 steps, seed 0,
# J_ii kept. gain -> (lambda_1 per unit time, positive fraction, h/N per unit time, D_KY/N).
CLARK_FLOW = {
    2.0: (0.10996, 0.017090, 0.00088986, 0.035507),
    3.0: (0.23114, 0.028809, 0.0031354, 0.060940),
    5.0: (0.42765, 0.036865, 0.0071939, 0.080131),
}

FULL = dict(sizes=(128, 256, 512), members=8, ensemble_sizes=None, spectrum_n=512,
            time_units=1000.0, burn=300.0, repeats=3, flops=2e10, max_steps=2000)
QUICK = dict(sizes=(16, 32), members=4, ensemble_sizes=None, spectrum_n=32,
             time_units=20.0, burn=50.0, repeats=1, flops=2e8, max_steps=300)


def _rate_cell(n: int, gain: float, n_input: int = 0, **options):
    return gs.make_cell("rate", n, n_input, init="gaussian", gain=gain, dt=DT, integrator="rk4",
                        zero_diagonal=True, **options)


def _on_attractor(cell, burn_steps: int, seed: int) -> np.ndarray:
    """A state after ``burn_steps`` of zero input from x0 ~ N(0, 1) (x = 0 is a fixed point)."""
    shape = cell.batch_shape + (cell.n_hidden,)
    x0 = np.random.default_rng(seed).standard_normal(shape)
    if burn_steps == 0:
        return x0
    return gs.unroll(cell, burn_steps, x0)[..., -1, :]


def _timed_steps(n: int, members: int, flops: float, max_steps: int) -> int:
    """Steps per timed loop: about ``flops`` of the floor's products (8 N^3 per network), >= 3."""
    return int(min(max_steps, max(3, flops / (8.0 * n**3 * members))))


def _blas() -> str:
    return ", ".join(
        f"{i['internal_api']} {i.get('version', '?')} ({i.get('architecture', '?')}), "
        f"{i['num_threads']} thread(s)"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    )


# -- the floor -------------------------------------------------------------------------------
def _floor_times(n: int, steps: int, repeats: int) -> tuple[float, float]:
    """(time of 4 T N x N matmuls, time of T times 4 matmuls + one dgeqrf), each on its own."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)) / np.sqrt(n)
    q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    buf = np.empty((n, n))
    lwork = _geqrf_lwork(n)

    def products():
        for _ in range(steps):
            for _ in range(4):
                np.matmul(a, q, out=buf)

    def floor():
        for _ in range(steps):
            for _ in range(4):
                np.matmul(a, q, out=buf)
            # buf.T is Fortran-ordered: LAPACK factors it in place, no copy (see ensembles.py).
            lapack.dgeqrf(buf.T, lwork=lwork, overwrite_a=1)

    return _best(products, repeats)[0], _best(floor, repeats)[0]


# -- 1. the tangent step ---------------------------------------------------------------------
def _tangent_times(cell, state, steps: int, repeats: int) -> tuple[float, float]:
    """(time of T tangent steps, time of T tangent steps + one dgeqrf each) of ``cell`` (one
    network or an ensemble), from ``state``, the frame a fixed orthonormal Q (nothing grows)."""
    n = cell.n_hidden
    lead = cell.batch_shape
    q = np.linalg.qr(np.random.default_rng(1).standard_normal((n, n)))[0]
    frame = np.broadcast_to(q, lead + (n, n)).copy()
    x = np.zeros(cell.n_input)
    lwork = _geqrf_lwork(n)
    members = int(np.prod(lead, dtype=int))

    def tangent():
        s = state
        for _ in range(steps):
            s, op = cell._jacobian_operator(s, x, "full")
            op @ frame
        return s

    def tangent_qr():
        s = state
        for _ in range(steps):
            s, op = cell._jacobian_operator(s, x, "full")
            pushed = (op @ frame).reshape(members, n, n)  # a fresh C-ordered array
            for i in range(members):
                lapack.dgeqrf(pushed[i].T, lwork=lwork, overwrite_a=1)
        return s

    return _best(tangent, repeats)[0], _best(tangent_qr, repeats)[0]


def _tangent(sizes, members: int, gain: float, burn_steps: int, settings: dict, out,
             floors: dict) -> list[dict]:
    repeats = settings["repeats"]
    label = "one network" if members == 1 else f"ensemble of B={members} (per network)"
    print(f"\n1{'a' if members == 1 else 'b'}. RK4 tangent step, {label}: g={gain:g}, J_ii = 0, "
          f"dt={DT:g}, zero input; ms per step", file=out)
    print(f"{'N':>4} {'T':>5} {'tangent':>8} {'tan+qr':>8} {'spectrum':>8} {'4 mm':>8} {'floor':>8} "
          f"{'tan/4mm':>7} {'tq/floor':>8} {'spec/fl':>7}", file=out)
    rows = []
    for n in sizes:
        options = {} if members == 1 else dict(ensemble=members)
        cell = _rate_cell(n, gain, rng=1, **options)
        state = _on_attractor(cell, burn_steps, seed=2)
        steps = _timed_steps(n, members, settings["flops"], settings["max_steps"])
        t_tan, t_tq = _tangent_times(cell, state, steps, repeats)
        t_spec, _ = _best(lambda: gs.lyapunov_spectrum(cell, steps, state), repeats)
        # The floor is per network: timed once per N (with the single network's step count).
        floor_steps = _timed_steps(n, 1, settings["flops"], settings["max_steps"])
        if n not in floors:
            floors[n] = tuple(t / floor_steps for t in _floor_times(n, floor_steps, repeats))
        mm, fl = floors[n]
        per = members * steps  # network-steps in one timed loop
        row = dict(
            section="tangent", members=members, n_hidden=n, steps=steps,
            tangent_time=t_tan, tangent_qr_time=t_tq, spectrum_time=t_spec,
            tangent_per_step=t_tan / per, tangent_qr_per_step=t_tq / per,
            spectrum_per_step=t_spec / per, matmuls_per_step=mm, floor_per_step=fl,
            tangent_over_matmuls=t_tan / per / mm, tangent_qr_over_floor=t_tq / per / fl,
            spectrum_over_floor=t_spec / per / fl,
        )
        rows.append(row)
        print(f"{n:4d} {steps:5d} {row['tangent_per_step'] * 1e3:8.3f} {row['tangent_qr_per_step'] * 1e3:8.3f} "
              f"{row['spectrum_per_step'] * 1e3:8.3f} {mm * 1e3:8.3f} {fl * 1e3:8.3f} "
              f"{row['tangent_over_matmuls']:7.2f} {row['tangent_qr_over_floor']:8.2f} "
              f"{row['spectrum_over_floor']:7.2f}", file=out)
    if members == 1:
        print("  tangent: state step + cell._jacobian_operator(...) @ frame (N x N); tan+qr: plus one"
              "\n  dgeqrf of the pushed frame; spectrum: lyapunov_spectrum(cell, T, state), all N"
              "\n  exponents, its own QR schedule; 4 mm: four N x N matmuls; floor: 4 mm + one dgeqrf"
              "\n  of an N x N matrix (optimal lwork), timed on their own.", file=out)
    else:
        print(f"  per network: the ensemble's time / {members}, against one network's floor (the"
              f"\n  ensemble's tan+qr runs one dgeqrf per member).", file=out)
    return rows


# -- 2. the full spectrum --------------------------------------------------------------------
def _matmul_rate(n: int, settings: dict) -> float:
    """GFLOP/s of N x N @ N x N matmuls in a loop (2 N^3 flops each)."""
    count = int(min(4 * settings["max_steps"], max(3, settings["flops"] / (2.0 * n**3))))
    a = np.random.default_rng(0).standard_normal((n, n)) / np.sqrt(n)
    q = np.linalg.qr(np.random.default_rng(1).standard_normal((n, n)))[0]
    buf = np.empty((n, n))

    def run():
        for _ in range(count):
            np.matmul(a, q, out=buf)

    return 2.0 * n**3 * count / _best(run, settings["repeats"])[0] / 1e9


def _spectrum(n: int, gain: float, time_units: float, burn: float, input_std: float,
              settings: dict, out, floors: dict) -> dict:
    steps = max(2, round(time_units / DT))
    warmup = steps // 10
    driven = input_std > 0
    cell = _rate_cell(n, gain, n_input=1 if driven else 0, rng=0)
    state = _on_attractor(cell, round(burn / DT), seed=4)
    if driven:
        inputs = input_std * np.random.default_rng(5).standard_normal((steps, 1))
        drive = f"white-noise input N(0, {input_std:g}^2) held over each step, input weights N(0, 1)"
    else:
        inputs = steps
        drive = "zero input"
    print(f"\n2. Full spectrum: rate network N={n}, g={gain:g}, J_ii = 0 (zero_diagonal=True), RK4 "
          f"dt={DT:g}, {drive};\n   {time_units:g} time units = {steps} steps (the first {warmup} warm "
          f"the frame up) after a {burn:g}-unit state burn-in", file=out)
    elapsed, spectrum = _best(lambda: gs.lyapunov_spectrum(cell, inputs, state, warmup=warmup),
                              settings["repeats"])
    e = spectrum.exponents  # per step, descending
    rate = _matmul_rate(n, settings)
    effective = 8.0 * n**3 * steps / elapsed / 1e9
    if n not in floors:
        floor_steps = _timed_steps(n, 1, settings["flops"], settings["max_steps"])
        floors[n] = tuple(t / floor_steps for t in _floor_times(n, floor_steps, settings["repeats"]))
    floor = floors[n][1]
    row = dict(
        section="spectrum", n_hidden=n, gain=gain, dt=DT, input_std=input_std,
        time_units=steps * DT, steps=steps, warmup=warmup, spectrum_time=elapsed,
        steps_per_second=steps / elapsed, matmul_gflops=rate, spectrum_gflops=effective,
        matmul_fraction=effective / rate, per_step=elapsed / steps, floor_per_step=floor,
        over_floor=elapsed / steps / floor,
        largest=float(e[0] / DT), largest_stderr=float(spectrum.stderr[0] / DT),
        mean=float(np.mean(e) / DT), dimension_per_n=float(gs.kaplan_yorke_dimension(e)) / n,
        entropy_per_n=float(gs.entropy_rate(e)) / n / DT,
        positive_fraction=float(gs.positive_fraction(e)),
    )
    print(f"{'time s':>8} {'steps/s':>8} {'ms/step':>8} {'floor':>8} {'/floor':>6} {'GFLOP/s':>8} "
          f"{'matmul':>7} {'fraction':>8}", file=out)
    print(f"{elapsed:8.2f} {row['steps_per_second']:8.1f} {row['per_step'] * 1e3:8.3f} "
          f"{floor * 1e3:8.3f} {row['over_floor']:6.2f} {effective:8.2f} {rate:7.2f} "
          f"{row['matmul_fraction']:8.2f}", file=out)
    print("  floor: four N x N matmuls + one dgeqrf per step (section 1); GFLOP/s: 8 N^3 flops per"
          "\n  step (the tangent step's four N x N products) over the wall time; matmul: N x N"
          "\n  matmuls in a loop; fraction: the ratio.", file=out)
    print(f"\n  per unit time (tau){'':14} {'this run':>10}", file=out)
    print(f"  {'lambda_1 / dt':32} {row['largest']:10.5f}  (s.e. {row['largest_stderr']:.5f}, blocks)",
          file=out)
    print(f"  {'mean exponent / dt':32} {row['mean']:10.7f}  (exactly -1 for the flow with J_ii = 0; "
          f"deviation {row['mean'] + 1.0:+.1e})", file=out)
    print(f"  {'D_KY / N':32} {row['dimension_per_n']:10.6f}", file=out)
    print(f"  {'h / N / dt (sum of lambda > 0)':32} {row['entropy_per_n']:10.7f}", file=out)
    print(f"  {'fraction of lambda > 0':32} {row['positive_fraction']:10.6f}", file=out)
    if not driven:
        reference = CLARK_FLOW.get(float(gain))
        if reference is None:
            print(f"  Clark's rnn-lyapunov has flow numbers for g in {sorted(CLARK_FLOW)} only.", file=out)
        else:
            lam, frac, h, dky = reference
            print(f"  D. G. Clark's rnn-lyapunov, g={gain:g}: lambda_1 {lam:.5f}, D_KY/N {dky:.6f}, "
                  f"h/N {h:.7f}, fraction > 0 {frac:.6f}"
                  f"\n    (N = 4096, RK4 dt = 0.1, t_obs 2000, leading 1024 of 4096 exponents, seed 0;"
                  f"\n    their J_ii is kept (J_ij ~ N(0, g^2/N) for all i, j), ours is zeroed: the"
                  f"\n    diagonal's entries are O(g / sqrt N), its effect is expected to vanish as N"
                  f"\n    grows (not measured here); the sum rule -1 holds exactly only for ours."
                  f"\n    Finite-N and finite-t noise there ~0.002-0.006 RMS; N here = {n}).", file=out)
    else:
        print("  Clark's numbers are for autonomous networks (no input): not comparable.", file=out)
    try:
        dmft = _dmft(gain)
    except (ArithmeticError, RuntimeError, ValueError) as error:  # keep the timings
        print(f"  mean-field lambda_max: not computed ({type(error).__name__}: {error})", file=out)
        dmft = math.nan
    else:
        print(f"  mean-field (DMFT, N -> inf, autonomous) lambda_max: {dmft:.5f}", file=out)
    row["dmft_largest"] = dmft
    return row


@functools.cache
def _dmft(gain: float) -> float:
    """The mean-field largest exponent of the flow (about a second to solve; kept per gain)."""
    return float(gs.continuous_time_max_exponent_dmft(gain))


def _targets(rows, quick: bool, out):
    note = " (quick run: smaller sizes than the targets', verdicts indicative only)" if quick else ""
    print(f"\ntargets{note}:", file=out)
    for r in (r for r in rows if r["section"] == "tangent"):
        who = "one network" if r["members"] == 1 else f"ensemble B={r['members']}"
        ok = r["tangent_qr_over_floor"] <= TARGET_OVER_FLOOR
        print(f"  RK4 tangent step + QR, {who}, N={r['n_hidden']}: {r['tangent_qr_over_floor']:.2f}x the "
              f"floor (4 matmuls + one dgeqrf; target <= {TARGET_OVER_FLOOR:g}x): {_verdict(ok)}", file=out)
    for r in (r for r in rows if r["section"] == "spectrum"):
        deviation = r["mean"] + 1.0
        ok = abs(deviation) <= TOLERANCE_SUM_RULE
        print(f"  sum rule (J_ii = 0): mean exponent per unit time + 1 = {deviation:+.1e} "
              f"(|.| <= {TOLERANCE_SUM_RULE:g}, RK4's O(dt^4)): {_verdict(ok)}", file=out)
        print(f"  full spectrum N={r['n_hidden']} over {r['time_units']:g} time units: {r['spectrum_time']:.1f} s, "
              f"{r['steps_per_second']:.1f} steps/s, {r['matmul_fraction']:.2f} of the matmul rate "
              "(reported, no target)", file=out)


def run(quick: bool = False, threads: int = 1, out=None, *, sizes=None, members=None,
        ensemble_sizes=None, spectrum_n=None, time_units=None, burn=None, gain: float = 3.0,
        input_std: float = 0.0) -> list[dict]:
    """Run the benchmark, print its tables to ``out`` and return its rows (one dict each).

    Every row has ``section``, "tangent" (one per size, single networks first, then the
    ensemble's) or "spectrum" (one); times (keys ending in ``_time``) are in seconds, per-step
    times (``_per_step``) in seconds per network-step, exponents per unit time. Options left
    None take the ``--quick`` or the full run's defaults; ``out`` is ``sys.stdout`` (the one at
    the call) when None.
    """
    out = sys.stdout if out is None else out
    settings = dict(QUICK if quick else FULL)
    given = dict(sizes=sizes, members=members, ensemble_sizes=ensemble_sizes, spectrum_n=spectrum_n,
                 time_units=time_units, burn=burn)
    settings.update({key: value for key, value in given.items() if value is not None})
    sizes = tuple(settings["sizes"])
    ensemble_sizes = tuple(settings["ensemble_sizes"] or sizes)
    burn_steps = round(settings["burn"] / DT)
    rows, floors = [], {}
    with threadpool_limits(limits=threads):
        print(f"BLAS: {_blas()}; best of {settings['repeats']} (one run when it takes > {LONG_RUN:g} s)",
              file=out)
        rows += _tangent(sizes, 1, gain, burn_steps, settings, out, floors)
        if settings["members"] > 1 and ensemble_sizes:
            rows += _tangent(ensemble_sizes, settings["members"], gain, burn_steps, settings, out, floors)
        rows.append(_spectrum(settings["spectrum_n"], gain, settings["time_units"], settings["burn"],
                              input_std, settings, out, floors))
    _targets(rows, quick, out)
    return rows


def _sizes(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        values = ()
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"must be integers >= 2, e.g. '128 256'; got {text!r}")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsim.bench.rate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run of seconds")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--sizes", type=_sizes, help="N of the tangent-step table (default '128 256 512')")
    parser.add_argument("--members", type=int, help="ensemble size B (default 8; 1 skips the ensemble)")
    parser.add_argument("--ensemble-sizes", type=_sizes, help="N of the ensemble table (default: --sizes)")
    parser.add_argument("--spectrum-n", type=int, help="N of the full spectrum (default 512)")
    parser.add_argument("--time-units", type=float, help="time of the full spectrum (default 1000 = 10 000 steps)")
    parser.add_argument("--burn", type=float, help="state burn-in, time units (default 300)")
    parser.add_argument("--gain", type=float, default=3.0, help="g (default 3)")
    parser.add_argument("--input-std", type=float, default=0.0,
                        help="std of one white-noise input channel (default 0: zero input)")
    args = parser.parse_args(argv)
    checks = (
        (args.threads >= 1, f"--threads must be >= 1; got {args.threads}"),
        (args.members is None or args.members >= 1, f"--members must be >= 1; got {args.members}"),
        (args.spectrum_n is None or args.spectrum_n >= 2, f"--spectrum-n must be >= 2; got {args.spectrum_n}"),
        (args.time_units is None or (math.isfinite(args.time_units) and args.time_units >= 2 * DT),
         f"--time-units must be >= {2 * DT:g} (two steps); got {args.time_units}"),
        (args.burn is None or (math.isfinite(args.burn) and args.burn >= 0), f"--burn must be >= 0; got {args.burn}"),
        (math.isfinite(args.gain) and args.gain > 0, f"--gain must be > 0; got {args.gain}"),
        (math.isfinite(args.input_std) and args.input_std >= 0, f"--input-std must be >= 0; got {args.input_std}"),
    )
    for ok, message in checks:
        if not ok:
            parser.error(message)
    run(quick=args.quick, threads=args.threads, sizes=args.sizes, members=args.members,
        ensemble_sizes=args.ensemble_sizes, spectrum_n=args.spectrum_n, time_units=args.time_units,
        burn=args.burn, gain=args.gain, input_std=args.input_std)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
