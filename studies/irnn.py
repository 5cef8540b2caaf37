"""Does identity initialisation with ReLU (IRNN; lecture notes 000_a711c72185543a8a.txt and 003_1d91193cee76cc2f.txt) keep the gradient from vanishing?

Lecture note 000_a711c72185543a8a.txt lists the "identity RNN with ReLU activation" as a cure
for vanishing gradients, and 003_1d91193cee76cc2f.txt recommends initialising the recurrent
weights to the identity and the biases to zero. For an IRNN h_t = relu(s h_{t-1} + U x_t)
(W = s I, b = 0; Le, Jaitly & Hinton 2015) the one-step Jacobian is s diag(1[a_t > 0]), so
P_T = s^T diag(1[unit active at every step 1..T]) (THEORY.md section 6): the gradient is carried
exactly (times s^T) on units active throughout the window and is exactly zero on the others.
For L = u . h_T with u the unit vector of equal entries this predicts, exactly,

    log ||dL/dh_t|| = (T - t) log s + (1/2) log(fraction of units active at every step t+1..T),

and for u spread evenly over the units active throughout the whole window, log ||dL/dh_t|| =
(T - t) log s: constant in t at s = 1. Both are recorded next to the measured values, with a
tanh RNN (Gaussian or orthogonal W, gain 1) for comparison. Inputs are N(0, 1) ("zero-mean")
or their absolute values ("positive"); with positive inputs each unit's drive U x_t has a
fixed-sign mean, so roughly the units with positive drift stay active for good.
"""

import numpy as np

from gradsim import (
    Estimate,
    Exact,
    gradient_norms,
    make_cell,
    mean_estimate,
    median_estimate,
    unroll,
)
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study

N_INPUT = 4
# Steps back k = T - t at which the gradient is recorded (those <= T, and T itself).
STEPS_BACK = (0, 1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 400, 500, 600, 700, 800, 900, 1000)
INPUTS = ["positive", "zero-mean"]
# Rounding allowed per step of the window in |measured - predicted| log gradient: the measured
# log is a sum of one log norm per step, each a few eps relative to values of magnitude up to
# ~|log s| + 1, so it drifts by ~1e-15 per step at most; 1e-12 leaves a factor ~1000.
ROUNDING_PER_STEP = 1e-12
CONFIG_KEYS = ["cell", "init", "scale", "inputs", "n_hidden", "t_max", "seed"]

GRID = [
    {"cell": ["irnn"], "init": ["identity"], "scale": [0.9, 1.0, 1.1], "inputs": INPUTS,
     "n_hidden": [64], "t_max": [100, 1000], "seed": [0, 1, 2]},
    {"cell": ["rnn"], "init": ["gaussian", "orthogonal"], "scale": [1.0], "inputs": INPUTS,
     "n_hidden": [64], "t_max": [100, 1000], "seed": [0, 1, 2]},
]
QUICK_GRID = [
    {"cell": ["irnn"], "init": ["identity"], "scale": [0.9, 1.0, 1.1], "inputs": INPUTS,
     "n_hidden": [16], "t_max": [50], "seed": [0]},
    {"cell": ["rnn"], "init": ["gaussian", "orthogonal"], "scale": [1.0], "inputs": INPUTS,
     "n_hidden": [16], "t_max": [50], "seed": [0]},
]


def model_label(cell, init, scale):
    if cell == "irnn":
        return f"IRNN (ReLU, W = {scale:g} I)"
    return f"tanh RNN, {init} W, gain {scale:g}"


def _log(x):
    """Natural log with log 0 = -inf (an exactly zero gradient), without a warning."""
    with np.errstate(divide="ignore"):
        return np.log(x)


def simulate(config, rng):
    """Records per steps back k: measured and predicted log ||dL/dh_t||, t = T - k."""
    n, t_max, scale = config["n_hidden"], config["t_max"], config["scale"]
    is_irnn = config["cell"] == "irnn"
    if is_irnn:
        cell = make_cell("irnn", n, N_INPUT, gain=scale, rng=rng)
    else:
        cell = make_cell("rnn", n, N_INPUT, init=config["init"], gain=scale, rng=rng)
    inputs = rng.normal(0.0, 1.0, size=(t_max, N_INPUT))
    if config["inputs"] == "positive":
        inputs = np.abs(inputs)
    log_grad = gradient_norms(cell, inputs)
    records_common = {"model": model_label(config["cell"], config["init"], scale)}
    if is_irnn:
        # relu(a) > 0 exactly when a > 0: the state says which units were active at each step.
        active = unroll(cell, inputs)[1:] > 0  # (T, N); row t-1 is step t
        # throughout[t] = active at every step t+1 .. T (all units for the empty window t = T).
        throughout = np.ones((t_max + 1, n), dtype=bool)
        throughout[:t_max] = np.flip(np.logical_and.accumulate(np.flip(active, 0), 0), 0)
        frac = throughout.mean(axis=1)
        steps_back = t_max - np.arange(t_max + 1)
        predicted = steps_back * np.log(scale) + 0.5 * _log(frac)
        whole = throughout[0]
        if whole.any():
            upstream = whole / np.sqrt(whole.sum())
            log_grad_active = gradient_norms(cell, inputs, upstream=upstream)
        else:
            log_grad_active = np.full(t_max + 1, np.nan)
        # |measured - predicted| at full precision (the CSV's 12 digits of a log gradient of
        # ~100 nats are ~1e-10, far above this rounding-level deviation); 0 where both are
        # -inf (an exactly zero gradient, predicted), inf where only one is.
        with np.errstate(invalid="ignore"):
            deviation = np.where(np.isneginf(log_grad) & np.isneginf(predicted), 0.0,
                                 np.abs(log_grad - predicted))
            deviation_active = np.abs(log_grad_active - steps_back * np.log(scale))
    records = []
    for k in sorted({k for k in STEPS_BACK if k <= t_max} | {t_max}):
        t = t_max - k
        record = {**records_common, "steps_back": k, "t": t, "log_grad": log_grad[t]}
        if is_irnn:
            record.update({
                "log_grad_predicted": predicted[t],
                "frac_active_window": frac[t],
                "n_active_whole_window": int(whole.sum()),
                "log_grad_active_units": log_grad_active[t],
                "log_grad_active_predicted": k * np.log(scale) if whole.any() else np.nan,
                "deviation": deviation[t],
                "deviation_active": deviation_active[t],
            })
        else:
            record.update({"log_grad_predicted": np.nan, "frac_active_window": np.nan,
                           "n_active_whole_window": np.nan, "log_grad_active_units": np.nan,
                           "log_grad_active_predicted": np.nan, "deviation": np.nan,
                           "deviation_active": np.nan})
        records.append(record)
    return records


def irnn_errors(frame):
    """|measured - predicted| of the IRNN rows (0 where both are -inf: an exactly zero gradient).

    Read from the ``deviation`` columns, computed in :func:`simulate` at full precision; a CSV
    without them (written before they existed, at full precision) gives them from its columns.
    """
    rows = frame[frame.cell == "irnn"]
    if "deviation" in rows:
        active = rows.log_grad_active_units.notna()
        return rows.deviation, rows.deviation_active[active]
    both_zero = np.isneginf(rows.log_grad) & np.isneginf(rows.log_grad_predicted)
    finite = np.isfinite(rows.log_grad) & np.isfinite(rows.log_grad_predicted)
    err = (rows.log_grad - rows.log_grad_predicted).abs().where(finite, np.inf)
    err = err.where(~both_zero, 0.0)
    active = rows.log_grad_active_units.notna()
    err_active = (rows.log_grad_active_units - rows.log_grad_active_predicted).abs()[active]
    return err, err_active


def plot(frame):
    from matplotlib.lines import Line2D

    t_max = frame.t_max.max()
    last = frame[frame.t_max == t_max]
    inputs = [i for i in INPUTS if i in set(last.inputs)]
    fig, axes = new_figure(ncols=len(inputs), nrows=2, width=4.2, height=3.1)
    axes = np.asarray(axes).reshape(2, len(inputs))
    order = [model_label("irnn", "identity", s) for s in (0.9, 1.0, 1.1)] + [
        model_label("rnn", i, 1.0) for i in ("gaussian", "orthogonal")]
    order = [m for m in order if m in set(last.model)]
    colours = dict(zip(order, PALETTE))
    n_seeds = last.seed.nunique()
    for j, inp in enumerate(inputs):
        sub = last[last.inputs == inp]
        ax = axes[0, j]
        for model in [m for m in order if m in set(sub.model)]:
            rows = sub[sub.model == model]
            # Mean over the seeds whose gradient is non-zero; an exactly zero gradient (log =
            # -inf) is marked by an x at the bottom of the panel, one per seed.
            finite = rows[np.isfinite(rows.log_grad)]
            means = finite.groupby("steps_back").log_grad.mean().reset_index()
            ax.plot(means.steps_back, means.log_grad, color=colours[model], marker="o",
                    markersize=3)
            zero = rows[np.isneginf(rows.log_grad)]
            ax.scatter(zero.steps_back, np.full(len(zero), 0.03), marker="x", s=25,
                       color=colours[model], transform=ax.get_xaxis_transform(), clip_on=False)
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_xlabel("steps back T - t")
        ax.set_ylabel(r"$\log\|\partial L/\partial h_t\|$ (nats)")
        ax.set_title(f"{inp} inputs, T = {t_max}", fontsize=8)
        ax = axes[1, j]
        irnn = sub[sub.cell == "irnn"]
        means = (irnn.groupby(["model", "steps_back"], sort=False).frac_active_window
                 .mean().reset_index())
        for model in [m for m in order if m in set(means.model)]:
            rows = means[means.model == model]
            ax.plot(rows.steps_back, rows.frac_active_window, color=colours[model],
                    marker="o", markersize=3)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("window length T - t (steps)")
        ax.set_ylabel("fraction of IRNN units active\nat every step of the window")
        ax.set_title(f"IRNN units carrying the gradient\n({inp} inputs, T = {t_max})", fontsize=8)
    handles = [Line2D([], [], color=colours[m], marker="o", markersize=3, label=m) for m in order]
    handles.append(Line2D([], [], color="0.3", marker="x", ls="none",
                          label="gradient exactly 0\n(no unit active throughout)"))
    fig.legend(handles=handles, loc="outside right center", fontsize=7,
               title=f"mean over {n_seeds} seeds", title_fontsize=7)
    return fig


def _median(values):
    """:func:`gradsim.median_estimate` of the seeds' values; one draw has no standard error."""
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return Estimate(float(values[0]), float("nan"), 1)
    return median_estimate(values)


def _pm(value):
    """A key number in the notes: value and, for an estimate, its standard error."""
    if isinstance(value, Estimate) and np.isfinite(value) and 0 < value.stderr < np.inf:
        return f"{value:.3g} ± {value.stderr:.2g}"
    return f"{value:.3g}"


def summarize(frame):
    err, err_active = irnn_errors(frame)
    # Rounding-level deviations from exact predictions: two runs agree to the rounding allowed
    # over the longest window (ROUNDING_PER_STEP per step).
    rounding = ROUNDING_PER_STEP * float(frame.t_max.max())
    out = {
        "IRNN: largest abs(measured - predicted) log gradient":
            Exact(float(err.max()), atol=rounding) if len(err) else float("nan"),
        "IRNN scale 1: largest abs(log ‖dL/dh_t‖) on the active units":
            Exact(float(err_active[frame.loc[err_active.index, "scale"] == 1.0].max()),
                  atol=rounding)
            if len(err_active) else float("nan"),
    }
    # Medians and means over the seeds (the networks and inputs are random draws): estimates.
    # A median of seeds whose gradients are all exactly zero is -inf, with an infinite
    # standard error.
    t_max = frame.t_max.max()
    start = frame[(frame.t_max == t_max) & (frame.t == 0)]
    for (model, inp), rows in start.groupby(["model", "inputs"], sort=False):
        out[f"{model}, {inp} inputs: median log ‖dL/dh_0‖ at T={t_max}"] = _median(
            rows.log_grad)
    whole = frame[(frame.cell == "irnn") & (frame.scale == 1.0) & (frame.t == 0)]
    for (inp, t), rows in whole.groupby(["inputs", "t_max"], sort=False):
        out[f"IRNN scale 1, {inp} inputs: fraction active throughout T={t}"] = mean_estimate(
            rows.frac_active_window)
    notes = []
    irnn1 = start[(start.cell == "irnn") & (start.scale == 1.0)]
    tanh = start[start.cell == "rnn"]
    for inp in INPUTS:
        a, b = irnn1[irnn1.inputs == inp], tanh[tanh.inputs == inp]
        if len(a) and len(b):
            notes.append(
                f"with {inp} inputs the IRNN at scale 1 keeps a fraction "
                f"{_pm(mean_estimate(a.frac_active_window))} of its units active over all "
                f"{t_max} steps (median log ‖dL/dh_0‖ {_pm(_median(a.log_grad))}), "
                f"against {_pm(_median(b.log_grad))} for the tanh RNNs"
            )
    if notes:
        text = "; ".join(notes)
        out["notes"] = (
            text[0].upper() + text[1:] + " (mean or median over seeds ± one standard error). "
            "The gradient matches the prediction (T - t) log s + (1/2) log(fraction active) to "
            f"{err.max():.2g} (rounding; allowed {ROUNDING_PER_STEP:g} per step of window): "
            "identity initialisation preserves the gradient exactly, but only on the units that "
            "never switch off."
        )
        rates = []
        for scale, rows in start[(start.cell == "irnn") & (start.scale != 1.0)
                                 & (start.inputs == "positive")].groupby("scale"):
            rates.append(f"{_pm(_median(rows.log_grad / t_max))} at s = {scale:g} "
                         f"(log s = {np.log(scale):.3g}, plus (1/2) log(fraction active) / T)")
        if rates:
            out["notes"] += (
                " Away from s = 1 the carried part scales as s^(T - t): median log ‖dL/dh_0‖ / T "
                f"with positive inputs is {' and '.join(rates)}."
            )
    return out


STUDY = Study(
    name="irnn",
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
