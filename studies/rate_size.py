"""Is the Lyapunov spectrum of a random rate network size-invariant against i/N, as Engelken, Wolf & Abbott (2023) report?

Networks (Engelken, Wolf & Abbott 2023; Sompolinsky, Crisanti & Sommers 1988): J_ij ~ N(0, g^2/N),
J_ii = 0, g = 3, tanh, no input, in two forms:

* ``flow``: dx/dt = -x + J tanh(x), classical RK4 at dt = 0.1 (``make_cell("rate", N, 0,
  gain=g, dt=0.1, integrator="rk4", zero_diagonal=True)``); exponents per unit time (tau = 1),
  i.e. the per-step exponents of :func:`gradsim.lyapunov_spectrum` divided by dt.
* ``map``: x' = J tanh(x) (Euler at dt = 1, delta = 1); per step = per unit time. J_ii = 0 here
  too, so that the two forms share their networks' law.

For each N in {64, 128, 256, 512} and each seed (more seeds at small N, where one network's
spectrum fluctuates more and costs less) one network is drawn, its state is run from
x_0 ~ N(0, I) through a burn-in (no tangent dynamics, cheap), then the FULL spectrum is measured
by the QR method from the identity frame, after a frame warm-up, averaged over the stated time
with 20 blocks (block standard errors).

Records (tidy): one row per (form, N, seed, exponent index i = 1..N) with ``i_over_n`` = i/N,
``rank_fraction`` = (i - 1/2)/N, ``exponent_per_unit_time`` and its block standard error
``exponent_stderr``. The per-network observables are repeated on each of its rows (columns
``dky_over_n``, ``entropy_over_n`` (h/N, nats per unit time per unit), ``positive_fraction``,
each with ``*_stderr`` from a block bootstrap (gs.spectrum_observables), and
``mean_exponent_per_unit_time``, the spectrum's mean). ``theory_mean_exponent`` is the sum rule
-1 per unit time for the flow (gs.continuous_time_exponent_sum(N) / N: Liouville's formula with
J_ii = 0) and the mean-field mean exponent of the map (gs.map_mean_exponent(g)) for the map.
``coupling_norm`` is the spectral norm of J (it bounds RK4's error on the sum rule, below).

Size invariance: the spectrum is treated as a quantile function lambda(x), the i-th exponent
sitting at x = (i - 1/2)/N (the midpoint of its 1/N share; plotting against i/N instead shifts
every curve by half a step, an O(1/N) artefact that would look like a size effect). At each N
the spectra are averaged over seeds; their standard error at each i is the spread over seeds
(s / sqrt(S)) with 3 or more seeds, else the block standard errors combined
(sqrt(sum s.e.^2) / S: the time-averaging noise only, network-to-network spread not included).
Both are linearly interpolated onto x = 0.05, 0.10, ..., 0.95, and the deviation from the largest
N is max_x |lambda(x; N) - lambda(x; N_max)|, with the standard error of the grid point(s) that
could be the max (gradsim.workflow.findings.extreme_estimate over the grid); the same over
the upper half x <= 0.5 (the exponents that set D_KY and h). D_KY/N and h/N per N
are means over seeds with the same standard-error rule (the bootstrap s.e. for fewer than 3
seeds); their trend in 1/N is the weighted least-squares slope (weights 1/s.e.^2) with its
standard error. The flow's D_KY/N and h/N at the largest N are set beside D. G. Clark's
rnn-lyapunov run at N = 4096 (gradsim.bench.rate.CLARK_FLOW: RK4 dt = 0.1, J_ii kept, which
moves the mean exponent by O(1/N)), with this study's standard error only.

The sum rule: for the flow with J_ii = 0, the exponents sum to exactly -N per unit time along any
trajectory. RK4's tangent map is T_4(dt A) = exp(dt A) + O(dt^5), so the measured mean is
-1 + O(dt^4): for a frozen A with eigenvalues z_i, (1/dt) log|T_4(dt z)| - z = -dt^4 z^5 / 120 +
..., whose average over the circular-law disc centred at -1 is dt^4 / 120 ~ 8e-7 (harmonic
mean value), bounded by dt^4 (1 + ||J||)^5 / 120 per exponent; the QR reads add <= 3e-8 per
block. It is deterministic given the trajectory (a Exact-like check, reported as a plain max).

What the key numbers can be trusted to: exponents, D_KY/N and h/N are estimates from finite runs
(a chaotic trajectory decorrelates from rounding alone on another machine) with the standard
errors above; the deviations are maxima over a grid of correlated points, so their s.e. is the
s.e. at the maximising point(s), not a simultaneous band.
"""

import numpy as np

from gradsim import (Estimate, Exact, continuous_time_exponent_sum, lyapunov_spectrum, make_cell,
                     map_mean_exponent, spectrum_observables, unroll)
from gradsim.bench.rate import CLARK_FLOW
from gradsim.workflow.findings import extreme_estimate
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study

GAIN = 3.0
# Seeds per N: more at small N (cheap, and one network's spectrum is noisier).
SEEDS = {64: 8, 128: 4, 256: 3, 512: 2}
# Averaging time (time units; steps = time / dt) per N, chosen to fit the CPU budget: the full
# spectrum costs O(N^3) per step (~24 ms per RK4 step at N = 512 on one core).
TIME_UNITS = {"flow": {64: 300, 128: 300, 256: 300, 512: 150},
              "map": {64: 3000, 128: 3000, 256: 3000, 512: 1500}}
FORMS = {"flow": {"dt": 0.1, "integrator": "rk4"}, "map": {"dt": 1.0, "integrator": "euler"}}
BURN_IN = {"flow": 200.0, "map": 500.0}  # time units of state-only burn-in
WARMUP = {"flow": 20.0, "map": 200.0}  # time units of frame warm-up before averaging
N_BLOCKS = 20
# i/N grid on which the spectra of different N are compared.
X_GRID = np.round(np.arange(0.05, 0.951, 0.05), 10)
# Its upper half: the least negative exponents, which set D_KY and h (the bottom of the
# spectrum spreads most between networks and dominates the full grid's standard error).
X_UPPER = X_GRID[X_GRID <= 0.5]
# Standard errors from the spread over seeds need at least this many seeds.
MIN_SEEDS_FOR_SPREAD = 3
# The sum rule's deviation is RK4's O(dt^4) error along each (chaotic) trajectory: a number
# between 0 and about 1e-5 per unit time at dt = 0.1 (observed ~1.5e-6), which another machine's
# trajectory changes at that scale; it is exact to that absolute tolerance.
SUM_RULE_ATOL = 1e-5


def _grid(seeds, times, forms=("flow", "map")):
    return [{"form": [form], "n_units": [n], "gain": [GAIN], "time_units": [times[form][n]],
             "seed": list(range(s))} for form in forms for n, s in seeds.items()]


GRID = _grid(SEEDS, TIME_UNITS)
QUICK_GRID = _grid({16: 3, 32: 2}, {"flow": {16: 100, 32: 100}, "map": {16: 600, 32: 600}})


def simulate(config, rng):
    """One network: its full spectrum (one row per exponent) and observables."""
    form, n, gain = config["form"], int(config["n_units"]), float(config["gain"])
    if form not in FORMS:
        raise ValueError(f"`form` must be one of {sorted(FORMS)}; got {form!r}.")
    dt, integrator = FORMS[form]["dt"], FORMS[form]["integrator"]
    cell = make_cell("rate", n, 0, init="gaussian", gain=gain, dt=dt, integrator=integrator,
                     zero_diagonal=True, rng=rng)
    burn = int(round(BURN_IN[form] / dt))
    state = unroll(cell, burn, rng.standard_normal(n))[-1]
    warmup = int(round(WARMUP[form] / dt))
    steps = int(round(config["time_units"] / dt))
    spectrum = lyapunov_spectrum(cell, warmup + steps, state0=state, warmup=warmup,
                                 n_blocks=N_BLOCKS)
    rates = spectrum.exponents / dt  # per unit time
    stderr = spectrum.stderr / dt
    obs = spectrum_observables(spectrum, over="blocks")
    theory_mean = (continuous_time_exponent_sum(n) / n if form == "flow"
                   else map_mean_exponent(gain))
    common = {
        "dt": dt, "integrator": integrator,
        "dky_over_n": float(obs.kaplan_yorke_dimension) / n,
        "dky_over_n_stderr": float(obs.kaplan_yorke_dimension_stderr) / n,
        "entropy_over_n": float(obs.entropy_rate) / dt / n,
        "entropy_over_n_stderr": float(obs.entropy_rate_stderr) / dt / n,
        "positive_fraction": float(obs.positive_fraction),
        "positive_fraction_stderr": float(obs.positive_fraction_stderr),
        "mean_exponent_per_unit_time": float(np.mean(rates)),
        "theory_mean_exponent": float(theory_mean),
        "coupling_norm": float(np.linalg.norm(cell.weight_hh, 2)),
        "n_steps": int(spectrum.n_steps),
    }
    return [{"i": i + 1, "i_over_n": (i + 1) / n, "rank_fraction": (i + 0.5) / n,
             "exponent_per_unit_time": float(rates[i]), "exponent_stderr": float(stderr[i]),
             **common} for i in range(n)]


# ------------------------------------------------------------------------------------------
# summary helpers (all from the CSV's columns)
def _networks(part):
    """One row per network (the per-network observables)."""
    return part.drop_duplicates(["form", "n_units", "seed"])


def _mean_with_stderr(values, stderrs):
    """Mean over seeds; s.e. from their spread with >= MIN_SEEDS_FOR_SPREAD seeds, else the
    seeds' own standard errors combined (time-averaging noise only)."""
    values, stderrs = np.asarray(values, float), np.asarray(stderrs, float)
    s = len(values)
    if s >= MIN_SEEDS_FOR_SPREAD:
        return Estimate(float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(s)), s)
    return Estimate(float(np.mean(values)), float(np.sqrt(np.sum(stderrs ** 2)) / s), s)


def mean_spectrum(part):
    """(rank_fraction, mean exponent, s.e.) of the networks of one (form, N)."""
    table = part.pivot(index="i", columns="seed", values="exponent_per_unit_time")
    errs = part.pivot(index="i", columns="seed", values="exponent_stderr")
    x = part.drop_duplicates("i").set_index("i").loc[table.index, "rank_fraction"].to_numpy()
    s = table.shape[1]
    mean = table.mean(axis=1).to_numpy()
    if s >= MIN_SEEDS_FOR_SPREAD:
        se = table.std(axis=1, ddof=1).to_numpy() / np.sqrt(s)
    else:
        se = np.sqrt((errs ** 2).sum(axis=1)).to_numpy() / s
    return x, mean, se


def size_deviation(part_n, part_max, grid=X_GRID):
    """max over ``grid`` of |lambda(x; N) - lambda(x; N_max)| as an Estimate."""
    x1, m1, s1 = mean_spectrum(part_n)
    x2, m2, s2 = mean_spectrum(part_max)
    d = np.abs(np.interp(grid, x1, m1) - np.interp(grid, x2, m2))
    se = np.hypot(np.interp(grid, x1, s1), np.interp(grid, x2, s2))
    return extreme_estimate(d, se)


def slope_in_inverse_n(ns, estimates):
    """Weighted least-squares slope of the estimates against 1/N: (slope, s.e.)."""
    x = 1.0 / np.asarray(ns, float)
    y = np.array([float(e) for e in estimates])
    w = 1.0 / np.array([e.stderr for e in estimates]) ** 2
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    coef = cov @ design.T @ (w * y)
    return Estimate(float(coef[1]), float(np.sqrt(cov[1, 1])), len(x))


def _intensive(ns, estimates, slope, label):
    """Text: agreement with the largest N within 2 s.e., and the 1/N trend."""
    top = estimates[-1]
    off = [n for n, e in zip(ns[:-1], estimates[:-1])
           if abs(float(e) - float(top)) > 2 * np.hypot(e.stderr, top.stderr)]
    agree = ("agrees with N = {} within 2 s.e. at every N".format(ns[-1]) if not off else
             "differs from N = {} by more than 2 s.e. at N = {}".format(
                 ns[-1], ", ".join(str(n) for n in off)))
    trend = (f"a trend in 1/N (slope {float(slope):+.3f} ± {slope.stderr:.2g}, more than 2 s.e. "
             "from 0)" if abs(float(slope)) > 2 * slope.stderr else
             f"no trend in 1/N beyond 2 s.e. (slope {float(slope):+.3f} ± {slope.stderr:.2g})")
    return f"{label} {agree}, and shows {trend}"


def summarize(frame):
    out = {}
    notes = []
    for form, part in frame.groupby("form", sort=True):
        nets = _networks(part)
        ns = sorted(int(n) for n in part.n_units.unique())
        n_max = ns[-1]
        top = part[part.n_units == n_max]
        devs, upper = {}, {}
        for n in ns[:-1]:
            devs[n] = size_deviation(part[part.n_units == n], top)
            out[f"{form}: max_x |lambda(x; {n}) - lambda(x; {n_max})| (x = (i-1/2)/N in "
                f"0.05..0.95, per unit time)"] = devs[n]
            upper[n] = size_deviation(part[part.n_units == n], top, X_UPPER)
            out[f"{form}: max_x |lambda(x; {n}) - lambda(x; {n_max})|, x in 0.05..0.5"] = upper[n]
        dky, ent = [], []
        for n in ns:
            net = nets[nets.n_units == n]
            dky.append(_mean_with_stderr(net.dky_over_n, net.dky_over_n_stderr))
            ent.append(_mean_with_stderr(net.entropy_over_n, net.entropy_over_n_stderr))
            out[f"{form}: D_KY/N, N = {n}"] = dky[-1]
            out[f"{form}: h/N per unit time, N = {n}"] = ent[-1]
            lam1 = part[(part.n_units == n) & (part.i == 1)]
            out[f"{form}: lambda_1 per unit time, N = {n}"] = _mean_with_stderr(
                lam1.exponent_per_unit_time, lam1.exponent_stderr)
        slope_d = slope_in_inverse_n(ns, dky)
        slope_h = slope_in_inverse_n(ns, ent)
        out[f"{form}: slope of D_KY/N in 1/N"] = slope_d
        out[f"{form}: slope of h/N in 1/N"] = slope_h
        mean_gap = nets.mean_exponent_per_unit_time - nets.theory_mean_exponent
        if form == "flow":
            out["flow: max |mean exponent + 1| per unit time (sum rule, RK4 dt^4 error)"] = Exact(
                float(np.max(np.abs(mean_gap))), rtol=0.0, atol=SUM_RULE_ATOL)
        else:
            out["map: mean (mean exponent - mean field) over networks"] = _mean_with_stderr(
                mean_gap, np.zeros(len(mean_gap)))

        # shrinking: consecutive N's deviations, each against N_max
        pairs = [(a, b) for a, b in zip(ns[:-1], ns[1:-1])]
        shrink = [(a, b) for a, b in pairs
                  if float(devs[a]) - float(devs[b]) > 2 * np.hypot(devs[a].stderr, devs[b].stderr)]
        dev_text = "; ".join(f"N = {n}: {float(d):.3f} ± {d.stderr:.2g}" for n, d in devs.items())
        if pairs:
            shrink_text = (f"it shrinks by more than 2 s.e. from N = {pairs[0][0]} to "
                           f"{pairs[-1][1]} at {len(shrink)} of {len(pairs)} doublings")
        else:
            shrink_text = "only one N below N_max, so no shrinking can be judged"
        within = [n for n, d in devs.items() if float(d) <= 2 * d.stderr]
        within_text = (f"; at N = {', '.join(map(str, within))} the deviation is within 2 s.e. "
                       "of 0 (no size effect resolved)" if within else
                       "; at every N < N_max it exceeds 2 s.e.")
        upper_text = "; ".join(f"N = {n}: {float(d):.3f} ± {d.stderr:.2g}"
                               + (" (> 2 s.e.)" if float(d) > 2 * d.stderr else "")
                               for n, d in upper.items())
        text = (f"{form} (g = {GAIN:g}, N = {', '.join(map(str, ns))}): the seed-averaged "
                f"spectrum against (i-1/2)/N deviates from N = {n_max} by at most {dev_text} "
                f"(per unit time); {shrink_text}{within_text}. Over the upper half "
                f"(x <= 0.5) the deviation is {upper_text}. "
                + _intensive(ns, dky, slope_d, "D_KY/N") + "; "
                + _intensive(ns, ent, slope_h, "h/N") + ". ")
        if form == "flow" and GAIN in CLARK_FLOW and n_max >= 256:
            # Clark's rnn-lyapunov at N = 4096 (J_ii kept: an O(1/N) difference in the mean).
            _, _, clark_h, clark_d = CLARK_FLOW[GAIN]
            d_gap = Estimate(float(dky[-1]) - clark_d, dky[-1].stderr)
            h_gap = Estimate(float(ent[-1]) - clark_h, ent[-1].stderr)
            out[f"flow: D_KY/N at N = {n_max} minus Clark's N = 4096"] = d_gap
            out[f"flow: h/N at N = {n_max} minus Clark's N = 4096"] = h_gap
            text += (f"At N = {n_max}, D_KY/N = {float(dky[-1]):.4f} ± {dky[-1].stderr:.2g} and "
                     f"h/N = {float(ent[-1]):.5f} ± {ent[-1].stderr:.2g} against Clark's "
                     f"N = 4096 values {clark_d:.4f} and {clark_h:.5f}: "
                     + ("both within 2 s.e. " if abs(float(d_gap)) <= 2 * d_gap.stderr and
                        abs(float(h_gap)) <= 2 * h_gap.stderr else
                        "not both within 2 s.e. ")
                     + "(our s.e. only; Clark's single run has its own). ")
        if form == "flow":
            worst = out["flow: max |mean exponent + 1| per unit time (sum rule, RK4 dt^4 error)"]
            text += (f"The mean exponent is -1 per unit time to {worst:.1e} at every network "
                     "(Liouville with J_ii = 0; RK4's O(dt^4) ~ dt^4/120 = 8e-7 at dt = 0.1). ")
        else:
            gap = out["map: mean (mean exponent - mean field) over networks"]
            text += (f"The map's mean exponent differs from the mean-field "
                     f"{float(nets.theory_mean_exponent.iloc[0]):.4f} by {float(gap):+.4f} ± "
                     f"{gap.stderr:.2g} on average over networks"
                     + (" (more than 2 s.e.: finite N and J_ii = 0). " if abs(float(gap)) >
                        2 * gap.stderr else " (within 2 s.e.). "))
        notes.append(text)
    out["notes"] = " ".join(notes)
    return out


def plot(frame):
    forms = sorted(frame.form.unique())
    fig, axes = new_figure(ncols=2, nrows=len(forms), width=4.4, height=3.4)
    axes = np.atleast_2d(axes)
    for row, form in enumerate(forms):
        part = frame[frame.form == form]
        ns = sorted(int(n) for n in part.n_units.unique())
        ax = axes[row, 0]
        for k, n in enumerate(ns):
            x, m, se = mean_spectrum(part[part.n_units == n])
            seeds = part[part.n_units == n].seed.nunique()
            ax.plot(x, m, color=PALETTE[k % len(PALETTE)], lw=1.0,
                    label=f"N = {n} ({seeds} network{'s' if seeds > 1 else ''})")
            ax.fill_between(x, m - 2 * se, m + 2 * se, color=PALETTE[k % len(PALETTE)],
                            alpha=0.25, lw=0)
        ax.axhline(0.0, color="0.5", lw=0.8)
        unit = "per unit time" if form == "flow" else "per step"
        ax.set_xlabel("exponent rank (i - 1/2)/N")
        ax.set_ylabel(rf"$\lambda_i$ ({unit})")
        title = ("flow dx/dt = -x + J tanh x, RK4 dt = 0.1" if form == "flow"
                 else "map x' = J tanh x")
        ax.set_title(f"{title}, g = {GAIN:g}, J_ii = 0 (band: ±2 s.e.)", fontsize=8)
        ax.legend(fontsize=6)
        ax = axes[row, 1]
        twin = ax.twinx()  # h/N is ~10-20x smaller than D_KY/N: its own axis
        nets = _networks(part)
        for j, (axis, col, label) in enumerate([(ax, "dky_over_n", "$D_{KY}/N$"),
                                                (twin, "entropy_over_n", f"h/N ({unit})")]):
            ests = [_mean_with_stderr(nets[nets.n_units == n][col],
                                      nets[nets.n_units == n][col + "_stderr"]) for n in ns]
            axis.errorbar(1.0 / np.array(ns), [float(e) for e in ests],
                          yerr=[2 * e.stderr for e in ests], marker="os"[j], ms=4, capsize=2,
                          color=PALETTE[j], label=label + " (±2 s.e.)")
            axis.set_ylabel(label, color=PALETTE[j])
        ax.set_xlabel("1/N")
        ax.set_xlim(0, None)
        ax.set_title("intensive observables against 1/N", fontsize=8)
        handles = [h for a in (ax, twin) for h in a.get_legend_handles_labels()[0]]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=6)
    return fig


STUDY = Study(
    name="rate_size",
    question=__doc__.splitlines()[0],
    grid=GRID,
    quick_grid=QUICK_GRID,
    simulate=simulate,
    plot=plot,
    summarize=summarize,
)


def main(quick=False):
    from gradsim.workflow.report import produce

    return produce(__file__, quick=quick)


if __name__ == "__main__":
    main()
