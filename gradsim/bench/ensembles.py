"""Ensembles and the full spectrum: ``python -m gradsim.bench.ensembles [--quick] [--threads N]``.

Prints, from one run on one BLAS thread count (default 1, pinned by ``threadpoolctl``, so that
ratios are meaningful on a shared, noisy machine), every time the best of a few wall times:

1. **Ensemble vs single calls.** An ensemble of B = 128 tanh RNNs (N = 32, Gaussian gain 1,
   ``make_cell(..., ensemble=128, rng=0)``) driven by one shared standard-normal input sequence
   (T = 1000, one channel): the time per network of ``lyapunov_spectrum(ens, X, k=4)`` and of
   ``gradient_norms(ens, X)`` against all B single calls on ``ens[i]`` (every member is timed,
   none extrapolated), the ratio single/ensemble, and the largest deviation of the ensemble's
   member results from the single results: for the exponents relative to the member's largest
   |exponent|, for the log gradient norms absolute (nats).

2. **Full spectrum of one network** (tanh RNN, Gaussian gain 1, one standard-normal input
   channel, T = 3000, N = 16, 32, 64): ``lyapunov_spectrum(cell, X)`` against ``lyapynov.LCE``
   on the same map (``DiscreteDS`` with f(h, t) = tanh(W h + U x_t + b) and its Jacobian
   diag(1 - tanh^2) W, the input x_t read at the integer time t; the frame is pushed by the
   Jacobian and re-orthonormalised by ``numpy.linalg.qr`` every step), and against the
   per-step floor: one N x N matmul plus one LAPACK ``dgeqrf`` of an N x N matrix (optimal
   workspace from a query), timed on their own T times, the least any every-step QR method
   could cost. In microseconds per step, with the ratios
   lyapynov/gradsim and gradsim/floor, the largest difference between the two libraries'
   exponents (sorted descending) and the ``spread``: the largest minus the smallest exponent
   per step (nats), which sets how often the frame must be re-orthonormalised (the wider, the
   more often; see ``gradsim.numeric``). lyapynov is optional (``pip install 'gradsim[bench]'``);
   without it its columns are skipped with a note.

3. **Large N** (N = 256, T = 200, the same cell and inputs): ``log_singular_values(cell, X,
   times=[T])`` and ``lyapunov_spectrum(cell, X)`` as a fraction of the matmul rate (T plain
   N x N @ N x N matmuls in a loop). The flop count of a step is the matmul's, 2 N^3, for all
   three, so the spectrum's and the singular values' rates are *effective* rates (same work
   counted, more time taken).

``--quick`` shrinks everything (B = 16, T = 100, N <= 32, large N = 64 with T = 20, one repeat)
into a smoke run of a few seconds. The targets printed at the end are the issue's; none is a test.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.linalg import lapack
from threadpoolctl import threadpool_info, threadpool_limits

import gradsim as gs

TARGET_ENSEMBLE = 10.0  # single calls / ensemble, time per network, at least
TARGET_VS_LYAPYNOV = 5.0  # lyapynov.LCE / gradsim at the largest N (64), at least
TARGET_OVER_FLOOR = 2.0  # gradsim / (matmul + dgeqrf per step), at most
TARGET_SPECTRUM_RATE = 0.35  # spectrum's effective GFLOP/s / matmul's, large N, at least
TARGET_SINGULAR_RATE = 0.3  # log_singular_values' effective GFLOP/s / matmul's, large N, at least

LONG_RUN = 2.0  # seconds: a run this long is not repeated (its noise is already averaged)


def _best(run, repeats: int):
    """(best of ``repeats`` wall times, the last result); a single run when it takes > LONG_RUN."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
        if best > LONG_RUN:
            break
    return best, result


def _inputs(steps: int, seed: int) -> np.ndarray:
    """Standard-normal drive of one input channel, shape (T, 1), from a fixed seed."""
    return np.random.default_rng(seed).standard_normal((steps, 1))


def _cell(n_hidden: int, **options):
    return gs.make_cell("rnn", n_hidden, 1, init="gaussian", gain=1.0, activation="tanh", **options)


def _lyapynov():
    """The lyapynov module, or None when it is not installed (its columns are then skipped)."""
    try:
        import lyapynov
    except ImportError:
        return None
    return lyapynov


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# -- 1. ensemble vs single calls -------------------------------------------------------------
def _ensemble(members: int, n_hidden: int, steps: int, k: int, repeats: int, out) -> list[dict]:
    ens = _cell(n_hidden, ensemble=members, rng=0)
    inputs = _inputs(steps, 0)
    singles = [ens[i] for i in range(members)]  # built before timing: indexing is not the work
    cases = (
        (f"lyapunov_spectrum k={k}", "relative",
         lambda cell: gs.lyapunov_spectrum(cell, inputs, k=k).exponents),
        ("gradient_norms", "absolute", lambda cell: gs.gradient_norms(cell, inputs)),
    )
    print(f"\n1. Ensemble vs single calls: B={members} tanh RNNs (Gaussian gain 1), N={n_hidden}, "
          f"T={steps}, one shared N(0, 1) input channel; ms per network, all {members} single calls "
          f"timed", file=out)
    print(f"{'function':24} {'ensemble':>9} {'single':>9} {'single/ens':>10} {'max deviation':>14}",
          file=out)
    rows = []
    for name, kind, compute in cases:
        t_ens, together = _best(lambda: compute(ens), repeats)
        t_one, apart = _best(lambda: np.stack([compute(c) for c in singles]), repeats)
        if kind == "relative":
            # Exponents: per member, relative to that member's largest |exponent|.
            scale = np.max(np.abs(apart), axis=-1)
            deviation = float(np.max(np.max(np.abs(together - apart), axis=-1) / scale))
        else:
            # Log gradient norms (nats): absolute.
            deviation = float(np.max(np.abs(together - apart)))
        row = dict(
            section="ensemble", function=name, members=members, n_hidden=n_hidden, steps=steps,
            ensemble_time=t_ens, single_time=t_one,
            ensemble_per_network=t_ens / members, single_per_network=t_one / members,
            single_over_ensemble=t_one / t_ens, max_deviation=deviation, deviation_kind=kind,
        )
        rows.append(row)
        print(f"{name:24} {row['ensemble_per_network'] * 1e3:9.3f} {row['single_per_network'] * 1e3:9.3f} "
              f"{row['single_over_ensemble']:10.2f} {deviation:14.1e}", file=out)
    print("  max deviation: of the ensemble's member results from the single calls' (exponents:"
          "\n  relative to the member's largest |exponent|; log gradient norms: absolute, nats).",
          file=out)
    return rows


# -- 2. full spectrum vs lyapynov and the per-step floor -------------------------------------
def _lyapynov_system(lyapynov, cell, inputs):
    """The cell's map as a lyapynov DiscreteDS: its time t starts at 0 and steps by dt = 1."""
    w, u, b = np.asarray(cell.weight_hh), np.asarray(cell.weight_ih), np.asarray(cell.bias)

    def f(h, t):
        return np.tanh(w @ h + u @ inputs[int(t)] + b)

    def jac(h, t):
        y = np.tanh(w @ h + u @ inputs[int(t)] + b)
        return (1.0 - y * y)[:, None] * w

    return lyapynov.DiscreteDS(np.zeros(cell.n_hidden), 0, f, jac)


def _geqrf_lwork(n: int) -> int:
    """dgeqrf's optimal workspace for an n x n matrix, from a workspace query (lwork = -1)."""
    _, _, work, info = lapack.dgeqrf(np.zeros((n, n), order="F"), lwork=-1)
    if info != 0:
        raise RuntimeError(f"dgeqrf workspace query failed (info={info})")
    return max(int(work[0].real), n)


def _floor_time(n: int, steps: int, repeats: int) -> float:
    """T times one N x N matmul plus one dgeqrf of an N x N matrix: an every-step QR's least cost."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)) / np.sqrt(n)
    q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    buf = np.empty((n, n))
    lwork = _geqrf_lwork(n)

    def run():
        for _ in range(steps):
            np.matmul(a, q, out=buf)
            # buf.T is Fortran-ordered, so LAPACK factors it in place with no copy (the QR of
            # (A Q)^T costs what that of A Q does).
            lapack.dgeqrf(buf.T, lwork=lwork, overwrite_a=1)

    return _best(run, repeats)[0]


def _spectrum(sizes, steps: int, repeats: int, lyapynov, out) -> list[dict]:
    inputs = _inputs(steps, 2)
    version = f" (lyapynov {lyapynov.__version__})" if lyapynov is not None else ""
    print(f"\n2. Full spectrum of one tanh RNN (Gaussian gain 1, one N(0, 1) input channel), T={steps}: "
          f"gradsim vs lyapynov.LCE{version} vs the per-step floor; us per step", file=out)
    if lyapynov is None:
        print("  lyapynov is not installed (pip install 'gradsim[bench]'): its columns are skipped.",
              file=out)
    print(f"{'N':>4} {'gradsim':>9} {'lyapynov':>9} {'floor':>8} {'ly/gs':>7} {'gs/floor':>8} "
          f"{'max|ly-gs|':>10} {'spread':>7}", file=out)
    rows = []
    for n in sizes:
        cell = _cell(n, rng=1)
        t_gs, spectrum = _best(lambda: gs.lyapunov_spectrum(cell, inputs), repeats)
        exponents = spectrum.exponents
        t_floor = _floor_time(n, steps, repeats)
        row = dict(
            section="spectrum", n_hidden=n, steps=steps, gradsim_time=t_gs, floor_time=t_floor,
            gradsim_us_per_step=t_gs / steps * 1e6, floor_us_per_step=t_floor / steps * 1e6,
            gradsim_over_floor=t_gs / t_floor, spread=float(exponents[0] - exponents[-1]),
            top_exponent=float(exponents[0]),
            lyapynov_time=None, lyapynov_us_per_step=None, lyapynov_over_gradsim=None,
            lyapynov_diff=None,
        )
        if lyapynov is not None:
            t_ly, reference = _best(
                lambda: lyapynov.LCE(_lyapynov_system(lyapynov, cell, inputs), p=n, n_forward=0,
                                     n_compute=steps, keep=False),
                repeats,
            )
            row.update(
                lyapynov_time=t_ly, lyapynov_us_per_step=t_ly / steps * 1e6,
                lyapynov_over_gradsim=t_ly / t_gs,
                lyapynov_diff=float(np.max(np.abs(np.sort(reference)[::-1] - exponents))),
            )
        rows.append(row)

        def show(key, width, spec):
            return f"{'-':>{width}}" if row[key] is None else f"{row[key]:{width}{spec}}"

        print(f"{n:4d} {row['gradsim_us_per_step']:9.1f} {show('lyapynov_us_per_step', 9, '.1f')} "
              f"{row['floor_us_per_step']:8.1f} {show('lyapynov_over_gradsim', 7, '.2f')} "
              f"{row['gradsim_over_floor']:8.2f} {show('lyapynov_diff', 10, '.1e')} "
              f"{row['spread']:7.2f}", file=out)
    print("  floor: one N x N matmul + one LAPACK dgeqrf of an N x N matrix (optimal lwork) per step;"
          "\n  max|ly-gs|: largest difference of the exponents (nats per step), lyapynov's sorted"
          "\n  descending; spread: largest minus smallest exponent (nats per step).", file=out)
    return rows


# -- 3. large N: rates against the matmul's ------------------------------------------------
def _matmul_time(n: int, steps: int, repeats: int) -> float:
    a = np.random.default_rng(0).standard_normal((n, n)) / np.sqrt(n)

    def run():
        p = np.eye(n)
        for _ in range(steps):
            p = a @ p

    return _best(run, repeats)[0]


def _large(n: int, steps: int, repeats: int, out) -> dict:
    cell = _cell(n, rng=1)
    inputs = _inputs(steps, 2)
    flops = 2.0 * n**3 * steps
    t_mm = _matmul_time(n, steps, repeats)
    t_sv, _ = _best(lambda: gs.log_singular_values(cell, inputs, times=[steps]), repeats)
    t_spec, spectrum = _best(lambda: gs.lyapunov_spectrum(cell, inputs), repeats)
    row = dict(
        section="large", n_hidden=n, steps=steps, matmul_time=t_mm, singular_time=t_sv,
        spectrum_time=t_spec, matmul_gflops=flops / t_mm / 1e9, singular_gflops=flops / t_sv / 1e9,
        spectrum_gflops=flops / t_spec / 1e9, singular_over_matmul=t_mm / t_sv,
        spectrum_over_matmul=t_mm / t_spec,
        spread=float(spectrum.exponents[0] - spectrum.exponents[-1]),
    )
    print(f"\n3. Large N: tanh RNN (Gaussian gain 1), N={n}, T={steps}; GFLOP/s at 2 N^3 flops per step "
          f"for all three", file=out)
    print(f"{'matmul':>8} {'log_sv':>8} {'sv/mm':>6} {'spectrum':>9} {'spec/mm':>7} {'spread':>7}", file=out)
    print(f"{row['matmul_gflops']:8.1f} {row['singular_gflops']:8.1f} {row['singular_over_matmul']:6.2f} "
          f"{row['spectrum_gflops']:9.1f} {row['spectrum_over_matmul']:7.2f} {row['spread']:7.2f}", file=out)
    print("  matmul: T plain N x N @ N x N products in a loop; log_sv: log_singular_values(cell, X,"
          "\n  times=[T]); spectrum: lyapunov_spectrum(cell, X), all N exponents.", file=out)
    return row


def _targets(rows, quick: bool, out):
    note = " (quick run: smaller sizes than the targets', verdicts indicative only)" if quick else ""
    print(f"\ntargets{note}:", file=out)
    for r in (r for r in rows if r["section"] == "ensemble"):
        ok = r["single_over_ensemble"] >= TARGET_ENSEMBLE
        print(f"  ensemble {r['function']}: {r['single_over_ensemble']:.2f}x faster per network than "
              f"single calls (target >= {TARGET_ENSEMBLE:g}x): {_verdict(ok)}", file=out)
    spectra = [r for r in rows if r["section"] == "spectrum"]
    last = spectra[-1]
    if last["lyapynov_over_gradsim"] is None:
        print(f"  spectrum vs lyapynov (target >= {TARGET_VS_LYAPYNOV:g}x at N=64): not measured, "
              "lyapynov is not installed", file=out)
    else:
        ok = last["lyapynov_over_gradsim"] >= TARGET_VS_LYAPYNOV
        print(f"  spectrum N={last['n_hidden']}: {last['lyapynov_over_gradsim']:.2f}x faster than lyapynov "
              f"(target >= {TARGET_VS_LYAPYNOV:g}x at N=64), max diff {last['lyapynov_diff']:.1e}: "
              f"{_verdict(ok)}", file=out)
    for r in spectra:
        ok = r["gradsim_over_floor"] <= TARGET_OVER_FLOOR
        print(f"  spectrum N={r['n_hidden']}: {r['gradsim_over_floor']:.2f}x the per-step floor "
              f"(target <= {TARGET_OVER_FLOOR:g}x): {_verdict(ok)}", file=out)
    large = next(r for r in rows if r["section"] == "large")
    for key, name, target in (("spectrum_over_matmul", "lyapunov_spectrum", TARGET_SPECTRUM_RATE),
                              ("singular_over_matmul", "log_singular_values", TARGET_SINGULAR_RATE)):
        ok = large[key] >= target
        print(f"  {name} N={large['n_hidden']}: {large[key]:.2f} of the matmul rate "
              f"(target >= {target:g}): {_verdict(ok)}", file=out)


def run(quick: bool = False, threads: int = 1, out=sys.stdout) -> list[dict]:
    """Run the benchmark, print its tables to ``out`` and return its rows (one dict each).

    Every row has ``section`` ("ensemble", "spectrum" or "large"); its times (keys ending in
    ``_time``) are in seconds, None for lyapynov's when it is not installed.
    """
    if quick:
        members, ens_steps, sizes, steps, large_n, large_steps, repeats = 16, 100, (16, 32), 100, 64, 20, 1
    else:
        members, ens_steps, sizes, steps, large_n, large_steps, repeats = 128, 1000, (16, 32, 64), 3000, 256, 200, 3
    lyapynov = _lyapynov()
    rows = []
    with threadpool_limits(limits=threads):
        blas = ", ".join(
            f"{i['internal_api']} {i.get('version', '?')} ({i.get('architecture', '?')}), "
            f"{i['num_threads']} thread(s)"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        )
        print(f"BLAS: {blas}; best of {repeats} (one run when it takes > {LONG_RUN:g} s)", file=out)
        rows += _ensemble(members, 32, ens_steps, 4, repeats, out)
        rows += _spectrum(sizes, steps, repeats, lyapynov, out)
        rows.append(_large(large_n, large_steps, repeats, out))
    _targets(rows, quick, out)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsim.bench.ensembles",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    run(quick=args.quick, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
