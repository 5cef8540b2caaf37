"""How do the spectra of P_T = ds_T/ds_0 and the gradient norms of the modern recurrences (LRU, minGRU, minLSTM, IndRNN, antisymmetric RNN, coRNN) at their published initialisations compare with the LSTM's and GRU's?

Each configuration builds one cell of N hidden units and I = 4 inputs at its published
initialisation (fresh weights from the configuration's generator), drives it with N(0, 1)
inputs for T_max steps and measures, along that one trajectory:

* the natural-log singular values of P_T at every horizon T in ``HORIZONS`` up to T_max (one
  pass of :func:`gradsim.log_singular_values`), recorded as the largest, median and smallest
  divided by T (per-step rates);
* the top Lyapunov exponent (``lyapunov_spectrum(cell, inputs, k=1)`` over T_max steps, with
  its block standard error);
* the back-propagated gradient of L = u . s_T (u the unit vector of equal entries) at every
  horizon T (:func:`gradsim.gradient_norms` on the first T inputs): the ratio
  log ||dL/ds_0|| - log ||dL/ds_T|| and the largest excursion max_t |log ||dL/ds_t|| - log
  ||dL/ds_T|||, both in decades (log10).

The cells and their initialisations (``CELLS``):

* ``lru``: :meth:`gradsim.LRU.ring_init` with the paper's long-range ring r_min = 0.9,
  r_max = 0.999 (Orvieto et al. 2023; ``ring_init``'s own defaults are 0 and 1), phase
  U[0, 2 pi] (the phase does not enter any singular value);
* ``mingru``, ``minlstm``: ``init="pytorch"``, nn.Linear's U(-1/sqrt I, 1/sqrt I) for every
  weight and bias (Feng et al. 2024's layers);
* ``indrnn``: ReLU, u ~ U(0, 1) (make_cell's default, Li et al. 2018's U(0, 1) recurrent
  init), input weights N(0, 1/I), zero bias;
* ``antisymmetric``: eps = 0.01, gamma = 0.01, W ~ N(0, 1/N) (Chang et al. 2019, sigma = 1);
* ``cornn``: dt = 0.042, gamma = 2.7, eps = 4.7 (Rusch & Mishra 2021's sMNIST settings) with
  ``init="pytorch"`` (the authors' one nn.Linear over cat(x, z, y));
* ``lstm``: ``init="pytorch"`` plus forget-gate bias 1; ``gru``: ``init="pytorch"``.

Exact theory, where it exists (columns ``exact_*``, per step): the LRU's Jacobian is the
constant block of scaled rotations, so the singular values of P_T are exactly |lambda_i|^T,
each twice: top, median and bottom rates are the extremes and the median of log|lambda_i|. The
minGRU's and minLSTM's P_T is diag(prod_t a_t) with a = 1 - z (minGRU) or a = f / (f + i)
(minLSTM), functions of the inputs only: the rates are the sorted means over t <= T of
log a_{t,i}, computed here from the gates. The IndRNN's P_T is diag(prod_t u phi'(a_t)): for
ReLU, T log u_i while unit i stayed active for all T steps and exactly 0 (log -inf) once it
has been silent for one step. The antisymmetric RNN's exact exponents
(:meth:`AntisymmetricRNN.linear_exponents`) hold for the linear cell only, not with tanh: no
exact column. The coRNN, LSTM and GRU have none.

Cost: the full grid runs in about 11 s on one BLAS thread. (With BLAS's default threads on a
shared two-core machine the LSTM's log singular values took 100 times longer, 27 s at T = 100:
run it under ``threadpoolctl.threadpool_limits(1)``.)
"""

import math

import numpy as np
from scipy.special import log_expit

from gradsim import (
    Estimate,
    Exact,
    gradient_norms,
    log_singular_values,
    lyapunov_spectrum,
    make_cell,
    mean_estimate,
    median_estimate,
    rate_of,
    unroll,
)
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study

N_INPUT = 4
INPUT_STD = 1.0
HORIZONS = (10, 100, 1000)
# Gradients "kept" over the horizon: every ||dL/ds_t|| within this many decades of ||dL/ds_T||.
KEEP_DECADES = 3.0
LRU_RING = dict(r_min=0.9, r_max=0.999)
CELLS = {
    "lru": dict(**LRU_RING),
    "mingru": dict(init="pytorch"),
    "minlstm": dict(init="pytorch"),
    "indrnn": dict(activation="relu"),
    "antisymmetric": dict(eps=0.01, gamma=0.01),
    "cornn": dict(dt=0.042, gamma=2.7, eps=4.7, init="pytorch"),
    "lstm": dict(init="pytorch", forget_bias=1.0),
    "gru": dict(init="pytorch"),
}
NAMES = {
    "lru": "LRU (ring 0.9-0.999)", "mingru": "minGRU", "minlstm": "minLSTM",
    "indrnn": "IndRNN (ReLU)", "antisymmetric": "antisymmetric RNN", "cornn": "coRNN",
    "lstm": "LSTM (forget bias 1)", "gru": "GRU",
}

GRID = {"cell": list(CELLS), "n_hidden": [64], "t_max": [1000], "seed": [0, 1, 2, 3, 4]}
QUICK_GRID = {"cell": list(CELLS), "n_hidden": [8], "t_max": [30], "seed": [0, 1]}


def build(config, rng):
    """The configuration's cell, at its published initialisation (see ``CELLS``)."""
    return make_cell(config["cell"], config["n_hidden"], N_INPUT, rng=rng, **CELLS[config["cell"]])


def horizons(t_max):
    return [t for t in HORIZONS if t < t_max] + [int(t_max)]


def _rates(logs, t):
    """(top, median, bottom) of natural-log singular values over t: per-step rates."""
    logs = np.sort(np.asarray(logs, float))[::-1]
    return logs[0] / t, float(np.median(logs)) / t, logs[-1] / t


def exact_logs(cell, kind, inputs, t):
    """The exact log singular values of P_t (unsorted), or None where no exact theory exists."""
    x = inputs[:t]
    if kind == "lru":
        return t * np.repeat(np.log(np.abs(cell.eigenvalues)), 2)
    if kind == "mingru":
        pre = x @ cell.weight_z.T + cell.bias_z
        return log_expit(-pre).sum(axis=0)  # log(1 - z) = log sigmoid(-a)
    if kind == "minlstm":
        log_f = log_expit(x @ cell.weight_f.T + cell.bias_f)
        log_i = log_expit(x @ cell.weight_i.T + cell.bias_i)
        return (log_f - np.logaddexp(log_f, log_i)).sum(axis=0)
    if kind == "indrnn":
        states = unroll(cell, x)  # (t + 1, N), states[0] = 0
        pre = cell.weight_hh * states[:-1] + x @ cell.weight_ih.T + cell.bias_ih
        active = np.all(pre > 0, axis=0)  # ReLU' = 1 on every step, else the product is 0
        with np.errstate(divide="ignore"):
            return np.where(active, t * np.log(np.abs(cell.weight_hh)), -np.inf)
    return None


def simulate(config, rng):
    kind = config["cell"]
    cell = build(config, rng)
    times = horizons(config["t_max"])
    inputs = rng.normal(0.0, INPUT_STD, size=(times[-1], N_INPUT))
    logs = dict(zip(times, log_singular_values(cell, inputs, times=times)))
    spectrum = lyapunov_spectrum(cell, inputs, k=1)
    records = []
    for t in times:
        grads = gradient_norms(cell, inputs[:t]) / math.log(10.0)  # log10 ||dL/ds_s||, s = 0..t
        with np.errstate(invalid="ignore"):
            excursion = float(np.max(np.abs(grads - grads[-1])))
        row = {
            "model": NAMES[kind], "T": t, "size": cell.state_size,
            "lyap_top": float(spectrum.exponents[0]), "lyap_top_stderr": float(spectrum.stderr[0]),
            "grad_log10_ratio": float(grads[0] - grads[-1]),
            "grad_max_excursion": excursion if np.all(np.isfinite(grads)) else math.inf,
        }
        row["top_per_step"], row["median_per_step"], row["bottom_per_step"] = _rates(logs[t], t)
        exact = exact_logs(cell, kind, inputs, t)
        if exact is None:
            row["exact_top"] = row["exact_median"] = row["exact_bottom"] = math.nan
        else:
            row["exact_top"], row["exact_median"], row["exact_bottom"] = _rates(exact, t)
        records.append(row)
    return records


def _finite_mean(values):
    """The seed mean with its standard error; the median (distribution-free s.e.) when some
    value is infinite (the IndRNN's exactly-zero products)."""
    values = np.asarray(values, float)
    return mean_estimate(values) if np.all(np.isfinite(values)) else median_estimate(values)


def plot(frame):
    fig, axes = new_figure(ncols=3, width=4.0, height=3.4)
    axes = np.asarray(axes).ravel()
    # Medians over seeds: an exactly-zero product (-inf, the ReLU IndRNN) stays -inf and is not
    # drawn, rather than being averaged away with the seeds whose product is not yet zero.
    medians = frame.groupby(["model", "T"], sort=False).median(numeric_only=True).reset_index()
    columns = [("top_per_step", "largest log singular value of $P_T$ / T"),
               ("bottom_per_step", "smallest log singular value of $P_T$ / T"),
               ("grad_log10_ratio", r"$\log_{10} \|dL/ds_0\| / \|dL/ds_T\|$")]
    for i, model in enumerate(NAMES.values()):
        sub = medians[medians.model == model].sort_values("T")
        for ax, (column, _) in zip(axes, columns):
            ok = sub[np.isfinite(sub[column])]
            ax.plot(ok["T"], ok[column], color=PALETTE[i % len(PALETTE)], marker="o", ms=3,
                    ls="-" if i < 6 else "--", label=model)
    n_seeds = frame.seed.nunique() if "seed" in frame else 1
    for ax, (column, label) in zip(axes, columns):
        ax.set_xscale("log")
        ax.set_xlabel("horizon T (steps)")
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_ylabel(label + ("" if column.startswith("grad") else "\n(nats per step)"))
        ax.set_yscale("symlog", linthresh=1.0 if column.startswith("grad") else 1e-3)
        ax.set_title(f"median of {n_seeds} seeds", fontsize=8)
    axes[2].axhspan(-KEEP_DECADES, KEEP_DECADES, color="0.9", zorder=0)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7,
               title="IndRNN: P_T = 0 (-inf) not drawn", title_fontsize=6)
    return fig


def summarize(frame):
    t_max = int(frame["T"].max())
    last = frame[frame["T"] == t_max]
    out = {}
    kept_text, exact_text = [], []
    for model in [m for m in NAMES.values() if m in set(frame.model)]:
        sub = last[last.model == model]
        top = _finite_mean(sub.lyap_top)
        out[f"{model}: top Lyapunov exponent (per step)"] = top
        out[f"{model}: log10 ||dL/ds_0|| / ||dL/ds_T|| at T={t_max}"] = median_estimate(
            sub.grad_log10_ratio)
        kept = rate_of(sub.grad_max_excursion <= KEEP_DECADES)
        out[f"{model}: gradients within 1e±{KEEP_DECADES:g} over T={t_max}"] = kept
        kept_text.append(f"{model} {kept.successes}/{kept.trials}")
        rows = frame[(frame.model == model) & np.isfinite(frame.exact_top)
                     & np.isfinite(frame.top_per_step)]
        if len(rows):
            gap = max(float(np.max(np.abs(rows[f"{c}_per_step"] - rows[f"exact_{c}"])))
                      for c in ("top", "median", "bottom"))
            # log_singular_values of a diagonal (or rotation-block) product is exact to
            # rounding (<= 5e-12 per step measured on the full grid): any gap below 1e-10 agrees.
            out[f"{model}: max |measured - exact| log singular value per step"] = Exact(
                gap, rtol=1.0, atol=1e-10)
            exact_text.append(f"{model} {gap:.1e}")
    ind = frame[frame.model == NAMES["indrnn"]]
    dead = ""
    if len(ind):
        zero = rate_of(np.isneginf(ind[ind["T"] == t_max].lyap_top))
        out[f"IndRNN (ReLU): P_T exactly 0 at T={t_max} (top exponent -inf)"] = zero
        dead = (f" The ReLU IndRNN's P_T is exactly 0 at T = {t_max} in {zero.successes} of "
                f"{zero.trials} seeds: each unit falls silent on some step (input N(0, 1), zero "
                "bias), and a silent unit's Jacobian entry u phi' is 0, so its gradient "
                "vanishes exactly, whatever u.")
    ordered = frame[np.isfinite(frame.top_per_step)]
    order_ok = bool(np.all((ordered.top_per_step >= ordered.median_per_step)
                           & (ordered.median_per_step >= ordered.bottom_per_step)))
    ranking = sorted(((float(out[f"{m}: top Lyapunov exponent (per step)"]), m)
                      for m in NAMES.values() if m in set(frame.model)), reverse=True)
    out["notes"] = (
        f"Top Lyapunov exponent at T_max = {t_max}, from largest to smallest: "
        + "; ".join(f"{m} {v:.3g}" for v, m in ranking)
        + f". Gradients within 1e±{KEEP_DECADES:g} of ||dL/ds_T|| at every step over "
          f"T = {t_max} (seeds): " + ", ".join(kept_text) + ". Measured minus exact log "
          "singular values per step (largest over top, median, bottom, horizons and seeds): "
        + ", ".join(exact_text) + ". Top >= median >= bottom in "
        + ("every" if order_ok else "NOT every") + " row with finite singular values." + dead)
    return out


STUDY = Study(
    name="modern_cells",
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
