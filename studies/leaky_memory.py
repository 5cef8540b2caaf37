"""How long does a leaky RNN remember, and does its memory time grow as 1/alpha, the exponential trace memory of lecture note 002_3bb4438a82864ce0.txt?

Lecture note 002_3bb4438a82864ce0.txt names "exponential trace memory (Jordan 1987, Mozer 1989)"
as the first architecture against vanishing gradients. gradsim's :class:`~gradsim.LeakyRNN` is
h' = (1 - a) h + a tanh(W h + U x), W_ij ~ N(0, g^2/N) (J_ii kept), N = 64; a = 1 is the Elman
RNN. The memory time is read from the top Lyapunov exponent lambda_1 (per step): a perturbation
of the state (and the gradient d h_T / d h_0) shrinks as exp(lambda_1 T), so tau = -1/lambda_1
steps where lambda_1 < 0 by more than Z_DECAY block standard errors, else tau is NaN with the
flag ``no_decay``.

Exact theory. Without input and with every |1 - a + a mu_i| < 1 (mu_i the eigenvalues of the
drawn W) the state falls to the fixed point 0, where the Jacobian is the constant
M = (1 - a) I + a W, so lambda_1 = max_i log|1 - a + a mu_i| exactly
(:func:`gradsim.trivial_fixed_point_exponents` with delta = a, times a: it reports per unit
time). At g = 0 (W = 0) the Jacobian is (1 - a) I at every state and input: lambda_1 = log(1 - a)
for any input (-inf at a = 1: the state forgets in one step). At large N the eigenvalues fill the
disc |mu| <= g, whose image under 1 - a + a mu has largest modulus 1 - a + a g, so
lambda_1 = log(1 - a (1 - g)) and tau ~ 1 / (a (1 - g)) for small a (the circular law; the drawn
W's spectral radius exceeds g at N = 64, which lengthens tau at g = 0.9 visibly).

Monotonicity (a theorem for every W with rho(W) < 1): each f_i(a) = |1 - a + a mu_i|^2 is a
convex quadratic with f_i(0) = 1, decreasing while a < Re 1/(1 - mu_i); the image of the disc
|mu| <= rho under 1/(1 - mu) has real parts >= 1/(1 + rho) > 1/2. So below a = 1/(1 + rho), which
includes every a <= 0.5, the exact lambda_1 rises strictly as a falls and tau grows strictly.
Between a = 1 and 0.5 it need not (a large negative mu_i gives |mu_i| at a = 1 but ~0 at 0.5).

Warm-up. The state relaxes at the slowest exact rate |lambda_exact| (or faster: tanh only
shrinks). The warm-up is WARM_NATS / |lambda_exact| steps (40 nats: from |h| ~ 1 to e^-40 ~ 4e-18,
below float64 rounding relative to 1; at a = 0.01, g = 0.9 that is 1-4 x 10^4 steps, far more
than the "several hundred" of 1/a), when that rate is known and negative, and WARM_TIME / a steps
otherwise (input, chaotic gain). The CSV stores the largest |h| at the end of the warm-up
(``state_after_warmup``): at the fixed point the Jacobian differs from M by O(|h|^2), so a row is
read as "at the fixed point" (``at_fixed_point``) only if g = 0, or if it has no input, a stable
M and |h| < FIXED_TOL = 1e-8 (a Jacobian error below 1e-16). The measured exponent is the QR
method's with k = 1 over MEASURE_TIME / a steps after the warm-up; at a constant M it converges
as O(1/T) (a complex top pair makes ||M^t q|| oscillate within the eigenbasis' condition
number), which the block standard errors see.

Second reading. ``grad_rate`` is the slope of log ||d h_t / d h_w|| (top singular value of the
Jacobian product from the state after the warm-up, gs.log_singular_values) between
t = T_g / 2 and T_g = GRAD_TIME / a steps: an independent computation (log-SVD of the product,
not the QR frame) of the same decay rate.

Input. U = input_std * I (n_input = N) with x_t ~ N(0, I): every unit gets its own independent
noise of variance input_std^2 (as in edge_of_chaos), the cleanest way to set how far tanh is
driven into saturation; a Gaussian U would mix the same noise into correlated sums.

Draws (so that the test can rebuild a row): W = gaussian(N, g, rng_W) with
rng_W = config_rng({"gain", "n_hidden", "seed"}), the same network at every alpha and input std;
then from the configuration's own rng: state0 ~ N(0, I_N), then (input_std > 0) the inputs
(warmup + n_steps, N), N(0, 1).

What the key numbers can be trusted to: exponents at the fixed point are deterministic (the
state is 0 to rounding), others are estimates with block standard errors; the exact and
circular-law values are exact. Slopes and means over seeds carry the standard error over the
independent networks (seeds).
"""

import numpy as np

from gradsim import (Estimate, Exact, LeakyRNN, gaussian, log_singular_values, lyapunov_spectrum,
                     mean_estimate, rate_of, trivial_fixed_point_exponents, unroll)
from gradsim.workflow.findings import extreme_estimate
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study, config_rng

ALPHAS = [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01]
CHAOTIC_GAIN = 2.0
GRID = {"alpha": ALPHAS, "gain": [0.0, 0.5, 0.9, CHAOTIC_GAIN], "input_std": [0.0, 1.0],
        "seed": [0, 1, 2, 3, 4], "n_hidden": [64], "measure_time": [200.0],
        "grad_time": [40.0]}
QUICK_GRID = {"alpha": [1.0, 0.5, 0.2, 0.1], "gain": [0.0, 0.5, 0.9, CHAOTIC_GAIN],
              "input_std": [0.0, 1.0], "seed": [0, 1, 2], "n_hidden": [64],
              "measure_time": [50.0], "grad_time": [10.0]}
WARM_NATS = 40.0      # warm-up in nats of the exact decay (see the module docstring)
WARM_TIME = 100.0     # warm-up in units of 1/alpha where there is no exact rate
MIN_WARMUP = 10
FIXED_TOL = 1e-8      # largest |h| after the warm-up for a row to count as at the fixed point
Z_DECAY = 4.0         # lambda_1 < -Z_DECAY s.e.: the memory decays (tau is finite)
Z_SIGN = 4.0          # a sign trusted at 4 s.e. (chaotic rows)
SLOPE_POINTS = 3      # the log-log slope is fitted over the grid's 3 smallest alphas
MIN_STEPS = 1000      # measured steps at least (the O(1/T) transient, cheap at large alpha)
MIN_GRAD = 200        # gradient-reading steps at least


def weight_for(gain, n_hidden, seed):
    """The recurrent matrix of one (gain, N, seed): the same at every alpha and input std."""
    rng = config_rng({"gain": gain, "n_hidden": n_hidden, "seed": seed})
    return gaussian(n_hidden, gain, rng)


def simulate(config, rng):
    """One record: measured lambda_1, tau, the gradient reading and the exact values."""
    n, a, g, std = config["n_hidden"], config["alpha"], config["gain"], config["input_std"]
    weight = weight_for(g, n, config["seed"])
    cell = LeakyRNN(weight, weight_ih=std * np.eye(n) if std > 0 else None, alpha=a)
    with np.errstate(divide="ignore"):
        exact = float(trivial_fixed_point_exponents(weight, delta=a)[0] * a)
        circular = float(np.log1p(-a * (1.0 - g))) if g < 1 else np.nan
    stable = exact < 0
    if stable and np.isfinite(exact):
        warmup = max(MIN_WARMUP, int(np.ceil(WARM_NATS / -exact)))
    else:
        warmup = max(MIN_WARMUP, int(np.ceil(WARM_TIME / a)))
    n_steps = max(MIN_STEPS, int(np.ceil(config["measure_time"] / a)))
    grad_steps = max(MIN_GRAD, 2 * int(np.ceil(config["grad_time"] / (2 * a))))
    state0 = rng.standard_normal(n)
    total = warmup + n_steps
    inputs = rng.standard_normal((total, n)) if std > 0 else total
    spectrum = lyapunov_spectrum(cell, inputs, state0=state0, k=1, warmup=warmup)
    head = inputs[:warmup] if std > 0 else warmup
    after = unroll(cell, head, state0)[-1]
    tail = inputs[warmup:warmup + grad_steps] if std > 0 else grad_steps
    logsv = log_singular_values(cell, tail, state0=after, times=[grad_steps // 2, grad_steps])
    with np.errstate(invalid="ignore"):
        grad_rate = float((logsv[1, 0] - logsv[0, 0]) / (grad_steps - grad_steps // 2))
    rate, stderr = float(spectrum.exponents[0]), float(spectrum.stderr[0])
    if not np.isfinite(stderr):   # a = 1, g = 0: every block is -inf, the rate exactly -inf
        stderr = 0.0
    decays = bool(rate < -Z_DECAY * stderr)
    small = float(np.max(np.abs(after)))
    at_fixed = bool(g == 0 or (std == 0 and stable and small < FIXED_TOL))
    with np.errstate(divide="ignore"):
        tau = -1.0 / rate if decays else np.nan
        tau_exact = -1.0 / exact if stable else np.nan
        tau_circular = -1.0 / circular if g < 1 else np.nan
    return [{
        "rate": rate, "rate_stderr": stderr,
        "tau": tau, "tau_stderr": stderr / rate ** 2 if decays else np.nan,
        "no_decay": not decays,
        "grad_rate": grad_rate,
        "exact_rate": exact, "tau_exact": tau_exact,
        "circular_rate": circular, "tau_circular": tau_circular,
        "spectral_radius": float(np.max(np.abs(np.linalg.eigvals(weight)))),
        "at_fixed_point": at_fixed, "state_after_warmup": small,
        "warmup": warmup, "n_steps": n_steps, "grad_steps": grad_steps,
    }]


def _slope(alphas, taus):
    """Least-squares slope of log tau against log alpha."""
    return float(np.polyfit(np.log(alphas), np.log(taus), 1)[0])


def small_alphas(frame):
    """The SLOPE_POINTS smallest alphas of the frame."""
    return np.sort(frame.alpha.unique())[:SLOPE_POINTS]


def slopes(frame, column="tau"):
    """Per (gain, seed) slope of log ``column`` vs log alpha over the SLOPE_POINTS smallest
    alphas, no input, g < 1; returns {gain: array over seeds}."""
    quiet = frame[(frame.input_std == 0) & (frame.gain < 1)
                  & frame.alpha.isin(small_alphas(frame))]
    out = {}
    for g, part in quiet.groupby("gain", sort=True):
        values = [_slope(p.alpha, p[column]) for _, p in part.groupby("seed")
                  if np.all(np.isfinite(p[column])) and len(p) > 1]
        out[float(g)] = np.array(values)
    return out


def plot(frame):
    fig, axes = new_figure(ncols=3, width=4.0, height=3.6)
    fine = np.geomspace(frame.alpha.min(), 1.0, 100)
    for j, std in enumerate(sorted(frame.input_std.unique())[:2]):
        ax = axes.flat[j]
        part = frame[(frame.input_std == std) & (frame.gain < 1)]
        for i, (g, rows) in enumerate(part.groupby("gain", sort=True)):
            color = PALETTE[i]
            ok = rows[np.isfinite(rows.tau) & (rows.tau > 0)]
            ax.errorbar(ok.alpha, ok.tau, yerr=ok.tau_stderr, color=color, ls="none",
                        marker="o", ms=3, capsize=2, label=f"measured, g = {g:g}")
            ex = rows[np.isfinite(rows.tau_exact) & (rows.tau_exact > 0)]
            if std == 0:
                ax.plot(ex.alpha, ex.tau_exact, color=color, marker="x", ms=5, ls="none")
            with np.errstate(divide="ignore"):
                ax.plot(fine, -1.0 / np.log1p(-fine * (1 - g)), color=color, ls="--", lw=1)
        ax.plot([], [], color="0.3", ls="--", label=r"circular law $-1/\log(1-\alpha(1-g))$"
                + ("" if std == 0 else " (no input)"))
        if std == 0:
            ax.plot([], [], color="0.3", marker="x", ls="none",
                    label=r"exact $-1/\max\log|1-\alpha+\alpha\mu_i|$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"leak rate $\alpha$")
        ax.set_ylabel(r"memory time $\tau = -1/\lambda_1$ (steps)")
        ax.set_title(f"leaky tanh RNN N={int(frame.n_hidden.iloc[0])}, input std {std:g}",
                     fontsize=9)
        ax.legend(fontsize=6)
    ax = axes.flat[2]
    chaos = frame[frame.gain >= 1]
    for i, (std, rows) in enumerate(chaos.groupby("input_std", sort=True)):
        ax.errorbar(rows.alpha * (1 + 0.04 * i), rows.rate / rows.alpha,
                    yerr=rows.rate_stderr / rows.alpha, color=PALETTE[i + 3], ls="none",
                    marker="os"[i % 2], ms=3, capsize=2, label=f"g = {CHAOTIC_GAIN:g}, input std {std:g}")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(r"leak rate $\alpha$")
    ax.set_ylabel(r"$\lambda_1/\alpha$ (per unit time $1/\alpha$ steps)")
    ax.set_title("chaotic gain: is the leak buying memory?", fontsize=9)
    ax.legend(fontsize=6)
    return fig


def _compare(est, value, name):
    """'within 2 s.e. of NAME (V)' or 'above/below NAME (V) by more than 2 s.e.'."""
    off = float(est) - value
    if abs(off) <= 2 * est.stderr or est.stderr != est.stderr and off == 0:
        return f"within 2 s.e. of {name} ({value:.3g})"
    return f"{'above' if off > 0 else 'below'} {name} ({value:.3g}) by more than 2 s.e."


def summarize(frame):
    out = {}
    fixed = frame[frame.at_fixed_point & np.isfinite(frame.exact_rate)]
    gap = np.abs(fixed.rate - fixed.exact_rate)
    out["max |measured - exact lambda_1| at the fixed point (per step)"] = extreme_estimate(
        gap, fixed.rate_stderr)
    # The finite-time transient of a constant product, in nats: n_steps * |measured - exact|
    # (O(1) whatever the length: the top pair's oscillation and the frame's start).
    out["max n_steps |measured - exact| at the fixed point (nats)"] = Exact(
        float(np.max(gap * fixed.n_steps)), rtol=1e-3, atol=1e-9)
    out["rows at the fixed point"] = Exact(len(fixed))
    zero = frame[frame.gain == 0]
    with np.errstate(divide="ignore"):
        zgap = np.abs(zero.rate - np.log1p(-zero.alpha))
    zgap = zgap[np.isfinite(zgap)]
    out["max |measured - log(1 - alpha)| at g = 0 (any input)"] = Exact(float(np.max(zgap)),
                                                                       rtol=1e-3, atol=1e-12)
    grad_fixed = fixed[np.isfinite(fixed.grad_rate)]
    out["max |gradient-norm rate - exact| at the fixed point"] = Exact(
        float(np.max(np.abs(grad_fixed.grad_rate - grad_fixed.exact_rate))), rtol=1e-3,
        atol=1e-9)

    # Away from the fixed point (input std > 0, g < 1) the gradient reading is a finite-time
    # exponent over T_g / 2 steps: compared with lambda_1 as a mean over rows.
    driven_rows = frame[(frame.input_std > 0) & (frame.gain > 0) & (frame.gain < 1)]
    grad_gap = mean_estimate(driven_rows.grad_rate - driven_rows.rate)
    out["mean (gradient-norm rate - lambda_1), input std > 0, 0 < g < 1"] = grad_gap
    measured, exact = slopes(frame, "tau"), slopes(frame, "tau_exact")
    span = "{" + ", ".join(f"{a:g}" for a in small_alphas(frame)) + "}"
    smallest = frame.alpha.min()
    slope_text = []
    for g in measured:
        est = mean_estimate(measured[g]) if len(measured[g]) > 1 else Estimate(np.nan, np.nan)
        # W = 0 (g = 0): every seed is the same network and lambda_1 = log(1 - alpha) to
        # rounding, so the slope and alpha tau are exact, not estimates with a zero spread.
        out[f"slope d log tau / d log alpha, alpha in {span}, g = {g:g}"] = (
            Exact(float(est), rtol=1e-9) if g == 0 else est)
        out[f"slope, exact theory, g = {g:g}"] = Exact(float(np.mean(exact[g])), rtol=1e-6)
        rows = frame[(frame.input_std == 0) & (frame.gain == g) & (frame.alpha == smallest)]
        at = mean_estimate(rows.alpha * rows.tau)
        out[f"alpha tau at alpha = {smallest:g}, g = {g:g}"] = (
            Exact(float(at), rtol=1e-9) if g == 0 else at)
        out[f"alpha tau exact (drawn W), alpha = {smallest:g}, g = {g:g}"] = Exact(
            float(np.mean(rows.alpha * rows.tau_exact)), rtol=1e-6)
        out[f"1/(1 - g) circular law, g = {g:g}"] = Exact(1.0 / (1.0 - g))
        off = float(est) + 1.0
        slope_text.append(
            f"g = {g:g}: slope {float(est):.3f} ± {est.stderr:.1g} "
            + ("(-1 within 2 s.e.)" if abs(off) <= 2 * est.stderr else
               f"({'above' if off > 0 else 'below'} -1 by more than 2 s.e.; exact theory "
               f"{float(out[f'slope, exact theory, g = {g:g}']):.3f})")
            + f", alpha tau = {float(at):.2f} ± {at.stderr:.1g} at alpha = {smallest:g}, "
            + _compare(at, 1 / (1 - g), "the circular law's 1/(1-g)") + " and "
            + _compare(at, float(out[f"alpha tau exact (drawn W), alpha = {smallest:g}, g = {g:g}"]),
                       "the drawn W's exact value"))

    # Input: tau with input std 1 over tau without, same network and alpha (g in (0, 1)).
    key = ["alpha", "gain", "seed"]
    both = frame[frame.input_std == 0].merge(frame[frame.input_std > 0], on=key,
                                              suffixes=("_0", "_1"))
    both = both[(both.gain > 0) & (both.gain < 1)]
    ratio = both.tau_1 / both.tau_0
    input_text = []
    for g, part in both.assign(ratio=ratio).groupby("gain", sort=True):
        r = mean_estimate(np.log(part.ratio))
        out[f"mean log(tau with input / tau without), g = {g:g}"] = r
        input_text.append(
            f"g = {g:g}: input std 1 multiplies tau by exp({float(r):+.3f} ± {r.stderr:.1g})"
            + (" (shorter memory, beyond 2 s.e.)" if float(r) < -2 * r.stderr else
               " (longer, beyond 2 s.e.)" if float(r) > 2 * r.stderr else " (within noise)"))
    mono_rows = frame[(frame.input_std == 0) & (frame.gain < 1) & (frame.alpha <= 0.5)]
    mono = []
    for _, part in mono_rows.groupby(["gain", "seed"]):
        part = part.sort_values("alpha", ascending=False)
        mono.append(bool(np.all(np.diff(part.tau.to_numpy()) > 0)))
    out["tau rises as alpha falls (alpha <= 0.5, no input, g < 1)"] = rate_of(mono)

    chaos = frame[frame.gain >= 1]
    chaos_text = []
    for std, part in chaos.groupby("input_std", sort=True):
        pos = rate_of(part.rate > Z_SIGN * part.rate_stderr)
        neg = rate_of(part.rate < -Z_SIGN * part.rate_stderr)
        out[f"g = {CHAOTIC_GAIN:g}, input std {std:g}: fraction lambda_1 > 0 (4 s.e.)"] = pos
        out[f"g = {CHAOTIC_GAIN:g}, input std {std:g}: fraction lambda_1 < 0 (4 s.e.)"] = neg
        small = part[part.alpha == part.alpha.min()]
        big = part[part.alpha == 1.0]
        per_time = mean_estimate(small.rate / small.alpha)
        out[f"g = {CHAOTIC_GAIN:g}, input std {std:g}: mean lambda_1/alpha at alpha = "
            f"{part.alpha.min():g}"] = per_time
        if len(big):
            out[f"g = {CHAOTIC_GAIN:g}, input std {std:g}: mean lambda_1 at alpha = 1"] = \
                mean_estimate(big.rate)
        for a, rows in part.groupby("alpha", sort=True):
            out[f"g = {CHAOTIC_GAIN:g}, input std {std:g}, alpha = {a:g}: mean lambda_1/alpha "
                f"(per unit time)"] = mean_estimate(rows.rate / rows.alpha)
            out[f"g = {CHAOTIC_GAIN:g}, input std {std:g}, alpha = {a:g}: fraction lambda_1 > 0 "
                f"(4 s.e.)"] = rate_of(rows.rate > Z_SIGN * rows.rate_stderr)
        leaky = part[part.alpha < 1]
        pos_l = rate_of(leaky.rate > Z_SIGN * leaky.rate_stderr)
        neg_l = rate_of(leaky.rate < -Z_SIGN * leaky.rate_stderr)
        pos_1 = rate_of(big.rate > Z_SIGN * big.rate_stderr)
        out[f"g = {CHAOTIC_GAIN:g}, input std {std:g}: fraction lambda_1 > 0 at alpha < 1"] = pos_l
        out[f"g = {CHAOTIC_GAIN:g}, input std {std:g}: fraction lambda_1 < 0 at alpha < 1"] = neg_l
        lo, hi = pos_l.interval()
        map_mean = out[f"g = {CHAOTIC_GAIN:g}, input std {std:g}: mean lambda_1 at alpha = 1"]
        if std == 0:
            why_neg = ("a stable fixed point or periodic orbit away from 0: the state after the "
                       "warm-up is not 0")
            why_zero = ("a limit cycle or torus: the zero exponent of the flow that the "
                        "small-alpha map approximates")
        else:
            why_neg, why_zero = "the driven trajectory is stable", "marginal"
        chaos_text.append(
            f"input std {std:g}: lambda_1 > 0 beyond 4 s.e. in {pos_1.successes} of "
            f"{pos_1.trials} networks at alpha = 1 (mean {float(map_mean):.3f} ± "
            f"{map_mean.stderr:.1g} per step) and in {pos_l.successes} of {pos_l.trials} "
            f"(alpha < 1, seed) rows (95% CI {lo:.2f}-{hi:.2f}); lambda_1 < 0 beyond 4 s.e. in "
            f"{neg_l.successes} of {neg_l.trials} ({why_neg}) and within 4 s.e. of 0 in the "
            f"rest ({why_zero}); at alpha = {part.alpha.min():g} lambda_1/alpha = "
            f"{float(per_time):.4f} ± {per_time.stderr:.1g} per unit time")

    # "The leak removes the chaos" only if, without input, the map (alpha = 1) is chaotic in
    # most networks and the leaky rows are chaotic in fewer than half, both beyond their 95% CIs.
    removed = ""
    key0 = f"g = {CHAOTIC_GAIN:g}, input std 0"
    if f"{key0}: fraction lambda_1 > 0 at alpha < 1" in out:
        quiet_chaos = chaos[(chaos.input_std == 0) & (chaos.alpha == 1)]
        map_pos = rate_of(quiet_chaos.rate > Z_SIGN * quiet_chaos.rate_stderr)
        if (out[f"{key0}: fraction lambda_1 > 0 at alpha < 1"].interval()[1] < 0.5
                and map_pos.interval()[0] > 0.5):
            removed = (f" At N = {int(frame.n_hidden.iloc[0])} without input the leak does not "
                       "slow the map's chaos into a smaller positive rate ~ alpha: it removes it "
                       "(the counts above).")
    worst = out["max |measured - exact lambda_1| at the fixed point (per step)"]
    nats = out["max n_steps |measured - exact| at the fixed point (nats)"]
    monorate = out["tau rises as alpha falls (alpha <= 0.5, no input, g < 1)"]
    out["notes"] = (
        f"At the fixed point ({len(fixed)} rows: no input and g < 1, or g = 0) the measured "
        f"lambda_1 equals the exact max log|1 - alpha + alpha mu_i| to {float(worst):.1e} per "
        f"step (at most {float(nats):.2f} nats over the measured steps: the O(1/T) transient of a constant Jacobian product); at g = 0 it is log(1 - alpha) to "
        f"{out['max |measured - log(1 - alpha)| at g = 0 (any input)']:.1e} with and without "
        f"input; the gradient-norm decay (log-SVD of the Jacobian product) agrees with the exact "
        f"rate to {out['max |gradient-norm rate - exact| at the fixed point']:.1e}; with input "
        f"the gradient-norm rate minus lambda_1 averages {float(grad_gap):+.4f} ± "
        f"{grad_gap.stderr:.1g} per step, " + _compare(grad_gap, 0.0, "zero") + "; "
        f"tau rises as alpha falls in {monorate.successes} of {monorate.trials} networks "
        f"(alpha <= 0.5, a theorem for rho(W) < 1). Log-log slope of tau against alpha "
        f"(alpha in {span}, no input): " + "; ".join(slope_text) + ". With input: "
        + "; ".join(input_text) + ". Chaotic gain g = " + f"{CHAOTIC_GAIN:g}: "
        + "; ".join(chaos_text) + "." + removed)
    return out


STUDY = Study(
    name="leaky_memory",
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
