"""How do tanh, sigmoid and ReLU activations and their derivative bounds (1, 1/4, 1) shape gradient decay?

A tied RNN h_t = phi(W h_{t-1} + U x_t) has one-step Jacobian diag(phi'(a_t)) W. With
|phi'| <= gamma (tanh 1, sigmoid 1/4, ReLU 1) every step obeys ||J_t v|| <= gamma ||W||_2 ||v||,
so on every trajectory ||P_T|| <= (gamma ||W||_2)^T (Pascanu, Mikolov & Bengio 2013; THEORY.md
section 2) and the top Lyapunov exponent lambda_1 is at most log(gamma ||W||_2). Each
configuration scales an orthogonal or Gaussian W so that gamma ||W||_2 takes a target value c
(so the sigmoid's W is four times larger than the tanh's for the same c), drives the RNN with
N(0, input_std^2) inputs, and measures lambda_1 by QR re-orthonormalisation with one block per
step, which also gives the per-step slope log(||J_t q_{t-1}|| / ||q_{t-1}||) of the leading
tangent direction. A step is "at the bound" when its slope is within AT_BOUND_TOL of
log(gamma ||W||_2). A linear RNN (gamma = 1) is the control: with orthogonal W every step is at
the bound, so the bound is tight exactly when no unit leaves the region where |phi'| = gamma.

Configurations of one activation, size and length run together as one ensemble
(gradsim.stack_cells; see ``batch_key``), each member drawn from its own configuration's
generator, so its numbers are those of the configuration run alone.
"""

import math

import numpy as np

from gradsim import (
    RNN,
    Estimate,
    Exact,
    gaussian,
    lyapunov_spectrum,
    mean_estimate,
    orthogonal,
    stack_cells,
)
from gradsim.workflow.plotting import new_figure, plot_lines
from gradsim.workflow.runner import Study

# Derivative bounds gamma = sup |phi'| (THEORY.md section 1).
GAMMA = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "linear": 1.0}
N_INPUT = 4
# A step's slope within this many nats of the bound counts as at the bound: far above the
# ~1e-14 rounding of one slope (a 64-term dot product and a norm, each a few eps relative),
# far below any gap a non-linear unit opens (|phi'| < gamma by a finite amount).
AT_BOUND_TOL = 1e-9
# Rounding allowed above the bound when checking it: one slope carries ~1e-14 relative error
# (see AT_BOUND_TOL), and lambda_1 is a mean of such slopes; 1e-12 leaves a factor 100.
ROUNDING_TOL = 1e-12
C_VALUES = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0]
CONFIG_KEYS = ["activation", "w_kind", "c", "input_std", "n_hidden", "t_max", "seed"]

GRID = {"activation": list(GAMMA), "w_kind": ["orthogonal", "gaussian"], "c": C_VALUES,
        "input_std": [0.1, 1.0], "n_hidden": [64], "t_max": [400], "seed": [0, 1, 2]}
QUICK_GRID = {"activation": list(GAMMA), "w_kind": ["orthogonal", "gaussian"], "c": [0.5, 2.0],
              "input_std": [1.0], "n_hidden": [16], "t_max": [100], "seed": [0]}


def _draw(config, rng):
    """The configuration's RNN (W scaled so that gamma ||W||_2 = c) and inputs."""
    n, t_max, act = config["n_hidden"], config["t_max"], config["activation"]
    base = orthogonal(n, 1.0, rng) if config["w_kind"] == "orthogonal" else gaussian(n, 1.0, rng)
    w = base * (config["c"] / GAMMA[act] / np.linalg.norm(base, 2))
    cell = RNN(w, gaussian((n, N_INPUT), 1.0, rng), activation=act)
    inputs = rng.normal(0.0, config["input_std"], size=(t_max, N_INPUT))
    return cell, inputs


def _measure(config, cell, inputs):
    # One block per measured step: block_exponents are then the per-step slopes of the
    # leading tangent direction (k = 1).
    warmup = config["t_max"] // 5
    return lyapunov_spectrum(cell, inputs, k=1, warmup=warmup, n_blocks=config["t_max"] - warmup)


def _record(config, cell, exponent, stderr, slopes):
    """The record of one configuration from lambda_1 and the per-step slopes."""
    act = config["activation"]
    norm_w = float(np.linalg.norm(cell.weight_hh, 2))
    bound = float(np.log(GAMMA[act] * norm_w))
    return [{
        "gamma": GAMMA[act],
        "norm_W": norm_w,
        "bound": bound,
        "lyapunov": exponent,
        "lyapunov_stderr": stderr,
        "excess": exponent - bound,
        "max_step_excess": float(np.max(slopes) - bound),
        "mean_step_gap": float(np.mean(bound - slopes)),
        "frac_steps_at_bound": float(np.mean(slopes >= bound - AT_BOUND_TOL)),
    }]


def simulate(config, rng):
    """One record: lambda_1, the bound log(gamma ||W||_2) and per-step slope statistics."""
    cell, inputs = _draw(config, rng)
    lyap = _measure(config, cell, inputs)
    return _record(config, cell, lyap.exponents[0], lyap.stderr[0], lyap.block_exponents[:, 0])


def batch_key(config):
    """One ensemble per activation, size and length (W kind, c, input std and seed are weights
    and inputs)."""
    return [config["activation"], config["n_hidden"], config["t_max"]]


def simulate_batch(configs, rngs):
    """:func:`simulate` of every configuration, as one ensemble of their RNNs."""
    cells, inputs = zip(*(_draw(c, r) for c, r in zip(configs, rngs)))
    lyap = _measure(configs[0], stack_cells(cells), np.stack(inputs))
    return [_record(c, cell, lyap.exponents[i, 0], lyap.stderr[i, 0],
                    lyap.block_exponents[:, i, 0])
            for i, (c, cell) in enumerate(zip(configs, cells))]


def _label(values):
    act = values["activation"]
    gamma = GAMMA[act]
    text = "1/4" if gamma == 0.25 else f"{gamma:g}"
    return f"{act} (gamma = {text})" + (", control" if act == "linear" else "")


def plot(frame):
    kinds = [k for k in ["orthogonal", "gaussian"] if k in set(frame.w_kind)]
    stds = sorted(frame.input_std.unique())
    fig, axes = new_figure(ncols=len(stds), nrows=len(kinds), width=4.4, height=3.4)
    axes = np.asarray(axes).reshape(len(kinds), len(stds))
    means = frame.groupby(["activation", "w_kind", "input_std", "c"], sort=False)[
        ["bound", "lyapunov"]].mean().reset_index()
    lo, hi = frame.bound.min(), frame.bound.max()
    for i, kind in enumerate(kinds):
        for j, std in enumerate(stds):
            ax = axes[i, j]
            sub = means[(means.w_kind == kind) & (means.input_std == std)]
            ax.fill_between([lo, hi], [lo, hi], [hi + 0.5, hi + 0.5], color="0.85", lw=0,
                            label="forbidden: above the bound")
            ax.plot([lo, hi], [lo, hi], color="0.3", ls="--", lw=1,
                    label=r"bound $\log(\gamma\|W\|_2)$")
            plot_lines(ax, sub, "bound", "lyapunov", "activation", label=_label)
            ax.axhline(0.0, color="k", lw=0.6)
            ax.axvline(0.0, color="k", lw=0.6, ls=":")
            ax.set_ylim(min(frame.lyapunov.min(), lo) - 0.2, hi + 0.3)
            ax.set_xlabel(r"$\log(\gamma\,\|W\|_2)$ (nats per step)")
            ax.set_ylabel(r"top Lyapunov exponent $\lambda_1$ (nats per step)")
            ax.set_title(f"{kind} W, inputs N(0, {std:g}$^2$), mean over seeds", fontsize=8)
            if i == 0 and j == 0:
                ax.legend(fontsize=6, loc="upper left")
    return fig


def grid_mean(rows, column, stderr_column=None):
    """The mean of ``column`` over the configurations ``rows``, with its standard error.

    The seeds are the configurations' only random draws, so the standard error comes from the
    seed-to-seed spread within each grid point (a configuration without its seed),
    sqrt(sum_g n_g s_g^2) / N over grid points g with n_g seeds and sample variance s_g^2 (the
    c values, W kinds and input scales are a fixed design, not draws). With ``stderr_column``
    (for exponents and gaps) it is floored by the configurations' own Lyapunov standard errors,
    sqrt(sum_i se_i^2) / N: a chaotic trajectory decorrelates from rounding alone on another
    machine, and three seeds' spread can fall below that by chance. A mean whose every grid
    point gives one value for all its seeds, to rounding (the fractions at the bound, the linear
    control's exponents), is exact. With one seed per grid point (the quick grid) the spread is
    that over all configurations.
    """
    values = rows[column].to_numpy(float)
    points = [c for c in CONFIG_KEYS if c != "seed" and c in rows]
    groups = rows.groupby(points)[column]
    spread = (groups.max() - groups.min()).to_numpy(float)
    if (groups.count() > 1).all() and (
            spread <= 1e-12 + 1e-9 * np.abs(values).max()).all():
        return Exact(float(values.mean()))
    if (groups.count() > 1).all():
        stderr = math.sqrt(float((groups.count() * groups.var(ddof=1)).sum())) / len(values)
    else:
        stderr = mean_estimate(values).stderr
    if stderr_column is not None:
        stderr = max(stderr, math.sqrt(float((rows[stderr_column] ** 2).sum())) / len(values))
    return Estimate(float(values.mean()), stderr, len(values))


def _pm(value):
    """A key number in the notes: value and, for an estimate, its standard error."""
    if isinstance(value, Estimate) and not math.isnan(value.stderr):
        return f"{value:.3g} ± {value.stderr:.2g}"
    return f"{value:.3g}"


def summarize(frame):
    # Theorem residuals: lambda_1 - bound and the largest step slope - bound are computed in
    # simulate at full precision (the CSV's 12 digits keep a residual of 3e-15 to 12 digits).
    # Their largest values come from the linear control with orthogonal W, at the bound to
    # rounding (every other cell is below it by a finite gap), so two runs agree to rounding:
    # exact with the absolute tolerance ROUNDING_TOL (the EXACT_ATOL default, stated here).
    out = {
        "largest lambda_1 - log(gamma ‖W‖₂) (<= 0 up to rounding)":
            Exact(float(frame.excess.max()), atol=ROUNDING_TOL),
        "largest per-step slope - log(gamma ‖W‖₂) (<= 0 up to rounding)":
            Exact(float(frame.max_step_excess.max()), atol=ROUNDING_TOL),
    }
    frame = frame.assign(gap=-frame.excess)
    for act in [a for a in GAMMA if a in set(frame.activation)]:
        sub = frame[frame.activation == act]
        out[f"{act}: mean gap bound - lambda_1 (nats per step)"] = grid_mean(
            sub, "gap", "lyapunov_stderr")
        # 0 for every non-linear configuration (no step comes within 1e-9 of the bound; the
        # closest is ~5e-4 below it) and 1 or 0 for the linear control (orthogonal or
        # Gaussian W), whatever the draw: exact.
        out[f"{act}: fraction of steps at the bound (mean over configurations)"] = grid_mean(
            sub, "frac_steps_at_bound")
    # Same ‖W‖₂, different gamma: compare where the grid gives ‖W‖₂ = 4 (sigmoid c = 1).
    same = frame[np.isclose(frame.norm_W, 4.0) & (frame.w_kind == "orthogonal")]
    for act in [a for a in GAMMA if a in set(same.activation)]:
        rows = same[same.activation == act]
        out[f"{act}: lambda_1 at ‖W‖₂ = 4, orthogonal W (mean)"] = grid_mean(
            rows, "lyapunov", "lyapunov_stderr")
    nonlinear = frame[frame.activation != "linear"]
    control = frame[(frame.activation == "linear") & (frame.w_kind == "orthogonal")]
    worst = max(frame.excess.max(), frame.max_step_excess.max())
    verdict = "never exceeds" if worst <= ROUNDING_TOL else "exceeds"
    notes = (
        f"Over {len(frame)} configurations lambda_1 (and every single step's slope) {verdict} "
        f"log(gamma ‖W‖₂) by more than rounding (largest excess {frame.excess.max():.3g}; per "
        f"step {frame.max_step_excess.max():.3g}; tolerance {ROUNDING_TOL:g})."
    )
    if len(nonlinear):
        notes += (
            f" The non-linear cells reach the bound on a fraction "
            f"{nonlinear.frac_steps_at_bound.max():.3g} of steps at most and sit on average "
            f"{_pm(grid_mean(nonlinear, 'gap', 'lyapunov_stderr'))} nats per step below it (mean "
            "over configurations ± one standard error)"
        )
        if len(control):
            notes += (f", while the linear control with orthogonal W is at the bound on a fraction "
                      f"{control.frac_steps_at_bound.mean():.3g} of its steps")
        notes += ": the bound is tight only while every unit works at its largest slope gamma."
    out["notes"] = notes
    return out


STUDY = Study(
    name="activations",
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
