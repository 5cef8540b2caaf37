"""Does the state's sensitivity to the recurrent parameter explode as memory grows (1 - lambda -> 0) even though d h_T / d h_0 never does, and do input normalisation and the exponential parametrisation cure it (Zucchet & Orvieto 2024)?

THEORY.md section 13; closed forms in :mod:`gradsim.theory.memory`. The diagonal recurrence is
h_t = lambda h_(t-1) + gamma x_t with unit-variance Gaussian AR(1) inputs (lag-one
autocorrelation rho, stationary from the first step), in four parametrisations:

- ``plain``: gs.RNN(weight_hh=[[lambda]], weight_ih=[[1]], linear), tangent d/d lambda
  (weight_hh -> 1);
- ``normalized``: weight_ih = gamma = sqrt(1 - lambda^2) tied to lambda, tangent d/d lambda
  (weight_hh -> 1, weight_ih -> gamma' = -lambda / gamma);
- ``exp``: gs.LRU with lambda = exp(-exp(nu_log)), phase exp(theta_log) = e^-40 (real to
  4e-18), gamma_log = 0, tangent d/d nu_log;
- ``exp_normalized``: the LRU with gamma_log = log sqrt(1 - lambda^2) moved with nu_log by
  d log gamma / d nu = e^nu lambda^2 / (1 - lambda^2) (the tangents of tests/test_memory_theory.py).

Each row computes, with gs.parameter_jvp over ``n_seq`` independent input sequences from h_0 = 0,
the draws Y_i = (d h_T / d theta)_i^2 at T = ceil(12 / (1 - lambda)) steps (the transient left in
E[Y] at T is below 1e-8 relative: tests/test_memory_theory.py checks it is < 0.01 s.e.), their mean
``mc_mean`` and its standard error ``mc_se`` = sample std (ddof = 1) / sqrt(n_seq). d h_T is linear
in the Gaussian inputs, so Y = sigma^2 chi^2_1, with relative s.e. sqrt(2 / n_seq). ``theory`` is
the stationary closed form (linear_sensitivity_second_moment or exp_sensitivity_second_moment) and
``limit_slope`` the slope of sensitivity_divergence (-3, -2, -1, 0).

d h_T / d h_0 = lambda^T for every diagonal variant (the one-step Jacobian is lambda, times a
rotation by e^-40 for the LRU): ``log_jac_measured`` is the log of the top singular value of the
T-step Jacobian product (gs.log_singular_values along the first sequence), ``log_jac_exact`` =
T log lambda < 0: the state's memory gradient never explodes, it only vanishes slowly.

Dense tanh RNN at matched memory (``dense``): h_t = tanh(g Q h_(t-1) + sigma x_t), N = 32 units,
Q orthogonal (gs.orthogonal with config_rng({"n_hidden": N}), the same Q in every row),
g = lambda, U = sigma I with sigma = DENSE_SIGMA = 1e-3 and each unit's input an independent AR(1)
sequence. Decision: near-linear. E[h^2] <= sigma^2 (1 + rho) / ((1 - rho)(1 - g^2)) <= 5e-4 at
1 - g = 0.003, so tanh' >= 1 - 5e-4: the network is the linear rotation-scaling g Q up to a gain
loss of that order, which is still a visible fraction of 1 - g at the longest memory. That is why
the memory is matched by the *measured* top Lyapunov exponent lambda_1 (gs.lyapunov_spectrum,
k = 1, along the first sequence, block s.e.): lambda_eff = exp(lambda_1), and the dense rows are
placed at 1 - lambda_eff. The tangent is weight_hh -> Q = dW/dg, the sensitivity to the gain
(W / ||W||_F = Q / sqrt(N), so d h / d g = sqrt(N) d h / d W . W / ||W||_F); the draw is
Y_i = ||d h_T / d g||^2 / (N sigma^2), per unit and per unit input variance, comparable with the
plain scalar. Two references: ``theory`` is the linear network's exact finite-T value,
(1/N) sum_(k,l < T) c_k c_l rho^|k-l| tr(Q^(l-k)), c_k = k g^(k-1) (from h_T = sigma sum_k g^k Q^k
x_(T-k)); for rho = 0 it is the plain scalar's (1 + g^2)/(1 - g^2)^3 (tr Q^0 = N) to the
transient; for rho > 0 the rotation Q^(l-k) averages the inputs' lag correlations away
(tr(Q^m)/N = O(N^-1/2)), so the dense network sees nearly iid inputs (for this Q the linear
value at rho = 0.5 is 6 % above the iid one at 1 - g = 0.003, against a factor 3 for the scalar). ``theory_matched`` is the
plain scalar's closed form at lambda_eff and rho = 0 (iid: the decorrelation just described).

Key numbers: per (parametrisation, rho) the Monte Carlo second moment at the smallest 1 - lambda
against the closed form (Estimate; the closed forms Exact), and the log-log slope of the Monte Carlo
means against 1 - lambda over the SLOPE_POINTS smallest values: ordinary least squares on
(log(1 - lambda), log mc_mean); the points are independent, so by the delta method its s.e. is
sqrt(sum_i a_i^2 (mc_se_i / mc_mean_i)^2) with a_i the OLS weights. It is compared with the closed
form's slope over the same points (Exact) and with the limit. The dense rows' slope is taken
against log(1 - lambda_eff); the exponents' block s.e. (< 1e-5, at most 0.3 % of 1 - lambda_eff)
is left out of the slope's s.e. (it would add < 0.003 / log 10 to it), and a dense row's
second moment is compared with the plain scalar's closed form at lambda_eff (``theory_matched``,
the ratio with the row's s.e.) and its slope with the plain diagonal rows' measured slope.
"""

import math

import numpy as np

from gradsim import (LRU, RNN, Estimate, Exact, log_singular_values, lyapunov_spectrum, orthogonal,
                     parameter_jvp)
from gradsim import theory as th
from gradsim.workflow.findings import rate_of
from gradsim.workflow.plotting import PALETTE, new_figure
from gradsim.workflow.runner import Study, config_rng

DIAGONAL = ["plain", "normalized", "exp", "exp_normalized"]
KINDS = DIAGONAL + ["dense"]
GRID = {"parametrization": KINDS, "one_minus_lambda": [0.3, 0.1, 0.03, 0.01, 0.003],
        "rho": [0.0, 0.5], "n_seq": [4000], "n_dense": [400], "n_hidden": [32]}
QUICK_GRID = {"parametrization": KINDS, "one_minus_lambda": [0.3, 0.1, 0.03],
              "rho": [0.0, 0.5], "n_seq": [2000], "n_dense": [100], "n_hidden": [32]}
HORIZON = 12.0        # T = ceil(HORIZON / (1 - lambda)) steps
DENSE_SIGMA = 1e-3    # input scale of the dense tanh RNN (near-linear; module docstring)
PHASE_LOG = -40.0     # the LRU's theta_log: phase e^-40, real to 4e-18
CHUNK = 1000          # sequences per parameter_jvp call (bounds the memory: chunk x T x S)
SLOPE_POINTS = 3
Z = 4.0


def horizon(one_minus_lambda):
    return int(math.ceil(HORIZON / one_minus_lambda))


def ar1_inputs(rng, n, steps, rho, width=1):
    """Gaussian AR(1) inputs (n, steps, width), stationary from the first step."""
    noise = rng.standard_normal((n, steps, width))
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0]
    scale = math.sqrt(1.0 - rho * rho)
    for t in range(1, steps):
        x[:, t] = rho * x[:, t - 1] + scale * noise[:, t]
    return x


def diagonal_cell(kind, lam):
    """(cell, tangent) of one diagonal parametrisation at lambda (module docstring)."""
    normalized = kind.endswith("normalized")
    if kind.startswith("exp"):
        nu = math.log(-math.log(lam))
        gamma_log = 0.5 * math.log1p(-lam * lam) if normalized else 0.0
        cell = LRU(nu_log=[nu], theta_log=[PHASE_LOG], gamma_log=[gamma_log], B_re=[[1.0]],
                   B_im=[[0.0]], normalize=normalized)
        tangent = {"nu_log": np.array([1.0])}
        if normalized:
            tangent["gamma_log"] = np.array([math.exp(nu) * lam * lam / (1.0 - lam * lam)])
        return cell, tangent
    gamma = math.sqrt(1.0 - lam * lam) if normalized else 1.0
    d_gamma = -lam / gamma if normalized else 0.0
    cell = RNN(weight_hh=[[lam]], weight_ih=[[gamma]], activation="linear")
    return cell, {"weight_hh": np.array([[1.0]]), "weight_ih": np.array([[d_gamma]])}


def diagonal_theory(kind, lam, rho):
    normalized = kind.endswith("normalized")
    if kind.startswith("exp"):
        return th.exp_sensitivity_second_moment(math.log(-math.log(lam)), rho,
                                                normalized=normalized)
    return th.linear_sensitivity_second_moment(lam, rho, normalized=normalized)


def limit_slope(kind, rho):
    if kind == "dense":
        return -3.0
    return th.sensitivity_divergence(rho, normalized=kind.endswith("normalized"),
                                     parametrization="exp" if kind.startswith("exp") else "lambda"
                                     ).slope


def dense_weight(n_hidden):
    """The orthogonal Q of the dense rows: the same at every lambda and rho."""
    return orthogonal(n_hidden, rng=config_rng({"n_hidden": n_hidden}))


def dense_linear_theory(q, gain, rho, steps):
    """(1/N) sum_(k,l<T) c_k c_l rho^|k-l| tr(Q^(l-k)), c_k = k g^(k-1): the linear network."""
    n = q.shape[0]
    k = np.arange(steps, dtype=float)
    c = k * gain ** np.maximum(k - 1.0, 0.0)
    phases = np.angle(np.linalg.eigvals(q))
    total = float(c @ c)
    lags = 0 if rho == 0 else min(steps - 1, int(math.ceil(math.log(1e-17) / math.log(rho))))
    for m in range(1, lags + 1):
        trace = float(np.sum(np.cos(m * phases)))
        total += 2.0 * rho ** m * trace / n * float(c[:-m] @ c[m:])
    return total


def _chunked_final(cell, x, tangent):
    out = []
    for start in range(0, len(x), CHUNK):
        out.append(parameter_jvp(cell, x[start:start + CHUNK], tangent)[:, -1, :])
    return np.concatenate(out)


def simulate(config, rng):
    kind, delta, rho = config["parametrization"], config["one_minus_lambda"], config["rho"]
    lam = 1.0 - delta
    steps = horizon(delta)
    record = {"lam": lam, "steps": steps, "limit_slope": limit_slope(kind, rho)}
    if kind in DIAGONAL:
        n = config["n_seq"]
        cell, tangent = diagonal_cell(kind, lam)
        x = ar1_inputs(rng, n, steps, rho)
        y = _chunked_final(cell, x, tangent)[:, 0] ** 2     # Re h for the LRU
        log_jac = float(log_singular_values(cell, x[0], times=[steps])[0, 0])
        record.update(theory=diagonal_theory(kind, lam, rho), theory_matched=np.nan,
                      lambda_eff=lam, top_exponent=math.log(lam), top_exponent_se=0.0,
                      log_jac_measured=log_jac, log_jac_exact=steps * math.log(lam))
    else:
        n, n_hidden = config["n_dense"], config["n_hidden"]
        q = dense_weight(n_hidden)
        cell = RNN(weight_hh=lam * q, weight_ih=DENSE_SIGMA * np.eye(n_hidden), activation="tanh")
        x = ar1_inputs(rng, n, steps, rho, n_hidden)
        final = _chunked_final(cell, x, {"weight_hh": q})
        y = np.sum(final ** 2, axis=1) / (n_hidden * DENSE_SIGMA ** 2)
        spectrum = lyapunov_spectrum(cell, x[0], k=1)
        top = float(spectrum.exponents[0])
        log_jac = float(log_singular_values(cell, x[0], times=[steps])[0, 0])
        record.update(theory=dense_linear_theory(q, lam, rho, steps),
                      theory_matched=th.linear_sensitivity_second_moment(math.exp(top), 0.0),
                      lambda_eff=math.exp(top), top_exponent=top,
                      top_exponent_se=float(spectrum.stderr[0]),
                      log_jac_measured=log_jac, log_jac_exact=np.nan)
    record.update(mc_mean=float(y.mean()), mc_se=float(y.std(ddof=1) / math.sqrt(len(y))),
                  n_draws=len(y))
    return [record]


def loglog_slope(x, means, ses=None):
    """OLS slope of log(means) on log(x), and (ses given) its delta-method s.e."""
    lx = np.log(np.asarray(x, float))
    weights = (lx - lx.mean()) / np.sum((lx - lx.mean()) ** 2)
    slope = float(weights @ np.log(np.asarray(means, float)))
    if ses is None:
        return slope
    rel = np.asarray(ses, float) / np.asarray(means, float)
    return slope, float(math.sqrt(np.sum(weights ** 2 * rel ** 2)))


def memory_axis(rows):
    """1 - lambda of the rows: the grid's for the diagonal, 1 - lambda_eff measured for dense."""
    return -np.expm1(rows.top_exponent.to_numpy(float)) if rows.parametrization.iloc[0] == "dense" \
        else rows.one_minus_lambda.to_numpy(float)


def plot(frame):
    fig, axes = new_figure(ncols=2, width=4.4, height=3.8)
    for j, (rho, part) in enumerate(frame.groupby("rho", sort=True)):
        ax = axes.flat[j]
        for i, kind in enumerate(KINDS):
            rows = part[part.parametrization == kind].sort_values("one_minus_lambda")
            if not len(rows):
                continue
            axis = memory_axis(rows)
            color = PALETTE[i % len(PALETTE)]
            marker = "s" if kind == "dense" else "o"
            label = ("dense tanh RNN N = %d, ||dh/dg||^2 / (N sigma^2) vs 1 - exp lambda_1"
                     % rows.n_hidden.iloc[0]
                     if kind == "dense" else kind)
            ax.errorbar(axis, rows.mc_mean, yerr=rows.mc_se, color=color, ls="none",
                        marker=marker, ms=4, capsize=2, label=label)
            if kind == "dense":
                ax.plot(axis, rows.theory_matched, color=color, ls=":", lw=1,
                        label="plain scalar at lambda_eff (iid)")
            else:
                fine = np.geomspace(rows.one_minus_lambda.min(), rows.one_minus_lambda.max(), 60)
                ax.plot(fine, [diagonal_theory(kind, 1 - d, float(rho)) for d in fine],
                        color=color, ls="--", lw=1)
        ax.plot([], [], color="0.3", ls="--", label="closed form")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$1 - \lambda$")
        ax.set_ylabel(r"$E[(\partial h_T/\partial\theta)^2]$")
        ax.set_title(f"AR(1) inputs, rho = {float(rho):g}", fontsize=9)
        ax.legend(fontsize=6)
    return fig


def summarize(frame):
    out = {}
    smallest = float(frame.one_minus_lambda.min())
    slope_text, order_text, dense_text = [], [], []
    for rho, part in frame.groupby("rho", sort=True):
        at_small, slopes = {}, {}
        for kind in KINDS:
            rows = part[part.parametrization == kind].sort_values("one_minus_lambda")
            if not len(rows):
                continue
            tail = rows.iloc[:SLOPE_POINTS]
            axis = memory_axis(tail)
            slope, se = loglog_slope(axis, tail.mc_mean, tail.mc_se)
            theory_slope = loglog_slope(axis, tail.theory if kind != "dense" else tail.theory_matched)
            span = "{" + ", ".join(f"{d:g}" for d in tail.one_minus_lambda) + "}"
            tag = f"{kind}, rho = {float(rho):g}"
            out[f"slope d log E / d log(1 - lambda), 1 - lambda in {span}, {tag}"] = Estimate(slope, se)
            ref = "closed form" if kind != "dense" else "plain scalar at lambda_eff"
            out[f"slope of the {ref}, same points, {tag}"] = Exact(theory_slope, rtol=1e-6)
            out[f"limit slope, {tag}"] = Exact(float(tail.limit_slope.iloc[0]))
            low = rows.iloc[0]
            est = Estimate(float(low.mc_mean), float(low.mc_se), n=int(low.n_draws))
            at_small[kind] = est
            out[f"E[(dh/dtheta)^2] at 1 - lambda = {smallest:g}, {tag}"] = est
            ref_at = ("closed form" if kind != "dense"
                      else "linear network (tanh -> identity, exact at finite T)")
            out[f"{ref_at} at 1 - lambda = {smallest:g}, {tag}"] = Exact(float(low.theory),
                                                                         rtol=1e-6)
            slope_text.append(f"{tag}: {slope:.3f} ± {se:.2g} ({ref} {theory_slope:.3f}, "
                              f"limit {float(tail.limit_slope.iloc[0]):g})")
            if kind == "dense" and "plain" in slopes:
                p_slope, p_se = slopes["plain"]
                out[f"dense slope - plain diagonal slope, rho = {float(rho):g}"] = Estimate(
                    slope - p_slope, math.hypot(se, p_se))
            slopes[kind] = (slope, se)
            if kind == "dense":
                ratio = float(low.mc_mean / low.theory_matched)
                out[f"dense / plain scalar at matched memory, 1 - lambda = {smallest:g}, "
                    f"rho = {float(rho):g}"] = Estimate(ratio, float(low.mc_se / low.theory_matched))
                out[f"dense 1 - lambda_eff at 1 - g = {smallest:g}, rho = {float(rho):g}"] = \
                    Estimate(float(-np.expm1(low.top_exponent)), float(low.top_exponent_se))
                eff = out[f"dense 1 - lambda_eff at 1 - g = {smallest:g}, rho = {float(rho):g}"]
                diff = out.get(f"dense slope - plain diagonal slope, rho = {float(rho):g}")
                dense_text.append(
                    f"Dense tanh RNN (N = {int(low.n_hidden)}, input std {DENSE_SIGMA:g}), rho = "
                    f"{float(rho):g}: at g = {1 - smallest:g} the measured memory is 1 - lambda_eff "
                    f"= {float(eff):.4g} (tanh shortens it), its gain sensitivity per unit is "
                    f"{ratio:.3f} ± {float(low.mc_se / low.theory_matched):.2g} of the plain "
                    f"scalar's at lambda_eff and {float(low.mc_mean / low.theory):.3f} of the "
                    f"linear network's at g"
                    + (f"; its slope minus the plain diagonal's is {float(diff):+.3f} ± "
                       f"{diff.stderr:.2g}" if diff is not None else "") + ".")
        if all(k in at_small for k in ("plain", "normalized", "exp_normalized")):
            p, nm, en = at_small["plain"], at_small["normalized"], at_small["exp_normalized"]
            order_text.append(f"rho = {float(rho):g}: plain {float(p):.3g}, normalized "
                              f"{float(nm):.3g}, exp_normalized {float(en):.3g}")
    diag = frame[frame.parametrization.isin(DIAGONAL)]
    z = (diag.mc_mean - diag.theory) / diag.mc_se
    out["Monte Carlo within 4 s.e. of the closed form (diagonal rows)"] = rate_of(np.abs(z) <= Z)
    out["max |log dh_T/dh_0 measured - T log lambda| (diagonal)"] = Exact(
        float(np.max(np.abs(diag.log_jac_measured - diag.log_jac_exact))), rtol=1e-3, atol=1e-9)
    out["max log |dh_T/dh_0| (all rows; <= 0: never explodes)"] = Exact(
        float(frame.log_jac_measured.max()), rtol=1e-3, atol=1e-9)
    within = out["Monte Carlo within 4 s.e. of the closed form (diagonal rows)"]
    out["notes"] = (
        f"Monte Carlo second moments of d h_T / d theta agree with the closed forms within 4 s.e. "
        f"in {within.successes} of {within.trials} diagonal rows, while |d h_T / d h_0| = "
        f"lambda^T stays below 1 (largest log {float(out['max log |dh_T/dh_0| (all rows; <= 0: never explodes)']):.3g}). "
        "Log-log slopes against 1 - lambda over the smallest values: " + "; ".join(slope_text)
        + f". At 1 - lambda = {smallest:g}: " + "; ".join(order_text) + ". " + " ".join(dense_text))
    return out


STUDY = Study(
    name="curse_of_memory",
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
