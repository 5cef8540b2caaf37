"""Do the modern recurrences (LRU, minGRU, minLSTM, IndRNN, antisymmetric RNN, coRNN) learn the adding and copy tasks at T = 100 with the small training budget on which the LSTM, GRU and tanh RNN are compared?

Tasks (gradsim.training.tasks): the adding problem (``adding_problem(T)``, MSE; the memoryless
baseline predicts the mean, 1/6 whatever T) and the copy task (``copy_task(T)``: 8 symbols, 10 to
copy after a delay T; per-step cross-entropy; the memoryless baseline 10 log 8 / (T + 20)).
Every cell has N = 16 hidden units and a linear readout (``init_model``), and is trained by BPTT
with one budget for all: the same number of Adam updates (learning rate LEARNING_RATE,
global-norm clipping at CLIP_NORM) of fresh mini-batches of BATCH_SIZE sequences; 4 seeds per
(cell, task, T). The held-out loss is measured on EVAL_SIZE fresh sequences.

A run *succeeds* when its held-out loss is at most (1 - MARGIN) times the trivial baseline (a
fifth of it, as in studies/horizon.py) and training did not diverge. Key numbers: the success
Rate per (cell, task, T) with its Wilson 95% interval, and the median held-out loss / baseline
with its distribution-free standard error. The note names, per cell and task, the longest T at
which at least half the seeds succeed, derived from those rates (with 4 seeds one run flips it:
read it with the intervals).

Cells (gradsim.make_cell): ``lru`` (ring init, r_min 0.9, r_max 0.999), ``mingru``, ``minlstm``,
``indrnn`` (ReLU), ``antisymmetric`` and ``cornn`` (their defaults), ``lstm`` (forget bias 1),
``gru``, ``rnn`` (tanh, orthogonal W).

Budget: the full grid must run in at most 6 minutes on one core, so only T = 100 is trained;
T = 300 and T = 1000 are left out. Measured first (one core): T in {100, 300} with 100 updates
(Adam 0.01) took 250 s of CPU, and no run of any cell succeeded at either length on either task
(0 of 4 everywhere; median loss / baseline 0.94-1.11 on adding, 1.07-4.4 on copy, i.e. 100
updates do not even reach the memoryless baseline on copy). One update at T = 1000 costs ten
at T = 100, so with T = 1000 the budget would allow only a few dozen updates. The budget is
spent instead on N_UPDATES = 450 updates (Adam 0.02, as studies/horizon.py) at T = 100, where
horizon.py's LSTMs succeed in some seeds. At this budget the study measures what a *small*
budget achieves, not what the cells can learn.

Full grid measured at this commit: 282 s of CPU on one core (72 runs). Adding, T = 100: minGRU,
minLSTM and GRU 4 of 4 (median loss / baseline 0.065, 0.055, 0.011), LSTM 2 of 4 (0.49), LRU,
IndRNN, antisymmetric, coRNN and tanh RNN 0 of 4 (0.94-1.00); copy, T = 100: 0 of 4 for every
cell (0.74-1.23; only the LRU, minGRU, minLSTM and GRU go below the baseline at all).
Rerun into reports/ on 2026-12-02 (``gradsim run modern_training --jobs 2``, two processes on
a shared 2-core machine): the same 72 rows and numbers, 224 s wall, 316 s of CPU.

The figure puts the cells side by side (one series per T): the success rate with its Wilson
interval, and every seed's held-out loss / baseline with the median.

Runs are not batched into ensembles: over many updates training amplifies the rounding
differences between an ensemble's stacked products and a lone run's (see studies/horizon.py).
"""

import numpy as np

from gradsim import make_cell
from gradsim.training.backprop import Adam, evaluate, init_model, train_model
from gradsim.training.tasks import adding_problem, copy_task
from gradsim.workflow.findings import median_estimate, rate_of
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study

CELLS = {
    "lru": ("LRU (ring 0.9-0.999)", dict(kind="lru", r_min=0.9, r_max=0.999)),
    "mingru": ("minGRU", dict(kind="mingru")),
    "minlstm": ("minLSTM", dict(kind="minlstm")),
    "indrnn": ("IndRNN (ReLU)", dict(kind="indrnn", activation="relu")),
    "antisymmetric": ("antisymmetric RNN", dict(kind="antisymmetric")),
    "cornn": ("coRNN", dict(kind="cornn")),
    "lstm": ("LSTM, forget bias 1", dict(kind="lstm", forget_bias=1.0)),
    "gru": ("GRU", dict(kind="gru")),
    "rnn": ("RNN (tanh), orthogonal", dict(kind="rnn", init="orthogonal", activation="tanh")),
}
TASKS = {"adding": adding_problem, "copy": copy_task}
N_UPDATES = 450
GRID = {
    "cell": list(CELLS),
    "task": list(TASKS),
    "T": [100],
    "seed": list(range(4)),
    "n_hidden": [16],
    "n_updates": [N_UPDATES],
}
QUICK_GRID = {
    "cell": ["lru", "lstm"],
    "task": list(TASKS),
    "T": [10],
    "seed": [0, 1],
    "n_hidden": [8],
    "n_updates": [10],
}
BATCH_SIZE = 32
LEARNING_RATE = 0.02
CLIP_NORM = 1.0
EVAL_SIZE = 500
# Success: held-out loss <= (1 - MARGIN) * baseline, i.e. at most a fifth of the baseline.
MARGIN = 0.8


def make_task(name, T):
    """The task ``name`` ("adding" or "copy") at delay ``T``."""
    if name not in TASKS:
        raise ValueError(f"`task` must be one of {sorted(TASKS)}; got {name!r}.")
    return TASKS[name](T)


def simulate(config, rng):
    """One training run: a single record with the held-out loss, the task's baseline, their
    ratio, success and divergence."""
    task = make_task(config["task"], config["T"])
    options = dict(CELLS[config["cell"]][1])
    kind = options.pop("kind")
    cell_rng, train_rng, eval_rng = rng.spawn(3)
    cell = make_cell(kind, config["n_hidden"], task.n_input, rng=cell_rng, **options)
    model = init_model(cell, task.n_output, rng=cell_rng)
    record = train_model(model, task, n_updates=config["n_updates"], batch_size=BATCH_SIZE,
                         optimizer=Adam(LEARNING_RATE), clip_norm=CLIP_NORM, rng=train_rng)
    loss = evaluate(record.model, task, EVAL_SIZE, rng=eval_rng)
    if not np.isfinite(loss):
        loss = np.inf
    ratio = loss / task.baseline
    return [{
        "label": CELLS[config["cell"]][0],
        "eval_loss": loss,
        "baseline": task.baseline,
        "ratio_to_baseline": ratio,
        "success": bool(ratio <= 1.0 - MARGIN and not record.diverged),
        "diverged": bool(record.diverged),
        "updates_done": len(record.losses),
        "train_loss_first_10": float(np.mean(record.losses[:10])),
        "train_loss_last_10": float(np.mean(record.losses[-10:])),
    }]


def _bool(column):
    return column.astype(str).str.lower() == "true"


def success_rates(frame):
    """Per (cell, task, T): successes, seeds, success rate and median loss / baseline."""
    res = frame.assign(success=_bool(frame.success))
    return (res.groupby(["cell", "label", "task", "T"], sort=False)
            .agg(successes=("success", "sum"), seeds=("seed", "nunique"),
                 success_rate=("success", "mean"), median_ratio=("ratio_to_baseline", "median"))
            .reset_index())


def longest_half_solved(rates, cell, task):
    """Largest T at which at least half the seeds of (cell, task) succeed; 0 if none."""
    sub = rates[(rates.cell == cell) & (rates.task == task) & (2 * rates.successes >= rates.seeds)]
    return int(sub["T"].max()) if len(sub) else 0


def summarize(frame):
    res = frame.assign(success=_bool(frame.success))
    out = {}
    cells = [c for c in CELLS if c in set(res.cell)]
    tasks = [t for t in TASKS if t in set(res.task)]
    lengths = sorted(int(t) for t in res["T"].unique())
    for cell in cells:
        for task in tasks:
            for T in lengths:
                sub = res[(res.cell == cell) & (res.task == task) & (res["T"] == T)]
                if not len(sub):
                    continue
                label = CELLS[cell][0]
                # Seeds are independent runs: a rate with its Wilson interval; the ratio's
                # median with its order-statistic standard error.
                out[f"success rate, {label}, {task}, T={T}"] = rate_of(sub.success)
                out[f"median loss / baseline, {label}, {task}, T={T}"] = median_estimate(
                    sub.ratio_to_baseline.to_numpy(float))
    out["runs diverged"] = rate_of(_bool(frame.diverged))
    rates = success_rates(frame)
    seeds = rates.seeds
    seed_text = (f"{int(seeds.min())}" if seeds.min() == seeds.max()
                 else f"{int(seeds.min())}-{int(seeds.max())}")
    parts = [f"With {int(frame.n_updates.iloc[0])} Adam updates ({LEARNING_RATE}, clipping at "
             f"{CLIP_NORM}) of {BATCH_SIZE} sequences, N = {int(frame.n_hidden.iloc[0])} and "
             f"{seed_text} seeds per (cell, task, T), success = held-out loss <= "
             f"{1 - MARGIN:.1f} x the memoryless baseline. Longest T (of "
             f"{', '.join(map(str, lengths))}) solved in at least half the seeds (one seed "
             f"flips this; see the rates' intervals): "]
    items = []
    for cell in cells:
        per_task = []
        for task in tasks:
            best = longest_half_solved(rates, cell, task)
            per_task.append(f"{task} {best if best else 'none'}")
        items.append(f"{CELLS[cell][0]}: " + ", ".join(per_task))
    parts.append("; ".join(items) + ".")
    out["notes"] = "".join(parts)
    return out


def plot(frame):
    """Per cell (x axis) and task (column): the success rate with its Wilson 95% interval (top)
    and every seed's held-out loss / baseline with the median (bottom), one series per T."""
    res = frame.assign(success=_bool(frame.success))
    rates = success_rates(frame)
    cells = [c for c in CELLS if c in set(rates.cell)]
    tasks = [t for t in TASKS if t in set(rates.task)]
    lengths = sorted(int(t) for t in rates["T"].unique())
    fig, axes = new_figure(ncols=len(tasks), nrows=2, width=4.2, height=3.0)
    axes = np.asarray(axes).reshape(2, len(tasks))
    x = np.arange(len(cells))
    for j, task in enumerate(tasks):
        for k, T in enumerate(lengths):
            shift = 0.25 * (k - (len(lengths) - 1) / 2)
            style = dict(color=PALETTE[k % len(PALETTE)], marker="os^D"[k % 4], ms=4,
                         ls="none", label=f"T = {T}")
            sub = rates[(rates.task == task) & (rates["T"] == T)].set_index("cell")
            sub = sub.reindex(cells)
            have = sub.seeds.notna().to_numpy()
            intervals = np.array([rate_of([True] * int(r.successes)
                                          + [False] * int(r.seeds - r.successes)).interval()
                                  for r in sub[have].itertuples()]).reshape(-1, 2).T
            value = sub.success_rate[have].to_numpy(float)
            axes[0, j].errorbar(x[have] + shift, value,
                                yerr=[value - intervals[0], intervals[1] - value],
                                capsize=2, lw=1, elinewidth=0.8, **style)
            for i, cell in enumerate(cells):
                runs = res[(res.cell == cell) & (res.task == task) & (res["T"] == T)]
                ratio = runs.ratio_to_baseline.to_numpy(float).clip(max=100.0)
                axes[1, j].plot(np.full(ratio.size, x[i] + shift), ratio, ls="none",
                                marker=style["marker"], ms=3, mfc="none",
                                color=style["color"], alpha=0.7)
            axes[1, j].plot(x[have] + shift, sub.median_ratio[have].clip(upper=100.0),
                            marker="_", ms=12, mew=2, ls="none", color=style["color"],
                            label=f"T = {T}, median")
        axes[0, j].set_title(f"{task}: success (loss <= {1 - MARGIN:.1f} x baseline)", fontsize=9)
        axes[0, j].set_ylabel("success rate (Wilson 95% CI)")
        axes[0, j].set_ylim(-0.05, 1.05)
        axes[1, j].axhline(1.0, color="0.3", ls="--", lw=1, label="memoryless baseline")
        axes[1, j].axhline(1.0 - MARGIN, color="0.3", ls=":", lw=1, label="success threshold")
        axes[1, j].set_yscale("log")
        axes[1, j].set_ylabel("held-out loss / baseline (seeds, median)")
        axes[1, j].set_title(f"{task}: held-out loss", fontsize=9)
        for ax in axes[:, j]:
            ax.set_xticks(x, [CELLS[c][0].split(" (")[0].split(",")[0] for c in cells],
                          rotation=45, ha="right", fontsize=7)
            ax.set_xlim(-0.6, len(cells) - 0.4)
    axes[0, 0].legend(fontsize=6, loc="best")
    axes[1, 0].legend(fontsize=6, loc="best")
    return fig


STUDY = Study(
    name="modern_training",
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
