"""How do the largest exponent, the Kaplan-Yorke dimension D_KY/N and the entropy rate h/N of a random rate network grow with the gain, for the map and for continuous time, and how does input change them?

Networks: J_ij ~ N(0, g^2/N), J_ii = 0, tanh, N = 128, in two forms (gradsim.RateRNN):

* ``map``: x' = J tanh(x) + u (Euler at dt = 1, delta = 1); exponents per step (= per unit time).
* ``flow``: dx/dt = -x + J tanh(x) + u(t), classical RK4 at dt = 0.1; exponents per unit time
  (the per-step exponents divided by dt).

Input: u is white noise, one independent draw per unit per step, held constant over the step
(weight_ih = scale * I, n_input = N). What "sigma" means per unit time: a held draw of variance
v over a step dt contributes dt * u to the integrated input, variance v dt^2 per step, so v dt per
unit time. Held noise of fixed variance (v = sigma^2) would therefore have a low-frequency power
sigma^2 dt that vanishes as dt -> 0 (a coloured noise with correlation time dt, ten times weaker
at dt = 0.1 than at dt = 1). The per-step draw is instead N(0, sigma^2 / dt): the integrated input
then has variance sigma^2 per unit time, i.e. u approximates white noise of intensity sigma^2
(dx = (...) dt + sigma dW), independent of dt. For the map (dt = 1) that is per-step noise of
variance sigma^2, as in Molgedey, Schuchhardt & Schuster 1992. sigma is in {0, 0.5, 1}; the
column ``input_std_per_step`` is sigma / sqrt(dt).

Per configuration (form, g, sigma) an ensemble of ``members`` independent networks is drawn
(make_cell(..., ensemble=S, rng=...)), each with its own initial state x_0 ~ N(0, I) and its own
input; the networks and initial states are shared by the sigma levels of a (form, g), and the
run is run through a state burn-in (no tangent dynamics), a frame warm-up, then the FULL spectrum
is averaged over the stated time (QR method, 20 blocks).

Records: one row per (configuration, member, exponent index i) with ``exponent_per_unit_time``
and its block s.e. ``exponent_stderr``; the member's observables are repeated on its rows
(``dky_over_n``, ``entropy_over_n`` per unit time, ``positive_fraction``, ``lambda_1``,
``mean_exponent_per_unit_time``). Theory columns (NaN where they do not apply):
``theory_lambda1_dmft`` (no input only: gs.map_max_exponent_dmft(g) for the map,
gs.continuous_time_max_exponent_dmft(g) for the flow; large-N mean field, log g resp. g - 1 for
g <= 1), ``theory_mean_exponent`` (map, no input: gs.map_mean_exponent(g), mean field; flow: the
sum rule gs.continuous_time_exponent_sum(N)/N = -1, exact for J_ii = 0 with or without input, up to
RK4's O(dt^4) ~ 1e-6), and ``theory_fixed_point_exponent`` (g < 1, no input: the exact exponents
of the network's trivial fixed point x = 0, by index i: gs.trivial_fixed_point_exponents(J, 1)
= log|mu_i| for the map; for the flow the exact exponents of the RK4 step's tangent map at 0,
log|T_4(dt (mu_i - 1))| / dt with T_4(z) = 1 + z + z^2/2 + z^3/6 + z^4/24, which are
Re mu_i - 1 + O(dt^4)).

Summary: per form, sigma and g, lambda_1, D_KY/N and h/N as means over the members with the
standard error over members (s / sqrt(S)). Measured minus DMFT lambda_1 (no input, g > 1) per gain
and their mean over the chaotic gains (s.e. sqrt(sum s.e._g^2) / n_g from the per-gain member
spreads). The input's effect at each chaotic gain is the drop value(sigma = 0) - value(sigma)
over the same networks and initial states (their seed is a function of form, g, N and members,
not of sigma; only the input differs), with the standard error of the mean paired difference
over members; it is called a drop only when it exceeds 2 s.e. The fixed-point rows: the largest |measured - exact| over all exponents of the g < 1,
sigma = 0 members. The QR estimate of a constant tangent map M = V diag(mu) V^-1 is exact
only as T -> infinity: over a window of T steps the frame's k-volume grows by the product of
the k leading |mu_i|^T times a factor between 1/kappa_k and kappa_k (kappa_k the condition number
of V's k-th exterior power, once the warmed-up frame has aligned with the leading eigen-subspace),
so each partial sum of exponents is off by O(log kappa_k / T) and each exponent by the difference
of two such terms; complex pairs, whose two exponents share one modulus, trade growth back and
forth as the pair rotates, with the same 1/T decay. ``eigvec_log_condition`` records log kappa(V).
The sum of all exponents is exact at every T (log|det M| per step).

What the key numbers can be trusted to: all measured numbers are estimates from a few networks
and finite runs; the standard error over members includes network-to-network spread and time
averaging. The theory columns are exact (fixed point) or large-N mean field (DMFT), to which finite
N is biased.
"""

import functools
import zlib

import numpy as np

from gradsim import (Estimate, Exact, RateRNN, continuous_time_exponent_sum,
                     continuous_time_max_exponent_dmft, lyapunov_spectrum, make_cell,
                     map_max_exponent_dmft, map_mean_exponent, spectrum_observables,
                     trivial_fixed_point_exponents, unroll)
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study

FORMS = {"map": {"dt": 1.0, "integrator": "euler"}, "flow": {"dt": 0.1, "integrator": "rk4"}}
BURN_IN = {"map": 500.0, "flow": 100.0}  # time units of state-only burn-in
WARMUP = {"map": 200.0, "flow": 20.0}  # time units of frame warm-up before averaging
N_BLOCKS = 20
GRID = [{"form": ["map"], "gain": [0.5, 1.5, 2.0, 3.0, 4.0, 5.0], "sigma": [0.0, 0.5, 1.0],
         "n_units": [128], "members": [4], "time_units": [2000]},
        {"form": ["flow"], "gain": [0.5, 1.5, 2.0, 3.0, 4.0, 5.0], "sigma": [0.0, 0.5, 1.0],
         "n_units": [128], "members": [4], "time_units": [150]}]
# The quick flow is at N = 64: below that a g = 3 flow network often settles on a limit cycle
# or fixed point instead of chaos (lambda_1 <= 0 in members at N = 32).
QUICK_GRID = [{"form": ["map"], "gain": [0.5, 3.0], "sigma": [0.0, 1.0], "n_units": [32],
               "members": [3], "time_units": [600]},
              {"form": ["flow"], "gain": [0.5, 3.0], "sigma": [0.0, 1.0], "n_units": [64],
               "members": [3], "time_units": [100]}]


# The sum rule's deviation is RK4's O(dt^4) error along each (chaotic) trajectory: a number
# between 0 and about 1e-5 per unit time at dt = 0.1 (observed ~1.5e-6), which another machine's
# trajectory changes at that scale; it is exact to that absolute tolerance.
SUM_RULE_ATOL = 1e-5


@functools.lru_cache(maxsize=None)
def theory_lambda1(form, gain):
    """Large-N mean-field largest exponent without input (per unit time)."""
    return map_max_exponent_dmft(gain) if form == "map" else continuous_time_max_exponent_dmft(gain)


def network_seed(config):
    """Seed of a configuration's networks: a CRC-32 of (form, gain, N, members), not sigma."""
    key = (f"rate_chaos networks|{config['form']}|{float(config['gain'])!r}|"
           f"{int(config['n_units'])}|{int(config['members'])}")
    return zlib.crc32(key.encode())


def rk4_fixed_point_exponents(weight, dt):
    """Exact exponents of the RK4 step's tangent map at x = 0 (constant: T_4(dt (J - I)))."""
    z = dt * (np.linalg.eigvals(weight) - 1.0)
    t4 = 1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24
    return -np.sort(-np.log(np.abs(t4)) / dt, axis=-1)


def simulate(config, rng):
    """One ensemble of networks: full spectra (one row per member and exponent)."""
    form, n, gain = config["form"], int(config["n_units"]), float(config["gain"])
    sigma, members = float(config["sigma"]), int(config["members"])
    if form not in FORMS:
        raise ValueError(f"`form` must be one of {sorted(FORMS)}; got {form!r}.")
    if sigma < 0:
        raise ValueError(f"`sigma` must be >= 0; got {sigma!r}.")
    dt, integrator = FORMS[form]["dt"], FORMS[form]["integrator"]
    # The networks and initial states come from a seed of (form, g, N, members) alone, so the
    # input levels of one (form, g) drive the same networks (a paired comparison); the inputs
    # come from the configuration's own rng.
    seed = network_seed(config)
    net_rng = np.random.default_rng(seed)
    base = make_cell("rate", n, 0, init="gaussian", gain=gain, dt=dt, integrator=integrator,
                     zero_diagonal=True, ensemble=members, rng=net_rng)
    weight = np.asarray(base.weight_hh)
    burn = int(round(BURN_IN[form] / dt))
    warmup = int(round(WARMUP[form] / dt))
    steps = int(round(config["time_units"] / dt))
    state0 = net_rng.standard_normal((members, n))
    input_std = sigma / np.sqrt(dt)  # white noise of intensity sigma^2 per unit time
    if sigma > 0:
        cell = RateRNN(weight, weight_ih=input_std * np.eye(n), dt=dt, integrator=integrator)
        burn_inputs = rng.standard_normal((members, burn, n))
        inputs = rng.standard_normal((members, warmup + steps, n))
    else:
        cell, burn_inputs, inputs = base, burn, warmup + steps
    state = unroll(cell, burn_inputs, state0)[..., -1, :]
    spectrum = lyapunov_spectrum(cell, inputs, state0=state, warmup=warmup, n_blocks=N_BLOCKS)
    rates = spectrum.exponents / dt
    stderr = spectrum.stderr / dt
    obs = spectrum_observables(spectrum, over="blocks")
    lam1_theory = theory_lambda1(form, gain) if sigma == 0 else np.nan
    mean_theory = (continuous_time_exponent_sum(n) / n if form == "flow"
                   else map_mean_exponent(gain) if sigma == 0 else np.nan)
    fixed, log_condition = None, np.full(members, np.nan)
    if gain < 1 and sigma == 0:
        fixed = (trivial_fixed_point_exponents(weight, 1.0) if form == "map"
                 else rk4_fixed_point_exponents(weight, dt))
        # log of the condition number of J's eigenvector basis: it sets how far the QR
        # method's finite-time exponents of the constant tangent map can sit from the exact
        # ones (an O(log kappa / T) transient; see the module docstring).
        log_condition = np.log(np.linalg.cond(np.linalg.eig(weight)[1]))
    rows = []
    for m in range(members):
        common = {
            "member": m, "network_seed": seed, "dt": dt, "integrator": integrator, "input_std_per_step": input_std,
            "lambda_1": float(rates[m, 0]), "lambda_1_stderr": float(stderr[m, 0]),
            "dky_over_n": float(obs.kaplan_yorke_dimension[m]) / n,
            "dky_over_n_stderr": float(obs.kaplan_yorke_dimension_stderr[m]) / n,
            "entropy_over_n": float(obs.entropy_rate[m]) / dt / n,
            "entropy_over_n_stderr": float(obs.entropy_rate_stderr[m]) / dt / n,
            "positive_fraction": float(obs.positive_fraction[m]),
            "mean_exponent_per_unit_time": float(np.mean(rates[m])),
            "theory_lambda1_dmft": float(lam1_theory),
            "theory_mean_exponent": float(mean_theory),
            "coupling_norm": float(np.linalg.norm(weight[m], 2)),
            "eigvec_log_condition": float(log_condition[m]),
            "n_steps": int(spectrum.n_steps),
        }
        for i in range(n):
            rows.append({**common, "i": i + 1, "exponent_per_unit_time": float(rates[m, i]),
                         "exponent_stderr": float(stderr[m, i]),
                         "theory_fixed_point_exponent": (float(fixed[m, i]) if fixed is not None
                                                         else np.nan)})
    return rows


# ------------------------------------------------------------------------------------------
# summary helpers (all from the CSV's columns)
QUANTITIES = {"lambda_1": "lambda_1", "dky_over_n": "D_KY/N", "entropy_over_n": "h/N"}


def _members(frame):
    return frame[frame.i == 1]


def member_mean(part, column):
    """Mean over an ensemble's members with the s.e. over members (s / sqrt(S))."""
    values = part[column].to_numpy(float)
    s = len(values)
    se = float(np.std(values, ddof=1) / np.sqrt(s)) if s > 1 else np.nan
    return Estimate(float(np.mean(values)), se, s)


def _table(frame):
    """{(form, sigma, gain): {column: Estimate}} over the members."""
    out = {}
    for key, part in _members(frame).groupby(["form", "sigma", "gain"], sort=True):
        out[key] = {col: member_mean(part, col) for col in QUANTITIES}
        out[key]["theory_lambda1_dmft"] = float(part.theory_lambda1_dmft.iloc[0])
    return out


def paired_drop(frame, form, gain, sigma, column):
    """value(sigma = 0) - value(sigma) over the same networks (members paired by index and
    network seed), with the s.e. of the mean paired difference; if the seeds differ (a CSV
    from independent draws), the two ensembles' s.e. combined."""
    first = _members(frame)
    a = first[(first.form == form) & (first.gain == gain) & (first.sigma == 0)].sort_values("member")
    b = first[(first.form == form) & (first.gain == gain) & (first.sigma == sigma)].sort_values("member")
    if (len(a) == len(b) and "network_seed" in first
            and np.array_equal(a.network_seed.to_numpy(), b.network_seed.to_numpy())
            and np.array_equal(a.member.to_numpy(), b.member.to_numpy())):
        d = a[column].to_numpy(float) - b[column].to_numpy(float)
        se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else np.nan
        return Estimate(float(np.mean(d)), se, len(d))
    ma, mb = member_mean(a, column), member_mean(b, column)
    return Estimate(float(ma) - float(mb), float(np.hypot(ma.stderr, mb.stderr)))


def _pairs(cases):
    return ", ".join(f"({sigma:g}, {g:g})" for sigma, g in cases)


def summarize(frame):
    out = {}
    notes = []
    table = _table(frame)
    fixed_text = []
    for form in sorted(frame.form.unique()):
        unit = "per unit time" if form == "flow" else "per step"
        keys = sorted(k for k in table if k[0] == form)
        gains = sorted({k[2] for k in keys})
        sigmas = sorted({k[1] for k in keys})
        for (f, sigma, gain) in keys:
            for col, label in QUANTITIES.items():
                # D_KY/N counts directions: it has no time unit.
                suffix = "" if col == "dky_over_n" else f" ({unit})"
                out[f"{form}: {label}{suffix}, g = {gain:g}, sigma = {sigma:g}"] = \
                    table[(f, sigma, gain)][col]
        # measured vs DMFT, no input, chaotic
        chaotic = [g for g in gains if g > 1 and (form, 0.0, g) in table]
        diffs = []
        for g in chaotic:
            row = table[(form, 0.0, g)]
            d = Estimate(float(row["lambda_1"]) - row["theory_lambda1_dmft"],
                         row["lambda_1"].stderr, row["lambda_1"].n)
            diffs.append(d)
            out[f"{form}: lambda_1 - DMFT, g = {g:g}, sigma = 0"] = d
        text = f"{form} (N = {int(frame[frame.form == form].n_units.iloc[0])}, {unit}): "
        if diffs:
            mean_d = Estimate(float(np.mean([float(d) for d in diffs])),
                              float(np.sqrt(np.sum([d.stderr ** 2 for d in diffs])) / len(diffs)),
                              len(diffs))
            out[f"{form}: mean (lambda_1 - DMFT) over g > 1, sigma = 0"] = mean_d
            sign = ("below" if float(mean_d) < 0 else "above")
            resolved = abs(float(mean_d)) > 2 * mean_d.stderr
            text += (f"lambda_1 is on average {abs(float(mean_d)):.3f} ± {mean_d.stderr:.2g} "
                     f"{sign} the DMFT value over g = {', '.join(f'{g:g}' for g in chaotic)}"
                     + (" (more than 2 s.e.; finite-N bias)" if resolved else
                        " (within 2 s.e.)") + "; ")
            below = [g for g, d in zip(chaotic, diffs) if float(d) < -2 * d.stderr]
            above = [g for g, d in zip(chaotic, diffs) if float(d) > 2 * d.stderr]
            text += (f"more than 2 s.e. below it at g = {', '.join(f'{g:g}' for g in below) or 'none'}"
                     f", above it at g = {', '.join(f'{g:g}' for g in above) or 'none'}. ")
        # growth with gain (no input)
        base = [table[(form, 0.0, g)] for g in gains if (form, 0.0, g) in table]
        if base:
            text += "Without input, " + "; ".join(
                f"{label} goes " + " -> ".join(f"{float(r[col]):.3g}" for r in base)
                for col, label in QUANTITIES.items()) + f" over g = {', '.join(f'{g:g}' for g in gains)}. "
        # input
        lowered = {col: [] for col in QUANTITIES}
        raised = {col: [] for col in QUANTITIES}
        total = 0
        for sigma in sigmas:
            if sigma == 0:
                continue
            for g in chaotic:
                if (form, sigma, g) not in table:
                    continue
                total += 1
                for col, label in QUANTITIES.items():
                    d = paired_drop(frame, form, g, sigma, col)
                    out[f"{form}: drop of {label} by input sigma = {sigma:g}, g = {g:g}"] = d
                    if float(d) > 2 * d.stderr:
                        lowered[col].append((sigma, g))
                    elif float(d) < -2 * d.stderr:
                        raised[col].append((sigma, g))
        if total:
            text += "Input (sigma > 0, g > 1): " + "; ".join(
                f"{label} lower by more than 2 s.e. (paired over the same networks) in "
                f"{len(lowered[col])} of {total} (sigma, g) cases"
                + (f" [{_pairs(lowered[col])}]" if lowered[col] else "")
                + (f", higher by more than 2 s.e. in {len(raised[col])} [{_pairs(raised[col])}]"
                   if raised[col] else "")
                for col, label in QUANTITIES.items()) + ". "
        # fixed point
        fp = frame[(frame.form == form) & frame.theory_fixed_point_exponent.notna()]
        if len(fp):
            gap = float(np.max(np.abs(fp.exponent_per_unit_time - fp.theory_fixed_point_exponent)))
            out[f"{form}: max |exponent - exact fixed point|, g < 1, sigma = 0"] = gap
            fixed_text.append(f"{form} {gap:.1e}")
        if form == "flow":
            nets = _members(frame[frame.form == "flow"])
            worst = float(np.max(np.abs(nets.mean_exponent_per_unit_time
                                        - nets.theory_mean_exponent)))
            out["flow: max |mean exponent + 1| per unit time (sum rule)"] = Exact(
                worst, rtol=0.0, atol=SUM_RULE_ATOL)
            text += (f"The mean exponent is -1 per unit time to {worst:.1e} in every member, "
                     "with and without input (RK4: O(dt^4)). ")
        notes.append(text)
    if fixed_text:
        notes.append("At g < 1 without input the measured exponents equal the exact trivial "
                     "fixed-point exponents to " + ", ".join(fixed_text) + " (largest gap).")
    out["notes"] = " ".join(notes)
    return out


def plot(frame):
    forms = [f for f in ("map", "flow") if f in set(frame.form)]
    fig, axes = new_figure(ncols=3, nrows=len(forms), width=3.4, height=2.9)
    axes = np.atleast_2d(axes)
    table = _table(frame)
    for row, form in enumerate(forms):
        unit = "per unit time" if form == "flow" else "per step"
        sigmas = sorted({k[1] for k in table if k[0] == form})
        for j, (col, label) in enumerate(QUANTITIES.items()):
            ax = axes[row, j]
            for k, sigma in enumerate(sigmas):
                gains = sorted(key[2] for key in table if key[0] == form and key[1] == sigma)
                ests = [table[(form, sigma, g)][col] for g in gains]
                ax.errorbar(gains, [float(e) for e in ests], yerr=[2 * e.stderr for e in ests],
                            color=PALETTE[k % len(PALETTE)], marker="os^"[k % 3], ms=4,
                            capsize=2, label=f"input sigma = {sigma:g}")
            if col == "lambda_1":
                # At the grid's gains only: the flow's DMFT costs ~1 s per gain (cached).
                g_fine = sorted({key[2] for key in table if key[0] == form})
                ax.plot(g_fine, [theory_lambda1(form, float(g)) for g in g_fine], "k--", lw=1,
                        label="DMFT, no input")
                ax.axhline(0.0, color="0.5", lw=0.8)
            ax.set_xlabel("gain g")
            ax.set_ylabel(f"{label} ({unit})" if col != "dky_over_n" else label)
            ax.set_title(f"{form}: {label}", fontsize=8)
            if j == 0:
                ax.legend(fontsize=6)
    return fig


STUDY = Study(
    name="rate_chaos",
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
