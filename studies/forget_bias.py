"""How does the LSTM forget-gate bias set the memory time scale of the cell path, the path along which 'gates let gradients flow unchanged'?

Lecture notes 000_a711c72185543a8a.txt ("gates allow gradients to flow unchanged") and
004_c529f0233c26f347.txt (the cell state as a "conveyor belt" whose forget gate decides what to
keep) credit the LSTM's cell path with carrying gradients. Along that path the one-step
Jacobian is dc_t/dc_{t-1} = diag(f_t) (THEORY.md section 7), so the gradient decays at the
per-step rate E log f. With all weights zero f = sigmoid(b_f) exactly: rate log sigmoid(b_f),
memory time scale -1 / log sigmoid(b_f) steps, about e^{b_f} + 1/2 for large b_f.

Here a PyTorch-form LSTM gets a constant forget bias b (b = 1 is Jozefowicz et al.'s advice)
or chrono initialisation (b_f = log u, u ~ U[1, t_max - 1], Tallec & Ollivier 2018), with
zero, small Gaussian, PyTorch-default and orthogonal weights and N(0, 1) inputs. Per-step
decay rates are measured along three paths: "cell" (diag f), "hidden" (h -> h with c held
fixed) and "full" (the whole (h, c) state), by QR Lyapunov exponents (top exponent; for the
cell path also the mean over units) and, as a cross-check, by the slope of the
back-propagated gradient norm. The full-path spectrum is computed in full (k = 2N), because
the library starts its QR frame on the first coordinate axes, which are h-directions that
zero recurrent weights annihilate in one step.

All LSTMs of one size and horizon run together as one ensemble (gradsim.stack_cells; see
``batch_key``), each member drawn from its own configuration's generator.

What the key numbers can be trusted to: with zero weights every rate is a closed form checked
to rounding (exact); ``deviation_zero_weights`` (rate - log sigmoid(b_top)) is computed at full
precision in ``simulate``, since the CSV's 12 significant digits of rates ~2 would otherwise
dominate it. With non-zero weights the rates are measured (QR exponents with their block
standard errors), so the time scales -1/rate are estimates with the propagated standard error
s.e.(rate) / rate^2, and counts of cases over the (init, b) grid are rates with Wilson intervals.
"""

import numpy as np

from gradsim import (
    Estimate, gradient_norms, lyapunov_spectrum, make_cell, median_estimate, rate_of, stack_cells,
)
from gradsim.workflow.findings import Z_AGREE
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study

BIASES = [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
INITS = ["zero", "small", "pytorch", "orthogonal"]
GRID = [
    {"init": INITS, "scheme": ["constant"], "forget_bias": BIASES, "n_hidden": [32],
     "horizon": [2000]},
    {"init": INITS, "scheme": ["chrono"], "chrono_t_max": [10.0, 100.0, 1000.0],
     "n_hidden": [32], "horizon": [2000]},
]
QUICK_GRID = [
    {"init": ["zero", "pytorch"], "scheme": ["constant"], "forget_bias": [-2.0, 1.0, 4.0],
     "n_hidden": [16], "horizon": [250]},
    {"init": ["zero", "pytorch"], "scheme": ["chrono"], "chrono_t_max": [100.0],
     "n_hidden": [16], "horizon": [250]},
]
WARMUP = 100
INPUT_STD = 1.0
# init name -> make_cell options (recurrent gain and input gain).
INIT_OPTIONS = {
    "zero": dict(init="gaussian", gain=0.0, input_gain=0.0),
    "small": dict(init="gaussian", gain=0.1, input_gain=0.1),
    "pytorch": dict(init="pytorch"),
    "orthogonal": dict(init="orthogonal", gain=1.0, input_gain=1.0),
}
INIT_LABELS = {
    "zero": "zero weights",
    "small": "Gaussian, gain 0.1",
    "pytorch": "PyTorch U(±1/√N)",
    "orthogonal": "orthogonal, gain 1",
}
PATHS = ["cell", "hidden", "full"]
# Forget biases from which the notes report the full-state rate by its largest |lambda_1|
# (a decay, if any, too slow to tell from 0 with non-zero weights).
FLAT_BIAS = 4.0


def log_sigmoid(b):
    """log sigmoid(b), accurate for any b."""
    return -np.logaddexp(0.0, -np.asarray(b, dtype=float))


def _slope_rate(log_norms, warmup):
    """Per-step decay rate of the back-propagated gradient: least-squares slope of
    log ||dL/ds_t|| against the steps back (T - t), over t in [0, T - warmup] (the steps nearest
    the loss are a transient of the upstream direction); -inf if the gradient died."""
    horizon = len(log_norms) - 1
    t = np.arange(0, horizon - warmup + 1)
    values = log_norms[t]
    if not np.all(np.isfinite(values)):
        return -np.inf
    return float(np.polyfit(horizon - t, values, 1)[0])


def _draw(config, rng):
    """The configuration's LSTM and inputs, drawn from its own generator."""
    options = INIT_OPTIONS[config["init"]]
    n = config["n_hidden"]
    if config["scheme"] == "chrono":
        cell = make_cell("lstm", n, 1, chrono_t_max=config["chrono_t_max"], rng=rng, **options)
    else:
        cell = make_cell("lstm", n, 1, forget_bias=config["forget_bias"], rng=rng, **options)
    inputs = rng.normal(0.0, INPUT_STD, size=(config["horizon"], 1))
    return cell, inputs


def _measure(cell, inputs):
    """path -> (Lyapunov spectrum, log gradient norms), for one LSTM or an ensemble."""
    out = {}
    for path in PATHS:
        size = cell.path_size(path)
        # All exponents for "full" (see the module docstring) and "cell" (cheap: diagonal).
        k = 1 if path == "hidden" else size
        out[path] = (lyapunov_spectrum(cell, inputs, k=k, warmup=WARMUP, path=path),
                     gradient_norms(cell, inputs, path=path))
    return out


def _records(cell, measured):
    """One record per path from one LSTM's spectra and gradient norms (index () or (i,))."""
    n = cell.n_hidden
    # The forget-gate biases actually in the cell (b_hh + b_ih, gate block f); the zero-weight
    # prediction for the slowest unit uses the largest of them.
    b_f = (cell.bias_hh + cell.bias_ih)[n: 2 * n]
    b_top = float(np.max(b_f))
    records = []
    for path in PATHS:
        exponents, stderr, log_norms = measured[path]
        with np.errstate(invalid="ignore"):
            mean_rate = float(np.mean(exponents)) if path == "cell" else np.nan
        theory = float(log_sigmoid(b_top))
        records.append({
            "path": path,
            "forget_bias_top": b_top,
            "rate": float(exponents[0]),
            "rate_stderr": float(stderr[0]),
            "rate_unit_mean": mean_rate,
            "rate_gradient": _slope_rate(log_norms, WARMUP),
            "rate_theory_zero_weights": theory,
            "rate_theory_unit_mean": float(np.mean(log_sigmoid(b_f))),
            # rate - theory at full precision: rounding-level for zero weights (cell and full
            # paths), which the CSV's 12 significant digits of the two rates would hide.
            "deviation_zero_weights": float(exponents[0]) - theory,
        })
    return records


def simulate(config, rng):
    """Records, one per path: top Lyapunov exponent (per step), its standard error, the
    gradient-norm slope rate, the zero-weight prediction log sigmoid(b) and the deviation of the
    exponent from it."""
    cell, inputs = _draw(config, rng)
    measured = _measure(cell, inputs)
    return _records(cell, {path: (s.exponents, s.stderr, g) for path, (s, g) in measured.items()})


def batch_key(config):
    """LSTMs of one size and horizon form one ensemble (init, bias and scheme are weights)."""
    return [config["n_hidden"], config["horizon"]]


def simulate_batch(configs, rngs):
    """:func:`simulate` of every configuration, as one ensemble of their LSTMs."""
    cells, inputs = zip(*(_draw(c, r) for c, r in zip(configs, rngs)))
    measured = _measure(stack_cells(cells), np.stack(inputs))
    return [_records(cell, {path: (s.exponents[i], s.stderr[i], g[i])
                            for path, (s, g) in measured.items()})
            for i, cell in enumerate(cells)]


def _time_scale(rate):
    """-1 / rate for decaying rates; inf where the rate is >= 0 (no decay), NaN where the
    gradient died in one step (rate -inf)."""
    rate = np.asarray(rate, dtype=float)
    out = np.full(rate.shape, np.nan)
    ok = np.isfinite(rate) & (rate < 0)
    out[ok] = -1.0 / rate[ok]
    out[np.isfinite(rate) & (rate >= 0)] = np.inf
    return out


def _time_scale_estimate(rate, stderr):
    """-1 / rate with the propagated standard error stderr / rate^2 (see :func:`_time_scale`)."""
    scale = _time_scale([rate])[0]
    if not np.isfinite(scale):
        return Estimate(scale, np.nan)
    return Estimate(scale, stderr / rate ** 2)


def _extreme(values, stderrs, largest=True):
    """The max (or min) over cases of measured values (finite ones), as (extreme, the largest
    standard error among the cases that could be the extreme in another run: within Z_AGREE
    standard errors of it)."""
    values, stderrs = np.asarray(values, float), np.asarray(stderrs, float)
    keep = np.isfinite(values)
    values, stderrs = values[keep], stderrs[keep]
    sign = 1.0 if largest else -1.0
    i = int(np.argmax(sign * values))
    near = sign * (values[i] - values) <= Z_AGREE * (stderrs + stderrs[i])
    return Estimate(values[i], float(np.max(stderrs[near])), len(values))


# Time scales beyond this (or rates >= 0) are drawn at this height in the figure.
PLOT_CAP = 1e4


def plot(frame):
    fig, axes = new_figure(ncols=3, width=3.6, height=3.4)
    b = np.linspace(-2.5, 7.5, 200)
    markers = {"zero": "o", "small": "s", "pytorch": "^", "orthogonal": "D"}
    n_hidden = int(frame.n_hidden.iloc[0])
    for ax, path in zip(axes.flat, PATHS):
        ax.plot(b, _time_scale(log_sigmoid(b)), color="0.2", ls="--", lw=1.2,
                label=r"theory, zero weights: $-1/\log\sigma(b)$", zorder=1)
        for i, init in enumerate(INITS):
            sub = frame[(frame.path == path) & (frame.init == init)]
            if sub.empty:
                continue
            color = PALETTE[i]
            const = sub[sub.scheme == "constant"].sort_values("forget_bias")
            scale = np.minimum(_time_scale(const.rate), PLOT_CAP)
            ax.plot(const.forget_bias, scale, color=color, marker=markers[init], ms=4,
                    label=f"LSTM N={n_hidden}, {INIT_LABELS[init]}")
            chrono = sub[sub.scheme == "chrono"]
            ax.plot(chrono.forget_bias_top, np.minimum(_time_scale(chrono.rate), PLOT_CAP),
                    ls="none", marker=markers[init], ms=7, mfc="none", mec=color, mew=1.3)
        ax.plot([], [], ls="none", marker="o", ms=7, mfc="none", mec="0.3",
                label="chrono init (at its largest $b_f$)")
        ax.axhline(PLOT_CAP, color="0.5", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("forget-gate bias $b$ (chrono: its largest $b_f$)")
        ax.set_title(f'path "{path}"', fontsize=9)
    axes.flat[0].set_ylabel("memory time scale $-1/\\lambda_1$ (steps)")
    for ax in axes.flat:
        ax.set_ylim(0.08, PLOT_CAP * 3)
    axes.flat[2].text(-2.3, PLOT_CAP * 1.3, r"$\geq 10^4$ steps or $\lambda_1 \geq 0$ (no decay)",
                      fontsize=7, color="0.3")
    if np.any(np.isneginf(frame[frame.path == "hidden"].rate)):
        axes.flat[1].text(-2.3, 2e3, "zero weights: $\\lambda_1 = -\\infty$\n"
                          "(the h -> h Jacobian is 0)", fontsize=7, color=PALETTE[0])
    axes.flat[0].legend(fontsize=6, loc="upper left")
    return fig


def summarize(frame):
    cell = frame[frame.path == "cell"]
    zero = cell[cell.init == "zero"]
    if "deviation_zero_weights" in frame:
        deviation = zero.deviation_zero_weights
    else:  # a CSV written before the column existed: the deviation only to its 12 digits
        deviation = zero.rate - zero.rate_theory_zero_weights
    # Exact: the zero-weight rate is a mean of identical logs (rounding only, ~1e-15).
    gap = float(np.max(np.abs(deviation)))
    out = {"max |cell-path rate - log sigmoid(b)|, zero weights": gap}
    const = frame[frame.scheme == "constant"]
    b_ref = 1.0 if np.any(const.forget_bias == 1.0) else float(const.forget_bias.max())
    for row in const[const.forget_bias == b_ref].itertuples():
        key = f"time scale (steps), path {row.path}, {row.init}, b={b_ref:g}"
        if row.init == "zero":  # exact: -1 / log sigmoid(b) (NaN on the h path: rate -inf)
            out[key] = float(_time_scale([row.rate])[0])
        else:
            out[key] = _time_scale_estimate(row.rate, row.rate_stderr)
    chrono = cell[cell.scheme == "chrono"]
    for row in chrono[chrono.init == "zero"].itertuples():
        # Exact: the biases are drawn from the configuration's seed, the rate is their closed form.
        out[f"cell-path time scale of slowest unit, chrono t_max={row.chrono_t_max:g}"] = float(
            _time_scale([row.rate])[0])
    finite = frame[np.isfinite(frame.rate) & np.isfinite(frame.rate_gradient)]
    # A median over the cases (distribution-free standard error over them).
    out["median relative gap, Lyapunov vs gradient-slope rate"] = median_estimate(
        np.abs(finite.rate - finite.rate_gradient) / np.abs(finite.rate))

    z0 = zero[zero.scheme == "constant"].sort_values("forget_bias")
    lo, hi = z0.iloc[0], z0.iloc[-1]
    full = const[(const.path == "full") & (const.init != "zero")]
    cell_nz = const[(const.path == "cell") & (const.init != "zero")]
    merged = full.merge(cell_nz, on=["init", "forget_bias"], suffixes=("_full", "_cell"))
    margin = (merged.rate_full - merged.rate_cell) / np.hypot(merged.rate_stderr_full,
                                                              merged.rate_stderr_cell)
    slower = rate_of(merged.rate_full > merged.rate_cell)
    out["full state decays more slowly than the cell path, non-zero weights"] = slower
    hidden_nz = const[(const.path == "hidden") & (const.init != "zero")]
    hidden_scale = _extreme(_time_scale(hidden_nz.rate),
                            hidden_nz.rate_stderr / hidden_nz.rate ** 2)
    marginal = rate_of(full.rate > -2 * full.rate_stderr)
    out["full-path cases with no significant decay (rate > -2 s.e.)"] = marginal
    flat = full[full.forget_bias >= FLAT_BIAS]
    flat_max = _extreme(np.abs(flat.rate), flat.rate_stderr) if len(flat) else None

    slower_low, slower_high = slower.interval()
    significant = int(np.sum(margin > 2))
    if slower.successes == slower.trials and significant == slower.trials:
        slower_text = (f"in all {slower.trials} (init, b) cases (95% CI {slower_low:.2f}-1), each "
                       f"by at least {margin.min():.1f} combined standard errors")
    else:
        slower_text = (f"in {slower.successes} of {slower.trials} (init, b) cases (95% CI "
                       f"{slower_low:.2f}-{slower_high:.2f}), by more than 2 combined standard "
                       f"errors in {significant} of them")
    marginal_low, marginal_high = marginal.interval()
    flat_text = ""
    if flat_max is not None:
        bound = float(flat_max) + 2 * flat_max.stderr
        flat_text = (
            f"At b >= {FLAT_BIAS:g} the full-state gradient barely decays, if at all: "
            f"|lambda_1| <= {float(flat_max):.4f} ± {flat_max.stderr:.1g} per step over the "
            f"{len(flat)} non-zero-weight case{'s' if len(flat) > 1 else ''} (within "
            f"{bound:.3f} of 0: a memory time scale "
            f"beyond {1 / bound:.0f} steps). "
        )
    notes = (
        f"With zero weights the cell path decays at exactly log sigmoid(b) per step (largest "
        f"deviation {gap:.1e}, rounding): the memory time scale grows from "
        f"{_time_scale([lo.rate])[0]:.2g} steps at b = {lo.forget_bias:g} to "
        f"{_time_scale([hi.rate])[0]:.3g} steps at b = {hi.forget_bias:g}. "
        f"With non-zero weights the full (h, c) state decays more slowly than the cell path "
        f"alone {slower_text}, while the h -> h path with c held fixed decays within "
        f"{float(hidden_scale):.2g} ± {hidden_scale.stderr:.1g} steps at most: the long memory "
        f"lives in the cell state, not in h. " + flat_text +
        f"Over all b the full-state rate is not significantly below 0 (rate > -2 s.e.) in "
        f"{marginal.successes} of {marginal.trials} non-zero-weight cases (95% CI "
        f"{marginal_low:.2f}-{marginal_high:.2f})."
    )
    out["notes"] = notes
    return out


STUDY = Study(
    name="forget_bias",
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
