"""How do the singular values of P_T = dh_T/dh_0 spread with T for RNN, LSTM (full state and cell path) and GRU under each initialisation?

Each configuration builds one cell (N hidden units, I inputs, fresh weights from the
configuration's generator), drives it with N(0, 1) inputs for T_max steps and reads the
natural-log singular values of P_T = J_T ... J_1 at every T in ``horizons`` from one pass of
:func:`gradsim.log_singular_values`. An LSTM configuration is measured along two paths of the
same trajectory (same weights, same inputs): the full state (h, c), whose Jacobian is 2N x 2N,
and the cell path c -> c, whose one-step Jacobian is diag(f_t) (THEORY.md section 7), so every
singular value of that path is below 1 whatever the initialisation. Records hold the largest,
median and smallest log singular value divided by T (a per-step rate, natural log); their
difference is the spread of the spectrum, which grows linearly in T when the rates converge to
distinct Lyapunov exponents.
"""

import math

import numpy as np
from matplotlib.ticker import NullLocator

from gradsim import Estimate, Exact, log_singular_values, make_cell, mean_estimate
from gradsim.workflow.plotting import new_figure, plot_lines
from gradsim.workflow.runner import Study

CELLS = ["rnn", "lstm", "gru"]
GAUSSIAN_GAINS = [0.5, 1.0, 2.0]
OTHER_INITS = ["orthogonal", "identity", "xavier", "he", "pytorch"]
N_INPUT = 4
INPUT_STD = 1.0
# An LSTM configuration yields both of these paths; the other cells only "full".
LSTM_PATHS = ["full", "cell"]
# Horizons read in one pass: every one of these up to the configuration's t_max.
# Decades between float64's smallest normal and largest finite number.
FLOAT64_DECADES = float(np.log10(np.finfo(np.float64).max) - np.log10(np.finfo(np.float64).tiny))
HORIZONS = (1, 3, 10, 30, 100, 300, 1000, 3000, 10000)
# Two estimates differ when they are this many combined standard errors apart (the report's
# agreement threshold, gradsim.workflow.findings.Z_AGREE).
Z_DIFFER = 4.0
MODEL_NAMES = {
    ("rnn", "full"): "RNN (tanh)",
    ("lstm", "full"): "LSTM, full state (h, c)",
    ("lstm", "cell"): "LSTM, cell path c -> c",
    ("gru", "full"): "GRU",
}

GRID = [
    {"cell": CELLS, "init": ["gaussian"], "gain": GAUSSIAN_GAINS, "n_hidden": [64],
     "t_max": [300], "seed": [0, 1, 2]},
    {"cell": CELLS, "init": OTHER_INITS, "gain": [1.0], "n_hidden": [64],
     "t_max": [300], "seed": [0, 1, 2]},
]
QUICK_GRID = [
    {"cell": CELLS, "init": ["gaussian"], "gain": [0.5, 2.0], "n_hidden": [8],
     "t_max": [30], "seed": [0]},
    {"cell": CELLS, "init": ["orthogonal", "identity", "pytorch"], "gain": [1.0], "n_hidden": [8],
     "t_max": [30], "seed": [0]},
]


def init_label(init, gain):
    """Legend text of an initialisation (PyTorch's default has no gain: U(+-1/sqrt N))."""
    if init == "pytorch":
        return "pytorch default"
    return f"{init}, gain {gain:g}"


def simulate(config, rng):
    """Records (model, T, largest / median / smallest log singular value of P_T per step)."""
    horizons = [t for t in HORIZONS if t < config["t_max"]] + [int(config["t_max"])]
    cell = make_cell(config["cell"], config["n_hidden"], N_INPUT, init=config["init"],
                     gain=config["gain"], rng=rng)
    inputs = rng.normal(0.0, INPUT_STD, size=(horizons[-1], N_INPUT))
    paths = LSTM_PATHS if config["cell"] == "lstm" else ["full"]
    records = []
    for path in paths:
        # One pass reads every horizon: the spectra of P_1, ..., P_Tmax along one trajectory.
        logs = log_singular_values(cell, inputs, times=horizons, path=path)
        for t, row in zip(horizons, logs):
            records.append({
                "path": path,
                "model": MODEL_NAMES[(config["cell"], path)],
                "init_label": init_label(config["init"], config["gain"]),
                "T": t,
                "size": row.size,
                "top_per_step": row[0] / t,
                "median_per_step": float(np.median(row)) / t,
                "bottom_per_step": row[-1] / t,
                "spread": row[0] - row[-1],
            })
    return records


def _seed_means(frame):
    """Mean over seeds of the per-step rates, one row per (model, init_label, T)."""
    keys = ["model", "init_label", "T"]
    cols = ["top_per_step", "median_per_step", "bottom_per_step", "spread"]
    return frame.groupby(keys, sort=False)[cols].mean().reset_index()


def plot(frame):
    means = _seed_means(frame)
    models = [m for m in MODEL_NAMES.values() if m in set(means.model)]
    fig, axes = new_figure(ncols=len(models), nrows=2, width=3.6, height=3.0)
    axes = np.asarray(axes).reshape(2, len(models))
    rows = [("top_per_step", "largest"), ("bottom_per_step", "smallest")]
    for j, model in enumerate(models):
        sub = means[means.model == model]
        for i, (column, word) in enumerate(rows):
            ax = axes[i, j]
            plot_lines(ax, sub, "T", column, "init_label", label=lambda v: v["init_label"])
            ax.axhline(0.0, color="0.3", lw=0.8, ls=":")
            ax.set_xscale("log")
            # Ticks at the measured horizons; no minor ticks (they add nothing here and cost
            # a third of the figure's drawing time).
            horizons = sorted(sub["T"].unique())
            ax.set_xticks(horizons, [f"{t:g}" for t in horizons])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlabel("horizon T (steps)")
            ax.set_ylabel(f"{word} log singular value\nof $P_T$ / T (nats per step)")
            ax.set_title(f"{model}: {word}", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    n_seeds = frame.seed.nunique() if "seed" in frame else 1
    fig.legend(handles, labels, loc="outside right center", fontsize=7,
               title=f"initialisation\n(mean of {n_seeds} seeds)", title_fontsize=7)
    return fig


def _init_estimates(rows, column):
    """Per initialisation label: the mean of ``column`` over the seeds, with its standard error
    (the seeds are the only random draws: weights and inputs)."""
    return {label: mean_estimate(group[column])
            for label, group in rows.groupby("init_label", sort=False)}


def _extreme(estimates, largest):
    """(label, estimate) of the largest (or smallest) of per-init estimates.

    Its standard error is the largest among the initialisations that could be the extreme on
    other draws (within Z_DIFFER combined standard errors of it): the max/min over measured
    quantities of the shared instructions, (extreme, max of the contributing s.e.).
    """
    label = (max if largest else min)(estimates, key=lambda k: float(estimates[k]))
    best = estimates[label]
    if math.isnan(best.stderr):  # one seed (the quick grid)
        return label, best
    contenders = [e.stderr for e in estimates.values()
                  if abs(float(e) - float(best)) <= Z_DIFFER * math.hypot(e.stderr, best.stderr)]
    return label, Estimate(float(best), max(contenders), best.n)


def grid_mean(rows, column):
    """The mean of ``column`` over the rows (configurations of one model and T), with its
    standard error from the seed-to-seed spread within each initialisation,
    sqrt(sum_g n_g s_g^2) / N (the inits are a fixed list, not draws); over all rows when an
    init has one seed (the quick grid)."""
    values = rows[column].to_numpy(float)
    groups = rows.groupby("init_label", sort=False)[column]
    if (groups.count() > 1).all():
        stderr = math.sqrt(float((groups.count() * groups.var(ddof=1)).sum())) / len(values)
        return Estimate(float(values.mean()), stderr, len(values))
    return mean_estimate(values)


def _pm(value):
    """A key number in the notes: value and, for an estimate, its standard error."""
    if isinstance(value, Estimate) and not math.isnan(value.stderr):
        return f"{value:.3g} ± {value.stderr:.2g}"
    return f"{value:.3g}"


def summarize(frame):
    t_max = int(frame["T"].max())
    last = frame[frame["T"] == t_max].assign(rate_spread=lambda f: f.top_per_step
                                             - f.bottom_per_step)
    out = {}
    for model in [m for m in MODEL_NAMES.values() if m in set(last.model)]:
        sub = last[last.model == model]
        tops = _init_estimates(sub, "top_per_step")
        hi_label, hi = _extreme(tops, largest=True)
        lo_label, lo = _extreme(tops, largest=False)
        out[f"{model}: largest top rate at T={t_max} ({hi_label})"] = hi
        out[f"{model}: smallest top rate at T={t_max} ({lo_label})"] = lo
        out[f"{model}: mean spread (top - bottom)/T at T={t_max}"] = grid_mean(sub, "rate_spread")
    cell_path = frame[frame.path == "cell"]
    # Counts of rows of these draws (seeds x inits x horizons; not independent trials: one
    # trajectory gives all its horizons). No trajectory decorrelates from rounding within
    # T_max = 300 steps (the largest growth of a perturbation, the tanh RNN's at gain 2, is
    # ||P_300||_2 ~ e^(0.045 x 300) ~ 1e6: rounding of 1e-16 grows to 1e-10), and no row's top
    # rate is within 0.02 of 0 at T > 10 (those at T <= 10 are the first steps' products), so
    # the counts are fixed by the seeds. (OpenBLAS's Haswell and Sandybridge kernels give the
    # same CSV to its 12 digits.)
    parts = ", ".join(
        f"{model} {int((frame[frame.model == model].top_per_step > 0).sum())} of "
        f"{int((frame.model == model).sum())}"
        for model in MODEL_NAMES.values() if model in set(frame.model))
    notes = f"Rows (seed, init, T) whose largest singular value grows (top rate > 0): {parts}."
    widest = frame.loc[frame.spread.idxmax()]
    # One P_T's spread (its row is an LSTM on a contracting trajectory): exact to rounding.
    out["widest spread of one P_T (decades)"] = Exact(float(widest.spread / np.log(10)))
    notes += (f" The widest spectrum ({widest.model}, {widest.init_label}, T={int(widest['T'])}) "
              f"spans {widest.spread / np.log(10):.0f} decades, against the {FLOAT64_DECADES:.0f} "
              "of float64's normal range: the spectra are computed as logarithms.")
    if len(cell_path):
        # The largest over all rows is at T = 1 (log of the largest forget gate of the first
        # step): exact to rounding.
        top = float(cell_path.top_per_step.max())
        out["LSTM cell path: largest top rate over all rows"] = Exact(top)
        verdict = "never grows" if top < 0 else "grows in some rows"
        t_max = int(cell_path["T"].max())
        mean_last = grid_mean(cell_path[cell_path["T"] == t_max], "top_per_step")
        full = frame[(frame.model == MODEL_NAMES[("lstm", "full")]) & (frame["T"] == t_max)]
        mean_full = grid_mean(full, "top_per_step")
        diff = float(mean_last) - float(mean_full)
        noise = Z_DIFFER * math.hypot(getattr(mean_last, "stderr", 0.0),
                                      getattr(mean_full, "stderr", 0.0))
        if math.isnan(noise) or abs(diff) <= noise:
            speed = "within the noise of"
        else:
            speed = "faster decay than" if diff < 0 else "slower decay than"
        notes += (f" The LSTM cell path {verdict} (largest top rate {top:.3g} nats per step over "
                  "all T and inits): its one-step Jacobian is diag(f) with 0 < f < 1. Without a "
                  f"forget-gate bias its mean top rate at T={t_max}, {_pm(mean_last)} (mean "
                  f"over inits and seeds ± one standard error), sits near log sigmoid(0) = "
                  f"{np.log(0.5):.3g}, {speed} the full state's {_pm(mean_full)}.")
    out["notes"] = notes
    return out


STUDY = Study(
    name="spectra",
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
