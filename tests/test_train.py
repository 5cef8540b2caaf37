"""Tests of BPTT training: parameter VJPs and whole-sequence gradients against finite
differences, agreement with the analysis code, clipping, optimisers, divergence handling, and a
small LSTM that learns the adding problem.

Finite-difference tolerance (as in tests/test_cells.py): a central difference with step
h = 1e-5 has truncation error h^2 |f'''| / 6 ~ 1e-10 and rounding error ~ eps |f| / h ~ 2e-11
for O(1) quantities, so a correct derivative agrees to 1e-7 relative with three orders of
magnitude to spare, while a wrong one (a missing term, a swapped gate) is off by O(1). The
rounding term is relative to |f|, not to the derivative, so each entry also gets an absolute
floor of 100 eps max|f| / h (100 covers the roundings of one evaluation of f, which sums
O(100) terms here).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import gradsim as gs
import gradsim.training.backprop as tr
from gradsim.training.tasks import adding_problem, copy_task, long_gap_recall, periodic_sequence
from gradsim.theory import clip_by_norm

FD_STEP = 1e-5
FD_RTOL = 1e-7
EPS = np.finfo(np.float64).eps


def exact(message):
    return "^" + re.escape(message) + "$"


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


# Every cell class and variant with trainable arrays.
CELLS = {
    "rnn-tanh": dict(kind="rnn", activation="tanh"),
    "rnn-sigmoid": dict(kind="rnn", activation="sigmoid"),
    "rnn-linear": dict(kind="rnn", activation="linear"),
    "rnn-relu": dict(kind="rnn", activation="relu"),
    "residual-tanh": dict(kind="residual", activation="tanh", alpha=0.7),
    "lstm": dict(kind="lstm", forget_bias=0.5),
    "gru-torch": dict(kind="gru", variant="torch"),
    "gru-reset_before": dict(kind="gru", variant="reset_before"),
    "gru-chung": dict(kind="gru", variant="chung"),
}


def build(name, n=3, n_in=2, seed=0, gain=1.0):
    options = dict(CELLS[name])
    kind = options.pop("kind")
    return gs.make_cell(kind, n, n_in, gain=gain, bias_std=0.5, rng=seed, **options)


def fd_gradient(f, array):
    """Central differences of the scalar f(perturbed copy of array) for every entry, and the
    absolute rounding floor 100 eps max|f| / h."""
    grad = np.zeros(array.shape)
    f_max = 0.0
    for index in np.ndindex(*array.shape):
        values = []
        for sign in (1.0, -1.0):
            moved = np.array(array)
            moved[index] += sign * FD_STEP
            values.append(f(moved))
        f_max = max(f_max, abs(values[0]), abs(values[1]))
        grad[index] = (values[0] - values[1]) / (2 * FD_STEP)
    return grad, 100 * EPS * f_max / FD_STEP * math.sqrt(grad.size)


def assert_fd_close(analytic, fd, floor):
    err = np.linalg.norm(analytic - fd)
    assert err <= FD_RTOL * np.linalg.norm(fd) + floor, (err, np.linalg.norm(fd), floor)


# ------------------------------------------------------------------------------------------
# parameter VJPs of one step
@pytest.mark.parametrize("name", CELLS)
def test_param_vjp_matches_finite_differences(name):
    cell = build(name, seed=1)
    rng = np.random.default_rng(2)
    # A batch (2, 3) of states, one input broadcast over the first batch axis.
    state = np.tanh(rng.standard_normal((2, 3, cell.state_size)))
    if isinstance(cell, gs.LSTM):
        state[..., cell.n_hidden :] *= 3.0  # c of order one, not bounded by 1
    if name == "rnn-relu":
        state = np.abs(state) + 0.1  # away from ReLU's kink, where FD is meaningless
    x = rng.standard_normal((3, cell.n_input))
    v = rng.standard_normal((2, 3, cell.state_size))
    grads = cell.param_vjp(state, x, v)
    assert set(grads) == {"weight_hh", "weight_ih", "bias_hh", "bias_ih"}
    for key, value in grads.items():
        array = getattr(cell, key)
        assert value.shape == array.shape

        def f(moved, key=key):
            return float(np.sum(v * dataclasses.replace(cell, **{key: moved}).step(state, x)))

        fd, floor = fd_gradient(f, array)
        assert_fd_close(value, fd, floor)


@pytest.mark.parametrize("name", ["rnn-tanh", "lstm", "gru-torch"])
def test_param_vjp_sums_over_the_batch(name):
    cell = build(name, seed=3)
    rng = np.random.default_rng(4)
    state = np.tanh(rng.standard_normal((4, cell.state_size)))
    x = rng.standard_normal((4, cell.n_input))
    v = rng.standard_normal((4, cell.state_size))
    total = cell.param_vjp(state, x, v)
    parts = [cell.param_vjp(state[b], x[b], v[b]) for b in range(4)]
    for key in total:
        # The same products summed in another order: a few ulps of O(1) sums.
        np.testing.assert_allclose(total[key], sum(p[key] for p in parts), rtol=1e-13, atol=1e-14)


def test_param_vjp_argument_errors():
    cell = build("lstm")
    with pytest.raises(ValueError, match=exact("`cotangent` must have last dimension state_size=6; got shape (3,).")):
        cell.param_vjp(np.zeros(6), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match=r"^`cotangent` must have a batch shape broadcastable"):
        cell.param_vjp(np.zeros((2, 6)), np.zeros(2), np.zeros((3, 6)))
    with pytest.raises(ValueError, match=exact("`state` must have last dimension state_size=6; got shape (5,).")):
        cell.param_vjp(np.zeros(5), np.zeros(2), np.zeros(6))


# ------------------------------------------------------------------------------------------
# whole-sequence gradients
def _batch(task, n, seed):
    return task.sample(n, rng=seed)


TASK_CASES = {
    "last-mse": (adding_problem(5), 2),
    "sequence-xent": (periodic_sequence(4, "AAB"), 2),
    "last-xent": (long_gap_recall(4, n_keys=3, n_fillers=2), 2),
}


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("case", TASK_CASES)
def test_bptt_gradients_match_finite_differences(name, case):
    task, batch = TASK_CASES[case]
    cell = build(name, n=3, n_in=task.n_input, seed=5, gain=0.9)
    model = tr.init_model(cell, task.n_output, rng=6)
    inputs, targets = _batch(task, batch, 7)
    if name == "rnn-relu":
        inputs = np.abs(inputs) + 0.5  # keep pre-activations away from the kink
    result = tr.bptt(model, inputs, targets, readout=task.readout, loss=task.loss)
    assert set(result.grads) == set(model.params)
    for key, value in model.params.items():

        def f(moved, key=key):
            return tr.bptt(model.with_params({key: moved}), inputs, targets,
                           readout=task.readout, loss=task.loss).loss

        fd, floor = fd_gradient(f, value)
        assert result.grads[key].shape == value.shape
        assert_fd_close(result.grads[key], fd, floor)


def test_bptt_sequence_mse_readout_matches_finite_differences():
    # The one (readout, loss) pair no task uses: sequence-to-sequence regression.
    cell = build("lstm", n=3, n_in=2, seed=8)
    model = tr.init_model(cell, 2, rng=9)
    rng = np.random.default_rng(10)
    inputs, targets = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    result = tr.bptt(model, inputs, targets, readout="sequence", loss="mse")
    for key, value in model.params.items():
        fd, floor = fd_gradient(
            lambda m, key=key: tr.bptt(model.with_params({key: m}), inputs, targets,
                                       readout="sequence", loss="mse").loss, value)
        assert_fd_close(result.grads[key], fd, floor)


@pytest.mark.parametrize("name", ["rnn-tanh", "lstm", "gru-chung"])
def test_per_step_norms_agree_with_the_analysis_code(name):
    # Sequence-to-one: dL/ds_t = J_{t+1}^T ... J_L^T dL/ds_L, exactly what gradient_norms
    # computes from the same VJPs (with renormalisation: rounding differs by a few ulps per step).
    task = adding_problem(30)
    cell = build(name, n=5, n_in=2, seed=11)
    model = tr.init_model(cell, 1, rng=12)
    inputs, targets = task.sample(1, rng=13)
    result = tr.bptt(model, inputs, targets, readout="last", loss="mse")
    n = cell.n_hidden
    upstream = np.zeros(cell.state_size)
    states = gs.unroll(cell, inputs[0])
    out = states[-1, :n] @ model.weight_out.T + model.bias_out
    upstream[:n] = (2 * (out - targets[0])) @ model.weight_out
    expected = np.exp(gs.gradient_norms(cell, inputs[0], upstream=upstream))
    np.testing.assert_allclose(result.state_grad_norms, expected, rtol=1e-11)
    assert np.all(result.hidden_grad_norms <= result.state_grad_norms * (1 + 1e-15))
    if name != "lstm":
        assert np.array_equal(result.hidden_grad_norms, result.state_grad_norms)


def test_forward_matches_unroll():
    cell = build("gru-torch", n=4, n_in=3, seed=14)
    model = tr.init_model(cell, 2, rng=15)
    inputs = np.random.default_rng(16).standard_normal((2, 6, 3))
    seq = tr.forward(model, inputs, readout="sequence")
    last = tr.forward(model, inputs, readout="last")
    for b in range(2):
        hidden = gs.unroll(cell, inputs[b])[1:]
        np.testing.assert_allclose(seq[b], hidden @ model.weight_out.T + model.bias_out, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(last, seq[:, -1])


def test_cross_entropy_of_uniform_outputs_is_log_classes():
    outputs = np.zeros((4, 7))
    value, grad = tr.loss_and_output_grad(outputs, np.arange(4), "xent")
    assert value == pytest.approx(math.log(7), rel=1e-15)
    np.testing.assert_allclose(grad.sum(axis=-1), 0.0, atol=1e-16)


# ------------------------------------------------------------------------------------------
# clipping
grad_dicts = st.builds(
    lambda seed, log_scale, sizes: {
        f"p{i}": np.random.default_rng(seed).standard_normal(size) * 10.0**log_scale
        for i, size in enumerate(sizes)
    },
    st.integers(0, 2**32 - 1),
    st.floats(-150, 150),
    st.lists(st.integers(1, 40), min_size=1, max_size=4),
)


@settings(max_examples=200, deadline=None, database=None)
@given(grads=grad_dicts, log_threshold=st.floats(-150, 150))
def test_clip_by_global_norm_never_exceeds_the_threshold_and_keeps_the_direction(grads, log_threshold):
    threshold = 10.0**log_threshold
    clipped, before, after = tr.clip_by_global_norm(grads, threshold)
    flat = np.concatenate([g.ravel() for g in grads.values()])
    out = np.concatenate([clipped[k].ravel() for k in grads])
    assert after <= threshold
    assert after == tr.global_norm(clipped)
    assert before == pytest.approx(np.linalg.norm(flat / np.abs(flat).max()) * np.abs(flat).max(), rel=1e-14)
    if before < threshold:
        np.testing.assert_array_equal(out, flat)  # untouched below the threshold
    else:
        # Same direction: out = c g with one positive c for every entry, c ||g|| = threshold
        # up to the few ulps removed to keep the norm at or below it.
        ratio = out / flat
        assert np.all(ratio > 0)
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-14)
        assert after == pytest.approx(threshold, rel=1e-14)
        # the semantics of gradsim.theory.clip_by_norm (Pascanu et al. Algorithm 1)
        np.testing.assert_allclose(out, clip_by_norm(flat, threshold), rtol=1e-14)


def test_clip_by_value_bounds_every_entry():
    grads = {"a": np.array([-5.0, 0.5, 3.0]), "b": np.array([[2.0, -0.1]])}
    clipped = tr.clip_by_value(grads, 1.0)
    np.testing.assert_array_equal(clipped["a"], [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(clipped["b"], [[1.0, -0.1]])


def test_clipping_argument_errors():
    with pytest.raises(ValueError, match=exact("`max_norm` must be a positive finite number; got 0.0.")):
        tr.clip_by_global_norm({"a": np.ones(2)}, 0)
    with pytest.raises(TypeError, match=exact("`grads` must be a non-empty dict name -> array; got {}.")):
        tr.clip_by_value({}, 1.0)
    with pytest.raises(ValueError, match=exact("`grads['a']` must contain only finite values; got NaN or inf.")):
        tr.global_norm({"a": np.array([np.nan])})


# ------------------------------------------------------------------------------------------
# optimisers
def test_sgd_momentum_against_the_recurrence():
    opt = tr.SGD(lr=0.1, momentum=0.9)
    params = {"w": np.array([1.0, -2.0])}
    state = opt.init(params)
    grads = [np.array([0.5, 1.0]), np.array([-1.0, 2.0]), np.array([0.25, 0.0])]
    v = np.zeros(2)
    w = params["w"].copy()
    for g in grads:
        params, state = opt.update(params, {"w": g}, state)
        v = 0.9 * v + g
        w = w - 0.1 * v
        np.testing.assert_allclose(params["w"], w, rtol=1e-15)


def test_adam_against_the_paper():
    opt = tr.Adam(lr=0.01, beta1=0.8, beta2=0.9, eps=1e-8)
    params = {"w": np.array([1.0, -2.0, 0.0])}
    state = opt.init(params)
    # First step: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps) ~ lr sign(g).
    params, state = opt.update(params, {"w": np.array([3.0, -0.5, 0.0])}, state)
    np.testing.assert_allclose(params["w"], [1.0 - 0.01 * 3 / (3 + 1e-8), -2.0 + 0.01 * 0.5 / (0.5 + 1e-8), 0.0],
                               rtol=1e-15)
    m = 0.2 * np.array([3.0, -0.5, 0.0])
    v = 0.1 * np.array([9.0, 0.25, 0.0])
    g = np.array([1.0, 1.0, 2.0])
    params2, state = opt.update(params, {"w": g}, state)
    m = 0.8 * m + 0.2 * g
    v = 0.9 * v + 0.1 * g**2
    step = 0.01 * (m / (1 - 0.8**2)) / (np.sqrt(v / (1 - 0.9**2)) + 1e-8)
    np.testing.assert_allclose(params2["w"], params["w"] - step, rtol=1e-15)
    assert state["k"] == 2


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match=exact("`momentum` must be a number in [0, 1); got 1.0.")):
        tr.SGD(0.1, momentum=1.0)
    with pytest.raises(ValueError, match=exact("`lr` must be a positive finite number; got -0.1.")):
        tr.Adam(-0.1)
    with pytest.raises(ValueError, match=exact("`beta2` must be a number in [0, 1); got 1.5.")):
        tr.Adam(beta2=1.5)


# ------------------------------------------------------------------------------------------
# the training loop
def test_train_records_and_clipping_bound():
    task = copy_task(3, n_symbols=3, n_copy=2)
    cell = gs.make_cell("gru", 6, task.n_input, rng=0)
    model = tr.init_model(cell, task.n_output, rng=1)
    record = tr.train_model(model, task, n_updates=12, batch_size=4, optimizer=tr.SGD(0.5, momentum=0.5),
                            clip_norm=0.05, record_steps_at=[0, 11], rng=2)
    assert not record.diverged and record.diverged_at is None
    assert record.losses.shape == record.grad_norm_before.shape == record.grad_norm_after.shape == (12,)
    assert np.all(record.grad_norm_after <= 0.05)
    assert np.all(record.grad_norm_after <= record.grad_norm_before)
    clipped = record.grad_norm_before >= 0.05
    np.testing.assert_allclose(record.grad_norm_after[clipped], 0.05, rtol=1e-14)
    assert np.array_equal(record.recorded_updates, [0, 11])
    assert record.hidden_grad_norms.shape == record.state_grad_norms.shape == (2, task.length + 1)
    # the first loss is the initial model's loss on the first batch (the rng's first draw)
    first = task.sample(4, rng=np.random.default_rng(2))
    assert record.losses[0] == tr.bptt(model, *first, readout="sequence", loss="xent").loss
    # deterministic given the seeds
    again = tr.train_model(model, task, n_updates=12, batch_size=4, optimizer=tr.SGD(0.5, momentum=0.5),
                           clip_norm=0.05, record_steps_at=[0, 11], rng=2)
    assert np.array_equal(again.losses, record.losses)


def test_train_clip_by_value():
    task = adding_problem(6)
    model = tr.init_model(gs.make_cell("rnn", 4, 2, rng=0), 1, rng=1)
    record = tr.train_model(model, task, n_updates=5, batch_size=8, clip_value=1e-3, rng=3)
    assert np.all(record.grad_norm_after <= 1e-3 * math.sqrt(sum(p.size for p in model.params.values())))


def test_divergence_stops_cleanly():
    # A linear RNN with gain 3 over 40 steps: the forward state and the gradient grow like
    # 3^40 ~ 1e19, SGD's step sends the weights to ~1e35 and the next forward pass overflows.
    # No exception and no floating-point warning (warnings are errors in this suite).
    task = adding_problem(40)
    cell = gs.make_cell("rnn", 8, 2, init="orthogonal", gain=3.0, activation="linear", rng=0)
    model = tr.init_model(cell, 1, rng=1)
    record = tr.train_model(model, task, n_updates=50, batch_size=4, optimizer=tr.SGD(0.1), rng=2,
                            record_steps_at=range(50))
    assert record.diverged
    assert record.diverged_at == len(record.losses) - 1 < 49
    assert not math.isfinite(record.losses[-1]) or not math.isfinite(record.grad_norm_before[-1])
    assert all(np.all(np.isfinite(p)) for p in record.model.params.values())
    assert len(record.recorded_updates) == len(record.losses)


def test_small_lstm_learns_the_adding_problem_at_T_50():
    # LSTM, N = 16, forget bias 1, Adam(0.02), global-norm clipping at 1, 400 updates of 32
    # sequences (~2 s). Predicting the mean scores 1/6; remembering one of the two marked values
    # scores 1/12 at best. Passing needs the model to use both values: held-out MSE below a
    # tenth of the baseline (the run reaches ~0.002, 1% of it).
    task = adding_problem(50)
    cell = gs.make_cell("lstm", 16, 2, init="orthogonal", forget_bias=1.0, rng=0)
    model = tr.init_model(cell, 1, rng=0)
    record = tr.train_model(model, task, n_updates=400, batch_size=32, optimizer=tr.Adam(0.02),
                            clip_norm=1.0, rng=100)
    assert not record.diverged
    assert record.losses[:20].mean() > 0.8 * task.baseline  # starts at (or above) the baseline
    assert tr.evaluate(record.model, task, 2000, rng=7) < 0.1 * task.baseline


def test_train_argument_errors():
    task = adding_problem(5)
    model = tr.init_model(gs.make_cell("rnn", 3, 2, rng=0), 1, rng=0)
    with pytest.raises(ValueError, match=exact("`n_updates` must be an integer >= 1; got 0.")):
        tr.train_model(model, task, n_updates=0)
    with pytest.raises(ValueError, match=exact(
        "`model` must have n_input=16 and n_output=7 for task 'recall'; got n_input=2, n_output=1."
    )):
        tr.train_model(model, long_gap_recall(5), n_updates=1)
    with pytest.raises(ValueError, match=exact("`record_steps_at` must hold update indices in [0, 3); got 3.")):
        tr.train_model(model, task, n_updates=3, record_steps_at=[3])
    with pytest.raises(TypeError, match=r"^`optimizer` must be a gradsim.training.backprop.SGD or Adam; got "):
        tr.train_model(model, task, n_updates=1, optimizer="adam")
    with pytest.raises(ValueError, match=exact("`clip_norm` must be a positive finite number; got -1.0.")):
        tr.train_model(model, task, n_updates=1, clip_norm=-1)
    with pytest.raises(ValueError, match=exact("`inputs` must have shape (B, L, 2) with B, L >= 1; got shape (5, 2).")):
        tr.bptt(model, np.zeros((5, 2)), np.zeros((5, 1)))
    with pytest.raises(ValueError, match=exact("`targets` must have shape (4, 1); got shape (4,).")):
        tr.bptt(model, np.zeros((4, 5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"^`targets` must be class indices in \[0, 1\); got values in"):
        tr.bptt(model, np.zeros((4, 5, 2)), np.arange(4), loss="xent")
    with pytest.raises(ValueError, match=r"^`readout` must be one of 'last', 'sequence'; got 'all'.$"):
        tr.bptt(model, np.zeros((4, 5, 2)), np.zeros((4, 1)), readout="all")
    with pytest.raises(ValueError, match=exact("`weight_out` must have shape (*, 3); got shape (1, 4).")):
        tr.Model(model.cell, np.zeros((1, 4)), np.zeros(1))


# ------------------------------------------------------------------------------------------
# the studies' quick grids, through the report's own path (CSV, metadata, figure)
STUDIES = Path(__file__).resolve().parent.parent / "studies"


def _run_study(name, tmp_path):
    from gradsim.workflow.report import produce

    result = produce(STUDIES / f"{name}.py", quick=True, out=tmp_path, progress=False)
    assert result.n_errors == 0
    assert (tmp_path / f"{name}.png").exists()
    frame = pd.read_csv(result.csv_path)
    summary = result.study.summarize(frame)
    assert summary.get("notes")
    return frame


def test_horizon_study_quick(tmp_path):
    frame = _run_study("horizon", tmp_path)
    results = frame[frame.record == "result"]
    assert len(results) == 4 and set(results.model) == {"rnn", "lstm_fb1"}
    # 1/6 exactly (the adding problem's baseline), read back from the CSV's 12 significant
    # digits: equal to 1/6 within half a unit of the 12th digit (relative 5e-12 at most).
    assert np.allclose(results.baseline, 1 / 6, rtol=5e-12, atol=0)
    prof = frame[frame.record == "profile"]
    for (model, T, when), sub in prof.groupby(["model", "T", "at_update"]):
        assert sorted(sub.steps_back) == list(range(T + 1))
        assert np.all(np.isfinite(sub.log10_grad_norm))
    # Tanh RNN with orthogonal W at the first update: ||J_t^T g|| <= ||diag(tanh')|| ||W|| ||g||
    # <= ||g|| (THEORY.md section 2), so the gradient can only shrink going back; the slack
    # 1e-12 (log10) covers rounding of the norms.
    rnn = prof[(prof.model == "rnn") & (prof.at_update == "first")]
    for T, sub in rnn.groupby("T"):
        values = sub.sort_values("steps_back").log10_grad_norm.to_numpy()
        assert np.all(np.diff(values) <= 1e-12)


def test_clipping_study_quick(tmp_path):
    frame = _run_study("clipping", tmp_path)
    results = frame[frame.record == "result"].set_index(["gain", "clipping"])
    updates = frame[frame.record == "update"]
    # Norm clipping: never above the threshold; without clipping, after == before.
    norm = updates[updates.clipping == "norm"]
    assert norm.grad_norm_after.max() <= 0.3
    none = updates[(updates.clipping == "none") & np.isfinite(updates.grad_norm_before)]
    assert np.array_equal(none.grad_norm_after, none.grad_norm_before)
    # Gain 4 without clipping runs away (8 of 8 seeds in the full grid) and is recorded as
    # diverged, not raised; with clipping the same configuration stays finite.
    assert str(results.loc[(4.0, "none"), "diverged"]).lower() == "true"
    assert not np.isfinite(results.loc[(4.0, "none"), "eval_mse"])
    assert str(results.loc[(4.0, "norm"), "diverged"]).lower() == "false"
    assert np.isfinite(results.loc[(4.0, "norm"), "eval_mse"])
