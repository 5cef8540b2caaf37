"""Up to which sequence length do a tanh RNN, an IRNN, LSTMs (forget bias 0 and 1) and a GRU learn the adding problem with the same small training budget?

The adding problem (THEORY.md section 11; gradsim.training.tasks.adding_problem): two marked values
among T uniform ones, the target their sum. Predicting the mean scores MSE 1/6 whatever T; to
beat it a network must carry the first marked value (in the first half of the sequence) over
T/2 steps on average. Every model has N hidden units and is trained by BPTT with the same budget
(Adam, global-norm clipping, a fixed number of updates of fresh mini-batches), several seeds each.
A run *succeeds* when its held-out MSE is below (1 - MARGIN) times the baseline: it must beat
the baseline by a factor 1 / (1 - MARGIN), more than remembering one of the two values could
(that scores 1/12, half the baseline). A length counts as *solved* by a model when the Wilson 95%
interval of its seeds' success rate lies above 1/2, *failed* when it lies below, *undecided*
when it holds 1/2 (a rate near 1/2 needs more seeds than the budget allows).

The per-step gradient norms ||dL/dh_t|| recorded at the first and the last update show where
the gradient dies: the lecture notes' vanishing-gradient story (002_3bb4438a82864ce0.txt,
004_c529f0233c26f347.txt) predicts a geometric decay back from the loss for the RNN and a
surviving gradient along the LSTM's cell path.
"""

import numpy as np

from gradsim import make_cell
from gradsim.workflow.findings import Rate, median_estimate, rate_of
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study
from gradsim.training.tasks import adding_problem
from gradsim.training.backprop import Adam, evaluate, init_model, stack_models, train_model

MODELS = {
    "rnn": ("RNN (tanh), orthogonal", dict(kind="rnn", init="orthogonal", activation="tanh")),
    "irnn": ("IRNN (ReLU, W = I)", dict(kind="irnn")),
    "lstm_fb0": ("LSTM, forget bias 0", dict(kind="lstm", init="orthogonal", forget_bias=0.0)),
    "lstm_fb1": ("LSTM, forget bias 1", dict(kind="lstm", init="orthogonal", forget_bias=1.0)),
    "gru": ("GRU", dict(kind="gru", init="orthogonal")),
}
GRID = {
    "model": list(MODELS),
    # T = 100 (half the cost) is left out: there the IRNN and the LSTMs succeed in only some
    # seeds (of 16: IRNN 2, LSTM forget bias 0 7, forget bias 1 13; GRU 16), rates that no
    # affordable number of seeds decides, while it would halve the seeds for T <= 50.
    "T": [10, 25, 50],
    # 11 seeds: a success rate near 0 or 1 (0/11-2/11 or 9/11-11/11) then has its Wilson 95%
    # interval on one side of 1/2, and a true rate of 0.94 (the RNN and IRNN at T = 10) stays
    # there in 98% of reruns (see verdicts()).
    "seed": list(range(11)),
    "n_hidden": [16],
    "n_updates": [500],
}
QUICK_GRID = {
    "model": ["rnn", "lstm_fb1"],
    "T": [5, 30],
    "seed": [0],
    "n_hidden": [8],
    "n_updates": [40],
}
BATCH_SIZE = 32
LEARNING_RATE = 0.02
CLIP_NORM = 1.0
EVAL_SIZE = 1000
# Success: held-out MSE <= (1 - MARGIN) * baseline, i.e. at most a fifth of the baseline.
MARGIN = 0.8


def _build(config, rng):
    """The task, the untrained model and the training and evaluation generators of one run."""
    task = adding_problem(config["T"])
    options = dict(MODELS[config["model"]][1])
    kind = options.pop("kind")
    cell_rng, train_rng, eval_rng = rng.spawn(3)
    cell = make_cell(kind, config["n_hidden"], task.n_input, rng=cell_rng, **options)
    return task, init_model(cell, task.n_output, rng=cell_rng), train_rng, eval_rng


def _train(model, task, n_updates, rng, batches="shared"):
    return train_model(model, task, n_updates=n_updates, batch_size=BATCH_SIZE,
                       optimizer=Adam(LEARNING_RATE), clip_norm=CLIP_NORM,
                       record_steps_at=[0, n_updates - 1], rng=rng, batches=batches)


def _records(config, task, record, eval_rng):
    """The records of one run from its training record."""
    label = MODELS[config["model"]][0]
    loss = evaluate(record.model, task, EVAL_SIZE, rng=eval_rng)
    if not np.isfinite(loss):
        loss = np.inf
    ratio = loss / task.baseline
    records = [{
        "record": "result",
        "label": label,
        "eval_mse": loss,
        "baseline": task.baseline,
        "ratio_to_baseline": ratio,
        "success": bool(ratio <= 1.0 - MARGIN and not record.diverged),
        "diverged": record.diverged,
        "updates_done": len(record.losses),
        "train_mse_first_50": float(np.mean(record.losses[:50])),
        "train_mse_last_50": float(np.mean(record.losses[-50:])),
    }]
    for update, norms in zip(record.recorded_updates, record.hidden_grad_norms):
        with np.errstate(divide="ignore"):
            log_norms = np.log10(norms)
        length = len(norms) - 1
        for t in range(length, -1, -1):
            records.append({
                "record": "profile",
                "label": label,
                "at_update": "first" if update == 0 else "last",
                "steps_back": length - t,
                "log10_grad_norm": float(log_norms[t]),
            })
    return records


def simulate(config, rng):
    """One training run: a "result" record (held-out loss, success, divergence) and "profile"
    records of log10 ||dL/dh_t|| against the steps back from the loss, at the first and last
    update."""
    task, model, train_rng, eval_rng = _build(config, rng)
    record = _train(model, task, config["n_updates"], train_rng)
    return _records(config, task, record, eval_rng)


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
    """The seeds of one model, length, size and budget train as one ensemble."""
    return [config["model"], config["T"], config["n_hidden"], config["n_updates"]]


def simulate_batch(configs, rngs):
    """:func:`simulate` of every configuration, as one ensemble of their networks (each
    member with its own initialisation, mini-batches and held-out set: to rounding, the
    run it has alone)."""
    built = [_build(c, r) for c, r in zip(configs, rngs)]
    task = built[0][0]
    record = _train(stack_models([b[1] for b in built]), task, configs[0]["n_updates"],
                    _MemberStreams(b[2] for b in built), batches="per_member")
    return [_records(c, task, record[i], b[3]) for i, (c, b) in enumerate(zip(configs, built))]


def _results(frame):
    res = frame[frame.record == "result"]
    return res.assign(success=res.success.astype(str).str.lower() == "true")


def success_rates(frame):
    """Success rate, median MSE / baseline and number of seeds per (model, T); ``successes``
    counts the successful seeds."""
    res = _results(frame)
    return (res.groupby(["model", "label", "T"], sort=False)
            .agg(success_rate=("success", "mean"), successes=("success", "sum"),
                 median_ratio=("ratio_to_baseline", "median"), seeds=("seed", "nunique"))
            .reset_index())


def verdicts(rates, level=0.5):
    """Per (model, T): "solved" when the Wilson 95% interval of the success rate lies above
    ``level``, "failed" when it lies below, "undecided" when it holds ``level``.

    Unlike "at least half the seeds succeed", which one seed flips, a verdict here changes on
    another machine only when a success rate sits near the edge of its interval; a rate near
    ``level`` itself stays "undecided"."""
    def verdict(row):
        low, high = Rate(int(row.successes), int(row.seeds)).interval()
        return "solved" if low > level else "failed" if high < level else "undecided"

    return rates.assign(verdict=[verdict(r) for r in rates.itertuples()])


def longest_solved(rates, model, level=0.5):
    """Largest T at which ``model`` is "solved" (:func:`verdicts`: the Wilson 95% interval of
    its success rate above ``level``); 0 if none."""
    v = verdicts(rates, level)
    ok = v[(v.model == model) & (v.verdict == "solved")]
    return int(ok["T"].max()) if len(ok) else 0


def first_failed(rates, model, level=0.5):
    """Smallest T at which ``model`` "failed" (:func:`verdicts`: the Wilson 95% interval of its
    success rate below ``level``); inf if none."""
    v = verdicts(rates, level)
    bad = v[(v.model == model) & (v.verdict == "failed")]
    return int(bad["T"].min()) if len(bad) else np.inf


def plot(frame):
    rates = success_rates(frame)
    fig, axes = new_figure(ncols=3, width=3.7, height=3.3)
    axes = axes.ravel()
    models = [m for m in MODELS if m in set(rates.model)]
    for i, model in enumerate(models):
        sub = rates[rates.model == model].sort_values("T")
        style = dict(color=PALETTE[i], marker="os^Dv"[i], ms=4, label=MODELS[model][0])
        # Wilson 95% intervals of the seeds' success rates (offset a little per model).
        low, high = np.array([Rate(int(r.successes), int(r.seeds)).interval()
                              for r in sub.itertuples()]).T
        shift = 1.0 + 0.03 * (i - 2)
        axes[0].errorbar(sub["T"] * shift, sub.success_rate,
                         yerr=[sub.success_rate - low, high - sub.success_rate],
                         capsize=2, lw=1, elinewidth=0.8, **style)
        axes[1].plot(sub["T"], sub.median_ratio.clip(upper=10.0), **style)
    lengths = sorted(int(t) for t in rates["T"].unique())
    for ax in axes[:2]:
        ax.set_xscale("log")
        ax.set_xticks(lengths, [str(t) for t in lengths])
        ax.minorticks_off()
        ax.set_xlabel("sequence length T")
    axes[0].set_ylabel("success rate (seeds; Wilson 95% CI)")
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].set_title(f"MSE < {1 - MARGIN:.1f} x baseline", fontsize=9)
    axes[0].legend(fontsize=6, loc="lower left")
    axes[1].axhline(1.0, color="0.3", ls="--", lw=1)
    axes[1].axhline(1.0 - MARGIN, color="0.3", ls=":", lw=1)
    axes[1].annotate("baseline 1/6", (axes[1].get_xlim()[0], 1.0), fontsize=7, va="bottom")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("held-out MSE / baseline (median of seeds)")

    # Gradient profile at the longest T, first update, median over seeds, relative to t = T.
    prof = frame[(frame.record == "profile") & (frame["T"] == frame["T"].max())]
    for i, model in enumerate(models):
        for update, ls in (("first", "-"), ("last", ":")):
            sub = prof[(prof.model == model) & (prof.at_update == update)]
            if sub.empty:
                continue
            top = sub[sub.steps_back == 0].set_index("seed").log10_grad_norm
            rel = sub.log10_grad_norm.to_numpy() - top.loc[sub.seed].to_numpy()
            med = (sub.assign(rel=rel).groupby("steps_back").rel.median())
            axes[2].plot(med.index, med.to_numpy(), color=PALETTE[i], ls=ls, lw=1.2,
                         label=f"{MODELS[model][0]}" if update == "first" else None)
    axes[2].plot([], [], color="0.3", ls="-", label="first update")
    axes[2].plot([], [], color="0.3", ls=":", label="last update")
    axes[2].set_xlabel(f"steps back from the loss (T = {int(frame['T'].max())})")
    axes[2].set_ylabel(r"$\log_{10}\,\|\partial L/\partial h_t\| / \|\partial L/\partial h_T\|$")
    axes[2].set_ylim(bottom=max(axes[2].get_ylim()[0], -20))
    axes[2].legend(fontsize=6, loc="lower left")
    return fig


def _ts(values):
    values = [f"{int(t)}" for t in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def summarize(frame):
    rates = verdicts(success_rates(frame))
    res = _results(frame)
    models = [m for m in MODELS if m in set(rates.model)]
    out = {}
    for row in rates.itertuples():
        # Seeds are independent runs: a rate with its Wilson interval.
        out[f"success rate, {row.label}, T={row.T}"] = Rate(int(row.successes), int(row.seeds))
    out["runs diverged"] = rate_of(res.diverged.astype(str).str.lower().eq("true"))
    # How much of the gradient at the loss reaches `back` steps back, at the first and at the
    # last update: the median over seeds and the T that reach that far, with the median's
    # distribution-free standard error (training runs branch on rounding, so another machine
    # gives other draws of the same distribution).
    prof = frame[frame.record == "profile"]
    back = 50 if (prof.steps_back >= 50).any() else int(prof.steps_back.max())
    drops = {}
    for model in models:
        for when in ("first", "last"):
            sub = prof[(prof.model == model) & (prof.at_update == when)]
            top = sub[sub.steps_back == 0].set_index(["T", "seed"]).log10_grad_norm
            far = sub[sub.steps_back == back].set_index(["T", "seed"]).log10_grad_norm
            drops[model, when] = median_estimate((far - top.loc[far.index]).to_numpy())
            out[f"{MODELS[model][0]}: median log10 gradient drop over {back} steps, {when} update"] = (
                drops[model, when])

    seeds = rates.seeds.to_numpy()
    seed_text = f"{int(seeds.min())}" if seeds.min() == seeds.max() else f"{int(seeds.min())}-{int(seeds.max())}"
    parts = [
        f"With {int(frame.n_updates.iloc[0])} updates of {BATCH_SIZE} sequences (N = "
        f"{int(frame.n_hidden.iloc[0])}, Adam {LEARNING_RATE}, clipping at {CLIP_NORM}) and "
        f"{seed_text} seeds per model and T, a length counts as solved when the Wilson 95% "
        f"interval of the success rate lies above 1/2, failed when it lies below, undecided "
        f"when it holds 1/2. "
    ]
    for model in models:
        sub = rates[rates.model == model].sort_values("T")
        groups = []
        for verdict in ("solved", "undecided", "failed"):
            cells = sub[sub.verdict == verdict]
            if not len(cells):
                continue
            text = f"{verdict} at T = {_ts(cells['T'])}"
            if verdict == "undecided":
                text += " (" + "; ".join(
                    f"{int(c.successes)} of {int(c.seeds)}, 95% CI "
                    + "{:.2f}-{:.2f}".format(*Rate(int(c.successes), int(c.seeds)).interval())
                    for c in cells.itertuples()) + ")"
            groups.append(text)
        parts.append(f"{MODELS[model][0]}: " + ", ".join(groups) + ". ")
    if "rnn" in models:
        rnn_fail = first_failed(rates, "rnn")
        lstm = [m for m in ("lstm_fb0", "lstm_fb1") if m in models]
        lstm_best = max((longest_solved(rates, m) for m in lstm), default=0)
        if np.isfinite(rnn_fail) and lstm_best > rnn_fail:
            parts.append(f"So the tanh RNN fails from T = {int(rnn_fail)} on, where an LSTM "
                         f"still solves T = {lstm_best}. ")
    if "rnn" in models and "lstm_fb1" in models:
        r, l = drops["rnn", "last"], drops["lstm_fb1", "last"]
        gap = float(l) - float(r)
        se = float(np.hypot(l.stderr, r.stderr))
        # A two-way verdict (apart beyond 2 standard errors or not), not "more than a factor
        # 100": with 11 seeds the RNN's median carries ~1.7 of the ~7 orders of magnitude as
        # its standard error, which would put a factor-100 verdict near its edge.
        if np.isfinite(gap) and np.isfinite(se) and gap > 2 * se:
            verdict = (f": after training the LSTM's gradient survives the distance, "
                       f"{gap:.1f} ± {se:.2g} orders of magnitude above the RNN's (apart by more "
                       f"than 2 combined standard errors).")
        elif np.isfinite(gap) and np.isfinite(se) and gap < -2 * se:
            verdict = (f": after training the RNN's gradient is {-gap:.1f} ± {se:.2g} orders of "
                       f"magnitude above the LSTM's (beyond 2 combined standard errors).")
        else:
            verdict = (f": after training the two differ by {gap:.1f} ± {se:.2g} orders of "
                       f"magnitude, within 2 combined standard errors.")
        parts.append(
            f"The gradient reaching {back} steps back from the loss is, relative to its value "
            f"at the loss (log10, median of the seeds at T >= {back}, ± one standard "
            f"error), {float(drops['rnn', 'first']):.1f} ± {drops['rnn', 'first'].stderr:.2g} at "
            f"the first update and {float(r):.1f} ± {r.stderr:.2g} at the last for the RNN, "
            f"{float(drops['lstm_fb1', 'first']):.1f} ± {drops['lstm_fb1', 'first'].stderr:.2g} "
            f"and {float(l):.1f} ± {l.stderr:.2g} for the LSTM with forget bias 1" + verdict)
    out["notes"] = "".join(parts).strip()
    return out


STUDY = Study(
    name="horizon",
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
