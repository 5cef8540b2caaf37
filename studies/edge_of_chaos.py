"""Where is the edge of chaos of a random tanh RNN, and does the measured top Lyapunov exponent follow the mean-field (1/2) log chi_1 over gain and input noise?

THEORY.md section 5 (Poole et al. 2016; Molgedey, Schuchhardt & Schuster 1992): for
a' = W tanh(a) + noise with W_ij ~ N(0, g^2/N) and per-unit noise variance sigma_in^2, the
pre-activation variance settles at q* = g^2 E tanh(sqrt(q*) z)^2 + sigma_in^2, the gradient
multiplier is chi_1 = g^2 E sech^4(sqrt(q*) z), and at large N the top Lyapunov exponent is
lambda_1 = (1/2) log chi_1: ordered (vanishing gradients) for chi_1 < 1, chaotic (exploding)
for chi_1 > 1. Without input the edge chi_1 = 1 is at g = 1; input noise pushes it up.

gradsim's RNN is h_t = tanh(W h_{t-1} + U x_t), not the theory's form. The two are the same
dynamics seen through different variables: the pre-activation a_t = W h_{t-1} + U x_t obeys
a_{t+1} = W tanh(a_t) + U x_{t+1}, exactly the theory's recurrence with noise U x. Their
Jacobian products differ only by one factor at the ends (W (D_T W ... D_1 W) =
(W D_T) ... (W D_1) W with D_t = diag(tanh'(a_t))), so the Lyapunov exponents are equal and
the RNN is simulated as it is. The noise has per-unit variance exactly sigma_in^2, independent
across units and steps, as the theory assumes: U = sigma_in I (n_input = N) and
x_t ~ N(0, I_N). No bias (sigma_b = 0).

Measured: the top exponent by the QR method (k = 1, after a warm-up) of one tied network per
(g, sigma_in), from a random N(0, 1) initial state. Also recorded: log rho(W), the exact rate
of the noiseless network while its state sits at the fixed point 0 (g < 1). The measured edge is
where the measured exponent first crosses 0 (linear interpolation in g); the theory's edge is
the root of chi_1(g) = 1. Finite tied networks reach the mean-field value slowly from below in
the chaotic phase (gradsim.theory.mean_field_lyapunov: about 0.054 at N = 400 instead of 0.065
at g = 1.5 without input).

What the key numbers can be trusted to: the measured exponents are estimates (a chaotic
trajectory decorrelates from rounding alone on another machine) with their block standard
errors. The measured edge gain carries a parametric-bootstrap standard error: the rates are
redrawn from N(rate, s.e.^2) at every gain and the first crossing is found again. (Propagating
s.e.(lambda) / |d lambda / d g| through the crossing's two points would miss that near the
noiseless edge lambda_1 is 0 within its noise at several gains, so the first crossing can jump
between intervals.) A max over configurations is (max, the largest standard error among the
configurations within Z_AGREE standard errors of it); the mean over the chaotic configurations
has the standard error of a mean over them; the sign agreement is a rate over configurations.
The theory (mean field, its edge, log rho(W) of the drawn W) is exact.
"""

import functools

import numpy as np
from scipy.optimize import brentq

from gradsim import RNN, Estimate, gaussian, lyapunov_spectrum, mean_estimate, rate_of
from gradsim.workflow.findings import extreme_estimate
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study
from gradsim.theory import mean_field_chi1, mean_field_lyapunov, mean_field_q_star

# Dense where the edges are (1, 1.55 and 1.86 for input std 0, 0.5 and 1).
GAINS = [0.5, 0.7, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2, 2.5]
GRID = {"sigma_in": [0.0, 0.5, 1.0], "gain": GAINS, "n_hidden": [256], "horizon": [1700],
        "warmup": [200]}
QUICK_GRID = {"sigma_in": [0.0, 1.0], "gain": [0.5, 1.0, 2.0, 2.5], "n_hidden": [100],
              "horizon": [600], "warmup": [100]}
# |mean-field lambda_1| beyond which the measured sign is compared with the theory's; without
# input, 0 < mean field <= NEAR is "just above the edge".
NEAR = 0.05
# Parametric bootstrap of the measured edge: draws, and the fixed seed that keeps summarize a
# function of the CSV alone.
EDGE_DRAWS = 4000
EDGE_SEED = 0


@functools.lru_cache(maxsize=None)
def theory_edge(sigma_in):
    """The gain where chi_1 = 1 (mean field), for tanh without bias."""
    if sigma_in == 0:
        return 1.0
    return float(brentq(lambda g: mean_field_chi1(g, "tanh", sigma_in=sigma_in) - 1.0,
                        0.5, 10.0, xtol=1e-12))


def simulate(config, rng):
    """One record: measured top exponent, the mean-field prediction and log rho(W)."""
    n, horizon, sigma_in, gain = (config["n_hidden"], config["horizon"], config["sigma_in"],
                                  config["gain"])
    weight = gaussian(n, gain, rng)
    if sigma_in > 0:
        cell = RNN(weight, weight_ih=sigma_in * np.eye(n), activation="tanh")
        inputs = rng.standard_normal((horizon, n))
    else:
        cell = RNN(weight, activation="tanh")
        inputs = horizon
    state0 = rng.standard_normal(n)
    spectrum = lyapunov_spectrum(cell, inputs, state0=state0, k=1, warmup=config["warmup"])
    return [{
        "rate": float(spectrum.exponents[0]),
        "rate_stderr": float(spectrum.stderr[0]),
        "theory_rate": mean_field_lyapunov(gain, "tanh", sigma_in=sigma_in),
        "theory_chi1": mean_field_chi1(gain, "tanh", sigma_in=sigma_in),
        "theory_q_star": mean_field_q_star(gain, "tanh", sigma_in=sigma_in),
        "theory_edge_gain": theory_edge(sigma_in),
        "log_spectral_radius": float(np.log(np.max(np.abs(np.linalg.eigvals(weight))))),
    }]


def _theory_curve(gains, sigma_in):
    """mean_field_lyapunov over a fine gain grid, for the figure."""
    return [mean_field_lyapunov(g, "tanh", sigma_in=sigma_in) for g in gains]


def measured_edge(gains, rates):
    """First gain where the rate crosses from < 0 to >= 0 (linear interpolation); NaN if none.

    ``rates`` may carry leading dimensions (one edge per row of rates over ``gains``)."""
    order = np.argsort(gains)
    g = np.asarray(gains, float)[order]
    r = np.asarray(rates, float)[..., order]
    crosses = (r[..., :-1] < 0) & (r[..., 1:] >= 0)
    i = np.argmax(crosses, axis=-1)[..., None]
    r0, r1 = (np.take_along_axis(r, i, axis=-1)[..., 0],
              np.take_along_axis(r, i + 1, axis=-1)[..., 0])
    g0, g1 = g[i[..., 0]], g[i[..., 0] + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        edge = np.where(np.any(crosses, axis=-1), g0 - r0 * (g1 - g0) / (r1 - r0), np.nan)
    return float(edge) if edge.ndim == 0 else edge


def edge_estimate(gains, rates, stderrs):
    """:func:`measured_edge` with its parametric-bootstrap standard error (see the module
    docstring); the standard error is over the draws that cross at all."""
    gains, rates, stderrs = (np.asarray(x, float) for x in (gains, rates, stderrs))
    edge = measured_edge(gains, rates)
    if not np.isfinite(edge):
        return Estimate(edge, np.nan)
    rng = np.random.default_rng(EDGE_SEED)
    draws = rates + stderrs * rng.standard_normal((EDGE_DRAWS, len(rates)))
    edges = measured_edge(gains, draws)
    edges = edges[np.isfinite(edges)]
    return Estimate(edge, float(np.std(edges, ddof=1)) if len(edges) > 1 else np.nan,
                    len(gains))


def _extreme(values, stderrs, largest=True):
    """The max (or min) over configurations, with its standard error (see extreme_estimate)."""
    return extreme_estimate(values, stderrs, largest)


def plot(frame):
    fig, axes = new_figure(ncols=2, width=4.4, height=3.6)
    n = int(frame.n_hidden.iloc[0])
    for i, (sigma, part) in enumerate(frame.groupby("sigma_in", sort=True)):
        part = part.sort_values("gain")
        color = PALETTE[i]
        g = np.linspace(part.gain.min(), part.gain.max(), 120)
        theory = _theory_curve(g, sigma)
        for ax in axes.flat:
            ax.plot(g, theory, color=color, ls="--", lw=1.1)
            ax.errorbar(part.gain, part.rate, yerr=part.rate_stderr, color=color, ls="none",
                        marker="os^"[i % 3], ms=4, capsize=2,
                        label=f"tanh RNN N={n}, Gaussian gain g, input std {sigma:g}")
            ax.axvline(part.theory_edge_gain.iloc[0], color=color, lw=0.8, ls=":")
    # log rho(W) is the noiseless rate only where the state falls to the fixed point 0 (g < 1).
    none = frame[(frame.sigma_in == 0) & (frame.gain < 1)].sort_values("gain")
    for ax in axes.flat:
        ax.plot([], [], color="0.3", ls="--", label=r"mean field $\frac{1}{2}\log\chi_1$")
        ax.plot([], [], color="0.3", ls=":", label=r"theory edge $\chi_1 = 1$")
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_xlabel("recurrent gain $g$ (W entries N(0, $g^2/N$))")
        ax.set_ylabel(r"top Lyapunov exponent $\lambda_1$ (per step, natural log)")
    if not none.empty:
        axes.flat[0].plot(none.gain, none.log_spectral_radius, color="0.5", lw=0.8, marker="x",
                          ms=4, ls="none", label=r"$\log\rho(W)$, exact for input std 0, $g<1$")
    axes.flat[0].set_title("tied tanh RNN, all gains", fontsize=9)
    axes.flat[0].legend(fontsize=6, loc="lower right")
    ax = axes.flat[1]
    ax.set_title("near the edge", fontsize=9)
    ax.set_ylim(-0.3, 0.3)
    ax.set_xlim(0.8, frame.gain.max() + 0.05)
    return fig


def summarize(frame):
    out = {}
    gaps = []
    for sigma, part in frame.groupby("sigma_in", sort=True):
        edge = edge_estimate(part.gain, part.rate, part.rate_stderr)
        theory = float(part.theory_edge_gain.iloc[0])
        out[f"edge gain, measured, input std {sigma:g}"] = edge
        out[f"edge gain, theory chi_1 = 1, input std {sigma:g}"] = theory
        gaps.append((sigma, edge, theory))
    away = frame[np.abs(frame.theory_rate) > NEAR]
    agree = rate_of(np.sign(away.rate) == np.sign(away.theory_rate))
    out[f"sign agreement where |theory| > {NEAR:g}"] = agree
    driven = frame[frame.sigma_in > 0]
    ordered = driven[driven.theory_rate < -NEAR]
    chaotic = frame[frame.theory_rate > NEAR]
    out["max |measured - theory|, ordered, input std > 0"] = _extreme(
        np.abs(ordered.rate - ordered.theory_rate), ordered.rate_stderr)
    quiet = frame[(frame.sigma_in == 0) & (frame.gain < 1)]
    out["max |measured - log rho(W)|, input std 0, g < 1"] = _extreme(
        np.abs(quiet.rate - quiet.log_spectral_radius), quiet.rate_stderr)
    out["max |log rho(W) - log g|, g < 1 (finite-N spectral radius)"] = float(
        np.max(np.abs(quiet.log_spectral_radius - np.log(quiet.gain))))
    # A mean over the chaotic configurations, with the standard error of a mean over them
    # (their spread includes each exponent's own noise).
    out[f"mean (measured - theory), chaotic (theory > {NEAR:g})"] = mean_estimate(
        chaotic.rate - chaotic.theory_rate)

    edges = "; ".join(f"input std {s:g}: {float(e):.2f} ± {e.stderr:.1g} measured vs {t:.2f} "
                      f"theory" for s, e, t in gaps)
    driven_edges = [e for s, e, t in gaps if s > 0]
    above = all(float(e) - 2 * e.stderr > 1 for e in driven_edges)
    moved = ("Input noise moves the edge above g = 1 (by more than 2 standard errors), as "
             "mean-field theory predicts. " if driven_edges and above else
             "The measured edges with input are not all above g = 1 by more than 2 standard "
             "errors. " if driven_edges else "")
    low, high = agree.interval()
    ordered_max = out["max |measured - theory|, ordered, input std > 0"]
    chaotic_mean = out[f"mean (measured - theory), chaotic (theory > {NEAR:g})"]
    below = -float(chaotic_mean)
    if below > 2 * chaotic_mean.stderr:
        chaotic_text = (f"in the chaotic phase it is on average {below:.3f} ± "
                        f"{chaotic_mean.stderr:.1g} below it (finite N, tied weights). ")
    else:
        chaotic_text = (f"in the chaotic phase it differs from it on average by "
                        f"{float(chaotic_mean):+.3f} ± {chaotic_mean.stderr:.1g}, within the "
                        f"noise. ")
    quiet_gap = out["max |measured - log rho(W)|, input std 0, g < 1"]
    near = frame[(frame.sigma_in == 0) & (frame.theory_rate > 0)
                 & (frame.theory_rate <= NEAR)].sort_values("gain")
    flat_text = ""
    if len(near):
        near_max = _extreme(near.rate, near.rate_stderr)
        deficit = (near.theory_rate - near.rate) / near.rate_stderr
        flat_text = (
            f"Without input the N = {int(frame.n_hidden.iloc[0])} network is "
            + ("much less chaotic than mean field " if deficit.min() > 2 else "")
            + f"just above g = 1: where mean field gives 0 < lambda_1 <= "
            f"{NEAR:g} (g = {near.gain.min():g}-{near.gain.max():g}), the measured lambda_1 is "
            f"at most {float(near_max):.4f} ± {near_max.stderr:.1g}, "
            + (f"below the mean-field value by at least {deficit.min():.0f} standard errors at "
               "every such gain " if deficit.min() > 2 else
               f"more than 2 standard errors below the mean-field value at "
               f"{int(np.sum(deficit > 2))} of {len(deficit)} such gains ")
            + "(periodic or quasi-periodic attractors with lambda_1 near 0 or below it: a "
            "finite-N effect), which blurs the noiseless edge. ")
    if len(quiet):
        flat_text += (
            f"Below g = 1 without input the state falls to 0 and lambda_1 = log rho(W) (to "
            f"{float(quiet_gap):.1e}, "
            + ("within its standard errors" if float(quiet_gap) < 2 * quiet_gap.stderr else
               f"block standard errors up to {quiet_gap.stderr:.0e}")
            + f"), which exceeds log g by up to "
            f"{out['max |log rho(W) - log g|, g < 1 (finite-N spectral radius)']:.3f} at this N.")
    out["notes"] = (
        f"Edge of chaos (gain where lambda_1 crosses 0) - {edges}. " + moved +
        f"Away from the edge (|theory| > {NEAR:g}) the measured sign agrees with the theory in "
        f"{agree.successes} of {agree.trials} cases (95% CI {low:.2f}-{high:.2f}); with input, "
        f"the ordered-phase exponent is within {float(ordered_max):.3f} ± "
        f"{ordered_max.stderr:.1g} of (1/2) log chi_1; " + chaotic_text + flat_text
    )
    return out


STUDY = Study(
    name="edge_of_chaos",
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
