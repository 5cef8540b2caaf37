"""Which initialisation puts the largest Lyapunov exponent at its target: the critical gain of a tanh RNN against input noise, and the LSTM forget bias whose cell path keeps gradients for H steps, against mean-field and zero-weight theory?

Every row is one call of gradsim.numeric.critical_init: the root, in the initialisation parameter,
of the ensemble-mean top exponent (QR method, k = 1) of B networks drawn by make_cell, driven by
i.i.d. N(0, input_std^2) inputs that enter every unit of every gate through identity input
weights (per-unit drive variance exactly input_std^2, the mean-field setting). The search starts
at the theory's value, brackets the root and refines it by false position on common random
numbers; the value's standard error is the delta method through the fitted slope
d lambda / d parameter (see critical_init's docstring).

Part "gain": the tanh RNN h' = tanh(W h + x), W_ij ~ N(0, g^2/N), no bias, target 0 (the edge of
chaos). Theory (THEORY.md section 5): the mean-field edge chi_1(g; sigma_in) = 1, where
chi_1 = g^2 E sech^4(sqrt(q*) z) and q* = g^2 E tanh^2(sqrt(q*) z) + sigma_in^2; and its
finite-N shift: at finite N the expected log-growth is below (1/2) log chi_1 by the Jensen gap
(3 mu_2/chi_1^2 - 1)/(4N) (the delta method of the library claim theory.mean-field-lyapunov), so
the finite-N edge is the root of (1/2) log chi_1 - (3 mu_2/chi_1^2 - 1)/(4N); its error is the
next order, r^2 with r = (3 mu_2/chi_1^2 - 1)/N, which is allowed in full. Tied networks (one W
per member) at every input std; untied (fresh W every step, where mean field is exact) at input
std 0, where tied networks near g = 1 settle on periodic or quasi-periodic orbits at finite N
(studies/edge_of_chaos.py) and their root is not the mean-field one. Without input the
finite-N shift is large (the exponent rises only as (2/3)(g - 1)^2 above g = 1, so the gap
1/(2N) moves the root by about sqrt(3/(4N))).

Part "forget_bias": the LSTM (gates i, f, g, o; make_cell's Gaussian blocks of gain "gain"),
target -1/H for horizons H: the forget bias b_f whose top exponent is -1/H, i.e. gradients
through that path shrink by e over H steps. Theory at zero weights (THEORY.md section 7): the
cell path is diag(f), f = sigma(b_f + x), so the exponent is E log sigma(b_f + input_std z) and
without input log sigma(b_f) = -1/H, b_f = logit(e^(-1/H)) = log(H - 1/2) + O(1/H), next to
chrono initialisation's longest memory log(H - 1) (theory.chrono_forget_bias). Rows: zero weights
without input (exact), zero weights with input std 1 (the Gaussian average; the top exponent is
the fastest of N units, above their mean, so the root sits at or below the theory), and the
default gain 1 with input std 1 on the cell path and on the full (h, c) state (no theory: how
far the recurrent weights move the critical bias).

What the key numbers can be trusted to: the critical values are estimates (Estimate: value and
its delta-method standard error over the ensemble of networks); at zero weights without input
the exponent is deterministic and the root exact to the root finder's tolerance. The theory
values are exact (mean field at N = inf, its finite-N shift to O(r^2), the zero-weight formulas).
Agreement is counted per configuration (a Rate) as |measured - theory| <= 4 s.e. + allowance.
"""

import functools
import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import logit

from gradsim import Estimate, Exact, rate_of
from gradsim.numeric import critical_init
from gradsim.theory import chrono_forget_bias, mean_field_chi1, mean_field_q_star, mu2
from gradsim.workflow.findings import extreme_estimate
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study

Z = 4.0
HORIZONS = [5, 10, 20, 50, 100, 200, 500]
GAIN_PART = {"part": ["gain"], "input_std": [0.25, 0.5, 0.75, 1.0, 1.5, 2.0], "n_hidden": [64, 256],
             "weights": ["tied"], "ensemble": [16], "steps": [1000], "warmup": [200]}
UNTIED_PART = {"part": ["gain"], "input_std": [0.0, 1.0], "n_hidden": [64], "weights": ["untied"],
               "ensemble": [16], "steps": [800], "warmup": [150]}
FORGET_PARTS = [
    {"part": ["forget_bias"], "horizon": HORIZONS, "gain": [0.0], "input_std": [0.0],
     "path": ["cell"], "n_hidden": [8], "ensemble": [2], "steps": [200], "warmup": [10]},
    {"part": ["forget_bias"], "horizon": HORIZONS, "gain": [0.0, 1.0], "input_std": [1.0],
     "path": ["cell"], "n_hidden": [32], "ensemble": [16], "steps": [1000], "warmup": [100]},
    {"part": ["forget_bias"], "horizon": HORIZONS, "gain": [1.0], "input_std": [1.0],
     "path": ["full"], "n_hidden": [32], "ensemble": [16], "steps": [1000], "warmup": [100]},
]
GRID = [GAIN_PART, UNTIED_PART] + FORGET_PARTS
QUICK_GRID = [
    {"part": ["gain"], "input_std": [0.5, 1.0], "n_hidden": [48], "weights": ["tied"],
     "ensemble": [8], "steps": [500], "warmup": [100]},
    {"part": ["forget_bias"], "horizon": [10, 100], "gain": [0.0], "input_std": [0.0],
     "path": ["cell"], "n_hidden": [4], "ensemble": [2], "steps": [100], "warmup": [5]},
    {"part": ["forget_bias"], "horizon": [10, 100], "gain": [0.0, 1.0], "input_std": [1.0],
     "path": ["cell"], "n_hidden": [8], "ensemble": [8], "steps": [500], "warmup": [50]},
]


# ------------------------------------------------------------------------------------------
# theory
def finite_n_exponent(g, sigma_in, n=None):
    """(1/2) log chi_1 minus the Jensen gap r/4 (if n), and r = (3 mu_2/chi_1^2 - 1)/N."""
    chi1 = mean_field_chi1(g, "tanh", sigma_in=sigma_in)
    if n is None:
        return 0.5 * math.log(chi1), 0.0
    q = mean_field_q_star(g, "tanh", sigma_in=sigma_in)
    r = (3.0 * mu2(g, "tanh", q) / chi1**2 - 1.0) / n
    return 0.5 * math.log(chi1) - r / 4.0, r


@functools.lru_cache(maxsize=None)
def edge_gain(sigma_in, n=None):
    """The gain with (finite-N) mean-field exponent 0; (g, r at g)."""
    if n is None and sigma_in == 0:
        return 1.0, 0.0
    g = brentq(lambda g: finite_n_exponent(g, sigma_in, n)[0], 0.3, 10.0, xtol=1e-13)
    return float(g), finite_n_exponent(g, sigma_in, n)[1]


_GH = np.polynomial.hermite_e.hermegauss(120)


def zero_weight_bias(horizon, input_std):
    """b with E log sigma(b + input_std z) = -1/H (logit(e^(-1/H)) without input)."""
    if input_std == 0:
        return float(logit(math.exp(-1.0 / horizon)))
    z, w = _GH
    w = w / w.sum()
    f = lambda b: float(np.sum(w * -np.logaddexp(0.0, -(b + input_std * z)))) + 1.0 / horizon  # noqa: E731
    return float(brentq(f, -20.0, 40.0, xtol=1e-13))


# ------------------------------------------------------------------------------------------
def simulate(config, rng):
    part = config["part"]
    common = dict(ensemble=config["ensemble"], steps=config["steps"], warmup=config["warmup"], rng=rng)
    if part == "gain":
        found = critical_init("rnn", config["n_hidden"], input_std=config["input_std"],
                              weights=config["weights"], **common)
        g_inf, _ = edge_gain(config["input_std"])
        g_n, r = edge_gain(config["input_std"], config["n_hidden"])
        theory = {"theory_value": g_inf, "theory_finite_n": g_n,
                  "theory_allowance": r**2 / abs(found.slope), "chrono": math.nan,
                  "zero_weight_no_input": math.nan}
    else:
        found = critical_init("lstm", config["n_hidden"], parameter="forget_bias",
                              horizon=config["horizon"], gain=config["gain"],
                              input_std=config["input_std"], path=config["path"], **common)
        zero = zero_weight_bias(config["horizon"], config["input_std"])
        theory = {"theory_value": zero if config["gain"] == 0 else math.nan,
                  "theory_finite_n": math.nan, "theory_allowance": 0.0,
                  "chrono": chrono_forget_bias(config["horizon"]),
                  "zero_weight_no_input": zero_weight_bias(config["horizon"], 0.0)}
    return [{
        "value": found.value, "value_stderr": found.stderr, "exponent": found.exponent,
        "exponent_stderr": found.exponent_stderr, "slope": found.slope, "target": found.target,
        "n_evaluations": found.n_evaluations, "start": found.evaluations[0][0],
        "critical_init_mean_field": math.nan if found.mean_field is None else found.mean_field,
        **theory,
    }]


# ------------------------------------------------------------------------------------------
def _gain_rows(frame, weights):
    part = frame[(frame.part == "gain") & (frame.weights == weights)]
    return part.sort_values("input_std")


def _forget_rows(frame, gain, input_std, path):
    part = frame[(frame.part == "forget_bias") & (frame.gain == gain) & (frame.input_std == input_std)
                 & (frame.path == path)]
    return part.sort_values("horizon")


def plot(frame):
    fig, axes = new_figure(ncols=2, width=4.6, height=3.7)
    ax = axes.flat[0]
    gains = frame[frame.part == "gain"]
    if len(gains):
        s = np.linspace(0.0, max(2.0, float(gains.input_std.max())), 60)
        ax.plot(s, [edge_gain(float(x))[0] for x in s], color="0.2", ls="--",
                label=r"mean field $\chi_1 = 1$ ($N = \infty$)")
        sizes = sorted(int(n) for n in gains.n_hidden.unique())
        for j, n in enumerate(sizes):
            ax.plot(s, [edge_gain(float(x), n)[0] for x in s], color=PALETTE[j % len(PALETTE)], ls=":",
                    lw=1.0, label=f"finite-N mean field, N={n}")
        for i, ((weights, n), part) in enumerate(gains.groupby(["weights", "n_hidden"], sort=True)):
            part = part.sort_values("input_std")
            color = PALETTE[sizes.index(int(n)) % len(PALETTE)]
            ax.errorbar(part.input_std, part.value, yerr=part.value_stderr, color=color,
                        marker="o" if weights == "tied" else "D", mfc=color if weights == "tied" else "none",
                        ms=4 if weights == "tied" else 6, ls="none", capsize=2,
                        label=f"critical_init, tanh RNN N={int(n)}, {weights}, B={int(part.ensemble.iloc[0])}")
        ax.set_xlabel("input std per unit $\\sigma_{in}$")
        ax.set_ylabel("critical gain $g$ ($\\lambda_1 = 0$; W entries N(0, $g^2/N$))")
        ax.set_title("edge of chaos against input noise", fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    ax = axes.flat[1]
    forget = frame[frame.part == "forget_bias"]
    if len(forget):
        h = np.geomspace(float(forget.horizon.min()), float(forget.horizon.max()), 80)
        ax.plot(h, [zero_weight_bias(x, 0.0) for x in h], color="0.2", ls="--",
                label=r"zero weights: $\log\sigma(b_f) = -1/H$")
        ax.plot(h, [chrono_forget_bias(x) for x in h], color="0.5", ls="-.", lw=1.0,
                label=r"chrono $\log(H - 1)$")
        if (forget.input_std > 0).any():
            s = float(forget.input_std[forget.input_std > 0].iloc[0])
            ax.plot(h, [zero_weight_bias(x, s) for x in h], color="0.2", ls=":", lw=1.0,
                    label=rf"zero weights: $E\log\sigma(b_f + {s:g} z) = -1/H$")
        keys = ["gain", "input_std", "path", "n_hidden"]
        for i, (key, part) in enumerate(forget.groupby(keys, sort=True)):
            part = part.sort_values("horizon")
            gain, s, path, n = key
            ax.errorbar(part.horizon, part.value, yerr=part.value_stderr, color=PALETTE[(i + 2) % len(PALETTE)],
                        marker="o^sv"[i % 4], ms=4, ls="-", lw=0.6, capsize=2,
                        label=f"LSTM N={int(n)}, gain {gain:g}, input std {s:g}, {path} path")
        ax.set_xscale("log")
        ax.set_xlabel("horizon H (target exponent $-1/H$)")
        ax.set_ylabel("critical forget bias $b_f$")
        ax.set_title("forget bias against horizon", fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    return fig


def _agree(part, theory_column):
    dev = np.abs(part.value - part[theory_column])
    return dev <= Z * part.value_stderr + part.theory_allowance + 1e-9 * np.abs(part[theory_column])


def summarize(frame):
    out = {}
    notes = []
    # --- gain
    gains = frame[frame.part == "gain"]
    for (weights, n), part in gains.groupby(["weights", "n_hidden"], sort=True):
        part = part.sort_values("input_std")
        n = int(n)
        for _, row in part.iterrows():
            s = row.input_std
            out[f"critical gain, {weights} N = {n}, input std {s:g}"] = Estimate(row.value, row.value_stderr,
                                                                                int(row.ensemble))
            out[f"mean-field edge chi_1 = 1, input std {s:g}"] = Exact(row.theory_value)
            out[f"finite-N mean-field edge, N = {n}, input std {s:g}"] = Exact(row.theory_finite_n)
        agree = rate_of(_agree(part, "theory_finite_n"))
        out[f"agreement with the finite-N mean-field edge, {weights} N = {n}"] = agree
        z = (part.value - part.theory_finite_n) / part.value_stderr
        out[f"largest |measured - finite-N edge|, {weights} N = {n}"] = extreme_estimate(
            np.abs(part.value - part.theory_finite_n), part.value_stderr)
        shift = part.theory_finite_n - part.theory_value
        notes.append(
            f"Critical gain of the tanh RNN ({weights}, N = {n}, B = {int(part.ensemble.iloc[0])}): "
            + "; ".join(f"input std {r.input_std:g}: {r.value:.3f} ± {r.value_stderr:.1g} (mean field "
                        f"{r.theory_value:.3f}, finite-N {r.theory_finite_n:.3f})" for r in part.itertuples())
            + f". Within 4 s.e. + O(r^2) of the finite-N mean-field edge in {agree.successes} of "
            f"{agree.trials} (largest |z| {float(np.max(np.abs(z))):.1f}); the finite-N shift above the "
            f"N = inf edge is {float(shift.min()):.3f}-{float(shift.max()):.3f}."
        )
    # The finite-N shift scales as 1/N: its measured ratio between the two tied sizes.
    tied = gains[(gains.weights == "tied") & (gains.input_std == 1.0)].sort_values("n_hidden")
    if len(tied) >= 2:
        small, large = tied.iloc[0], tied.iloc[-1]
        d1, d2 = small.value - small.theory_value, large.value - large.theory_value
        ratio = d1 / d2
        se = abs(ratio) * math.hypot(small.value_stderr / d1, large.value_stderr / d2)
        key = f"N = {int(small.n_hidden)} / N = {int(large.n_hidden)}"
        out[f"measured shift above chi_1 = 1 ratio, {key}, input std 1"] = Estimate(ratio, se, 2)
        out[f"finite-N theory shift ratio, {key}, input std 1"] = Exact(
            (small.theory_finite_n - small.theory_value) / (large.theory_finite_n - large.theory_value))
        notes.append(
            f"At input std 1 the edge's shift above chi_1 = 1 is {d1:.3f} ± {small.value_stderr:.1g} at "
            f"N = {int(small.n_hidden)} and {d2:.3f} ± {large.value_stderr:.1g} at N = {int(large.n_hidden)}: "
            f"ratio {ratio:.2f} ± {se:.1g} (finite-N theory "
            f"{float(out[f'finite-N theory shift ratio, {key}, input std 1']):.2f}; 1/N scaling gives "
            f"{large.n_hidden / small.n_hidden:.0f})."
        )
    driven = frame[(frame.part == "gain") & (frame.input_std > 0)]
    if len(driven):
        above = rate_of(driven.value - Z * driven.value_stderr > 1.0)
        out["input moves the critical gain above 1 (by 4 s.e.)"] = above
    # --- forget bias
    exact = _forget_rows(frame, 0.0, 0.0, "cell")
    if len(exact):
        out["max |critical b_f - logit(e^(-1/H))|, zero weights, no input"] = Exact(
            float(np.max(np.abs(exact.value - exact.theory_value))), rtol=0.0, atol=1e-7)
        gap = exact.theory_value - exact.chrono  # closed forms: logit(e^(-1/H)) - log(H - 1)
        out["max |logit(e^(-1/H)) - chrono log(H - 1)| over H >= 10"] = Exact(
            float(np.max(np.abs(gap[exact.horizon >= 10]))) if (exact.horizon >= 10).any() else math.nan)
        notes.append(
            "LSTM at zero weights without input: the critical forget bias equals logit(e^(-1/H)) "
            f"(to {float(np.max(np.abs(exact.value - exact.theory_value))):.1e}), which exceeds chrono's "
            f"log(H - 1) by {float(gap.min()):.3f}-{float(gap.max()):.3f} over H = "
            f"{int(exact.horizon.min())}-{int(exact.horizon.max())} (log((H - 1/2)/(H - 1)) ~ 1/(2H))."
        )
    noisy = _forget_rows(frame, 0.0, 1.0, "cell")
    if len(noisy):
        below = rate_of(noisy.value <= noisy.theory_value + Z * noisy.value_stderr)
        out["zero weights, input std 1: critical b_f at or below the zero-weight theory (4 s.e.)"] = below
        lift = noisy.theory_value - noisy.zero_weight_no_input
        notes.append(
            f"With input std 1 at zero weights the theory's bias is higher by {float(lift.min()):.2f}-"
            f"{float(lift.max()):.2f} (E log sigma(b + z) < log sigma(b)); the measured N = "
            f"{int(noisy.n_hidden.iloc[0])} root is at or below it (the top exponent is the fastest "
            f"unit's) in {below.successes} of {below.trials}, by up to "
            f"{float(np.max(noisy.theory_value - noisy.value)):.2f}."
        )
    for path in ("cell", "full"):
        part = _forget_rows(frame, 1.0, 1.0, path)
        if part.empty:
            continue
        for _, row in part.iterrows():
            out[f"critical b_f, gain 1, input std 1, {path} path, H = {int(row.horizon)}"] = Estimate(
                row.value, row.value_stderr, int(row.ensemble))
        # The slope of b_f against log H: 1 for the zero-weight law log(H - 1/2).
        long = part[part.horizon >= 20]
        if len(long) >= 2:
            x, y, w = np.log(long.horizon), long.value, 1.0 / long.value_stderr**2
            xb, yb = np.average(x, weights=w), np.average(y, weights=w)
            sxx = float(np.sum(w * (x - xb) ** 2))
            slope = float(np.sum(w * (x - xb) * (y - yb)) / sxx)
            out[f"d b_f / d log H (H >= 20), gain 1, {path} path"] = Estimate(slope, math.sqrt(1.0 / sxx), len(long))
        dev = part.value - part.zero_weight_no_input
        notes.append(
            f"Gain 1 (make_cell's Gaussian blocks), input std 1, {path} path: the critical forget bias is "
            f"{float(dev.min()):+.2f} to {float(dev.max()):+.2f} from the zero-weight logit(e^(-1/H)) over "
            f"H = {int(part.horizon.min())}-{int(part.horizon.max())}."
        )
    out["notes"] = " ".join(notes)
    return out


STUDY = Study(
    name="critical_init",
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
