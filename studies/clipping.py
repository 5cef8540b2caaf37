"""Does clipping the gradient norm (Pascanu et al. 2013) let plain SGD train a high-gain tanh RNN whose loss otherwise diverges?

THEORY.md section 2: for a tanh RNN, ||W||_2 > 1 is necessary for exploding gradients, and
Algorithm 1 of Pascanu, Mikolov & Bengio (2013) rescales the gradient g to threshold * g / ||g||
whenever ||g|| >= threshold, keeping its direction. Here tanh RNNs with Gaussian recurrent
weights of gain 0.5 (||W||_2 ~ 1, the contracting side), 1, 2 (||W||_2 ~ 4, the exploding side)
and 4 are trained on the adding problem (T = 10) by plain SGD at one learning rate: with no
clipping, with global-norm clipping and with per-entry value clipping (Mikolov 2012). Every
update records the gradient norm before and after clipping; a run whose loss or parameters
become NaN or inf stops and is recorded as diverged. The saturation of the trained network,
mean h_T^2 over held-out sequences (1 when every tanh unit sits at +-1), shows how the
unclipped high-gain runs fail: a few large early steps drive the units into saturation, where
the recurrent gradient vanishes and the readout, now fitted on +-1 features with a large
curvature, runs away geometrically under the fixed learning rate.
"""

import numpy as np

from gradsim import make_cell, unroll
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study
from gradsim.training.tasks import adding_problem
from gradsim.training.backprop import SGD, evaluate, init_model, train_model

CLIPS = {"none": "no clipping", "norm": "norm clipping", "value": "value clipping"}
GRID = {
    "gain": [0.5, 1.0, 2.0, 4.0],
    "clipping": list(CLIPS),
    "seed": [0, 1, 2, 3, 4, 5, 6, 7],
    "T": [10],
    "n_hidden": [32],
    "n_updates": [800],
}
QUICK_GRID = {
    "gain": [0.5, 4.0],
    "clipping": ["none", "norm"],
    "seed": [0],
    "T": [10],
    "n_hidden": [32],
    "n_updates": [300],
}
LEARNING_RATE = 0.1
BATCH_SIZE = 32
CLIP_NORM = 0.3  # global-norm threshold
CLIP_VALUE = 0.03  # per-entry threshold
EVAL_SIZE = 1000
HIGH_GAIN = 2.0  # the gain whose training curves are drawn


def simulate(config, rng):
    """Per-update records (loss, gradient norm before and after clipping) and one "result"
    record (held-out MSE, divergence)."""
    task = adding_problem(config["T"])
    cell_rng, train_rng, eval_rng = rng.spawn(3)
    cell = make_cell("rnn", config["n_hidden"], task.n_input, init="gaussian", gain=config["gain"],
                     activation="tanh", rng=cell_rng)
    model = init_model(cell, task.n_output, rng=cell_rng)
    clip = dict(none={}, norm=dict(clip_norm=CLIP_NORM), value=dict(clip_value=CLIP_VALUE))
    record = train_model(model, task, n_updates=config["n_updates"], batch_size=BATCH_SIZE,
                         optimizer=SGD(LEARNING_RATE), rng=train_rng,
                         **clip[config["clipping"]])
    loss = np.inf if record.diverged else evaluate(record.model, task, EVAL_SIZE, rng=eval_rng)
    # Saturation of the last finite model: mean h_T^2 on held-out sequences.
    inputs, _ = task.sample(EVAL_SIZE, rng=eval_rng)
    saturation = float(np.mean(unroll(record.model.cell, inputs)[:, -1] ** 2))
    records = [{
        "record": "result",
        "diverged": record.diverged,
        "diverged_at": record.diverged_at if record.diverged else -1,
        "eval_mse": loss,
        "ratio_to_baseline": loss / task.baseline,
        "max_grad_norm_before": float(np.max(record.grad_norm_before)),
        "max_grad_norm_after": float(np.max(record.grad_norm_after)),
        "saturation": saturation,
    }]
    last = len(record.losses) - 1
    for u, (value, before, after) in enumerate(
            zip(record.losses, record.grad_norm_before, record.grad_norm_after)):
        # Every 4th update (and the last) is enough for the curves and keeps the CSV small;
        # the exact maxima over all updates are in the "result" row.
        if u % 4 and u != last:
            continue
        records.append({"record": "update", "update": u, "loss": float(value),
                        "grad_norm_before": float(before), "grad_norm_after": float(after)})
    return records


def _flag(series):
    return series.astype(str).str.lower() == "true"


def outcomes(frame):
    """Per (gain, clip): runs, diverged runs, runs below the baseline, median MSE / baseline."""
    res = frame[frame.record == "result"].assign(diverged=lambda f: _flag(f.diverged))
    return (res.groupby(["gain", "clipping"], sort=False)
            .agg(runs=("seed", "nunique"), diverged=("diverged", "sum"),
                 below_baseline=("ratio_to_baseline", lambda r: int(np.sum(r < 1.0))),
                 median_ratio=("ratio_to_baseline", "median"),
                 median_saturation=("saturation", "median"))
            .reset_index())


def plot(frame):
    fig, axes = new_figure(ncols=3, width=3.7, height=3.3)
    axes = axes.ravel()
    upd = frame[frame.record == "update"]
    res = frame[frame.record == "result"]
    high = HIGH_GAIN if np.any(frame.gain == HIGH_GAIN) else float(frame.gain.max())
    colors = {clip: PALETTE[i] for i, clip in enumerate(CLIPS)}
    loss_top, norm_top = 1e3, 1e200  # drawn ranges (values beyond are off the axes)
    labelled = set()
    for (clip, seed), run in upd[upd.gain == high].groupby(["clipping", "seed"], sort=False):
        run = run.sort_values("update")
        label = CLIPS[clip] if clip not in labelled else None
        labelled.add(clip)
        finite = run[np.isfinite(run.loss) & (run.loss < 1e100)]
        smooth = finite.loss.rolling(10, min_periods=1).median()
        axes[0].plot(finite["update"], smooth, color=colors[clip], lw=0.9, alpha=0.8, label=label)
        norms = run[np.isfinite(run.grad_norm_before)]
        axes[1].plot(norms["update"], np.minimum(norms.grad_norm_before, norm_top),
                     color=colors[clip], lw=0.7, alpha=0.7, label=label)
        diverged = _flag(res[(res.clipping == clip) & (res.seed == seed) & (res.gain == high)].diverged)
        if diverged.any():
            axes[0].plot([run["update"].max()], [loss_top / 2], "x", color=colors[clip], ms=6)
    axes[0].axhline(1 / 6, color="0.3", ls="--", lw=1, label="baseline 1/6")
    axes[0].set_yscale("log")
    axes[0].set_ylim(1e-2, loss_top)
    axes[0].set_xlabel("update")
    axes[0].set_ylabel("training MSE (running median of 10)")
    axes[0].set_title(f"gain {high:g}: x = diverged (NaN/inf)", fontsize=9)
    axes[0].legend(fontsize=6, loc="upper right")
    axes[1].axhline(CLIP_NORM, color="0.3", ls=":", lw=1, label=f"norm threshold {CLIP_NORM:g}")
    axes[1].set_yscale("log")
    shown = upd[(upd.gain == high) & np.isfinite(upd.grad_norm_before)].grad_norm_before
    title = f"gain {high:g}"
    if len(shown):
        axes[1].set_ylim(min(shown.min(), CLIP_NORM) / 3, min(shown.max() * 30, 1e8))
        if shown.max() > 1e8:
            title += f" (largest finite norm 1e{np.log10(shown.max()):.0f}, off the axis)"
    axes[1].set_xlabel("update")
    axes[1].set_ylabel(r"$\|g\|$ before clipping")
    axes[1].set_title(title, fontsize=8)
    axes[1].legend(fontsize=6, loc="upper left")

    # Held-out MSE / baseline per run; diverged runs at the top.
    cap = 30.0
    gains = sorted(res.gain.unique())
    for i, clip in enumerate([c for c in CLIPS if c in set(res.clipping)]):
        for j, gain in enumerate(gains):
            sub = res[(res.clipping == clip) & (res.gain == gain)]
            x = j + 0.25 * (i - 1) + np.linspace(-0.08, 0.08, len(sub))
            ratio = sub.ratio_to_baseline.to_numpy(dtype=float)
            div = _flag(sub.diverged).to_numpy() | ~np.isfinite(ratio)
            axes[2].plot(x[~div], np.minimum(ratio[~div], cap), "o", color=colors[clip], ms=4,
                         label=CLIPS[clip] if j == 0 else None)
            axes[2].plot(x[div], np.full(div.sum(), cap), "x", color=colors[clip], ms=6)
    axes[2].axhline(1.0, color="0.3", ls="--", lw=1)
    axes[2].set_yscale("log")
    axes[2].set_xticks(range(len(gains)), [f"gain {g:g}" for g in gains])
    axes[2].set_ylabel("held-out MSE / baseline")
    axes[2].set_title(f"x: diverged (drawn at {cap:g})", fontsize=9)
    axes[2].legend(fontsize=6, loc="lower left")
    return fig


def summarize(frame):
    table = outcomes(frame)
    out = {}
    for row in table.itertuples():
        key = f"gain {row.gain:g}, {CLIPS[row.clipping]}"
        out[f"{key}: diverged runs (of {row.runs})"] = int(row.diverged)
        out[f"{key}: runs below the baseline"] = int(row.below_baseline)
        out[f"{key}: median held-out MSE / baseline"] = row.median_ratio
        out[f"{key}: median saturation mean h_T^2"] = row.median_saturation
    upd = frame[(frame.record == "update") & (frame.clipping == "norm")]
    out["largest norm after norm clipping"] = float(upd.grad_norm_after.max()) if len(upd) else np.nan
    res = frame[frame.record == "result"]
    div = res[_flag(res.diverged)]
    if len(div):
        out["median update of divergence"] = float(div.diverged_at.median())
    gain_high = HIGH_GAIN if np.any(table.gain == HIGH_GAIN) else float(table.gain.max())
    high = table[table.gain == gain_high].set_index("clipping")
    parts = [f"With plain SGD (learning rate {LEARNING_RATE}) and no clipping, "]
    unclipped = table[table.clipping == "none"]
    parts.append(", ".join(f"{int(r.diverged)} of {int(r.runs)} runs diverged at gain {r.gain:g}"
                           for r in unclipped.itertuples()))
    if len(div):
        parts.append(f" (median update {out['median update of divergence']:.0f}; median "
                     f"saturation of the diverged runs' last finite model "
                     f"{float(div.saturation.median()):.2f}, against "
                     f"{float(res[~_flag(res.diverged)].saturation.median()):.2f} for the others)")
    parts.append(". ")
    norm = table[table.clipping == "norm"]
    if len(norm):
        parts.append(f"With the global norm clipped at {CLIP_NORM:g}, {int(norm.diverged.sum())} of "
                     f"{int(norm.runs.sum())} runs diverged; the largest norm after clipping was "
                     f"{out['largest norm after norm clipping']:.3g}"
                     + (" (never above the threshold). " if out["largest norm after norm clipping"]
                        <= CLIP_NORM else " (ABOVE the threshold). "))
    if "norm" in high.index:
        n = high.loc["norm"]
        parts.append(f"At gain {gain_high:g}, {int(n.below_baseline)} of {int(n.runs)} norm-clipped "
                     f"runs ended below the baseline MSE 1/6 (median {n.median_ratio:.2f} of it)")
        if "value" in high.index:
            v = high.loc["value"]
            parts.append(f"; with value clipping at {CLIP_VALUE:g}, {int(v.diverged)} diverged and "
                         f"{int(v.below_baseline)} ended below the baseline "
                         f"(median {v.median_ratio:.2f})")
        parts.append(".")
    out["notes"] = "".join(parts)
    return out


STUDY = Study(
    name="clipping",
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
