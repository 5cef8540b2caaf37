"""Do gradsim's spectra of the random rate network, extrapolated in 1/N, reproduce D. G. Clark's published N = 4096 numbers (lambda_1, positive fraction, h/N, D_KY/N at g = 2, 3, 5)?

Reference: D. G. Clark, rnn-lyapunov (github.com/davidclark1/rnn-lyapunov), as recorded in
``gradsim.bench.rate.CLARK_FLOW``: the flow dx/dt = -x + J tanh(x), J_ij ~ N(0, g^2/N) with the
diagonal J_ii KEPT, classical RK4 at dt = 0.1, N = 4096, the leading 1024 = N/4 exponents,
t_obs = 2000 time units, QR every 5 steps, seed 0; per gain g in {2, 3, 5}: lambda_1 per unit
time, the positive fraction #{lambda_i > 0}/N, the entropy rate h/N (sum of the positive
exponents per unit time, per unit) and the Kaplan-Yorke dimension D_KY/N. Those are one network
at one N, given without an uncertainty.

Here the same network law and integrator (``make_cell("rate", N, 0, init="gaussian", gain=g,
dt=0.1, integrator="rk4", zero_diagonal=False)``, zero input) at N in {64, 128, 256, 512}
(one core cannot afford N = 4096: a tangent step of k = N/4 columns costs ~ N^3 / 2 flops),
more seeds at small N where a network is cheap and its numbers vary more (6, 4, 2, 1). Each
configuration draws its network and x0 ~ N(0, I) from its own generator, runs the state alone
through ``burn`` time units (x = 0 is an unstable fixed point; the burn-in reaches the
attractor), then measures the leading k = N/4 exponents by the QR method
(``gs.lyapunov_spectrum(cell, steps, x, k=N//4, warmup=...)``, its own adaptive QR schedule, 20
blocks) over ``t_obs`` time units after ``warmup`` time units of frame warm-up. Per unit time =
per step / dt.

Records (one row per configuration): ``lambda1_per_unit_time`` and its block standard error;
``positive_fraction`` (gs.positive_fraction(exps, n=N)), ``n_positive`` (its numerator);
``entropy_per_unit_time_over_n`` (gs.entropy_rate(exps, n=N) / dt / N); ``dky_over_n``
(gs.kaplan_yorke_dimension(exps, n=N) / N), each with a block-bootstrap standard error
(gs.spectrum_observables(result, n=N)); ``k_suffices``: whether the leading k exponents hold
the crossing of the cumulative sum below zero (then D_KY, h and the positive fraction are those
of the full spectrum; if not, kaplan_yorke_dimension returns NaN for the partial spectrum and
D_KY/N >= k/N is all that is known: ``dky_lower_bound_over_n`` = k/N is recorded then);
``mean_exponent_per_unit_time`` (mean of the k leading exponents) and ``smallest_per_unit_time``.

Summary, per g: at each N the mean over seeds. Its standard error is the larger of the spread
over seeds (s / sqrt(S), network-to-network and time noise) and the seeds' block standard errors
combined (sqrt(sum s.e.^2) / S, time noise only): with 2 seeds the spread has one degree of
freedom and can come out small by luck, so it alone would overweight that N in the fit (the
combined block error is a floor that is itself honest). With one seed it is the block s.e.
A positive fraction's block s.e. can be 0 (no exponent near 0 moves in the bootstrap); its floor
is the quantisation 1/(N sqrt 12), the s.e. of rounding to a multiple of 1/N. The finite-size
trend is the weighted least-squares fit value = a + b/N (weights 1/s.e.^2) over the N values;
the parameter covariance is (X^T W X)^-1, scaled by chi^2/dof when that exceeds 1 (the Birge
ratio: the scatter around the line is larger than the error bars say). The fit's value at
N = 4096, a + b/4096, with its standard error, is set beside Clark's number: the difference in
standard errors and relative to Clark's value. The mean-field lambda_1 of the flow
(gs.continuous_time_max_exponent_dmft(g), N -> infinity) is a further reference.

What the key numbers can be trusted to: every measured number is an estimate from chaotic
trajectories (Estimate with its standard error); Clark's numbers and the mean field are exact
references (Exact), Clark's being one seed whose own seed-to-seed spread at N = 4096 is unknown
(comparable, by the trend of the spreads here, to a fraction of the extrapolation's s.e.). The
extrapolation assumes the 1/N law holds from N = 64 to 4096, 8x beyond the largest N measured.
"""

import numpy as np

import gradsim as gs
from gradsim import Estimate, Exact, rate_of
from gradsim.bench.rate import CLARK_FLOW, DT
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study

CLARK_N = 4096
GAINS = [2.0, 3.0, 5.0]
# Seeds per N: more where a network is cheap and its numbers spread more. t_obs, burn-in and
# frame warm-up in time units (dt = 0.1: 10 steps per unit). Full grid measured at ~4.5 min of
# one core (4 min 39 s user time; N = 512: ~60 s per gain).
_COMMON = {"t_obs": [1000.0], "burn": [200.0], "warmup": [100.0]}
GRID = [
    {"gain": GAINS, "n_hidden": [64], "seed": list(range(6)), **_COMMON},
    {"gain": GAINS, "n_hidden": [128], "seed": list(range(4)), **_COMMON},
    {"gain": GAINS, "n_hidden": [256], "seed": list(range(2)), **_COMMON},
    {"gain": GAINS, "n_hidden": [512], "seed": [0], **_COMMON},
]
QUICK_GRID = [
    {"gain": GAINS, "n_hidden": [16, 32], "seed": [0, 1], "t_obs": [100.0], "burn": [50.0],
     "warmup": [20.0]},
]

OBSERVABLES = {
    # column -> (label, index in CLARK_FLOW's tuples)
    "lambda1_per_unit_time": ("lambda_1 per unit time", 0),
    "positive_fraction": ("positive fraction", 1),
    "entropy_per_unit_time_over_n": ("h/N per unit time", 2),
    "dky_over_n": ("D_KY/N", 3),
}
# A difference from Clark's number is called a disagreement beyond this many standard errors.
Z_AGREE = 2.0


def simulate(config, rng):
    """One record: the leading N/4 exponents' observables of one network."""
    n, gain = int(config["n_hidden"]), float(config["gain"])
    k = n // 4
    if k < 1:
        raise ValueError(f"`n_hidden` must be >= 4 (k = N/4 exponents); got {n}.")
    cell = gs.make_cell("rate", n, 0, init="gaussian", gain=gain, dt=DT, integrator="rk4",
                        zero_diagonal=False, rng=rng)
    x0 = rng.standard_normal(n)
    state = gs.unroll(cell, round(config["burn"] / DT), x0)[-1]
    steps = round(config["t_obs"] / DT)
    warmup = round(config["warmup"] / DT)
    result = gs.lyapunov_spectrum(cell, steps, state, k=k, warmup=warmup)
    e = np.asarray(result.exponents, float)  # per step, descending
    obs = gs.spectrum_observables(result, n=n)
    dky = float(obs.kaplan_yorke_dimension)
    suffices = bool(np.isfinite(dky))
    return [{
        "k": k,
        "steps": steps,
        "lambda1_per_unit_time": float(e[0] / DT),
        "lambda1_per_unit_time_stderr": float(result.stderr[0] / DT),
        "n_positive": int(np.sum(e > 0)),
        "positive_fraction": float(obs.positive_fraction),
        "positive_fraction_stderr": float(obs.positive_fraction_stderr),
        "entropy_per_unit_time_over_n": float(obs.entropy_rate) / DT / n,
        "entropy_per_unit_time_over_n_stderr": float(obs.entropy_rate_stderr) / DT / n,
        "dky_over_n": dky / n,
        "dky_over_n_stderr": float(obs.kaplan_yorke_dimension_stderr) / n,
        "k_suffices": suffices,
        "dky_lower_bound_over_n": dky / n if suffices else k / n,
        "mean_exponent_per_unit_time": float(np.mean(e) / DT),
        "smallest_per_unit_time": float(e[-1] / DT),
        "theory_lambda1_dmft": float(gs.continuous_time_max_exponent_dmft(gain)),
    }]


# -- summary helpers (functions of the CSV alone) --------------------------------------------
def _stderr_floor(column, n):
    """The least standard error a value of ``column`` at size ``n`` is given (see docstring)."""
    return 1.0 / (n * np.sqrt(12.0)) if column == "positive_fraction" else 0.0


def per_size(part, column):
    """{N: Estimate} of ``column`` over the seeds of one gain (see the module docstring)."""
    out = {}
    for n, rows in part.groupby("n_hidden", sort=True):
        values = rows[column].to_numpy(float)
        block = rows[column + "_stderr"].to_numpy(float)
        if not np.all(np.isfinite(values)):
            out[int(n)] = Estimate(np.nan, np.nan, len(values))
            continue
        s = len(values)
        combined = float(np.sqrt(np.sum(block**2)) / s)
        spread = float(np.std(values, ddof=1) / np.sqrt(s)) if s > 1 else 0.0
        stderr = max(combined, spread, _stderr_floor(column, int(n)))
        out[int(n)] = Estimate(float(np.mean(values)), stderr, s)
    return out


def fit_inverse_n(sizes, values, stderrs):
    """Weighted least squares value = a + b/N; returns (coef, cov, chi2, dof).

    ``cov`` is (X^T W X)^-1, scaled by chi^2/dof when that exceeds 1 (Birge ratio)."""
    sizes, values, stderrs = (np.asarray(x, float) for x in (sizes, values, stderrs))
    if len(sizes) < 2 or np.any(~np.isfinite(values)) or np.any(~(stderrs > 0)):
        return np.full(2, np.nan), np.full((2, 2), np.nan), np.nan, 0
    x = np.column_stack([np.ones_like(sizes), 1.0 / sizes])
    w = 1.0 / stderrs**2
    cov = np.linalg.inv(x.T @ (w[:, None] * x))
    coef = cov @ (x.T @ (w * values))
    chi2 = float(np.sum(w * (values - x @ coef) ** 2))
    dof = len(sizes) - 2
    if dof > 0 and chi2 / dof > 1:
        cov = cov * (chi2 / dof)
    return coef, cov, chi2, dof


def extrapolate(estimates, n_target=CLARK_N):
    """(Estimate at n_target, slope b, chi2, dof) of the 1/N fit over ``estimates`` {N: Estimate}."""
    sizes = sorted(estimates)
    coef, cov, chi2, dof = fit_inverse_n(sizes, [float(estimates[n]) for n in sizes],
                                         [estimates[n].stderr for n in sizes])
    v = np.array([1.0, 1.0 / n_target])
    value = float(v @ coef)
    stderr = float(np.sqrt(v @ cov @ v)) if np.all(np.isfinite(cov)) else np.nan
    slope = Estimate(float(coef[1]), float(np.sqrt(cov[1, 1])) if np.isfinite(cov[1, 1])
                     else np.nan, len(sizes))
    return Estimate(value, stderr, len(sizes)), slope, chi2, dof


def plot(frame):
    fig, axes = new_figure(ncols=len(OBSERVABLES), width=3.6, height=3.3)
    n_max = frame.n_hidden.max()
    x_line = np.linspace(0.0, 1.0 / frame.n_hidden.min(), 50)
    for j, (column, (label, idx)) in enumerate(OBSERVABLES.items()):
        ax = axes.flat[j]
        for i, (gain, part) in enumerate(frame.groupby("gain", sort=True)):
            color = PALETTE[i % len(PALETTE)]
            est = per_size(part, column)
            sizes = sorted(est)
            ax.errorbar([1.0 / n for n in sizes], [float(est[n]) for n in sizes],
                        yerr=[est[n].stderr for n in sizes], color=color, marker="o", ms=4,
                        ls="none", capsize=2, label=f"g = {gain:g}, N <= {n_max}")
            coef, _, _, _ = fit_inverse_n(sizes, [float(est[n]) for n in sizes],
                                          [est[n].stderr for n in sizes])
            if np.all(np.isfinite(coef)):
                ax.plot(x_line, coef[0] + coef[1] * x_line, color=color, lw=0.9, ls="--")
            if gain in CLARK_FLOW:
                ax.plot([1.0 / CLARK_N], [CLARK_FLOW[gain][idx]], color=color, marker="*",
                        ms=10, mec="k", mew=0.5, ls="none")
            if column == "lambda1_per_unit_time":
                ax.plot([0.0], [part.theory_lambda1_dmft.iloc[0]], color=color, marker="D",
                        ms=5, mfc="none", ls="none")
        ax.set_xlabel("1/N")
        ax.set_ylabel(label)
        ax.set_xlim(left=-0.002)
    ax = axes.flat[0]
    ax.plot([], [], color="0.3", ls="--", label="WLS fit a + b/N")
    ax.plot([], [], color="0.3", marker="*", ls="none", ms=9,
            label=f"Clark, rnn-lyapunov, N = {CLARK_N}")
    ax.plot([], [], color="0.3", marker="D", mfc="none", ls="none", label="mean field (N = inf)")
    ax.legend(fontsize=6, loc="upper right")
    fig.suptitle("Random rate network dx/dt = -x + J tanh(x), J_ii kept, RK4 dt = 0.1, "
                 "leading N/4 exponents", fontsize=9)
    return fig


def summarize(frame):
    out = {}
    n_max = int(frame.n_hidden.max())
    comparisons = []  # (gain, label, fit, clark, z)
    for gain, part in frame.groupby("gain", sort=True):
        for column, (label, idx) in OBSERVABLES.items():
            est = per_size(part, column)
            for n in sorted(est):
                out[f"g={gain:g}: {label}, N={n}"] = est[n]
            fit, slope, chi2, dof = extrapolate(est)
            out[f"g={gain:g}: {label}, 1/N fit at N={CLARK_N}"] = fit
            out[f"g={gain:g}: {label}, 1/N slope b"] = slope
            if gain in CLARK_FLOW:
                clark = float(CLARK_FLOW[gain][idx])
                out[f"g={gain:g}: {label}, Clark N={CLARK_N}"] = Exact(clark)
                z = (float(fit) - clark) / fit.stderr if fit.stderr > 0 else np.nan
                # A z-statistic: one standard error is 1 by construction (another machine's
                # chaotic trajectories move the fit, hence z, by about that much).
                out[f"g={gain:g}: {label}, (fit - Clark) / s.e."] = Estimate(z, 1.0, fit.n)
                out[f"g={gain:g}: {label}, (fit - Clark) / Clark"] = Estimate(
                    (float(fit) - clark) / clark, fit.stderr / abs(clark), fit.n)
                largest = est[max(est)]
                comparisons.append((gain, label, fit, clark, z, largest, chi2, dof))
        out[f"g={gain:g}: lambda_1 mean field (N = inf)"] = Exact(
            float(part.theory_lambda1_dmft.iloc[0]))
    # Counts over chaotic trajectories: rates over the rows (with their Wilson intervals), so
    # that another machine's count is judged within its noise.
    out["rows where the leading N/4 exponents do not hold the D_KY crossing"] = rate_of(
        ~frame.k_suffices.astype(bool))
    # Small networks can settle on a stable fixed point or a limit cycle instead of chaos; they
    # stay in the means (the average over networks of that size), and are counted here: a
    # lambda_1 not above 0 by Z_AGREE block s.e. (a cycle's zero exponent can come out slightly
    # positive and count as one positive exponent).
    quiet = frame[frame.lambda1_per_unit_time
                  <= Z_AGREE * frame.lambda1_per_unit_time_stderr]
    out[f"rows with lambda_1 not above 0 by {Z_AGREE:g} s.e. (not chaotic)"] = rate_of(
        frame.lambda1_per_unit_time <= Z_AGREE * frame.lambda1_per_unit_time_stderr)

    agree = [c for c in comparisons if np.isfinite(c[4]) and abs(c[4]) <= Z_AGREE]
    off = [c for c in comparisons if np.isfinite(c[4]) and abs(c[4]) > Z_AGREE]
    undetermined = [c for c in comparisons if not np.isfinite(c[4])]
    out[f"comparisons within {Z_AGREE:g} s.e. of Clark"] = gs.Rate(
        len(agree), max(1, len(agree) + len(off))) if agree or off else np.nan

    def _describe(c):
        gain, label, fit, clark, z, largest, chi2, dof = c
        fit_quality = f", chi2 {chi2:.1f} on {dof} dof" if dof > 0 else ""
        return (f"g = {gain:g} {label}: fit {float(fit):.4g} ± {fit.stderr:.2g} vs Clark "
                f"{clark:.4g} ({z:+.1f} s.e., {100 * (float(fit) - clark) / clark:+.1f}%; "
                f"N = {n_max} alone {float(largest):.4g} ± {largest.stderr:.2g}{fit_quality})")

    lam = [c for c in comparisons if c[1].startswith("lambda_1")]
    dmft_text = "; ".join(
        f"g = {c[0]:g}: fit {float(c[2]):.4f} ± {c[2].stderr:.2g}, mean field "
        f"{float(out[f'g={c[0]:g}: lambda_1 mean field (N = inf)']):.4f}, Clark {c[3]:.4f}"
        for c in lam)
    missing = out["rows where the leading N/4 exponents do not hold the D_KY crossing"].successes
    out["notes"] = (
        f"The largest N here is {n_max}, {CLARK_N // n_max}x smaller than Clark's {CLARK_N}: "
        f"his numbers are compared with a weighted 1/N fit over N = "
        f"{', '.join(str(int(n)) for n in sorted(frame.n_hidden.unique()))} extrapolated to "
        f"N = {CLARK_N} (an extrapolation {CLARK_N // n_max}x beyond the data, trusting the 1/N "
        f"law). Clark's numbers are one seed at one N without a stated uncertainty, so a "
        f"difference of a few s.e. may also be his network's own spread. "
        f"{len(agree)} of {len(agree) + len(off)} comparisons agree within {Z_AGREE:g} s.e."
        + (f"; they differ by more than {Z_AGREE:g} s.e. in: " + "; ".join(map(_describe, off))
           if off else "") + ". "
        + ("Agreeing: " + "; ".join(map(_describe, agree)) + ". " if agree else "")
        + ("Without a standard error (too few sizes or NaN): "
           + ", ".join(f"g = {c[0]:g} {c[1]}" for c in undetermined) + ". " if undetermined
           else "")
        + f"lambda_1 against the mean field (N = inf): {dmft_text}. "
        + (f"{missing} rows' leading N/4 exponents do not reach the D_KY crossing (D_KY NaN "
           f"there, >= k/N known only). " if missing else
           "In every row the leading N/4 exponents reach the D_KY crossing. ")
        + (f"{len(quiet)} of {len(frame)} networks have lambda_1 not above 0 by {Z_AGREE:g} "
           f"s.e. (a fixed point, a cycle, or chaos too weak to resolve; at N = {', '.join(str(int(n)) for n in sorted(quiet.n_hidden.unique()))}"
           f"); they are kept in the means over networks, which bend the small-N end of the "
           f"1/N fit (hence its chi2)." if len(quiet) else
           f"Every network's lambda_1 is above 0 by more than {Z_AGREE:g} s.e.")
    )
    return out


STUDY = Study(
    name="rate_published",
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
