"""Does the largest singular value of W decide between vanishing and exploding (lecture notes 001_d4c0ab13ebbd5c19.txt, 003_1d91193cee76cc2f.txt)?

Lecture notes 001_d4c0ab13ebbd5c19.txt ("Largest singular value > 1: exploding gradients;
largest singular value < 1: vanishing gradients") and 003_1d91193cee76cc2f.txt ("many values
> 1: exploding gradients") state a rule in ||W||_2. Pascanu, Mikolov & Bengio (2013; THEORY.md
section 2) prove only half of it: with |phi'| <= gamma, ||W||_2 < 1/gamma is sufficient for
vanishing, and ||W||_2 > 1/gamma is necessary, not sufficient, for exploding; for a linear RNN
the spectral radius decides (rho(W) < 1 sufficient for vanishing, rho(W) > 1 necessary for
exploding).

Each configuration scales an orthogonal or a Gaussian matrix to a target ||W||_2 (a Gaussian
W has rho(W) ~ ||W||_2 / 2, THEORY.md section 4), builds a tanh RNN driven by N(0, 1) inputs or
a linear RNN (whose Jacobian is W whatever the input), and measures
- the top Lyapunov exponent (QR method, after a warm-up) with its standard error,
- the gradient growth rate: the least-squares slope of log ||dL/dh_t|| against the number of
  steps back T - t, over steps back >= the warm-up,
- log ||P_k||_2 (the largest possible gradient amplification over k steps) at a few k, whose
  maximum over k shows transient growth. P_k is formed directly (gradsim.jacobian_product, at
  most 40 steps: no overflow, ||P_k||_2 <= ||W||_2^k) and ||P_k||_2 read from its SVD, which is
  accurate relative to the largest singular value (only the largest is needed).
A configuration "vanishes" when its Lyapunov exponent is more than Z_SIGNIFICANT standard
errors below zero, and "explodes" when more than Z_SIGNIFICANT above.

Configurations of one activation, size, length and input run together as one ensemble
(gradsim.stack_cells; see ``batch_key``), each member drawn from its own configuration's
generator.
"""

import numpy as np

from gradsim import (
    RNN,
    Estimate,
    Exact,
    Rate,
    gaussian,
    gradient_norms,
    jacobian_product,
    lyapunov_spectrum,
    orthogonal,
    stack_cells,
)
from gradsim.workflow.plotting import PALETTE, new_figure, plot_lines
from gradsim.workflow.runner import Study

N_INPUT = 4
# Steps k at which log ||P_k||_2 is read (transient growth shows at small k).
K_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40)
# The transient panel shows k up to this (the growth is over in a few steps).
PANEL_K_MAX = 16
# A rate this many standard errors from zero has a sign we trust (two-sided p ~ 1e-4).
Z_SIGNIFICANT = 4.0
NORMS = [0.5, 0.7, 0.9, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0]
CONFIG_KEYS = ["activation", "w_kind", "target_norm", "input_std", "n_hidden", "t_max", "seed"]

GRID = [
    {"activation": ["tanh"], "w_kind": ["orthogonal", "gaussian"], "target_norm": NORMS,
     "input_std": [1.0], "n_hidden": [64], "t_max": [1000], "seed": [0, 1, 2]},
    # The linear RNN's Jacobian is W whatever the input: zero input keeps its state finite.
    {"activation": ["linear"], "w_kind": ["orthogonal", "gaussian"], "target_norm": NORMS,
     "input_std": [0.0], "n_hidden": [64], "t_max": [1000], "seed": [0, 1, 2]},
]
QUICK_GRID = [
    {"activation": ["tanh"], "w_kind": ["orthogonal", "gaussian"], "target_norm": [0.5, 1.25, 3.0],
     "input_std": [1.0], "n_hidden": [16], "t_max": [200], "seed": [0]},
    {"activation": ["linear"], "w_kind": ["orthogonal", "gaussian"],
     "target_norm": [0.5, 1.25, 3.0],
     "input_std": [0.0], "n_hidden": [16], "t_max": [200], "seed": [0]},
]


def recurrent_matrix(kind, n, norm, rng):
    """An orthogonal or Gaussian N x N matrix scaled to spectral norm ``norm``."""
    base = orthogonal(n, 1.0, rng) if kind == "orthogonal" else gaussian(n, 1.0, rng)
    return base * (norm / np.linalg.norm(base, 2))


def _draw(config, rng):
    """The configuration's RNN and inputs (or the number of zero-input steps)."""
    n, t_max = config["n_hidden"], config["t_max"]
    w = recurrent_matrix(config["w_kind"], n, config["target_norm"], rng)
    cell = RNN(w, gaussian((n, N_INPUT), 1.0, rng), activation=config["activation"])
    if config["input_std"] > 0:
        inputs = rng.normal(0.0, config["input_std"], size=(t_max, N_INPUT))
    else:
        inputs = t_max
    return cell, inputs


def _ks(config):
    return [k for k in K_STEPS if k <= config["t_max"] - config["t_max"] // 5]


def _measure(config, cell, inputs):
    """Lyapunov spectrum, log gradient norms (..., T + 1) and log ||P_k||_2 (..., len(ks)),
    for one RNN or an ensemble."""
    warmup = config["t_max"] // 5
    lyap = lyapunov_spectrum(cell, inputs, k=1, warmup=warmup)
    log_grad = gradient_norms(cell, inputs)
    top = []
    for k in _ks(config):
        log_scale, matrix = jacobian_product(cell, k if np.ndim(inputs) == 0 else inputs[..., :k, :])
        top.append(log_scale + np.log(np.linalg.norm(matrix, 2, axis=(-2, -1))))
    return lyap, log_grad, np.stack(top, axis=-1)


def _records(config, cell, exponent, stderr, log_grad, top):
    """Records of one configuration, one per k, with its rates repeated."""
    t_max = config["t_max"]
    warmup = t_max // 5
    steps_back = t_max - np.arange(t_max + 1)
    fit = steps_back >= warmup
    rate = np.polyfit(steps_back[fit], log_grad[fit], 1)[0]
    ks = _ks(config)
    w = cell.weight_hh
    norm_w = float(np.linalg.norm(w, 2))
    rho_w = float(np.max(np.abs(np.linalg.eigvals(w))))
    common = {
        "norm_W": norm_w,
        "rho_W": rho_w,
        "log_norm_W": np.log(norm_w),
        "log_rho_W": np.log(rho_w),
        "lyapunov": exponent,
        "lyapunov_stderr": stderr,
        "gradient_rate": rate,
        "peak_log_norm_Pk": float(np.max(top)),
        "peak_k": int(ks[int(np.argmax(top))]),
    }
    return [{**common, "k": k, "log_norm_Pk": value} for k, value in zip(ks, top)]


def simulate(config, rng):
    """Records, one per k in K_STEPS: log ||P_k||_2, with the configuration's rates repeated."""
    cell, inputs = _draw(config, rng)
    lyap, log_grad, top = _measure(config, cell, inputs)
    return _records(config, cell, lyap.exponents[0], lyap.stderr[0], log_grad, top)


def batch_key(config):
    """One ensemble per activation, size, length and input (W kind, norm and seed are weights;
    a zero-input RNN has no input sequence)."""
    return [config["activation"], config["n_hidden"], config["t_max"], config["input_std"] > 0]


def simulate_batch(configs, rngs):
    """:func:`simulate` of every configuration, as one ensemble of their RNNs."""
    cells, inputs = zip(*(_draw(c, r) for c, r in zip(configs, rngs)))
    inputs = np.stack(inputs) if np.ndim(inputs[0]) else inputs[0]
    lyap, log_grad, top = _measure(configs[0], stack_cells(cells), inputs)
    return [_records(c, cell, lyap.exponents[i, 0], lyap.stderr[i, 0], log_grad[i], top[i])
            for i, (c, cell) in enumerate(zip(configs, cells))]


def per_config(frame):
    """One row per configuration (the rate columns are repeated over k), with verdicts."""
    rows = frame.drop_duplicates(subset=[c for c in CONFIG_KEYS if c in frame]).copy()
    z = rows.lyapunov / rows.lyapunov_stderr.where(rows.lyapunov_stderr > 0)
    # A zero standard error (a linear RNN: the per-block rates are all log rho exactly) makes
    # the sign exact; z is then +-inf.
    z = z.fillna(np.sign(rows.lyapunov) * np.inf)
    rows["vanishes"] = z < -Z_SIGNIFICANT
    rows["explodes"] = z > Z_SIGNIFICANT
    rows["norm_gt_1_vanishes"] = (rows.norm_W > 1) & rows.vanishes
    rows["transient_then_decay"] = (
        (rows.activation == "linear") & (rows.rho_W < 1) & (rows.norm_W > 1)
        & (rows.peak_log_norm_Pk > 0) & rows.vanishes
    )
    return rows


def plot(frame):
    rows = per_config(frame)
    fig, axes = new_figure(ncols=3, width=4.3, height=3.5)
    axes = axes[0]
    label = {"tanh": "tanh RNN, N(0, 1) inputs", "linear": "linear RNN"}
    for ax, act in zip(axes[:2], ["tanh", "linear"]):
        sub = rows[rows.activation == act]
        if sub.empty:
            continue
        means = sub.groupby(["w_kind", "target_norm"], sort=False)[
            ["norm_W", "lyapunov", "log_rho_W"]].mean().reset_index()
        plot_lines(ax, means, "norm_W", "lyapunov", "w_kind",
                   label=lambda v: f"measured, {v['w_kind']} W")
        if act == "linear":
            gauss = means[means.w_kind == "gaussian"].sort_values("norm_W")
            ax.plot(gauss.norm_W, gauss.log_rho_W, color="0.2", ls="--", lw=1,
                    label=r"$\log\rho(W)$, gaussian W")
        grid = np.geomspace(rows.norm_W.min(), rows.norm_W.max(), 50)
        ax.plot(grid, np.log(grid), color="0.5", ls=":", lw=1.2,
                label=r"$\log\|W\|_2$ (rule's bound)")
        bad = sub[sub.norm_gt_1_vanishes]
        ax.scatter(bad.norm_W, bad.lyapunov, s=40, facecolors="none", edgecolors=PALETTE[1],
                   linewidths=1.0, zorder=3,
                   label=r"$\|W\|_2 > 1$ yet vanishing (each seed)")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.axvline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        lo, hi = rows.norm_W.min() * 0.9, rows.norm_W.max() * 1.1
        ticks = [t for t in (0.5, 1, 2, 4, 8) if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel(r"largest singular value $\|W\|_2$")
        ax.set_ylabel("top Lyapunov exponent (nats per step)")
        ax.set_title(f"{label[act]}, W orthogonal or gaussian\n(mean over seeds)", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    ax = axes[2]
    cases = rows[rows.transient_then_decay]
    if "seed" in cases:
        cases = cases[cases.seed == cases.seed.min()]
    curves = frame.merge(cases[CONFIG_KEYS], on=CONFIG_KEYS)
    curves = curves[curves.k <= PANEL_K_MAX]
    if not curves.empty:
        curves = curves.assign(case=[f"$\\|W\\|_2$ = {a:.3g}, $\\rho(W)$ = {b:.2g}"
                                     for a, b in zip(curves.norm_W, curves.rho_W)])
        plot_lines(ax, curves, "k", "log_norm_Pk", "case", label=lambda v: v["case"])
        ax.legend(fontsize=6, title="linear RNN, gaussian W", title_fontsize=6)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("steps back k")
    ax.set_ylabel(r"$\log\|P_k\|_2 = \log\|W^k\|_2$ (nats)")
    ax.set_title(r"$\rho(W) < 1 < \|W\|_2$: transient growth, then decay", fontsize=8)
    return fig


def _rate(successes, trials):
    """Rate of ``successes`` (a boolean Series) among ``trials`` configurations (NaN if none)."""
    return Rate(int(successes.sum()), int(trials)) if trials else float("nan")


def _ci(rate, what):
    """A rate for the notes: 'k of the n <what> (a fraction p, 95% CI low-high)' (Wilson)."""
    if not isinstance(rate, Rate):
        return f"none of the {what}"
    low, high = rate.interval()
    return (f"{rate.successes} of the {rate.trials} {what} (a fraction {rate:.2f}, 95% CI "
            f"{low:.2f}-{high:.2f})")


def summarize(frame):
    rows = per_config(frame)
    tanh, linear = rows[rows.activation == "tanh"], rows[rows.activation == "linear"]
    counter_tanh = tanh[tanh.norm_gt_1_vanishes]
    counter_linear = linear[linear.transient_then_decay]
    # The largest grid norm (a target norm, to rounding) among the vanishing tanh RNNs. It is
    # fixed by the seeds: a vanishing configuration has a negative exponent, so its trajectory
    # contracts and its verdict does not move with rounding; the chaotic ones (positive
    # exponents, whose exponents do move from machine to machine) never vanish. On the full
    # grid the deciding verdicts are far from the threshold (z <= -17 at 3, z > 0 at 4).
    largest_vanishing = (Exact(float(counter_tanh.norm_W.max())) if len(counter_tanh)
                         else float("nan"))
    small_norm_violations = int(((rows.norm_W < 1) & ~rows.vanishes).sum())
    # |gradient rate - Lyapunov| of the configurations: on chaotic trajectories both move from
    # machine to machine by about the exponent's standard error. The largest is an estimate
    # with the largest standard error among the configurations that could hold it (within
    # Z_SIGNIFICANT of their standard errors of the largest).
    gap = (rows.gradient_rate - rows.lyapunov).abs()
    top = float(gap.max())
    contenders = gap + Z_SIGNIFICANT * rows.lyapunov_stderr >= top
    gap_max = Estimate(top, float(rows.lyapunov_stderr[contenders].max()), int(contenders.sum()))
    tanh_trials = tanh.norm_W > 1
    linear_trials = linear.norm_W > 1
    out = {
        # Counts fixed by the grid (the target norms, to rounding).
        "configurations": len(rows),
        "tanh: configurations with ‖W‖₂ > 1": int(tanh_trials.sum()),
        # Verdicts on randomly drawn networks: rates among the configurations with ‖W‖₂ > 1.
        "tanh: ‖W‖₂ > 1 yet vanishing (counterexamples)":
            _rate(tanh.norm_gt_1_vanishes, tanh_trials.sum()),
        "tanh: largest ‖W‖₂ that still vanishes": largest_vanishing,
        "linear: rho < 1 < ‖W‖₂, transient growth then decay (counterexamples)":
            _rate(linear.transient_then_decay, linear_trials.sum()),
        # The linear RNN's numbers are linear algebra on W (its Jacobian whatever the input),
        # fixed by the seeds and reproducible to rounding: exact.
        "linear: largest transient gain max_k log ‖P_k‖₂ among them (nats)":
            Exact(float(counter_linear.peak_log_norm_Pk.max())) if len(counter_linear)
            else float("nan"),
        # Theorems (Pascanu's sufficient condition; a linear RNN's exponent is log rho(W)):
        # counts of violations, 0 up to rounding.
        "‖W‖₂ < 1 without vanishing (Pascanu: impossible)": small_norm_violations,
        "linear: rho < 1 without vanishing or rho > 1 without exploding":
            int(((linear.rho_W < 1) & ~linear.vanishes).sum()
                + ((linear.rho_W > 1) & ~linear.explodes).sum()),
        # A difference of two CSV columns of magnitude <= log 4, each rounded to 12 significant
        # digits (<= 5e-12 absolute): exact to an absolute 1e-11.
        "linear: largest abs(Lyapunov - log rho(W))":
            Exact(float((linear.lyapunov - linear.log_rho_W).abs().max()), atol=1e-11)
            if len(linear) else float("nan"),
        "largest abs(gradient rate - Lyapunov) (two estimators of one rate)": gap_max,
    }
    n_trials = int(tanh_trials.sum() + linear_trials.sum())
    n_counter = len(counter_tanh) + len(counter_linear)
    overall = Rate(n_counter, n_trials) if n_trials else None
    tanh_rate = out["tanh: ‖W‖₂ > 1 yet vanishing (counterexamples)"]
    linear_rate = out["linear: rho < 1 < ‖W‖₂, transient growth then decay (counterexamples)"]
    out["notes"] = (
        f"The lecture notes' rule fails in {_ci(overall, 'configurations with ‖W‖₂ > 1')}: "
        f"{_ci(tanh_rate, 'tanh RNNs')} still have a vanishing gradient (up to ‖W‖₂ = "
        f"{largest_vanishing:.3g}), and {_ci(linear_rate, 'linear RNNs')} "
        "have rho(W) < 1 < ‖W‖₂: their gradient can grow for a few steps and then decays at "
        "log rho(W). Its other half, ‖W‖₂ < 1 implies vanishing, is Pascanu et al.'s "
        f"sufficient condition: {small_norm_violations} violations."
    )
    return out


STUDY = Study(
    name="norm_rule",
    question=__doc__.splitlines()[0],
    grid=GRID,
    quick_grid=QUICK_GRID,
    simulate=simulate,
    plot=plot,
    summarize=summarize,
    simulate_batch=simulate_batch,
    batch_key=batch_key,
)


def main(quick=False):
    from gradsim.workflow.report import produce

    return produce(__file__, quick=quick)


if __name__ == "__main__":
    main()
