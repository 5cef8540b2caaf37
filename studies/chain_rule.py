"""How fast does the chain-rule product of slopes vanish: is 0.1^9 = 1e-9 what a simulated RNN shows?

Lecture note 004_c529f0233c26f347.txt multiplies per-step slopes 0.2 x 0.1 x 0.3 x ... (nine
factors, about 0.1^9 = 1e-9). Here a scalar RNN h_t = phi(w h_{t-1} + u x_t) is unrolled and
dh_T/dh_0 = prod_t w phi'(a_t) is measured against the product of its per-step slopes and,
for a constant slope s, against s^T.
"""

import numpy as np

from gradsim import RNN, gradient_norms, unroll
from gradsim.plotting import new_figure, plot_lines
from gradsim.runner import Study

GRID = {"activation": ["tanh", "sigmoid", "linear"], "w": [0.1, 0.5, 1.0, 2.0], "horizon": [60]}
QUICK_GRID = {"activation": ["tanh", "sigmoid"], "w": [0.1, 1.0], "horizon": [12]}
INPUT_STD = 1.0


def simulate(config, rng):
    """Records (step t, log10 |dh_t/dh_0| measured, log10 of the product of the slopes)."""
    cell = RNN(np.array([[config["w"]]]), np.array([[1.0]]), activation=config["activation"])
    inputs = rng.normal(0.0, INPUT_STD, size=(config["horizon"], 1))
    states = unroll(cell, inputs)
    slopes = np.array([cell.jacobian(states[t], inputs[t])[0, 0] for t in range(config["horizon"])])
    records = []
    for t in range(1, config["horizon"] + 1):
        # dh_t/dh_0: the gradient of L = h_t back to h_0, from the library's VJPs.
        log_grad = gradient_norms(cell, inputs[:t])[0]
        records.append({
            "step": t,
            "log10_gradient": log_grad / np.log(10),
            "log10_slope_product": np.sum(np.log10(np.abs(slopes[:t]))),
            "mean_abs_slope": float(np.mean(np.abs(slopes[:t]))),
        })
    return records


def plot(frame):
    fig, ax = new_figure()
    plot_lines(ax, frame, "step", "log10_gradient", ["activation", "w"])
    ax.axhline(-9, color="0.4", ls=":", lw=1)
    ax.annotate("0.1$^9$ = 1e-9 (lecture note)", (1, -9), fontsize=7, va="bottom")
    ax.set_xlabel("steps back in time T")
    ax.set_ylabel(r"$\log_{10}\,|\partial h_T/\partial h_0|$")
    ax.legend(fontsize=6, ncol=2)
    return fig


def summarize(frame):
    last = frame[frame.step == frame.step.max()]
    gap = np.max(np.abs(frame.log10_gradient - frame.log10_slope_product))
    return {
        "largest |measured - product of slopes| (log10)": gap,
        **{f"log10 |dh_T/dh_0|, {r.activation}, w={r.w}, T={r.step}": r.log10_gradient
           for r in last.itertuples()},
    }


STUDY = Study(
    name="chain_rule",
    question=__doc__.splitlines()[0],
    grid=GRID,
    quick_grid=QUICK_GRID,
    simulate=simulate,
    plot=plot,
    summarize=summarize,
)


def main(quick=False):
    from gradsim.report import produce

    return produce(__file__, quick=quick)


if __name__ == "__main__":
    main()
