"""Does gradient flossing before training (Engelken 2023) make the delayed temporal XOR trainable at longer delays, for the tanh RNN, the LSTM and the GRU?

Task (gradsim.training.tasks.delayed_xor, the generator of the paper's public code
``GradientFlossing_XOR.jl`` with ``task = -1``): a stream of fair bits x_t, one input, and at
every step the target y_t = x_(t-d) XOR x_(t-2d) (two-class cross-entropy at every step; x = 0
before the sequence). Sequences have T = 2d + SCORED steps; the steps t >= 2d, whose target
needs the whole horizon 2d, are the ones scored: a run *solves* the task when its held-out
accuracy there (EVAL_SIZE fresh sequences) is at least SUCCESS_ACCURACY (chance: 1/2) and
training did not diverge, and *learns above chance* when that accuracy is at least
ABOVE_CHANCE (0.6: chance scores 0.5 +- 0.005 on the 10 000 scored bits, so 0.6 is 20 standard
errors above it). The second criterion was added after the first full run, in which every
flossed tanh RNN at d = 12 reached 0.80-0.83 and every unflossed one 0.50-0.51, with none at
0.9: the solved rate alone hid the clearest effect of the grid.

Protocol (the paper's "flossing before training"; its code ``GradientFlossing_ExampleCode.jl``:
Adam 1e-3 on mean((lambda_i - 0)^2) over nLE = 75 of N = 80 exponents, windows of 55 steps with
a transient of ceil(55/10), 500 flossing updates, then 3000 training updates of 16 sequences at
Adam 1e-3 with clipping at 0.03; recurrent weights, input weights and bias flossed). Here, on
one core in a few minutes: N = 32, k = K exponents of the full state (half of the tanh RNN's and
GRU's N, a quarter of the LSTM's 2N), FLOSS_UPDATES flossing-only Adam updates
(gradsim.training.floss.floss, learning rate FLOSS_LR, every cell parameter) on a fixed batch
of FLOSS_WINDOWS windows of FLOSS_STEPS task input steps (warm-up FLOSS_WARMUP; the loss is that
of their mean exponents), then N_UPDATES BPTT updates of BATCH_SIZE fresh sequences (Adam at
the cell's learning rate LEARNING_RATE[cell], global-norm clipping at CLIP_NORM), the readout
initialised by init_model. Without flossing the same cell is trained on the same mini-batches
(the same training generator), so each seed is a paired comparison. Flossing does not depend on
the delay (the inputs are the same bits whatever d): each (cell, seed) is flossed once and its
flossed cell trained at every delay.

Learning rates: one pilot (3 seeds, 600 updates) found the gated cells learning nothing at
d >= 6 with 0.01 and the tanh RNN's flossing gain largest at 0.01 (at 0.02 its unflossed runs
learn d = 8 partly too); hence 0.01 for the tanh RNN and 0.02 for the LSTM and GRU.

Also measured per (cell, seed), before and after flossing, on fresh task inputs: the top K
exponents (gradsim.lyapunov_spectrum over SPECTRUM_STEPS steps, with their standard errors);
the spread log s_1 - log s_K of the top log singular values of the long-range Jacobian
P_(2 d_max) = d s_(2 d_max) / d s_0 (gradsim.log_singular_values; log of its condition number
restricted to the top K directions), and the log gain log ||g_0|| - log ||g_(2 d_max)|| of a
gradient back-propagated over the longest horizon (gradsim.gradient_norms, a random unit
upstream vector), each averaged over JACOBIAN_SEQUENCES sequences; and, for the training runs,
the global norm of the first BPTT gradient.

Findings of the full grid (first run at 7017dbc, 15 configurations; the same seeds and draws
here). The tanh RNN: d = 4 solved by every run; d = 8 learnt partly with and without flossing
(accuracies 0.72-0.82, none solved); d = 12 learnt partly by every flossed run (0.80-0.83) and
by none of the unflossed (0.50-0.51): 5/5 against 0/5 above chance, Wilson intervals apart.
Flossing moved its lambda_1 from -0.32 to -0.003 (seed means) and lambda_16 from -0.86 to
-0.11, shrank the top-16 log singular value spread of P_24 from 14.3 to 3.5 and turned the
gradient's log gain over 24 steps from -8.1 to +0.6. The gated cells: flossing put all 16
exponents within 0.007 of 0 (LSTM, GRU) but destroyed trainability: d = 4, solved by 5/5
unflossed LSTMs and GRUs, was solved by 1/5 flossed LSTMs and 0/5 flossed GRUs (accuracies
0.54-0.58), and nothing learnt d >= 8 either way. How the gated cells reach zero exponents
(one network each, flossed as here, on 300 steps of bits; measured once, outside the grid): the
GRU's mean update gate z went from 0.52 to 0.92 (71% of its values above 0.95: h' ~ h, a
state that barely takes input), the LSTM's forget gate from 0.70 to 0.88 (54% above 0.95) with
its cell state's spread over time from 0.14 to 3.3 (an integrator that no longer forgets).
Neutral tangent dynamics bought by saturated gates is not what training needs; the paper's
public code flosses the vanilla tanh RNN only.

Cost: the full grid took 328 s of CPU on one core (run into reports/ from 9cfe7d2, rows identical to
the first run; LSTM and GRU training most of it).

Key numbers: solved and above-chance Rates (Wilson 95%) per (cell, d, flossed); median held-out accuracy per
(cell, d, flossed) (order-statistic standard error); per cell and flossed, seed means (with
standard errors over seeds) of lambda_1, lambda_K, the RMS distance of the top K from 0, the
Jacobian spread and the gradient gain at the longest delay.
"""

import numpy as np

# Imported here, before the runner pins BLAS threads around simulate: scipy.linalg carries its
# own OpenBLAS, which a threadpool limit set before it is loaded does not reach.
import scipy.linalg  # noqa: F401

from gradsim import gradient_norms, log_singular_values, lyapunov_spectrum, make_cell
from gradsim.training.backprop import Adam, forward, init_model, train_model
from gradsim.training.floss import floss
from gradsim.training.tasks import delayed_xor
from gradsim.workflow.findings import mean_estimate, median_estimate, rate_of
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study

CELLS = {
    "rnn": ("tanh RNN", dict(kind="rnn", activation="tanh")),
    "lstm": ("LSTM, forget bias 1", dict(kind="lstm", forget_bias=1.0)),
    "gru": ("GRU", dict(kind="gru")),
}
LEARNING_RATE = {"rnn": 0.01, "lstm": 0.02, "gru": 0.02}
GRID = {
    "cell": list(CELLS),
    "seed": list(range(5)),
    "delays": ["4 8 12"],
    "n_hidden": [32],
    "k": [16],
    "n_updates": [600],
    "floss_updates": [100],
}
QUICK_GRID = {
    "cell": ["rnn", "gru"],
    "seed": [0, 1],
    "delays": ["2 3"],
    "n_hidden": [6],
    "k": [3],
    "n_updates": [20],
    "floss_updates": [5],
}
SCORED = 20
BATCH_SIZE = 16
CLIP_NORM = 1.0
EVAL_SIZE = 500
SUCCESS_ACCURACY = 0.9
ABOVE_CHANCE = 0.6
FLOSS_LR = 0.01
FLOSS_WINDOWS = 4
FLOSS_STEPS = 60
FLOSS_WARMUP = 6
SPECTRUM_STEPS = 1000
SPECTRUM_WARMUP = 50
JACOBIAN_SEQUENCES = 8


def parse_delays(text):
    """The delays of a configuration, "4 8 12" -> [4, 8, 12] (increasing, positive)."""
    try:
        delays = [int(part) for part in str(text).split()]
    except ValueError:
        raise ValueError(f"`delays` must be positive integers separated by spaces; got {text!r}.") from None
    if not delays or any(d < 1 for d in delays) or delays != sorted(set(delays)):
        raise ValueError(f"`delays` must be increasing positive integers; got {text!r}.")
    return delays


def task_for(delay):
    """The delayed XOR at delay d with T = 2 d + SCORED steps."""
    return delayed_xor(2 * delay + SCORED, delay)


def scored_accuracy(model, task, delay, rng, size=EVAL_SIZE):
    """Held-out accuracy on the steps t >= 2d of ``size`` fresh sequences (NaN if the outputs
    are not finite)."""
    inputs, targets = task.sample(size, rng)
    with np.errstate(all="ignore"):
        outputs = forward(model, inputs, readout="sequence")
    if not np.all(np.isfinite(outputs)):
        return float("nan")
    return float(np.mean(outputs[:, 2 * delay:].argmax(axis=-1) == targets[:, 2 * delay:]))


def bits(rng, shape):
    """Task inputs: fair bits as float, shape (..., T, 1)."""
    return rng.integers(0, 2, size=tuple(shape) + (1,)).astype(np.float64)


def probe(cell, k, horizon, rng, spectrum_steps):
    """Top-k exponents (and s.e.) on fresh bits, the top-k log singular value spread of
    P_horizon, the log gain of a gradient over ``horizon`` steps and log s_1 of P_horizon
    (means over sequences)."""
    spec = lyapunov_spectrum(cell, bits(rng, (spectrum_steps + SPECTRUM_WARMUP,)), k=k,
                             warmup=SPECTRUM_WARMUP)
    x = bits(rng, (JACOBIAN_SEQUENCES, horizon))
    lsv = log_singular_values(cell, x, times=[horizon])[:, 0, :]  # (sequences, S)
    spread = lsv[:, 0] - lsv[:, k - 1]
    top = float(np.mean(lsv[:, 0]))
    upstream = rng.standard_normal((JACOBIAN_SEQUENCES, cell.state_size))
    upstream /= np.linalg.norm(upstream, axis=-1, keepdims=True)
    gain = gradient_norms(cell, x, upstream=upstream)[:, 0]  # log ||g_0||, ||g_T|| = 1
    return spec, float(np.mean(spread)), float(np.mean(gain)), top


def simulate(config, rng):
    """One (cell, seed): flossed once; exponents, Jacobian spread and gradient gain before and
    after; trained with and without flossing at every delay. Rows of kind "probe" and "train"."""
    name = config["cell"]
    if name not in CELLS:
        raise ValueError(f"`cell` must be one of {sorted(CELLS)}; got {name!r}.")
    delays = parse_delays(config["delays"])
    n, k = int(config["n_hidden"]), int(config["k"])
    options = dict(CELLS[name][1])
    kind = options.pop("kind")
    cell_rng, floss_rng, probe_rng, readout_rng, train_rng, eval_rng = rng.spawn(6)
    cell = make_cell(kind, n, 1, rng=cell_rng, **options)
    windows = bits(floss_rng, (FLOSS_WINDOWS, FLOSS_STEPS))
    flossed = floss(cell, windows, k, target=0.0, updates=int(config["floss_updates"]),
                    learning_rate=FLOSS_LR, warmup=FLOSS_WARMUP)
    horizon = 2 * delays[-1]
    spectrum_steps = SPECTRUM_STEPS if n >= 16 else 200
    rows = []
    probe_seed = probe_rng.integers(2**63)
    for is_flossed, c in ((False, cell), (True, flossed.cell)):
        # The same probe inputs for both cells (common random numbers).
        spec, spread, gain, top = probe(c, k, horizon, np.random.default_rng(probe_seed), spectrum_steps)
        lam, se = spec.exponents, spec.stderr
        rows.append({
            "kind": "probe", "label": CELLS[name][0], "flossed": is_flossed, "delay": delays[-1],
            "lambda_1": float(lam[0]), "lambda_1_se": float(se[0]),
            "lambda_k": float(lam[-1]), "lambda_k_se": float(se[-1]),
            "rms_to_target": float(np.sqrt(np.mean(lam ** 2))),
            "max_z_to_target": float(np.max(np.abs(lam) / se)),
            "log_sv_spread": spread, "log_sv_1": top, "log_grad_gain": gain,
            "floss_loss_first": float(flossed.losses[0]), "floss_loss_last": float(flossed.losses[-1]),
        })
    readout_seed, train_seed, eval_seed = (int(g.integers(2**63)) for g in (readout_rng, train_rng, eval_rng))
    for d in delays:
        task = task_for(d)
        for is_flossed, c in ((False, cell), (True, flossed.cell)):
            model = init_model(c, task.n_output, rng=readout_seed)
            record = train_model(model, task, n_updates=int(config["n_updates"]), batch_size=BATCH_SIZE,
                                 optimizer=Adam(LEARNING_RATE[name]), clip_norm=CLIP_NORM, rng=train_seed)
            accuracy = scored_accuracy(record.model, task, d, np.random.default_rng(eval_seed + d))
            rows.append({
                "kind": "train", "label": CELLS[name][0], "flossed": is_flossed, "delay": d,
                "T": task.length, "accuracy": accuracy,
                "success": bool(accuracy >= SUCCESS_ACCURACY and not record.diverged),
                "above_chance": bool(accuracy >= ABOVE_CHANCE and not record.diverged),
                "diverged": bool(record.diverged),
                "first_grad_norm": float(record.grad_norm_before[0]),
                "train_loss_last_20": float(np.mean(record.losses[-20:])),
                "baseline": task.baseline,
            })
    return rows


def _bool(column):
    return column.astype(str).str.lower() == "true"


def _frames(frame):
    res = frame.assign(flossed=_bool(frame.flossed))
    train = res[res.kind == "train"].assign(success=lambda f: _bool(f.success),
                                            above_chance=lambda f: _bool(f.above_chance))
    return train, res[res.kind == "probe"]


def success_rates(frame):
    """Per (cell, delay, flossed): solved and above-chance counts and rates, seeds, median accuracy."""
    train, _ = _frames(frame)
    return (train.groupby(["cell", "label", "delay", "flossed"], sort=False)
            .agg(successes=("success", "sum"), above=("above_chance", "sum"), seeds=("seed", "nunique"),
                 success_rate=("success", "mean"), above_rate=("above_chance", "mean"),
                 median_accuracy=("accuracy", "median"))
            .reset_index())


def _condition(flag):
    return "flossed" if flag else "not flossed"


def summarize(frame):
    train, probes = _frames(frame)
    out = {}
    cells = [c for c in CELLS if c in set(train.cell)]
    delays = sorted(int(d) for d in train.delay.unique())
    for cell in cells:
        label = CELLS[cell][0]
        for d in delays:
            for flag in (False, True):
                sub = train[(train.cell == cell) & (train.delay == d) & (train.flossed == flag)]
                if not len(sub):
                    continue
                out[f"solved rate, {label}, d={d}, {_condition(flag)}"] = rate_of(sub.success)
                out[f"above-chance rate, {label}, d={d}, {_condition(flag)}"] = rate_of(sub.above_chance)
                out[f"median accuracy, {label}, d={d}, {_condition(flag)}"] = median_estimate(
                    sub.accuracy.to_numpy(float))
        for flag in (False, True):
            sub = probes[(probes.cell == cell) & (probes.flossed == flag)]
            if len(sub) < 2:
                continue
            tag = f"{label}, {_condition(flag)}"
            out[f"lambda_1, {tag}"] = mean_estimate(sub.lambda_1.to_numpy(float))
            out[f"lambda_k, {tag}"] = mean_estimate(sub.lambda_k.to_numpy(float))
            out[f"RMS of top k exponents, {tag}"] = mean_estimate(sub.rms_to_target.to_numpy(float))
            horizon = 2 * int(sub.delay.iloc[0])
            out[f"log s_1 - log s_k of P_{horizon}, {tag}"] = mean_estimate(sub.log_sv_spread.to_numpy(float))
            out[f"log gradient gain over {horizon} steps, {tag}"] = mean_estimate(
                sub.log_grad_gain.to_numpy(float))
        d = delays[-1]
        for flag in (False, True):
            sub = train[(train.cell == cell) & (train.delay == d) & (train.flossed == flag)]
            if len(sub) >= 2:
                out[f"first BPTT gradient norm, {label}, d={d}, {_condition(flag)}"] = mean_estimate(
                    sub.first_grad_norm.to_numpy(float))
    out["runs diverged"] = rate_of(_bool(train.diverged))
    rates = success_rates(frame)
    parts = []
    for cell in cells:
        items = []
        for d in delays:
            sub = rates[(rates.cell == cell) & (rates.delay == d)].set_index("flossed")
            if len(sub) < 2:
                continue
            items.append(f"d={d}: solved {int(sub.successes[True])}/{int(sub.seeds[True])} flossed vs "
                         f"{int(sub.successes[False])}/{int(sub.seeds[False])}, above chance "
                         f"{int(sub.above[True])}/{int(sub.seeds[True])} vs {int(sub.above[False])}/"
                         f"{int(sub.seeds[False])}")
        parts.append(f"{CELLS[cell][0]} ({'; '.join(items)})")
    n_hidden = int(frame.n_hidden.iloc[0])
    out["notes"] = (
        f"Delayed XOR, N = {n_hidden}, solved = held-out accuracy >= {SUCCESS_ACCURACY} on the steps "
        f"t >= 2d (chance 0.5), above chance = accuracy >= {ABOVE_CHANCE}, after {int(frame.n_updates.iloc[0])} Adam updates; flossing = "
        f"{int(frame.floss_updates.iloc[0])} flossing-only updates of the top {int(frame.k.iloc[0])} "
        f"exponents to 0 before training. Runs: " + "; ".join(parts) + ". With 5 seeds only "
        "5/5 against 0/5 separates the Wilson 95% intervals; read the median accuracies as well."
    )
    return out


def plot(frame):
    """Panels: solved rate and above-chance rate (Wilson 95%) against the delay, per cell, with
    (solid) and without (dashed) flossing; every seed's held-out accuracy (line: median); the
    top-k exponents' range before and after flossing (seed means of lambda_1 and lambda_k)."""
    train, probes = _frames(frame)
    rates = success_rates(frame)
    cells = [c for c in CELLS if c in set(train.cell)]
    fig, axes = new_figure(ncols=4, nrows=1, width=3.6, height=3.2)
    axes = np.asarray(axes).reshape(-1)
    for i, cell in enumerate(cells):
        color = PALETTE[i % len(PALETTE)]
        for flag, ls, marker in ((True, "-", "o"), (False, "--", "s")):
            sub = rates[(rates.cell == cell) & (rates.flossed == flag)].sort_values("delay")
            if not len(sub):
                continue
            shift = 0.15 * (i - 1) + (0.05 if flag else -0.05)
            for ax, count, rate in ((axes[0], "successes", "success_rate"), (axes[1], "above", "above_rate")):
                lo, hi = np.array([rate_of([True] * int(getattr(r, count))
                                           + [False] * int(r.seeds - getattr(r, count))).interval()
                                   for r in sub.itertuples()]).T
                value = sub[rate].to_numpy(float)
                ax.errorbar(sub.delay + shift, value, yerr=[value - lo, hi - value], color=color,
                            ls=ls, marker=marker, ms=4, capsize=2, lw=1,
                            label=f"{CELLS[cell][0]}, {_condition(flag)}")
            runs = train[(train.cell == cell) & (train.flossed == flag)]
            axes[2].plot(runs.delay + shift, runs.accuracy, ls="none", marker=marker, ms=3,
                         mfc=color if flag else "none", color=color, alpha=0.8)
            axes[2].plot(sub.delay + shift, sub.median_accuracy, ls=ls, color=color, lw=1)
        for flag in (False, True):
            sub = probes[(probes.cell == cell) & (probes.flossed == flag)]
            if not len(sub):
                continue
            x = i + (0.15 if flag else -0.15)
            axes[3].plot([x, x], [sub.lambda_k.mean(), sub.lambda_1.mean()], color=color,
                         lw=3 if flag else 1.5, ls="-" if flag else "--")
            axes[3].plot(np.full(len(sub), x), sub.lambda_1, ls="none", marker="^", ms=3, color=color)
            axes[3].plot(np.full(len(sub), x), sub.lambda_k, ls="none", marker="v", ms=3, color=color)
    for ax, text in ((axes[0], f"solved (accuracy >= {SUCCESS_ACCURACY})"),
                     (axes[1], f"above chance (accuracy >= {ABOVE_CHANCE})")):
        ax.set_xlabel("delay d")
        ax.set_ylabel("rate over seeds, Wilson 95%")
        ax.set_title(text, fontsize=9)
        ax.set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=6, loc="best")
    axes[2].axhline(0.5, color="0.3", ls=":", lw=1, label="chance")
    axes[2].axhline(SUCCESS_ACCURACY, color="0.3", ls="--", lw=1, label="solved")
    axes[2].axhline(ABOVE_CHANCE, color="0.6", ls="--", lw=1, label="above chance")
    axes[2].set_xlabel("delay d")
    axes[2].set_ylabel("held-out accuracy on t >= 2d (seeds; line: median)")
    axes[2].legend(fontsize=6, loc="best")
    axes[3].axhline(0.0, color="0.3", ls=":", lw=1)
    axes[3].set_xticks(range(len(cells)), [CELLS[c][0].split(",")[0] for c in cells], fontsize=7)
    axes[3].set_ylabel("top-k exponents per step: lambda_1 (^) to lambda_k (v)")
    axes[3].set_title("before (dashed) and after (solid) flossing", fontsize=9)
    return fig


STUDY = Study(
    name="flossing",
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
