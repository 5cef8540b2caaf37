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
from gradsim.workflow.findings import Exact, median_estimate, rate_of
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study
from gradsim.training.tasks import adding_problem
from gradsim.training.backprop import SGD, evaluate, init_model, stack_models, train_model

CLIPS = {"none": "no clipping", "norm": "norm clipping", "value": "value clipping"}
GRID = {
    "gain": [0.5, 1.0, 2.0, 4.0],
    "clipping": list(CLIPS),
    "seed": list(range(12)),
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


CLIP_OPTIONS = dict(none={}, norm=dict(clip_norm=CLIP_NORM), value=dict(clip_value=CLIP_VALUE))


def _build(config, rng):
    """The task, the untrained model and the training and evaluation generators of one run."""
    task = adding_problem(config["T"])
    cell_rng, train_rng, eval_rng = rng.spawn(3)
    cell = make_cell("rnn", config["n_hidden"], task.n_input, init="gaussian", gain=config["gain"],
                     activation="tanh", rng=cell_rng)
    return task, init_model(cell, task.n_output, rng=cell_rng), train_rng, eval_rng


def _train(config, model, task, rng, batches="shared"):
    return train_model(model, task, n_updates=config["n_updates"], batch_size=BATCH_SIZE,
                       optimizer=SGD(LEARNING_RATE), rng=rng, batches=batches,
                       **CLIP_OPTIONS[config["clipping"]])


def _records(config, task, record, eval_rng):
    """The records of one run from its training record."""
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
    done = len(record.losses)
    last = config["n_updates"] - 1
    for u in range(config["n_updates"]):
        # Every 4th update (and the last) is enough for the curves and keeps the CSV small;
        # the exact maxima over all updates are in the "result" row. A diverged run stopped
        # early: its later rows are there, NaN, so that the CSV's rows are fixed by the grid.
        if u % 4 and u != last:
            continue
        if u < done:
            values = (float(record.losses[u]), float(record.grad_norm_before[u]),
                      float(record.grad_norm_after[u]))
        else:
            values = (np.nan, np.nan, np.nan)
        records.append(dict(zip(("record", "update", "loss", "grad_norm_before", "grad_norm_after"),
                                ("update", u) + values)))
    return records


def simulate(config, rng):
    """Per-update records (loss, gradient norm before and after clipping; NaN after a
    divergence) and one "result" record (held-out MSE, divergence)."""
    task, model, train_rng, eval_rng = _build(config, rng)
    return _records(config, task, _train(config, model, task, train_rng), eval_rng)


class _MemberStreams(np.random.Generator):
    """A generator whose ``spawn(B)`` gives B given generators: with ``batches="per_member"``,
    ``train_model`` draws member i's mini-batches from ``rng.spawn(B)[i]``, so passing this
    makes member i draw from its own configuration's training generator, as it does alone."""

    def __init__(self, streams):
        super().__init__(np.random.PCG64(0))  # never drawn from
        self._streams = list(streams)

    def spawn(self, n_children):
        if n_children != len(self._streams):
            raise ValueError(f"{len(self._streams)} member streams, asked for {n_children}")
        return list(self._streams)


def batch_key(config):
    """One ensemble per clipping rule, length, size and budget (gain and seed are weights)."""
    return [config["clipping"], config["T"], config["n_hidden"], config["n_updates"]]


def simulate_batch(configs, rngs):
    """:func:`simulate` of every configuration, as one ensemble of their RNNs (each member
    with its own initialisation, mini-batches and held-out set: to rounding, the run it has
    alone; a diverged member stops and the others go on)."""
    built = [_build(c, r) for c, r in zip(configs, rngs)]
    task = built[0][0]
    record = _train(configs[0], stack_models([b[1] for b in built]), task,
                    _MemberStreams(b[2] for b in built), batches="per_member")
    return [_records(c, task, record[i], b[3]) for i, (c, b) in enumerate(zip(configs, built))]


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
        result = res[(res.clipping == clip) & (res.seed == seed) & (res.gain == high)]
        if _flag(result.diverged).any():
            axes[0].plot([float(result.diverged_at.iloc[0])], [loss_top / 2], "x",
                         color=colors[clip], ms=6)
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


def _rate(flags):
    return rate_of(np.asarray(flags, dtype=bool))


def _interval(rate):
    """``95% CI lo-hi`` of a Rate (Wilson)."""
    low, high = rate.interval()
    return f"95% CI {low:.2f}-{high:.2f}"


def _count(rate, brackets=True):
    """``k of n (95% CI lo-hi)``, or ``k/n, 95% CI lo-hi`` inside brackets."""
    if brackets:
        return f"{rate.successes} of {rate.trials} ({_interval(rate)})"
    return f"{rate.successes}/{rate.trials}, {_interval(rate)}"


def _disjoint(a, b):
    """Whether the Wilson 95% intervals of two rates do not overlap."""
    (a_low, a_high), (b_low, b_high) = a.interval(), b.interval()
    return a_low > b_high or b_low > a_high


def _apart(a, b):
    """Whether two estimates differ by more than 2 combined standard errors (~95%)."""
    se = np.hypot(a.stderr, b.stderr)
    return bool(np.isfinite(se) and abs(float(a) - float(b)) > 2 * se)


def _est(value, digits=2):
    """``median ± s.e.`` of an Estimate."""
    return f"{float(value):.{digits}f} ± {value.stderr:.2g}"


def summarize(frame):
    res = frame[frame.record == "result"].assign(diverged=lambda f: _flag(f.diverged))
    res = res.assign(below=res.ratio_to_baseline.astype(float) < 1.0)
    groups = {key: sub for key, sub in res.groupby(["gain", "clipping"], sort=False)}
    out = {}
    diverged, below, median = {}, {}, {}
    for (gain, clip), sub in groups.items():
        key = f"gain {gain:g}, {CLIPS[clip]}"
        # Rates of independent runs (one per seed); medians over the seeds with the
        # distribution-free standard error (a diverged run's MSE is inf, taken as it is).
        diverged[gain, clip] = out[f"{key}: diverged (fraction of runs)"] = _rate(sub.diverged)
        below[gain, clip] = out[f"{key}: below the baseline (fraction of runs)"] = _rate(sub.below)
        median[gain, clip] = out[f"{key}: median held-out MSE / baseline"] = (
            median_estimate(sub.ratio_to_baseline))
        out[f"{key}: median saturation mean h_T^2"] = median_estimate(sub.saturation)
    gains = sorted({g for g, _ in groups})
    high_gains = [g for g in gains if g >= HIGH_GAIN]
    pooled = {}
    for clip in [c for c in CLIPS if any(c == k for _, k in groups)]:
        sub = res[(res.clipping == clip) & res.gain.isin(high_gains)]
        if len(sub):
            pooled[clip] = _rate(sub.diverged)
            out[f"gains >= {HIGH_GAIN:g}, {CLIPS[clip]}: diverged (fraction of runs)"] = pooled[clip]
    norm = res[res.clipping == "norm"]
    # Clipping rescales g to CLIP_NORM * g / ||g|| whenever ||g|| >= CLIP_NORM: the largest norm
    # after it (over every update: the result rows' maxima) is the threshold itself, to
    # rounding, once any update was clipped; the CSV's 12 digits are far inside rtol 1e-9.
    largest = float(norm.max_grad_norm_after.max()) if len(norm) else np.nan
    out["largest norm after norm clipping"] = Exact(largest)
    div = res[res.diverged]
    if len(div):
        out["median update of divergence"] = median_estimate(div.diverged_at)

    parts = [f"With plain SGD (learning rate {LEARNING_RATE}) and no clipping, runs diverged "]
    parts.append(", ".join(f"at gain {g:g} in {_count(diverged[g, 'none'])}"
                           for g in gains if (g, "none") in diverged))
    parts.append(". ")
    if len(div):
        others = res[~res.diverged]
        sat_div = median_estimate(div.saturation)
        parts.append(f"The diverged runs stopped at update {_est(out['median update of divergence'], 0)} "
                     f"(median), their last finite model saturated: median mean h_T^2 "
                     f"{_est(sat_div)}")
        if len(others):
            sat_other = median_estimate(others.saturation)
            parts.append(f", against {_est(sat_other)} for the other runs"
                         + (" (apart by more than 2 combined standard errors)"
                            if _apart(sat_div, sat_other)
                            else " (within 2 combined standard errors)"))
        parts.append(". ")
    if len(norm):
        parts.append(f"With the global norm clipped at {CLIP_NORM:g}, runs diverged in "
                     f"{_count(_rate(norm.diverged))} over all gains; the largest norm after "
                     f"clipping was {largest:.3g}"
                     + (" (never above the threshold, to rounding). "
                        if largest <= CLIP_NORM * (1 + 1e-9) else " (ABOVE the threshold). "))
    if "none" in pooled and "norm" in pooled:
        a, b = pooled["none"], pooled["norm"]
        verdict = ("the 95% intervals are disjoint: clipping prevents the divergence"
                   if _disjoint(a, b) and float(a) > float(b) else
                   "the 95% intervals overlap: no difference is shown")
        parts.append(f"At gains >= {HIGH_GAIN:g}, the rate of divergence is {float(a):.2f} "
                     f"without clipping ({_count(a, False)}) and {float(b):.2f} with norm "
                     f"clipping ({_count(b, False)}): {verdict}. ")
    for clip in ("norm", "value"):
        ends = [g for g in high_gains if (g, clip) in median]
        if not ends:
            continue
        line = [f"{_est(median[g, clip])} at gain {g:g} ({below[g, clip].successes} of "
                f"{below[g, clip].trials} runs below the baseline, {_interval(below[g, clip])})"
                for g in ends]
        parts.append(f"With {CLIPS[clip]}, the median held-out MSE / baseline is "
                     + " and ".join(line))
        if len(ends) >= 2:
            a, b = median[ends[0], clip], median[ends[-1], clip]
            if _apart(a, b):
                parts.append(f": gain {ends[-1]:g} ends {'higher' if b > a else 'lower'} than "
                             f"gain {ends[0]:g}, by more than 2 combined standard errors")
            else:
                parts.append(f": gain {ends[-1]:g} ends within 2 combined standard errors of gain "
                             f"{ends[0]:g}")
        parts.append(". ")
    out["notes"] = "".join(parts).strip()
    return out


STUDY = Study(
    name="clipping",
    question=__doc__.splitlines()[0],
    grid=GRID,
    quick_grid=QUICK_GRID,
    simulate=simulate,
    # Not batched in the report: over hundreds of updates training amplifies the rounding
    # differences between an ensemble's stacked products and a lone run's, so a member's rows
    # would depend on its batch partners, and the runner promises that adding a grid point
    # never changes another's rows (tests/test_runner.py). simulate_batch stays for users who
    # trade that for speed (~1.3-1.5x), and is tested to match over a few updates.
    plot=plot,
    summarize=summarize,
)


def main(quick=False):
    from gradsim.workflow.report import produce

    return produce(__file__, quick=quick)


if __name__ == "__main__":
    main()
