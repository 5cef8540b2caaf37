r"""The built-in claims: the lecture notes' statements about gradients and THEORY.md's results.

Every claim is checked by a module-level function ``check_<name>(quick, rng) -> Evidence`` that
simulates with the numeric layer (:mod:`gradsim.numeric`) and compares what it measures with
a prediction from :mod:`gradsim.theory` (or, for a lecture-note rule, with the rule itself).
The verdict is computed from those numbers; none is written in by hand.

Lecture notes are cited by file name (``shared/seeds/``); ids ``notes.*``. THEORY.md results
have ids ``theory.*`` and cite the paper and the section.

Statistics
----------
A stochastic comparison allows :data:`Z` = 4 standard errors where the standard error is
known exactly (Newman's QR variances, the adding problem's fourth moment, the plug-in
entropy's chi-square law), i.e. a two-sided false-alarm probability :data:`P_FALSE_ALARM`
= 6.3e-5. Where the standard error is itself estimated from k samples (the 20 block
estimates of :func:`~gradsim.numeric.lyapunov_spectrum`, or k random matrices) the
multiplier is Student's t quantile with k - 1 degrees of freedom at the same probability
(5.10 for 20 blocks): the estimated standard error is itself uncertain. Checks run with
every seed given to :func:`~gradsim.claims.check_claims`; a claim whose verdict differs
between seeds is reported as seed-dependent.

How the reported numbers relate to the verdict
----------------------------------------------
:data:`COMPARISONS` maps the id of every claim whose verdict follows from its reported
``measured``, ``predicted`` and ``tolerance`` alone (plus exact side conditions that
hold unless the code is wrong) to the rule used:

``"within"``     supported exactly when ``|measured - predicted| <= tolerance``;
``"at most"``    supported exactly when ``measured <= predicted + tolerance`` (a bound);
``"exceeds"``    supported exactly when ``measured > predicted + tolerance`` (a significant
                 excess, e.g. a positive growth rate).

The other claims (the ``conditional`` ones) combine several comparisons, described in
their ``detail``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.special import polygamma

from ..theory import predictions as theory
from ..cells import GRU, LSTM, RNN, ResidualRNN, make_cell, stack_cells
from .framework import Claim, Evidence
from ..init import gaussian, orthogonal
from ..numeric import (
    gradient_norms,
    jacobian_product,
    log_singular_values,
    lyapunov_spectrum,
    unroll,
    untied,
)

__all__ = ["CLAIMS", "COMPARISONS", "builtin_claims", "comparison_holds", "Z", "P_FALSE_ALARM"]

#: Standard errors allowed when the standard error is known exactly.
Z = 4.0
#: Two-sided probability of a false alarm at Z standard errors (6.3e-5).
P_FALSE_ALARM = float(2.0 * stats.norm.sf(Z))
#: Blocks of lyapunov_spectrum's standard error (its default).
_BLOCKS = 20
_LN10 = math.log(10.0)
_EPS = float(np.finfo(np.float64).eps)
#: products.py keeps rounding below 1e-8 relative per re-orthonormalisation (at most one per
#: step), so a log singular value after T steps is exact to 1e-8 T nats (its contract).
_LOG_SV_ACCURACY = 1e-8
#: "Forgotten": a gradient shrunk by more than 1e-3 over the horizon (the lecture notes'
#: "approximately 0" is 1e-9; 1e-3 is a generous reading of it).
_FORGOTTEN_LOG10 = -3.0
_HORIZON = 100  # "a long sequence": 100 steps


def _crit(dof: float) -> float:
    """Student's t quantile at the two-sided probability P_FALSE_ALARM (Z for dof = inf)."""
    if math.isinf(dof):
        return Z
    return float(stats.t.ppf(1.0 - P_FALSE_ALARM / 2.0, dof))


_LYAP_CRIT = _crit(_BLOCKS - 1)  # 5.10


def comparison_holds(kind: str, measured: float, predicted: float, tolerance: float) -> bool:
    """Whether ``measured`` satisfies rule ``kind`` of :data:`COMPARISONS`."""
    if kind == "within":
        return abs(measured - predicted) <= tolerance
    if kind == "at most":
        return measured <= predicted + tolerance
    if kind == "exceeds":
        return measured > predicted + tolerance
    raise ValueError(f"`kind` must be one of 'within', 'at most', 'exceeds'; got {kind!r}.")


def _judge(kind, measured, predicted, tolerance, detail, side=(), refuted_by=""):
    """Evidence for a claim of rule ``kind``; ``side`` lists (ok, reason) exact side conditions."""
    failed = [reason for ok, reason in side if not ok]
    ok = comparison_holds(kind, measured, predicted, tolerance) and not failed
    if not ok:
        why = "; ".join(failed) if failed else refuted_by or "outside the tolerance"
        detail = f"{detail} FAILED: {why}."
    return Evidence("supported" if ok else "refuted", measured, predicted, tolerance, detail)


def _g(x, digits: int = 4) -> str:
    return f"{float(x):.{digits}g}"


def _pm(value, se) -> str:
    return f"{_g(value)} +- {_g(se, 2)}"


def _spectral_norm(w) -> float:
    return float(np.linalg.norm(w, 2))


def _spectral_radius(w) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(w))))


def _scaled(w, norm):
    return w * (norm / _spectral_norm(w))


def _top(cell, inputs, warmup, state0=None, path="full"):
    """(top Lyapunov exponent, its standard error)."""
    spec = lyapunov_spectrum(cell, inputs, state0=state0, k=1, warmup=warmup, path=path)
    return float(spec.exponents[0]), float(spec.stderr[0])


def _tops(cells, inputs, warmup, path="full") -> list:
    """``_top(cell, x, warmup, path=path)`` of every cell (with ``inputs[i]``, or ``inputs`` shared
    when 2-d), from one ensemble: a member's top exponent equals its lone run's bit for bit
    (thin frames depend neither on the partners nor on running alone)."""
    spec = lyapunov_spectrum(stack_cells(cells), np.asarray(inputs) if isinstance(inputs, np.ndarray)
                             else np.stack(inputs), k=1, warmup=warmup, path=path)
    return [(float(spec.exponents[b, 0]), float(spec.stderr[b, 0])) for b in range(len(cells))]


def _top_log_sv(cell, inputs, state0=None, path="full") -> float:
    """log ||P_T||_2."""
    return float(log_singular_values(cell, inputs, state0=state0, path=path)[0, 0])


def _log_svs(runs, times=None) -> list:
    """``log_singular_values(cell, inputs, times=times)`` of every ``(cell, inputs)`` in ``runs``.

    Runs of one kind, size, options and horizon are evaluated as one ensemble (stack_cells,
    one sequence per member): a member's log singular values equal its lone run's bit for bit,
    so this is a faster way to compute the same numbers.
    """
    groups: dict[str, list[int]] = {}
    for i, (cell, inputs) in enumerate(runs):
        horizon = inputs if isinstance(inputs, int) else np.shape(inputs)
        key = repr((type(cell).__name__, sorted(cell.options().items()), cell.n_hidden, cell.n_input,
                    cell.batch_shape, horizon))
        groups.setdefault(key, []).append(i)
    out = [None] * len(runs)
    for members in groups.values():
        if len(members) == 1:
            cell, inputs = runs[members[0]]
            out[members[0]] = log_singular_values(cell, inputs, times=times)
            continue
        cells = stack_cells([runs[i][0] for i in members])
        inputs = runs[members[0]][1]
        if not isinstance(inputs, int):
            inputs = np.stack([runs[i][1] for i in members])
        found = log_singular_values(cells, inputs, times=times)
        for b, i in enumerate(members):
            out[i] = found[b]
    return out


def _eigvec_condition(w) -> float:
    """log of the 2-norm condition number of W's eigenvector matrix (columns of unit norm)."""
    _, vectors = np.linalg.eig(w)
    return math.log(float(np.linalg.cond(vectors)))


def _tanh_setting(n, n_input, steps, rng):
    """Input weights N(0, 1/I) and inputs N(0, 1): pre-activations get input variance 1."""
    return gaussian((n, n_input), 1.0, rng), rng.standard_normal((steps, n_input))


# ==========================================================================================
# lecture-note claims
# ------------------------------------------------------------------------------------------
def check_small_slopes_vanish(quick: bool, rng) -> Evidence:
    """Scalar tanh RNN driven so that its slopes are the notes' (0.2, 0.1, 0.3, ...)."""
    trials = 20 if quick else 500
    worst = None
    largest = -math.inf
    for _ in range(trials):
        # The notes' three slopes, then six more of "about 0.1" for the "... 9 times".
        slopes = np.concatenate([[0.2, 0.1, 0.3], rng.uniform(0.05, 0.2, 6)])
        w = rng.uniform(0.4, 1.0)
        # Pre-activations with w tanh'(a_t) = slope_t, of random sign; inputs that produce them.
        a = rng.choice([-1.0, 1.0], slopes.size) * np.arctanh(np.sqrt(1.0 - slopes / w))
        h0 = rng.uniform(-0.5, 0.5)
        h = np.tanh(a)
        previous = np.concatenate([[h0], h[:-1]])
        x = a - w * previous
        cell = RNN([[w]], [[1.0]], activation="tanh")
        log_scale, matrix = jacobian_product(cell, x[:, None], state0=[h0])
        measured = (float(log_scale) + math.log(abs(float(matrix[0, 0])))) / _LN10
        # Independent of the library: the slopes from the states computed here.
        own = w * (1.0 - np.tanh(a) ** 2)
        predicted = theory.chain_rule_product(own).log_abs / _LN10
        if worst is None or abs(measured - predicted) > abs(worst[0] - worst[1]):
            worst = (measured, predicted)
        largest = max(largest, measured)
    tolerance = 1e-12
    notes_value = theory.chain_rule_product([0.1] * 9).value
    detail = (
        f"{trials} scalar tanh RNNs h' = tanh(w h + x), w in [0.4, 1], inputs chosen so that the "
        f"per-step slopes w tanh'(a_t) are 0.2, 0.1, 0.3 and six in [0.05, 0.2]: dh_9/dh_0 from "
        f"jacobian_product equals the product of the slopes (worst log10 {_g(worst[0], 12)} vs "
        f"{_g(worst[1], 12)}); the largest product is 10^{_g(largest, 3)}, the notes' "
        f"(0.1)^9 = {_g(notes_value, 3)}."
    )
    return _judge(
        "within", worst[0], worst[1], tolerance, detail,
        side=[(largest <= -6.0, f"a 9-step product reached 10^{_g(largest, 3)} > 1e-6")],
    )


def check_sv_gt_1_explodes(quick: bool, rng) -> Evidence:
    """Search for W with ||W||_2 > 1 whose tanh RNN gradient vanishes."""
    n, steps, n_input = (32, 600, 4) if quick else (64, 3000, 4)
    warmup = steps // 5
    u, x = _tanh_setting(n, n_input, steps, rng)
    base = gaussian(n, 1.0, rng)
    rows = []
    weights = {norm: _scaled(base, norm) for norm in (1.5, 2.0, 3.0)}
    tops = _tops([RNN(w, u) for w in weights.values()], x, warmup)  # one ensemble
    for (norm, w), (lam, se) in zip(weights.items(), tops):
        rows.append((norm, _spectral_radius(w), lam, se))
    counter = [r for r in rows if r[2] < -_LYAP_CRIT * r[3]]
    # The counterexample with the largest norm if any, else the least convincing explosion.
    norm, rho, lam, se = max(counter) if counter else min(rows, key=lambda r: r[2] / r[3])
    tolerance = _LYAP_CRIT * se
    listing = ", ".join(f"||W||_2 = {r[0]}: rho = {_g(r[1], 3)}, lambda_1 = {_pm(r[2], r[3])}" for r in rows)
    setting = (
        f"Gaussian W (N = {n}) scaled to each norm, tanh RNN driven by N(0, 1) inputs, top "
        f"Lyapunov exponent over {steps - warmup} steps after {warmup}: {listing}."
    )
    if counter:
        verdict = "refuted"
        detail = (
            f"Counterexample: W with ||W||_2 = {norm} (spectral radius {_g(rho, 3)}) whose gradient "
            f"vanishes at lambda_1 = {_pm(lam, se)} per step (a factor 10^{_g(_HORIZON * lam / _LN10, 3)} "
            f"over {_HORIZON} steps). {setting} ||W||_2 > 1 is necessary for exploding, not "
            f"sufficient (Pascanu et al. 2013): the slopes tanh' < 1 of saturated units shrink the product."
        )
    elif lam > tolerance:
        verdict = "supported"
        detail = f"Every W tried explodes. {setting}"
    else:
        verdict = "conditional"
        detail = f"No W tried vanishes significantly, not all explode. {setting}"
    return Evidence(verdict, lam, 0.0, tolerance, detail)


def check_sv_lt_1_vanishes(quick: bool, rng) -> Evidence:
    """Pascanu's sufficient condition: ||W||_2 < 1 gives ||P_t|| <= ||W||_2^t (tanh, relu)."""
    n, steps, configs = (16, 120, 6) if quick else (32, 500, 24)
    times = np.unique(np.geomspace(1, steps, 25).astype(int))
    worst, worst_config, final = -math.inf, "", []
    settings, runs = [], []
    for index in range(configs):
        kind = ("gaussian", "orthogonal", "non-normal")[index % 3]
        activation = "tanh" if index % 2 == 0 else "relu"
        if kind == "gaussian":
            base = gaussian(n, 1.0, rng)
        elif kind == "orthogonal":
            base = orthogonal(n, 1.0, rng)
        else:
            base = np.triu(gaussian(n, 1.0, rng))  # strongly non-normal
        norm = 0.99 if index == 0 else float(rng.uniform(0.5, 0.99))
        w = _scaled(base, norm)
        if index == 0:
            # Equality case: orthogonal W, zero input keeps a = 0, tanh'(0) = 1, P_t = W^t.
            cell, inputs = RNN(w, activation="tanh"), steps
        else:
            u, inputs = _tanh_setting(n, 4, steps, rng)
            cell = RNN(w, u, activation=activation)
        settings.append((kind, activation, norm))
        runs.append((cell, inputs))
    # Drawn in the order above, evaluated as ensembles of one activation, read in that order.
    for (kind, activation, norm), log_sv in zip(settings, _log_svs(runs, times)):
        top = log_sv[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = np.where(np.isneginf(top), -np.inf, top - times * math.log(norm))
        if np.max(excess) > worst:
            worst, worst_config = float(np.max(excess)), f"{kind} W, ||W||_2 = {_g(norm, 3)}, {activation}"
        final.append(top[-1])
    tolerance = _LOG_SV_ACCURACY * steps
    detail = (
        f"{configs} recurrent matrices with ||W||_2 < 1 (Gaussian, orthogonal, upper triangular; "
        f"tanh and ReLU; N = {n}; the first orthogonal with zero input, where the bound is attained): "
        f"max over matrices and t <= {steps} of log||P_t||_2 - t log||W||_2 = {_g(worst, 3)} "
        f"({worst_config}); after {steps} steps the gradient is at most "
        f"10^{_g(max(final) / _LN10, 3)}."
    )
    return _judge("at most", worst, 0.0, tolerance, detail)


def _mean_field_finite_n(sigma_w, activation, n, sigma_b=0.0):
    """(1/2) log chi_1 minus the finite-N Jensen gap, and that gap's relative variance.

    Derived here: ||J v||^2 = sum_i phi'(a_i)^2 (W v)_i^2 has relative variance
    r = (3 mu_2 / chi_1^2 - 1) / N, so E log ||J v|| = (1/2) log chi_1 - r/4 + O(r^2) (delta
    method; linear: r/4 = 1/(2N), the leading term of Newman's exponent).
    """
    q_star = theory.mean_field_q_star(sigma_w, activation, sigma_b=sigma_b)
    chi1 = theory.mean_field_chi1(sigma_w, activation, sigma_b=sigma_b)
    relvar = (3.0 * theory.mu2(sigma_w, activation, q_star) / chi1**2 - 1.0) / n
    return 0.5 * math.log(chi1) - relvar / 4.0, relvar, q_star


def check_relu_prevents_shrinking(quick: bool, rng) -> Evidence:
    """ReLU vs tanh at the same (untied) weights, near-linear and saturating pre-activations."""
    n, steps, gain = (48, 800, 1.0) if quick else (128, 4000, 1.0)
    warmup = steps // 10
    rows = {}
    for sigma_b in (0.1, 2.0):
        seed = int(rng.integers(2**63))  # the same weights and biases for both activations
        found = {}
        for activation in ("tanh", "relu"):
            cells = _keeping(untied(lambda r, a=activation, s=sigma_b: RNN(
                gaussian(n, gain, r), bias_hh=r.normal(0.0, s, n), activation=a), seed), 200)
            predicted, relvar, q_star = _mean_field_finite_n(gain, activation, n, sigma_b)
            pre = math.sqrt(q_star) * rng.standard_normal(n)
            state0 = np.tanh(pre) if activation == "tanh" else np.maximum(pre, 0.0)
            lam, se = _top(cells, steps, warmup, state0=state0)
            states = unroll(cells, 200, state0=state0)
            a = np.array([cells(t).weight_hh @ states[t] + cells(t).bias for t in range(200)])
            slopes = 1.0 - np.tanh(a) ** 2 if activation == "tanh" else (a > 0).astype(float)
            found[activation] = (lam, se, predicted, slopes)
        rows[sigma_b] = found
    def diff(sigma_b):
        t, r = rows[sigma_b]["tanh"], rows[sigma_b]["relu"]
        return r[0] - t[0], math.hypot(r[1], t[1]), r[2] - t[2]
    (d_sat, se_sat, p_sat), (d_lin, se_lin, _) = diff(2.0), diff(0.1)
    tol_sat, tol_lin = _LYAP_CRIT * se_sat, _LYAP_CRIT * se_lin
    better_saturated, better_linear = d_sat > tol_sat, d_lin > tol_lin
    worse_linear = d_lin < -tol_lin
    relu_slopes = np.concatenate([rows[s]["relu"][3].ravel() for s in rows])
    tanh_slopes = np.concatenate([rows[s]["tanh"][3].ravel() for s in rows])
    exact = bool(np.all((relu_slopes == 0.0) | (relu_slopes == 1.0)))
    listing = "; ".join(
        f"bias sd {s:g}: tanh {_pm(rows[s]['tanh'][0], rows[s]['tanh'][1])} (mean field "
        f"{_g(rows[s]['tanh'][2], 3)}), ReLU {_pm(rows[s]['relu'][0], rows[s]['relu'][1])} "
        f"(mean field {_g(rows[s]['relu'][2], 3)})" for s in rows)
    facts = (
        f"Untied weights N(0, {gain:g}/N) (the mean-field setting, which isolates the activation), "
        f"N = {n}, fresh N(0, sd^2) biases every step; top exponents: {listing}. relu' is exactly 0 or "
        f"1: {exact} ({_g(100 * np.mean(relu_slopes), 3)}% ones); tanh' < 1 on "
        f"{_g(100 * np.mean(tanh_slopes < 1), 4)}% of unit-steps."
    )
    if better_saturated and worse_linear:
        verdict = "conditional"
        detail = (f"ReLU beats tanh only where tanh saturates: relu' = 1 on active units, but the "
                  f"dead half multiplies the mean-square gradient by 1/2 each step, whereas "
                  f"near-linear tanh keeps E tanh'^2 close to 1. {facts}")
    elif better_saturated and better_linear:
        verdict, detail = "supported", f"ReLU decays slower in both regimes. {facts}"
    else:
        verdict, detail = "refuted", f"ReLU does not decay slower than saturated tanh. {facts}"
    return Evidence(verdict, d_sat, p_sat, tol_sat, detail)


def _keeping(cells, count):
    """The untied ``cells`` with the cells of steps < ``count`` kept once built: the same cells,
    built once for the spectrum and the slopes read again over those steps."""
    kept = {}

    def cell_at(t):
        if t >= count:
            return cells(t)
        if t not in kept:
            kept[t] = cells(t)
        return kept[t]

    return cell_at


def _relu_mask(cell, x):
    states = unroll(cell, x)
    pre = states[:-1] @ cell.weight_hh.T + x @ cell.weight_ih.T + cell.bias
    return pre > 0


def check_identity_init_helps(quick: bool, rng) -> Evidence:
    """IRNN: singular values exactly 1 on always-active units, 0 elsewhere; tanh RNN for contrast."""
    n, steps, n_input = (64, _HORIZON, 4) if quick else (256, 4 * _HORIZON, 4)
    cell = make_cell("irnn", n, n_input, rng=rng)
    x = rng.standard_normal((steps, n_input))
    mask = _relu_mask(cell, x)
    expected = theory.irnn_singular_values(mask)
    log_sv = log_singular_values(cell, x)[0]
    ones = int(np.sum(np.abs(log_sv) <= 1e-12))
    zeros = int(np.sum(np.isneginf(log_sv)))
    k = int(np.sum(expected == 1.0))
    exact = ones == k and zeros == n - k
    tanh_cell = RNN(gaussian(n, 1.0, rng), cell.weight_ih)
    tanh_top = _top_log_sv(tanh_cell, x) / _LN10
    facts = (
        f"IRNN (W = I, ReLU, b = 0, N = {n}, N(0, 1) inputs, T = {steps}): {ones} singular values of "
        f"P_T are exactly 1 and {zeros} exactly 0; {k} units were active at every step. A tanh RNN "
        f"with Gaussian W (gain 1) and the same inputs keeps at most 10^{_g(tanh_top, 3)}."
    )
    if not exact:
        return Evidence("refuted", ones / n, k / n, 0.0,
                        f"The IRNN product is not diag(always-active). {facts}")
    if k == n:
        return Evidence("supported", ones / n, k / n, 0.0, f"Every unit stayed active. {facts}")
    return Evidence(
        "conditional", ones / n, k / n, 0.0,
        f"Identity initialisation preserves the gradient exactly, but only on units active over the "
        f"whole window (Le et al. 2015; THEORY.md section 6); a unit that is off at one step cuts its "
        f"gradient to exactly 0. {facts}",
    )


def check_clipping_bounds_step(quick: bool, rng) -> Evidence:
    """clip_by_norm over random gradients from 1e-300 to 1e300 and one BPTT gradient."""
    samples = 2000 if quick else 20000
    worst_excess, worst_angle, changed_below, clipped = -math.inf, 0.0, 0, 0
    grads = []
    for _ in range(samples):
        size = int(rng.integers(1, 1001))
        g = rng.standard_normal(size) * 10.0 ** rng.uniform(-300, 300)
        if rng.uniform() < 0.1:
            g[rng.integers(size)] *= 1e6  # one dominant entry
        grads.append(g)
    # A real one: dL/dh_0 of an exploding tanh RNN (Gaussian gain 3), 60 steps.
    cell = make_cell("rnn", 32, 4, gain=3.0, rng=rng)
    x = rng.standard_normal((60, 4))
    log_scale, product = jacobian_product(cell, x)
    bptt = math.exp(float(log_scale)) * (product.T @ np.full(32, 1 / math.sqrt(32)))
    grads.append(bptt)
    for g in grads:
        threshold = 10.0 ** rng.uniform(-3, 3)
        out = theory.clip_by_norm(g, threshold)
        # Norms with scaling (no overflow at 1e300, no subnormals at 1e-300).
        unit_g = g / float(np.max(np.abs(g)))
        norm_g = float(np.max(np.abs(g))) * float(np.linalg.norm(unit_g))
        if norm_g >= threshold:
            clipped += 1
            unit_out = out / float(np.max(np.abs(out)))
            norm_out = float(np.max(np.abs(out))) * float(np.linalg.norm(unit_out))
            worst_excess = max(worst_excess, norm_out / threshold - 1.0)
            cosine = float(np.dot(unit_g, unit_out)) / float(np.linalg.norm(unit_g) * np.linalg.norm(unit_out))
            worst_angle = max(worst_angle, abs(1.0 - cosine))
        elif not np.array_equal(out, g):
            changed_below += 1
    tolerance = 2.0 * 1000 * _EPS
    detail = (
        f"{len(grads)} gradients (sizes 1-1000, norms 1e-300 to 1e300, 10% with one dominant entry, "
        f"and the BPTT gradient dL/dh_0 of a tanh RNN with gain 3, norm {_g(np.linalg.norm(bptt), 3)}) "
        f"clipped at thresholds 1e-3 to 1e3: {clipped} were clipped; largest ||clip(g)||/threshold - 1 "
        f"= {_g(worst_excess, 3)}, largest 1 - cos(g, clip(g)) = {_g(worst_angle, 3)}; gradients "
        f"below the threshold changed: {changed_below}. An SGD step lr * clip(g) is therefore at most "
        f"lr * threshold long."
    )
    return _judge(
        "at most", worst_excess, 0.0, tolerance, detail,
        side=[(worst_angle <= tolerance, "clipping turned a gradient"),
              (changed_below == 0, "a gradient below the threshold was changed"),
              (clipped > 0, "nothing was clipped")],
    )


def check_skip_connections_help(quick: bool, rng) -> Evidence:
    """Residual tanh RNN vs plain tanh RNN at the same W; tied linear residual for the caveat."""
    n, steps, n_input, alpha = (32, 1500, 4, 1.0) if quick else (64, 6000, 4, 1.0)
    warmup = steps // 10
    w = gaussian(n, 1.0, rng)
    u, x = _tanh_setting(n, n_input, steps, rng)
    lam_p, se_p = _top(RNN(w, u), x, warmup)
    lam_r, se_r = _top(ResidualRNN(w, u, activation="tanh", alpha=alpha), x, warmup)
    linear = ResidualRNN(w, activation="linear", alpha=alpha)
    lam_l = _top_log_sv(linear, steps) / steps
    slack = _eigvec_condition(np.eye(n) + alpha * w) / steps + _LOG_SV_ACCURACY
    lam_l_pred = theory.residual_tied_growth_from_weight(w, alpha)
    helps = lam_r - lam_p > _LYAP_CRIT * math.hypot(se_r, se_p)
    linear_explodes = lam_l > slack  # log||(I + aW)^T|| / T >= log rho(I + aW) > 0
    facts = (
        f"Gaussian W (gain 1, N = {n}), N(0, 1) inputs: plain tanh RNN lambda_1 = {_pm(lam_p, se_p)}, "
        f"residual s' = s + {alpha} tanh(W s + U x) lambda_1 = {_pm(lam_r, se_r)}; the linear residual "
        f"s' = (I + {alpha} W) s with the same W grows at {_g(lam_l, 4)} per step "
        f"(log rho(I + alpha W) = {_g(lam_l_pred, 4)})."
    )
    if not helps:
        verdict, detail = "refuted", f"The skip connection does not slow the decay. {facts}"
    elif linear_explodes:
        verdict = "conditional"
        detail = (f"The identity path stops the vanishing (J = I + alpha D W), but it does not bound "
                  f"growth: with a non-saturating branch and tied W the gradient explodes "
                  f"(THEORY.md section 9). {facts}")
    else:
        verdict, detail = "supported", facts
    return Evidence(verdict, lam_r, 0.0, _LYAP_CRIT * se_r, detail)


def check_lstm_gates_flow_unchanged(quick: bool, rng) -> Evidence:
    """Cell-path rate (mean log f) at forget biases 0 .. 6 with random weights and inputs."""
    n, steps, n_input = (32, 600, 4) if quick else (64, 3000, 4)
    warmup = steps // 10
    x = rng.standard_normal((steps, n_input))
    biases = (0.0, 1.0, 3.0, 6.0)
    cells = [make_cell("lstm", n, n_input, init="gaussian", forget_bias=bias, rng=rng) for bias in biases]
    rates = dict(zip(biases, _tops(cells, x, warmup, path="cell")))  # one ensemble
    threshold = -1.0 / _HORIZON  # within e^-1 over 100 steps counts as "unchanged"
    unchanged = {b: r[0] >= threshold for b, r in rates.items()}
    never_exact = all(r[0] < 0 for r in rates.values())
    listing = ", ".join(
        f"b_f = {b:g}: {_g(r[0], 3)} (zero-weight log sigmoid(b_f) = "
        f"{_g(theory.lstm_zero_weight_cell_product_log(b, 1), 3)})" for b, r in rates.items())
    facts = (f"LSTM with Gaussian weights (gain 1, N = {n}) and N(0, 1) inputs; cell-path rate "
             f"(top exponent of prod diag(f_t)) per step: {listing}. Every rate is < 0: "
             f"{never_exact}.")
    lam0, se0 = rates[0.0]
    predicted = theory.lstm_zero_weight_cell_product_log(0.0, 1)
    if all(unchanged.values()):
        verdict, detail = "supported", facts
    elif any(unchanged.values()):
        verdict = "conditional"
        detail = (f"The cell path multiplies by f_t < 1 every step: the gradient flows (nearly) "
                  f"unchanged only when the forget gate is held open (f -> 1, large forget bias); "
                  f"at the default bias 0 it halves every step. {facts}")
    else:
        verdict, detail = "refuted", f"No forget bias tried keeps the cell path open. {facts}"
    return Evidence(verdict, lam0, predicted, _LYAP_CRIT * se0, detail)


def check_lstm_solves_vanishing(quick: bool, rng) -> Evidence:
    """Gradient retained over 100 steps: LSTM at several forget biases vs tanh RNN (PyTorch init)."""
    n, n_input, nets = (32, 4, 1) if quick else (64, 4, 4)
    steps = _HORIZON
    configs = {
        "PyTorch default (b_f ~ 0)": dict(),
        "forget bias 1 (Jozefowicz et al.)": dict(forget_bias=1.0),
        f"chrono, T_max = {steps}": dict(chrono_t_max=float(steps)),
        "forget bias 5": dict(forget_bias=5.0),
    }
    kept = {name: [] for name in configs}
    runs, names = [], []
    for _ in range(nets):
        x = rng.standard_normal((steps, n_input))
        for name, options in configs.items():
            runs.append((make_cell("lstm", n, n_input, init="pytorch", rng=rng, **options), x))
            names.append(name)
        runs.append((make_cell("rnn", n, n_input, init="pytorch", rng=rng), x))
        names.append(None)
    # Drawn in the order above; the LSTMs (and the RNNs) are evaluated as one ensemble.
    rnn = []
    for name, log_sv in zip(names, _log_svs(runs)):
        (kept[name] if name is not None else rnn).append(float(log_sv[0, 0]) / _LN10)
    worst = {name: min(v) for name, v in kept.items()}
    retains = {name: v >= _FORGOTTEN_LOG10 for name, v in worst.items()}
    default = next(iter(configs))
    listing = ", ".join(f"{name}: 10^{_g(v, 3)}" for name, v in worst.items())
    facts = (f"log10 ||P_{steps}||_2 of the full state (h, c), N = {n}, N(0, 1) inputs, least over "
             f"{nets} network(s): {listing}; tanh RNN (PyTorch init): 10^{_g(max(rnn), 3)}. "
             f"'Retains' means above 10^{_FORGOTTEN_LOG10:g}.")
    if retains[default]:
        verdict, detail = "supported", facts
    elif any(retains.values()):
        verdict = "conditional"
        kept_by = ", ".join(name for name, ok in retains.items() if ok)
        detail = (f"Holds when the forget gate starts open ({kept_by}); with PyTorch's default "
                  f"biases the LSTM forgets about as fast as the tanh RNN. {facts}")
    else:
        verdict, detail = "refuted", f"No LSTM initialisation tried retains the gradient. {facts}"
    predicted = theory.lstm_zero_weight_cell_product_log(0.0, steps) / _LN10
    return Evidence(verdict, worst[default], predicted, math.nan, detail)


def _zero_weight_lstm(forget_biases, rng):
    n = forget_biases.size
    bias = rng.normal(0.0, 2.0, 4 * n)  # i, g, o biases must not matter to the cell path
    bias[n:2 * n] = forget_biases
    return LSTM(None, np.zeros((4 * n, n)), bias_ih=np.zeros(4 * n), bias_hh=bias)


def _zero_weight_gru(update_biases, variant, rng):
    n = update_biases.size
    bias = rng.normal(0.0, 2.0, 3 * n)
    bias[n:2 * n] = update_biases
    return GRU(None, np.zeros((3 * n, n)), bias_ih=np.zeros(3 * n), bias_hh=bias, variant=variant)


def check_gru_like_lstm(quick: bool, rng) -> Evidence:
    """Zero-weight GRU direct path vs LSTM cell path at the same gate biases, both conventions."""
    n, steps = (8, 200) if quick else (32, 2000)
    biases = rng.uniform(-3.0, 5.0, n)
    state = rng.standard_normal(2 * n)
    lstm = log_singular_values(_zero_weight_lstm(biases, rng), steps, state0=state, path="cell")[0]
    torch = log_singular_values(_zero_weight_gru(biases, "torch", rng), steps, state0=state[:n])[0]
    chung = log_singular_values(_zero_weight_gru(biases, "chung", rng), steps, state0=state[:n])[0]
    tolerance = _LOG_SV_ACCURACY * steps
    like_torch = float(np.max(np.abs(torch - lstm)))
    like_chung = float(np.max(np.abs(chung - lstm)))
    chung_theory = np.sort([theory.gru_zero_weight_direct_product_log(b, steps, "chung") for b in biases])[::-1]
    chung_ok = float(np.max(np.abs(chung - chung_theory))) <= tolerance
    facts = (
        f"All weights zero, N = {n}, gate biases b in [-3, 5], T = {steps}: the GRU (PyTorch, "
        f"h' = (1 - z) n + z h) product's log singular values match the LSTM cell path's at b_f = b_z "
        f"to {_g(like_torch, 2)}; in the note's own convention h_t = (1 - z) h_(t-1) + z h~ (Chung "
        f"et al. 2014) they differ by up to {_g(like_chung, 3)}, being T log sigmoid(-b_z) "
        f"(matches theory: {chung_ok})."
    )
    predicted = theory.gru_zero_weight_direct_product_log(float(np.max(biases)), steps) / steps
    measured = float(torch[0]) / steps
    if like_torch <= tolerance and like_chung > tolerance:
        verdict = "conditional"
        detail = (f"Like the LSTM cell path with f replaced by z in PyTorch's convention; with the "
                  f"note's convention the same bias gives 1 - z, so a bias that lengthens LSTM memory "
                  f"shortens the GRU's. {facts}")
    elif like_torch <= tolerance:
        verdict, detail = "supported", facts
    else:
        verdict, detail = "refuted", facts
    return Evidence(verdict, measured, predicted, tolerance / steps, detail)


def check_rnn_short_memory(quick: bool, rng) -> Evidence:
    """Gradient ratio over 100 steps for tanh RNNs with the standard initialisations."""
    n, n_input, nets = (32, 4, 1) if quick else (64, 4, 5)
    inits = (("pytorch", 1.0), ("xavier", 1.0), ("orthogonal", 1.0), ("gaussian", 1.0))
    ratios = {}
    for init, gain in inits:
        values = []
        for _ in range(nets):
            cell = make_cell("rnn", n, n_input, init=init, gain=gain, rng=rng)
            x = rng.standard_normal((_HORIZON, n_input))
            log_grad = gradient_norms(cell, x)
            values.append((log_grad[0] - log_grad[-1]) / _LN10)
        ratios[f"{init} (gain {gain:g})"] = max(values)
    worst = max(ratios.values())
    mean_field = _HORIZON * theory.mean_field_lyapunov(1.0, "tanh", sigma_in=1.0) / _LN10
    detail = (
        f"||dL/dh_0|| / ||dL/dh_{_HORIZON}|| (log10, largest over {nets} network(s); N = {n}, N(0, 1) "
        f"inputs): " + ", ".join(f"{k}: {_g(v, 3)}" for k, v in ratios.items())
        + f". Mean-field prediction for Gaussian gain 1: {_g(mean_field, 3)}. The tolerance is 0: "
        f"{_FORGOTTEN_LOG10:g} is the definition of 'forgotten', not an estimate."
    )
    return _judge("at most", worst, _FORGOTTEN_LOG10, 0.0, detail)


def check_exploding_rare(quick: bool, rng) -> Evidence:
    """Fraction of initialisations whose tanh RNN gradient explodes (lambda_1 significantly > 0)."""
    n, steps, n_input, nets = (32, 2000, 4, 1) if quick else (64, 4000, 4, 3)
    warmup = steps // 10
    standard = (("pytorch", 1.0), ("xavier", 1.0), ("orthogonal", 1.0), ("gaussian", 1.0))
    large = (("gaussian", 3.0),)
    found, keys, cells, inputs = {}, [], [], []
    for init, gain in standard + large:
        for _ in range(nets if (init, gain) in standard else nets + 1):
            cells.append(make_cell("rnn", n, n_input, init=init, gain=gain, rng=rng))
            inputs.append(rng.standard_normal((steps, n_input)))
            keys.append((init, gain))
    # Drawn in the order above, evaluated as one ensemble.
    for key, top in zip(keys, _tops(cells, inputs, warmup)):
        found.setdefault(key, []).append(top)
    def explodes(r):
        return r[0] > _LYAP_CRIT * r[1]
    n_std = sum(explodes(r) for k in standard for r in found[k])
    n_large = sum(explodes(r) for k in large for r in found[k])
    total_std, total_large = nets * len(standard), (nets + 1) * len(large)
    lam, se = found[large[0]][0]
    growth = _HORIZON * lam / _LN10
    listing = "; ".join(f"{i} gain {g:g}: " + ", ".join(_pm(*r) for r in found[(i, g)])
                        for i, g in standard + large)
    facts = (f"Top exponents (N = {n}, N(0, 1) inputs, {steps - warmup} steps): {listing}. Exploding "
             f"(lambda_1 > {_g(_LYAP_CRIT, 3)} stderr): {n_std}/{total_std} standard, "
             f"{n_large}/{total_large} at gain 3, where the gradient grows by about 10^{_g(growth, 2)} "
             f"over {_HORIZON} steps.")
    if n_std == 0 and n_large == 0:
        verdict, detail = "supported", facts
    elif n_std == 0:
        verdict = "conditional"
        detail = (f"Rare at the standard initialisations (ordered phase, chi_1 < 1), the rule at large "
                  f"gain (chaotic phase; THEORY.md section 5). {facts}")
    else:
        verdict, detail = "refuted", facts
    predicted = theory.mean_field_lyapunov(3.0, "tanh", sigma_in=1.0)
    return Evidence(verdict, lam, predicted, math.nan, detail)


# ==========================================================================================
# THEORY.md results
# ------------------------------------------------------------------------------------------
def _linear_untied(n, sigma, rng):
    return untied(lambda r: RNN(gaussian(n, sigma, r), activation="linear"), rng)


def check_newman_spectrum(quick: bool, rng) -> Evidence:
    n, steps = (10, 2000) if quick else (20, 40000)
    sigma = 1.0
    spec = lyapunov_spectrum(_linear_untied(n, sigma, rng), steps)
    predicted = theory.gaussian_product_exponents(n, sigma)
    se = theory.gaussian_product_stderr(n, steps)
    z = np.abs(spec.exponents - predicted) / se
    z_family = float(stats.norm.isf(P_FALSE_ALARM / (2 * n)))  # Bonferroni over the N exponents
    detail = (
        f"Untied products of iid N(0, 1/N) matrices, N = {n}, T = {steps}, QR from an orthonormal "
        f"frame: lambda_1 = {_g(spec.exponents[0], 5)} vs {_g(predicted[0], 5)}; largest |z| over all "
        f"{n} exponents {_g(np.max(z), 3)} (allowed {_g(z_family, 3)}, Bonferroni); exact standard "
        f"errors sqrt(psi'((N - i + 1)/2) / (4T))."
    )
    return _judge("within", spec.exponents[0], predicted[0], Z * se[0], detail,
                  side=[(np.max(z) <= z_family, "a lower exponent is off")])


def check_log_det_sum(quick: bool, rng) -> Evidence:
    n, steps = (6, 2000) if quick else (12, 40000)
    sigma = float(rng.uniform(0.5, 2.0))
    cells = _linear_untied(n, sigma, rng)
    # log|det A_t| of the very matrices the spectrum multiplies, read as it builds them (each
    # untied cell is then built once, not twice).
    logdet_at = {}

    def recorded(t):
        cell = cells(t)
        if t not in logdet_at:
            logdet_at[t] = np.linalg.slogdet(cell.weight_hh)[1]
        return cell

    spec = lyapunov_spectrum(recorded, steps)
    measured = float(np.sum(spec.exponents))
    predicted = theory.gaussian_log_det_mean(n, sigma)
    k = np.arange(n, 0, -1, dtype=np.float64)
    se = math.sqrt(float(np.sum(polygamma(1, k / 2.0))) / (4 * steps))
    logdets = np.array([logdet_at[t] if t in logdet_at else np.linalg.slogdet(cells(t).weight_hh)[1]
                        for t in range(steps)])
    identity_gap = abs(measured - float(np.mean(logdets)))
    identity_tol = _LOG_SV_ACCURACY * n
    detail = (
        f"Untied products of iid N(0, sigma^2/N) matrices, sigma = {_g(sigma, 3)}, N = {n}, T = {steps}: "
        f"sum of QR exponents {_g(measured, 6)} vs E log|det A| = {_g(predicted, 6)}; the same sum "
        f"from the mean of log|det A_t| over the very matrices differs by {_g(identity_gap, 2)} "
        f"(exact identity; allowed {_g(identity_tol, 2)}). Standard error: the log|R_ii| are "
        f"independent (Bartlett), variance sum_k psi'(k/2)/4 per step."
    )
    return _judge("within", measured, predicted, Z * se, detail,
                  side=[(identity_gap <= identity_tol, "sum of exponents != mean log|det|")])


def check_tied_linear_eigenvalues(quick: bool, rng) -> Evidence:
    n, steps = (16, 500) if quick else (64, 5000)
    w = gaussian(n, 1.0, rng)
    measured = _top_log_sv(RNN(w, activation="linear"), steps) / steps
    predicted = float(theory.linear_tied_exponents(w)[0])
    # rho^T <= ||W^T|| <= cond(V) rho^T for diagonalisable W = V D V^-1.
    tolerance = _eigvec_condition(w) / steps + _LOG_SV_ACCURACY
    log_norm = math.log(_spectral_norm(w))
    detail = (
        f"Tied linear RNN s' = W s, Gaussian W (gain 1, N = {n}), T = {steps}: log||W^T||_2 / T = "
        f"{_g(measured, 5)} vs log rho(W) = {_g(predicted, 5)}; log ||W||_2 = {_g(log_norm, 4)} is no "
        f"growth rate."
    )
    return _judge("within", measured, predicted, tolerance, detail,
                  side=[(log_norm - predicted > tolerance, "log||W|| indistinguishable from log rho")])


def check_circular_law(quick: bool, rng) -> Evidence:
    n, count = (100, 16) if quick else (400, 40)
    gain = float(rng.uniform(0.5, 2.0))
    radius = theory.circular_law_radius(gain)
    r = math.sqrt(0.5)
    fractions, rhos = [], []
    for _ in range(count):
        moduli = np.abs(np.linalg.eigvals(gaussian(n, gain, rng)))
        fractions.append(np.mean(moduli <= r * radius))
        rhos.append(np.max(moduli) / radius)
    measured = float(np.mean(fractions))
    se = float(np.std(fractions, ddof=1)) / math.sqrt(count)
    real_share = math.sqrt(2.0 / (math.pi * n))
    tolerance = _crit(count - 1) * se + real_share * r * (1 - r)
    detail = (
        f"{count} Gaussian W (gain {_g(gain, 3)}, N = {n}): fraction of eigenvalues within "
        f"g/sqrt 2 = {_g(measured, 4)} (uniform disc: 1/2); mean rho(W)/g = {_g(np.mean(rhos), 4)}, "
        f"approaching 1 from above slowly (edge corrections ~ sqrt(log N / N), Rider 2003)."
    )
    return _judge("within", measured, r * r, tolerance, detail)


def check_quarter_circle_norm(quick: bool, rng) -> Evidence:
    n, count = (100, 16) if quick else (400, 40)
    gain = float(rng.uniform(0.5, 2.0))
    norms = [_spectral_norm(gaussian(n, gain, rng)) for _ in range(count)]
    measured = float(np.mean(norms))
    predicted = theory.quarter_circle_norm(gain)
    se = float(np.std(norms, ddof=1)) / math.sqrt(count)
    # Johnstone 2001: lambda_max(X^T X) ~ mu + s TW1, E TW1 = -1.2065.
    mu = (math.sqrt(n - 1) + math.sqrt(n)) ** 2
    s = (math.sqrt(n - 1) + math.sqrt(n)) * (1 / math.sqrt(n - 1) + 1 / math.sqrt(n)) ** (1 / 3)
    shift = abs(gain * math.sqrt(mu - 1.2065 * s) / math.sqrt(n) - predicted)
    tolerance = _crit(count - 1) * se + shift
    detail = (
        f"{count} Gaussian W (gain {_g(gain, 3)}, N = {n}): mean ||W||_2 = {_g(measured, 5)} vs 2g = "
        f"{_g(predicted, 5)}; Tracy-Widom finite-N shift {_g(shift, 2)} (Johnstone 2001)."
    )
    return _judge("within", measured, predicted, tolerance, detail)


def check_pascanu_bound(quick: bool, rng) -> Evidence:
    n, steps, configs = (16, 100, 6) if quick else (32, 400, 30)
    times = np.unique(np.geomspace(1, steps, 20).astype(int))
    worst, where = -math.inf, ""
    settings, runs = [], []
    for index in range(configs):
        activation = ("tanh", "sigmoid", "relu")[index % 3]
        gamma = theory.derivative_bound(activation)
        base = orthogonal(n, 1.0, rng) if index % 2 == 0 else gaussian(n, 1.0, rng)
        norm = float(rng.uniform(0.3, 3.0)) / gamma
        w = _scaled(base, norm)
        if index == 0:
            cell, inputs = RNN(w, activation="tanh"), steps  # a = 0: tanh' = 1, bound attained
        else:
            u, inputs = _tanh_setting(n, 4, steps, rng)
            cell = RNN(w, u, activation=activation)
        settings.append((activation, gamma, norm))
        runs.append((cell, inputs))
    # Drawn in the order above, evaluated as ensembles of one activation, read in that order.
    for (activation, gamma, norm), log_sv in zip(settings, _log_svs(runs, times)):
        top = log_sv[:, 0]
        bound = np.array([theory.pascanu_bound(norm, gamma, int(t)) for t in times])
        with np.errstate(invalid="ignore"):
            excess = np.where(np.isneginf(top), -np.inf, top - bound)
        if np.max(excess) > worst:
            worst, where = float(np.max(excess)), f"{activation}, ||W||_2 = {_g(norm, 3)}"
    tolerance = _LOG_SV_ACCURACY * steps
    detail = (
        f"{configs} RNNs (tanh, sigmoid, ReLU; orthogonal and Gaussian W with ||W||_2 from 0.3/gamma "
        f"to 3/gamma; N = {n}; N(0, 1) inputs except the first, where the bound is attained): "
        f"max over t <= {steps} of log||P_t||_2 - t log(gamma ||W||_2) = {_g(worst, 3)} ({where})."
    )
    return _judge("at most", worst, 0.0, tolerance, detail)


def check_linear_rho_sufficient(quick: bool, rng) -> Evidence:
    n, steps = (16, 1000) if quick else (64, 10000)
    base = gaussian(n, 1.0, rng)
    rho_base = _spectral_radius(base)
    results = {}
    weights = {rho: base * (rho / rho_base) for rho in (0.9, 1.1)}
    # Both scalings in one ensemble.
    tops = _log_svs([(RNN(w, activation="linear"), steps) for w in weights.values()], times=[1, steps])
    for (rho, w), log_sv in zip(weights.items(), tops):
        top = log_sv[:, 0]
        slack = _eigvec_condition(w) / steps + _LOG_SV_ACCURACY
        results[rho] = (float(top[-1]) / steps, math.log(rho), slack, float(top[0]))
    m, p, tol, first = results[0.9]
    m11, p11, tol11, _ = results[1.1]
    detail = (
        f"Linear RNN, Gaussian W (N = {n}) scaled to rho = 0.9 (||W||_2 = {_g(math.exp(first), 3)} > 1: "
        f"log||P_1|| = {_g(first, 3)}, a transient growth), T = {steps}: log||P_T||/T = {_g(m, 5)} vs "
        f"log rho = {_g(p, 5)}; scaled to rho = 1.1: {_g(m11, 5)} vs {_g(p11, 5)} (explodes). "
        f"Tolerance log cond(V) / T: rho^T <= ||W^T|| <= cond(V) rho^T."
    )
    return _judge("within", m, p, tol, detail,
                  side=[(abs(m11 - p11) <= tol11, "the rho > 1 case does not grow at log rho"),
                        (first > 0, "this W has ||W||_2 <= 1")])


def check_mean_field_lyapunov(quick: bool, rng) -> Evidence:
    n, steps, warmup = (64, 1200, 100) if quick else (200, 6000, 200)
    sigma_w = 1.5
    chi1 = theory.mean_field_chi1(sigma_w, "tanh")
    lam_inf = theory.mean_field_lyapunov(sigma_w, "tanh")
    predicted, relvar, q_star = _mean_field_finite_n(sigma_w, "tanh", n)
    cells = untied(lambda r: RNN(gaussian(n, sigma_w, r)), rng)
    state0 = np.tanh(math.sqrt(q_star) * rng.standard_normal(n))  # pre-activations at q*
    lam, se = _top(cells, steps, warmup, state0=state0)
    tolerance = _LYAP_CRIT * se + relvar**2
    detail = (
        f"Untied tanh RNN, fresh W_t ~ N(0, {sigma_w}^2/N) every step, no input, N = {n}, state started "
        f"at q* = {_g(q_star, 4)}: lambda_1 = {_pm(lam, se)}; (1/2) log chi_1 = {_g(lam_inf, 4)} at "
        f"N = inf (chi_1 = {_g(chi1, 5)}), minus the finite-N Jensen gap "
        f"(3 mu_2/chi_1^2 - 1)/(4N) = {_g(relvar / 4, 3)} ("
        f"{'within' if relvar / 4 <= 1.0 / n else 'beyond'} the 1/N = {_g(1.0 / n, 3)} that "
        f"theory.mean_field_lyapunov quotes for untied networks)."
    )
    return _judge("within", lam, predicted, tolerance, detail)


def check_orthogonal_exact(quick: bool, rng) -> Evidence:
    n, steps = (16, 1000) if quick else (64, 20000)
    worst, total = 0.0, 0.0
    gains = (0.5, float(rng.uniform(0.5, 2.0)), 2.0)
    cells = [RNN(orthogonal(n, gain, rng), activation="linear") for gain in gains]
    # The three gains in one ensemble.
    for gain, found in zip(gains, _log_svs([(cell, steps) for cell in cells])):
        log_sv = found[0]
        expected = theory.orthogonal_linear_log_singular_values(gain, steps, n)
        worst = max(worst, float(np.max(np.abs(log_sv - expected))))
        total = max(total, abs(float(expected[0])))
    tolerance = 10.0 * steps * n * _EPS
    detail = (
        f"Linear RNN with W = g Q, Q Haar orthogonal, N = {n}, T = {steps}, g in {{0.5, random, 2}}: "
        f"every log singular value of P_T equals T log g (up to {_g(total, 4)} nats, far outside "
        f"float64's range) to {_g(worst, 2)}. Tolerance: rounding, ~eps N per step for T steps (x10)."
    )
    return _judge("within", worst, 0.0, tolerance, detail)


def check_irnn_diagonal(quick: bool, rng) -> Evidence:
    n, steps, n_input = (32, 100, 4) if quick else (128, 1000, 4)
    cell = make_cell("irnn", n, n_input, rng=rng)
    x = rng.standard_normal((steps, n_input))
    state0 = np.abs(rng.standard_normal(n))  # start inside the active region
    states = unroll(cell, x, state0=state0)
    mask = (states[:-1] + x @ cell.weight_ih.T) > 0
    always = np.all(mask, axis=0).astype(float)
    log_scale, product = jacobian_product(cell, x, state0=state0)
    with np.errstate(over="ignore"):
        deviation = float(np.max(np.abs(math.exp(float(log_scale)) * product - np.diag(always))))
    log_sv = log_singular_values(cell, x, state0=state0)[0]
    with np.errstate(divide="ignore"):
        expected = np.log(theory.irnn_singular_values(mask))
    same_sv = bool(np.array_equal(np.isneginf(log_sv), np.isneginf(expected))) and bool(
        np.all(np.abs(log_sv[np.isfinite(log_sv)]) <= 1e-12))
    detail = (
        f"IRNN (W = I, ReLU, b = 0), N = {n}, T = {steps}, N(0, 1) inputs, |N(0, 1)| start: "
        f"max |P_T - diag(1[always active])| = {_g(deviation, 2)} ({int(always.sum())} units always "
        f"active); singular values {{0, 1}} as predicted: {same_sv}. Tolerance 0: products of 0/1 "
        f"diagonal matrices are exact in float64."
    )
    return _judge("within", deviation, 0.0, 0.0, detail,
                  side=[(same_sv, "log singular values differ from irnn_singular_values")])


def check_lstm_zero_weight(quick: bool, rng) -> Evidence:
    n, steps = (8, 300) if quick else (32, 5000)
    biases = rng.uniform(-4.0, 6.0, n)
    biases[0] = theory.chrono_forget_bias(steps)  # chrono: memory ~ T_max
    cell = _zero_weight_lstm(biases, rng)
    state0 = rng.standard_normal(2 * n)
    log_sv = log_singular_values(cell, steps, state0=state0, path="cell")[0]
    expected = np.sort([theory.lstm_zero_weight_cell_product_log(b, steps) for b in biases])[::-1]
    tolerance = _LOG_SV_ACCURACY
    gap = float(np.max(np.abs(log_sv - expected))) / steps
    chrono_index = int(np.argmin(np.abs(expected - theory.lstm_zero_weight_cell_product_log(biases[0], steps))))
    tau = -steps / float(log_sv[chrono_index])
    tau_pred = theory.memory_time_scale(biases[0])
    detail = (
        f"LSTM with all weights zero, random i/g/o biases and state, forget biases b_f in [-4, 6] plus "
        f"the chrono bias log(T - 1), N = {n}, T = {steps}: cell-path log singular values / T match "
        f"log sigmoid(b_f) to {_g(gap, 2)} per step; the chrono unit's memory time scale "
        f"{_g(tau, 5)} steps vs -1/log sigmoid(b_f) = {_g(tau_pred, 5)} (~ T - 1/2)."
    )
    return _judge("within", float(log_sv[0]) / steps, float(expected[0]) / steps, tolerance, detail,
                  side=[(gap <= tolerance, "a unit's rate differs from log sigmoid(b_f)")])


def check_h_only_misses_cell_path(quick: bool, rng) -> Evidence:
    n, steps, n_input = (32, 800, 4) if quick else (64, 4000, 4)
    warmup = steps // 10
    cell = make_cell("lstm", n, n_input, init="gaussian", forget_bias=3.0, rng=rng)
    x = rng.standard_normal((steps, n_input))
    lam_f, se_f = _top(cell, x, warmup)
    lam_h, se_h = _top(cell, x, warmup, path="hidden")
    lam_c, se_c = _top(cell, x, warmup, path="cell")
    measured = lam_f - lam_h
    tolerance = _LYAP_CRIT * math.hypot(se_f, se_h)
    detail = (
        f"LSTM, Gaussian weights (gain 1), forget bias 3, N = {n}, N(0, 1) inputs: top exponent of "
        f"the full (h, c) state {_pm(lam_f, se_f)}, of the h-only Jacobian (c held fixed) "
        f"{_pm(lam_h, se_h)}, of the cell path alone {_pm(lam_c, se_c)}: the h-only exponent "
        f"understates the gradient's lifetime by {_g(measured, 3)} per step."
    )
    return _judge("exceeds", measured, 0.0, tolerance, detail)


def check_gru_zero_weight(quick: bool, rng) -> Evidence:
    n, steps = (8, 300) if quick else (32, 5000)
    biases = rng.uniform(-4.0, 6.0, n)
    state0 = rng.standard_normal(n)
    gaps = {}
    reported = None
    for variant in ("torch", "reset_before", "chung"):
        cell = _zero_weight_gru(biases, variant, rng)
        expected = np.sort([theory.gru_zero_weight_direct_product_log(b, steps, variant)
                            for b in biases])[::-1]
        full = log_singular_values(cell, steps, state0=state0)[0]
        direct = log_singular_values(cell, steps, state0=state0, path="direct")[0]
        gaps[variant] = max(float(np.max(np.abs(full - expected))),
                            float(np.max(np.abs(direct - expected)))) / steps
        if reported is None:
            reported = (float(full[0]) / steps, float(expected[0]) / steps)
    tolerance = _LOG_SV_ACCURACY
    detail = (
        f"GRU with all weights zero, random r/n biases and state, update biases in [-4, 6], N = {n}, "
        f"T = {steps}: full and direct-path log singular values / T vs -softplus(-b_z) (PyTorch, "
        f"reset-before) or -softplus(b_z) (Chung): largest gap per step "
        + ", ".join(f"{k} {_g(v, 2)}" for k, v in gaps.items()) + "."
    )
    return _judge("within", reported[0], reported[1], tolerance, detail,
                  side=[(max(gaps.values()) <= tolerance, "a variant or unit differs from theory")])


def check_residual_tied_vs_untied(quick: bool, rng) -> Evidence:
    n, steps = (32, 1000) if quick else (64, 8000)
    alpha, gain = 0.5, 1.0
    w = gaussian(n, gain, rng)
    tied = _top_log_sv(ResidualRNN(w, alpha=alpha), steps) / steps
    tied_pred = theory.residual_tied_growth_from_weight(w, alpha)
    tied_tol = _eigvec_condition(np.eye(n) + alpha * w) / steps + _LOG_SV_ACCURACY
    cells = untied(lambda r: ResidualRNN(gaussian(n, gain, r), alpha=alpha), rng)
    lam_u, se_u = _top(cells, steps, steps // 10)
    untied_pred = theory.residual_untied_top_exponent(alpha, gain, n)
    measured, predicted = tied - lam_u, tied_pred - untied_pred
    tolerance = tied_tol + _LYAP_CRIT * se_u
    detail = (
        f"Linear residual s' = (I + {alpha} W) s, Gaussian gain {gain}, N = {n}, T = {steps}: tied "
        f"{_g(tied, 4)} (log rho(I + alpha W) = {_g(tied_pred, 4)}; large N log(1 + alpha g) = "
        f"{_g(theory.residual_tied_growth_rate(alpha, gain), 4)}), untied {_pm(lam_u, se_u)} (exact "
        f"finite-N {_g(untied_pred, 4)}; mean field (1/2) log(1 + alpha^2 g^2) = "
        f"{_g(theory.residual_untied_growth_rate(alpha, gain), 4)}). Reported: tied minus untied."
    )
    return _judge(
        "within", measured, predicted, tolerance, detail,
        side=[(abs(tied - tied_pred) <= tied_tol, "tied rate off log rho(I + alpha W)"),
              (abs(lam_u - untied_pred) <= _LYAP_CRIT * se_u, "untied rate off its exact value"),
              (measured > tolerance, "tied does not grow faster than untied")],
    )


def check_latching(quick: bool, rng) -> Evidence:
    count, window = (3, 200) if quick else (20, 1000)
    worst = None
    latched = True
    for _ in range(count):
        w = float(rng.uniform(1.2, 4.0))
        slope_log = theory.latch_gradient_log(w, 1)
        # Converge to the latch: the distance shrinks by the slope every step; e^-40 is enough.
        warmup = int(math.ceil(40.0 / -slope_log)) + 10
        h0 = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 1.0))
        cell = RNN([[w]], activation="tanh")  # h' = tanh(w h): a = w h obeys a' = w tanh(a)
        log_grad = gradient_norms(cell, warmup + window, state0=[h0])
        measured = (log_grad[warmup] - log_grad[-1]) / window
        final = unroll(cell, warmup + window, state0=[h0])[-1, 0]
        latched &= bool(np.sign(final) == np.sign(h0))
        latched &= abs(abs(final) * w - theory.latch_fixed_point(w)) < 1e-9
        if worst is None or abs(measured - slope_log) > abs(worst[0] - worst[1]):
            worst = (measured, slope_log, w)
    tolerance = 1e-9
    detail = (
        f"{count} one-unit latches h' = tanh(w h), w in [1.2, 4], random start: after converging, the "
        f"gradient decays at {_g(worst[0], 10)} per step vs log(w sech^2 a*) = {_g(worst[1], 10)} "
        f"(w = {_g(worst[2], 4)}; worst case); every latch kept its sign at a* = w tanh a*: {latched}. "
        f"Tolerance: after the warm-up the state is within e^-40 of a*, so only rounding remains."
    )
    return _judge("within", worst[0], worst[1], tolerance, detail,
                  side=[(latched, "a latch lost its bit"), (worst[1] < 0, "a latch does not contract")])


def check_adding_baseline(quick: bool, rng) -> Evidence:
    sequences, steps, chunk = (20000, 50, 20000) if quick else (1_000_000, 100, 50000)
    total, total_sq = 0.0, 0.0
    done = 0
    while done < sequences:
        m = min(chunk, sequences - done)
        values = rng.uniform(0.0, 1.0, (m, steps))
        first = rng.integers(0, steps // 2, m)
        second = rng.integers(steps // 2, steps, m)
        target = values[np.arange(m), first] + values[np.arange(m), second]
        error = (target - 1.0) ** 2  # predict E Y = 1 whatever the input
        total += float(np.sum(error))
        total_sq += float(np.sum(error**2))
        done += m
    measured = total / sequences
    predicted = theory.adding_problem_baseline_mse()
    se = math.sqrt(7.0 / 180.0 / sequences)  # Var (Y - 1)^2 = E(Y-1)^4 - 1/36 = 1/15 - 1/36
    detail = (
        f"{sequences} adding-problem sequences of length {steps} (values U[0, 1], one marker in each "
        f"half): MSE of predicting the mean 1 = {_g(measured, 5)} vs 1/6; exact standard error "
        f"sqrt(7/180 / M) = {_g(se, 2)} (sample: {_g(math.sqrt(total_sq / sequences - measured**2) / math.sqrt(sequences), 2)})."
    )
    return _judge("within", measured, predicted, Z * se, detail)


def check_copy_baseline(quick: bool, rng) -> Evidence:
    sequences, blanks = (4000, 50) if quick else (200000, 100)
    n_symbols, n_copy = 8, 10
    length = blanks + 2 * n_copy
    symbols = rng.integers(1, n_symbols + 1, (sequences, n_copy))
    target = np.zeros((sequences, length), dtype=int)
    target[:, blanks + n_copy:] = symbols  # blanks until the delimiter's echo, then the symbols
    # Plug-in entropy of the target at each step (the best memoryless predictor's loss), with
    # Miller-Madow's (K - 1)/(2M) bias correction at steps that have K > 1 outcomes.
    entropy = 0.0
    for t in range(length):
        counts = np.bincount(target[:, t])
        p = counts[counts > 0] / sequences
        entropy += float(-np.sum(p * np.log(p))) + (p.size - 1) / (2.0 * sequences)
    measured = entropy / length
    predicted = theory.copy_task_baseline(blanks, n_symbols, n_copy)
    # 2M (H - H_plugin) ~ chi^2_(K-1) at each recall step: sd sqrt(2(K-1))/(2M); 10 independent steps.
    se = math.sqrt(n_copy * 2 * (n_symbols - 1)) / (2 * sequences) / length
    second_order = n_copy * (n_symbols**2 - 1) / (12.0 * sequences**2) / length
    detail = (
        f"{sequences} copy-task sequences ({n_copy} symbols from {n_symbols}, T = {blanks}): "
        f"conditional entropy of the target given the step {_g(measured, 6)} nats/step vs "
        f"10 log 8 / (T + 20) = {_g(predicted, 6)}."
    )
    return _judge("within", measured, predicted, Z * se + second_order, detail)


def _spectrum_variance_finite_n(n, layers):
    """Exact E[Var of the spectrum of P P^T] for L untied N(0, 1/N) factors (derived by Wick).

    With m1 = tr(B)/N and m2 = tr(B^2)/N of B = P P^T, one fresh factor gives
    E m1'^2 = m1^2 + 2 m2 / N^2 and E m2' = m1^2 + m2 (1 + 1/N).
    """
    a = b = 1.0
    for _ in range(layers):
        a, b = a + 2.0 * b / n**2, a + b * (1.0 + 1.0 / n)
    return b - a


def check_dynamical_isometry(quick: bool, rng) -> Evidence:
    n, layers, count = (100, 4, 16) if quick else (400, 8, 40)
    variances, ortho = [], 0.0
    for _ in range(count):
        cells = _linear_untied(n, 1.0, rng)
        log_scale, product = jacobian_product(cells, layers)
        product = product * math.exp(float(log_scale))
        squares = np.linalg.svd(product, compute_uv=False) ** 2
        variances.append(float(np.var(squares)))
    q_cells = untied(lambda r: RNN(orthogonal(n, 1.0, r), activation="linear"), rng)
    log_sv = log_singular_values(q_cells, layers, times=list(range(1, layers + 1)))
    ortho = float(np.max(np.abs(log_sv)))
    measured = float(np.mean(variances))
    slope = theory.dynamical_isometry_variance_slope(theory.mu2(1.0, "linear", 1.0), "gaussian")
    slope_o = theory.dynamical_isometry_variance_slope(theory.mu2(1.0, "linear", 1.0), "orthogonal")
    correction = _spectrum_variance_finite_n(n, layers) - layers * slope
    predicted = layers * slope + correction
    se = float(np.std(variances, ddof=1)) / math.sqrt(count)
    detail = (
        f"Untied linear products of L = {layers} factors, N = {n}, {count} samples: Gaussian factors "
        f"give Var[spectrum of P P^T] = {_g(measured, 4)} vs L (mu_2 - 1 - s_1) = {_g(layers * slope, 4)} "
        f"plus the exact finite-N term {_g(correction, 3)} (Wick, derived here); orthogonal factors: "
        f"predicted slope {_g(slope_o, 2)}, measured largest |log singular value| {_g(ortho, 2)}."
    )
    return _judge("within", measured, predicted, _crit(count - 1) * se, detail,
                  side=[(ortho <= 10.0 * layers * n * _EPS, "orthogonal products are not isometric")])


# ==========================================================================================
def _notes(*names):
    return ", ".join(names)


N000, N001, N002, N003, N004 = (
    "000_a711c72185543a8a.txt", "001_d4c0ab13ebbd5c19.txt", "002_3bb4438a82864ce0.txt",
    "003_1d91193cee76cc2f.txt", "004_c529f0233c26f347.txt",
)
_LYAP_REASON = (
    f"{_LYAP_CRIT:.2f} block standard errors of the QR estimate (Student t with 19 dof at the "
    f"two-sided level of 4 sigma: the standard error is itself estimated from 20 blocks)"
)

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id="notes.small-slopes-vanish",
        statement="The gradient is the chain-rule product of the slope at each step; '(0.2) x (0.1) x "
                  "(0.3) x ... 9 times = (0.1)^9 = 1e-9 ~ 0: gradient is vanishing'.",
        source=N004,
        prediction="dh_T/dh_0 = prod_t w tanh'(a_t) (THEORY.md section 1); nine slopes <= 0.3 give "
                   "at most ~1e-6.",
        tolerance_reason="1e-12 in log10: each slope is rebuilt through tanh(arctanh(.)) to ~20 eps "
                         "relative, nine factors stay below 1e-13.",
        check=check_small_slopes_vanish,
    ),
    Claim(
        id="notes.sv-gt-1-explodes",
        statement="'Largest singular value > 1: exploding gradients' (001); 'many values > 1: "
                  "exploding gradients' (003).",
        source=_notes(N001, N003),
        prediction="Pascanu et al. 2013: ||W||_2 > 1 is necessary, not sufficient, for exploding; "
                   "the claim predicts lambda_1 > 0.",
        tolerance_reason=_LYAP_REASON + "; reported: lambda_1 against 0.",
        check=check_sv_gt_1_explodes,
    ),
    Claim(
        id="notes.sv-lt-1-vanishes",
        statement="'Largest singular value < 1: vanishing gradients' (001); 'many values < 1: "
                  "vanishing gradients' (003).",
        source=_notes(N001, N003),
        prediction="|phi'| <= 1 (tanh, ReLU): ||P_t||_2 <= ||W||_2^t on every trajectory "
                   "(Pascanu et al. 2013), so the gradient vanishes at least geometrically.",
        tolerance_reason="1e-8 T nats: the log singular values of products.py are exact to 1e-8 "
                         "relative per re-orthonormalisation, at most one per step.",
        check=check_sv_lt_1_vanishes,
    ),
    Claim(
        id="notes.relu-prevents-shrinking",
        statement="'ReLU prevents f' shrink gradient'.",
        source=N003,
        prediction="relu' is 1 on active units and 0 on dead ones: mean field ReLU "
                   "lambda_1 = (1/2) log(g^2/2), tanh (1/2) log(g^2 E tanh'^2) (THEORY.md section 5), "
                   "each minus the finite-N Jensen gap; ReLU is ahead only when tanh saturates. "
                   "Reported: lambda_ReLU - lambda_tanh at bias sd 2 (saturating).",
        tolerance_reason=_LYAP_REASON + ", on the difference of two estimates (standard errors "
                                        "added in quadrature; the shared weights only reduce it).",
        check=check_relu_prevents_shrinking,
    ),
    Claim(
        id="notes.identity-init-helps",
        statement="'Identity RNN with ReLU activation' (000); 'Initialize weights to identity matrix, "
                  "initialize biases to zero. This helps prevent the weights from shrinking to zero' (003).",
        source=_notes(N000, N003),
        prediction="IRNN: P_T = diag(1[unit active at every step]) (Le et al. 2015; THEORY.md "
                   "section 6): singular values exactly 1 or 0 (reported: fraction of ones).",
        tolerance_reason="0: products of 0/1 diagonal matrices are exact in float64.",
        check=check_identity_init_helps,
    ),
    Claim(
        id="notes.clipping-bounds-step",
        statement="'Gradient clipping' (000); 'clip or normalize values of the gradients to avoid huge "
                  "changes of weights' (002); 'Gradient clipping to scale big gradients' (003).",
        source=_notes(N000, N002, N003),
        prediction="Pascanu et al. 2013, Algorithm 1: ||clip(g)|| <= threshold, same direction, "
                   "unchanged below the threshold (reported: largest ||clip(g)||/threshold - 1).",
        tolerance_reason="2000 eps: the norm of n <= 1000 entries has relative rounding error <= n eps "
                         "(Higham 2002), once in clip_by_norm and once in the check.",
        check=check_clipping_bounds_step,
    ),
    Claim(
        id="notes.skip-connections-help",
        statement="'Solving for vanishing or exploding gradients: ... Skip connections' (000); "
                  "residual blocks for gradient flow (001).",
        source=_notes(N000, N001),
        prediction="The identity path gives J = I + alpha D W: rate near 0 instead of the plain "
                   "RNN's negative one; the tied linear residual grows at log rho(I + alpha W) "
                   "(THEORY.md section 9). Reported: residual tanh lambda_1 against 0.",
        tolerance_reason=_LYAP_REASON + "; the linear residual's rate is compared with the bound "
                                        "log cond(V) / T.",
        check=check_skip_connections_help,
    ),
    Claim(
        id="notes.lstm-gates-flow-unchanged",
        statement="'Gates allow gradients to flow unchanged' (000); 'Backpropagation through time with "
                  "uninterrupted gradient flow' (003); the cell state 'is like a conveyor belt' (004).",
        source=_notes(N000, N003, N004),
        prediction="dc_t/dc_(t-1) = diag(f_t): the cell path is prod f_t < 1, unchanged only as f -> 1; "
                   "zero weights: log sigmoid(b_f) per step (THEORY.md section 7). Reported: the rate "
                   "at forget bias 0 against log sigmoid(0) = -log 2.",
        tolerance_reason=_LYAP_REASON + "; 'unchanged' means a rate above -1/100 per step (within a "
                                        "factor e over 100 steps).",
        check=check_lstm_gates_flow_unchanged,
    ),
    Claim(
        id="notes.lstm-solves-vanishing",
        statement="'LSTMs offer a solution to vanishing gradients' (000); 'LSTM is a type of RNN capable "
                  "of learning long-term dependencies' (002); 'Gated cells like LSTMs let us model "
                  "long-term dependencies' (003); LSTMs handle long-term dependencies (004).",
        source=_notes(N000, N002, N003, N004),
        prediction="Only if the forget gate is open: the cell path retains sigmoid(b_f)^T "
                   "(THEORY.md section 7). Reported: log10 ||P_100|| at PyTorch's default init "
                   "against the zero-weight cell path at b_f = 0.",
        tolerance_reason="No tolerance: 'retains' is the definition ||P_100||_2 >= 1e-3, and the "
                         "values found lie many decades from it.",
        check=check_lstm_solves_vanishing,
    ),
    Claim(
        id="notes.gru-like-lstm",
        statement="'Gated Recurrent Units: similar to LSTM without output gate', with "
                  "h_t = (1 - z_t) h_(t-1) + z_t h~_t.",
        source=N001,
        prediction="GRU direct path diag(z) (PyTorch) or diag(1 - z) (Chung et al., the note's "
                   "equation); zero weights: sigmoid(b_z)^T or sigmoid(-b_z)^T against the LSTM cell "
                   "path's sigmoid(b_f)^T (THEORY.md sections 7-8).",
        tolerance_reason="1e-8 per step: the log singular values are exact to 1e-8 relative per step "
                         "(products.py); the products are diagonal, so only rounding remains.",
        check=check_gru_like_lstm,
    ),
    Claim(
        id="notes.rnn-short-memory",
        statement="'RNN has short-term memory' (004); RNNs 'struggle with longer sequences' (000); "
                  "'difficulty of accessing information from a long time ago' (002).",
        source=_notes(N004, N000, N002),
        prediction="At standard initialisations tanh RNNs are in the ordered phase (chi_1 < 1): "
                   "the gradient over 100 steps falls below 1e-3 (reported: the largest log10 ratio).",
        tolerance_reason="0: the bound 1e-3 is the definition of forgotten, not an estimate; the "
                         "measured ratios lie more than ten decades below it.",
        check=check_rnn_short_memory,
    ),
    Claim(
        id="notes.exploding-rare",
        statement="Exploding gradients: 'Happens rarely, but the effect can be catastrophic' (002).",
        source=N002,
        prediction="Standard inits are ordered (lambda_1 < 0); large gains are chaotic "
                   "(mean field lambda_1 = (1/2) log chi_1 > 0, THEORY.md section 5). Reported: the "
                   "gain-3 exponent against the mean-field value (no tolerance: tied, finite N).",
        tolerance_reason=_LYAP_REASON + " decide whether a network explodes.",
        check=check_exploding_rare,
    ),
    Claim(
        id="theory.newman-spectrum",
        statement="Products of iid N(0, sigma^2/N) matrices have Lyapunov exponents "
                  "log sigma + (1/2)[log(2/N) + psi((N - i + 1)/2)].",
        source="Newman 1986; Forrester 2015 (THEORY.md section 3)",
        prediction="theory.gaussian_product_exponents (top exponent reported).",
        tolerance_reason="4 exact standard errors sqrt(psi'((N-i+1)/2)/(4T)) for the top exponent; "
                         "all exponents within the Bonferroni level for N comparisons.",
        check=check_newman_spectrum,
    ),
    Claim(
        id="theory.log-det-sum",
        statement="The sum of the Lyapunov exponents equals E log|det A|.",
        source="Newman 1986 (THEORY.md section 3)",
        prediction="theory.gaussian_log_det_mean(N, sigma).",
        tolerance_reason="4 exact standard errors sqrt(sum_k psi'(k/2) / (4T)) (independent chi "
                         "variables, Bartlett); the identity with the mean log|det A_t| to 1e-8 N.",
        check=check_log_det_sum,
    ),
    Claim(
        id="theory.tied-linear-eigenvalues",
        statement="A tied linear RNN s_t = W s_(t-1) grows at the log eigenvalue moduli log|mu_i|, "
                  "not at the log singular values of W.",
        source="THEORY.md section 4",
        prediction="Top exponent log rho(W) (theory.linear_tied_exponents).",
        tolerance_reason="log cond(V) / T: rho^T <= ||W^T||_2 <= cond(V) rho^T for W = V D V^-1; "
                         "plus 1e-8 rounding.",
        check=check_tied_linear_eigenvalues,
    ),
    Claim(
        id="theory.circular-law",
        statement="W with iid entries of variance g^2/N has its eigenvalues uniform on the disc of "
                  "radius g (rho(W) -> g).",
        source="Girko 1984; Bai 1997; Tao & Vu 2010 (THEORY.md section 4)",
        prediction="Fraction of eigenvalues within g/sqrt 2 = 1/2 (radius from "
                   "theory.circular_law_radius).",
        tolerance_reason="Student t (k - 1 dof) times the standard error over k matrices, plus the "
                         "finite-N shift of real Ginibre matrices: a share sqrt(2/(pi N)) of real "
                         "eigenvalues spread linearly on [-g, g] moves the fraction by about "
                         "sqrt(2/(pi N)) r (1 - r).",
        check=check_circular_law,
    ),
    Claim(
        id="theory.quarter-circle-norm",
        statement="W with iid entries of variance g^2/N has ||W||_2 -> 2g, so Pascanu's tanh "
                  "condition ||W||_2 < 1 certifies Gaussian init only for g < 1/2.",
        source="Geman 1980; Marchenko-Pastur (THEORY.md section 4)",
        prediction="theory.quarter_circle_norm(g) = 2g.",
        tolerance_reason="Student t (k - 1 dof) times the standard error over k matrices, plus the "
                         "Tracy-Widom finite-N mean shift (Johnstone 2001, E TW1 = -1.2065).",
        check=check_quarter_circle_norm,
    ),
    Claim(
        id="theory.pascanu-bound",
        statement="With |phi'| <= gamma, on every trajectory ||P_T|| <= (gamma ||W||_2)^T.",
        source="Pascanu, Mikolov & Bengio 2013 (THEORY.md section 2)",
        prediction="theory.pascanu_bound: log||P_t|| - t log(gamma ||W||_2) <= 0.",
        tolerance_reason="1e-8 T nats: accuracy contract of the log singular values (products.py).",
        check=check_pascanu_bound,
    ),
    Claim(
        id="theory.linear-rho-sufficient",
        statement="Linear RNN: rho(W) < 1 is sufficient for vanishing (even when ||W||_2 > 1), "
                  "rho(W) > 1 makes it explode.",
        source="Pascanu, Mikolov & Bengio 2013 (THEORY.md section 2)",
        prediction="log||W^T||/T -> log rho(W).",
        tolerance_reason="log cond(V) / T: rho^T <= ||W^T||_2 <= cond(V) rho^T; plus 1e-8 rounding.",
        check=check_linear_rho_sufficient,
    ),
    Claim(
        id="theory.mean-field-lyapunov",
        statement="Untied tanh RNN with weights N(0, sigma_w^2/N): lambda_1 = (1/2) log chi_1 "
                  "(sigma_w = 1.5, no input: +0.0652).",
        source="Poole et al. 2016; Schoenholz et al. 2017; Chen, Pennington & Schoenholz 2018 "
               "(THEORY.md section 5)",
        prediction="theory.mean_field_lyapunov minus the finite-N Jensen gap "
                   "(3 mu_2/chi_1^2 - 1)/(4N) (derived in the check; 1/(2N) for linear, as Newman).",
        tolerance_reason=_LYAP_REASON + ", plus (3 mu_2/chi_1^2 - 1)^2/N^2 for the next order of "
                                        "the delta-method expansion.",
        check=check_mean_field_lyapunov,
    ),
    Claim(
        id="theory.orthogonal-exact",
        statement="Linear RNN with W = g Q, Q orthogonal: every singular value of P_T is g^T.",
        source="Saxe, McClelland & Ganguli 2014 (THEORY.md section 6)",
        prediction="theory.orthogonal_linear_log_singular_values (reported: largest deviation).",
        tolerance_reason="10 T N eps: rounding of T matrix products and QRs, ~N eps each.",
        check=check_orthogonal_exact,
    ),
    Claim(
        id="theory.irnn-diagonal",
        statement="IRNN (W = I, ReLU, b = 0): P_T is diagonal, 1 for units active over the whole "
                  "window, 0 otherwise.",
        source="Le, Jaitly & Hinton 2015 (THEORY.md section 6)",
        prediction="theory.irnn_singular_values; P_T = diag(1[always active]) (reported: "
                   "max |P_T - diag|).",
        tolerance_reason="0: products of 0/1 diagonal matrices are exact in float64.",
        check=check_irnn_diagonal,
    ),
    Claim(
        id="theory.lstm-zero-weight",
        statement="LSTM with all weights zero: the cell-path product is sigmoid(b_f)^T, memory time "
                  "scale -1/log sigmoid(b_f); chrono b_f = log(T_max - 1) remembers ~T_max steps.",
        source="Hochreiter & Schmidhuber 1997; Gers et al. 2000; Tallec & Ollivier 2018 "
               "(THEORY.md section 7)",
        prediction="theory.lstm_zero_weight_cell_product_log / T (top unit reported).",
        tolerance_reason="1e-8 per step: accuracy contract of the log singular values; the product "
                         "is diagonal.",
        check=check_lstm_zero_weight,
    ),
    Claim(
        id="theory.h-only-misses-cell-path",
        statement="An h-only N x N Jacobian (c held fixed) misses the cell path: its exponent is "
                  "below the full-state (h, c) exponent.",
        source="THEORY.md section 7",
        prediction="lambda_full - lambda_hidden > 0 (reported against 0).",
        tolerance_reason=_LYAP_REASON + ", standard errors of the two estimates added in quadrature.",
        check=check_h_only_misses_cell_path,
    ),
    Claim(
        id="theory.gru-zero-weight",
        statement="GRU with all weights zero: the product is sigmoid(b_z)^T (PyTorch, reset-before) "
                  "or sigmoid(-b_z)^T (Chung et al. 2014).",
        source="Cho et al. 2014; Chung et al. 2014 (THEORY.md section 8)",
        prediction="theory.gru_zero_weight_direct_product_log / T (top unit, PyTorch, reported).",
        tolerance_reason="1e-8 per step: accuracy contract of the log singular values; the product "
                         "is diagonal.",
        check=check_gru_zero_weight,
    ),
    Claim(
        id="theory.residual-tied-vs-untied",
        statement="Residual s' = (I + alpha W) s: tied W grows at log rho(I + alpha W) ~ "
                  "log(1 + alpha g), faster than untied (~ (1/2) log(1 + alpha^2 g^2)); mean-field "
                  "theory underestimates tied residual growth.",
        source="THEORY.md section 9",
        prediction="residual_tied_growth_from_weight - residual_untied_top_exponent (exact finite N).",
        tolerance_reason="Tied: log cond(V) / T (eigenvector conditioning bound); untied: "
                         + _LYAP_REASON + "; the two added.",
        check=check_residual_tied_vs_untied,
    ),
    Claim(
        id="theory.latching",
        statement="Robust latching implies vanishing gradients: a' = w tanh(a), w > 1, latches at "
                  "a* = w tanh a* and the gradient decays as (w (1 - tanh^2 a*))^T.",
        source="Bengio, Simard & Frasconi 1994 (THEORY.md section 10)",
        prediction="theory.latch_gradient_log(w, 1) per step.",
        tolerance_reason="1e-9 per step: after the warm-up the state is within e^-40 of the fixed "
                         "point, so the slopes are exact up to rounding (~1e-15 per step).",
        check=check_latching,
    ),
    Claim(
        id="theory.adding-baseline",
        statement="Adding problem: predicting the mean gives MSE 1/6.",
        source="Hochreiter & Schmidhuber 1997; Le et al. 2015 (THEORY.md section 11)",
        prediction="theory.adding_problem_baseline_mse() = 1/6.",
        tolerance_reason="4 exact standard errors sqrt(Var((Y - 1)^2) / M), "
                         "Var = E(Y - 1)^4 - 1/36 = 1/15 - 1/36 = 7/180.",
        check=check_adding_baseline,
    ),
    Claim(
        id="theory.copy-baseline",
        statement="Copy task: the memoryless baseline's cross-entropy is 10 log 8 / (T + 20) per step.",
        source="Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016 (THEORY.md section 11)",
        prediction="theory.copy_task_baseline(T).",
        tolerance_reason="4 standard errors of the Miller-Madow corrected plug-in entropy "
                         "(2M(H - H_plugin) ~ chi^2_(K-1) per recall step) plus its second-order bias "
                         "(K^2 - 1)/(12 M^2) per recall step.",
        check=check_copy_baseline,
    ),
    Claim(
        id="theory.dynamical-isometry",
        statement="The spread of the singular values of P_T grows with depth for Gaussian weights "
                  "(variance of the spectrum of P P^T = L (mu_2 - 1 - s_1)) and is zero for "
                  "orthogonal linear networks.",
        source="Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017 (THEORY.md section 6)",
        prediction="theory.dynamical_isometry_variance_slope times L, plus the exact finite-N term "
                   "(derived in the check); orthogonal: 0.",
        tolerance_reason="Student t (k - 1 dof) times the standard error over k samples; "
                         "orthogonal: rounding 10 L N eps.",
        check=check_dynamical_isometry,
    ),
)

#: Claims whose verdict follows from their reported numbers (see the module docstring).
COMPARISONS: dict[str, str] = {
    "notes.small-slopes-vanish": "within",
    "notes.sv-gt-1-explodes": "exceeds",
    "notes.sv-lt-1-vanishes": "at most",
    "notes.clipping-bounds-step": "at most",
    "notes.rnn-short-memory": "at most",
    "theory.newman-spectrum": "within",
    "theory.log-det-sum": "within",
    "theory.tied-linear-eigenvalues": "within",
    "theory.circular-law": "within",
    "theory.quarter-circle-norm": "within",
    "theory.pascanu-bound": "at most",
    "theory.linear-rho-sufficient": "within",
    "theory.mean-field-lyapunov": "within",
    "theory.orthogonal-exact": "within",
    "theory.irnn-diagonal": "within",
    "theory.lstm-zero-weight": "within",
    "theory.h-only-misses-cell-path": "exceeds",
    "theory.gru-zero-weight": "within",
    "theory.residual-tied-vs-untied": "within",
    "theory.latching": "within",
    "theory.adding-baseline": "within",
    "theory.copy-baseline": "within",
    "theory.dynamical-isometry": "within",
}


def builtin_claims() -> list[Claim]:
    """The built-in registry (lecture-note claims and THEORY.md results)."""
    return list(CLAIMS)


# The rate-network claims (issue 14) live in their own module, which imports this one's helpers:
# appended here, after everything they need is defined.
from .rate import RATE_CLAIMS, RATE_COMPARISONS  # noqa: E402

CLAIMS = CLAIMS + RATE_CLAIMS
COMPARISONS.update(RATE_COMPARISONS)

# The modern-recurrence and curse-of-memory claims (issue 12), appended in the same way.
from .modern import MODERN_CLAIMS, MODERN_COMPARISONS  # noqa: E402

CLAIMS = CLAIMS + MODERN_CLAIMS
COMPARISONS.update(MODERN_COMPARISONS)

# The critical-initialisation claims (issue 13), appended in the same way.
from .control import CONTROL_CLAIMS, CONTROL_COMPARISONS  # noqa: E402

CLAIMS = CLAIMS + CONTROL_CLAIMS
COMPARISONS.update(CONTROL_COMPARISONS)

# The gradient-flossing claims (issue 13), appended in the same way.
from .flossing import FLOSSING_CLAIMS, FLOSSING_COMPARISONS  # noqa: E402

CLAIMS = CLAIMS + FLOSSING_CLAIMS
COMPARISONS.update(FLOSSING_COMPARISONS)
