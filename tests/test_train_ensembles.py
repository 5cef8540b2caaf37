"""Tests of BPTT training on ensembles (issue 10: "every numeric function ... and training where
it applies accepts an ensemble").

The reference for every ensemble result is the same call on each member alone (``model[i]``, a
single network, with member i's mini-batches): member i of the result must equal it to
rounding. This covers the readout's seeding rule, forward passes, losses, gradients, per-step
gradient norms, evaluation, global-norm clipping (per member: each network by its own norm),
the optimisers' moments, divergence (per member) and whole training runs.

Tolerances:
- One BPTT pass (``RTOL = 1e-12``, relative to the scale of the lone network's array, its
  largest |entry|): a member does the lone network's floating-point operations, only stacked
  (a batched matmul instead of a matrix product, per-member reductions instead of one sum over
  everything, different chunks of steps in the parameter-gradient sum). The only admissible
  difference is rounding in differently ordered sums, a few ulps per step, far below 1e-12
  after the <= 12 steps used here; a wrong member (a swapped index, a shared norm, a loss
  normalised by the ensemble's size) is off by O(1) or by a factor of B.
- Training runs (``TRAIN_RTOL = 1e-10`` on parameters, losses and norms after 30 updates):
  each update feeds the previous rounding back in; Adam's step m / sqrt(v) and SGD with
  momentum 0.5 at these learning rates amplify a perturbation by O(1) per update at most here
  (measured: the differences stay below 1e-14), so 1e-10 leaves four orders of magnitude of
  margin while any real coupling between members (a shared clipping factor, a shared moment)
  changes parameters at the 1e-3 level.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gradsim as gs
import gradsim.training.backprop as tr
from gradsim.training.tasks import adding_problem, copy_task, long_gap_recall, periodic_sequence

RTOL = 1e-12  # see the module docstring
TRAIN_RTOL = 1e-10  # see the module docstring
B = 4  # members


def exact(message):
    return "^" + re.escape(message) + "$"


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


def assert_close(actual, expected, rtol=RTOL):
    """Equal to ``rtol`` of the scale of ``expected`` (its largest |entry|), non-finite entries
    identical."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(actual), finite)
    np.testing.assert_array_equal(actual[~finite], expected[~finite])
    if finite.any():
        scale = max(float(np.max(np.abs(expected[finite]))), 1e-300)
        err = float(np.max(np.abs(actual[finite] - expected[finite])))
        assert err <= rtol * scale, (err, scale)


def assert_records_close(record, single, rtol=TRAIN_RTOL):
    assert record.diverged == single.diverged and record.diverged_at == single.diverged_at
    np.testing.assert_array_equal(record.recorded_updates, single.recorded_updates)
    for name in ("losses", "grad_norm_before", "grad_norm_after", "hidden_grad_norms", "state_grad_norms"):
        assert_close(getattr(record, name), getattr(single, name), rtol)
    assert set(record.model.params) == set(single.model.params)
    for key, value in single.model.params.items():
        assert_close(record.model.params[key], value, rtol)


KINDS = {
    "rnn": dict(kind="rnn", activation="tanh"),
    "residual": dict(kind="residual", activation="tanh", alpha=0.7),
    "lstm": dict(kind="lstm", forget_bias=0.5),
    "gru": dict(kind="gru", variant="torch"),
    "gru-chung": dict(kind="gru", variant="chung"),
}

TASKS = {
    "last-mse": adding_problem(6),
    "sequence-xent": copy_task(2, n_symbols=3, n_copy=2),
    "last-xent": long_gap_recall(5, n_keys=3, n_fillers=2),
    "periodic": periodic_sequence(5, "AAB"),
}


def ensemble(name, n_in, members=B, n=3, seed=0):
    options = dict(KINDS[name])
    kind = options.pop("kind")
    return gs.make_cell(kind, n, n_in, ensemble=members, bias_std=0.4, rng=seed, **options)


# The three ways an ensemble's BPTT runs (see backprop._GROUP_ENTRIES): one group of all members,
# several groups (here of 3 and 1), member by member through the single-network code. Each test
# that takes `path` forces one of them.
PATHS = {"one-group": 10**9, "groups": 3, "one-by-one": 0}


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    monkeypatch.setattr(tr, "_group_size", lambda batch, state_size: PATHS[request.param])
    return request.param


# ------------------------------------------------------------------------------------------
# the model and its seeding rule
def test_init_model_draws_member_i_from_the_i_th_spawned_child():
    ens = ensemble("lstm", 2)
    model = tr.init_model(ens, 3, scale=0.8, rng=5)
    assert model.batch_shape == (B,) and len(model) == B
    assert model.weight_out.shape == (B, 3, 3) and model.bias_out.shape == (B, 3)
    children = np.random.default_rng(5).spawn(B)
    for i in range(B):
        alone = tr.init_model(ens[i], 3, scale=0.8, rng=children[i])
        np.testing.assert_array_equal(model.weight_out[i], alone.weight_out)
        np.testing.assert_array_equal(model.bias_out[i], alone.bias_out)
        member = model[i]
        assert member.batch_shape == ()
        for key, value in alone.params.items():
            np.testing.assert_array_equal(member.params[key], value)
    # the same rule as make_cell(..., ensemble=B): one seed gives member i's cell and readout
    # from the same child
    cell_i = gs.make_cell("lstm", 3, 2, forget_bias=0.5, bias_std=0.4, rng=np.random.default_rng(0).spawn(B)[1])
    np.testing.assert_array_equal(cell_i.weight_hh, ens[1].weight_hh)
    # reproducible from the seed; members differ
    again = tr.init_model(ens, 3, scale=0.8, rng=5)
    np.testing.assert_array_equal(again.weight_out, model.weight_out)
    assert not np.array_equal(model.weight_out[0], model.weight_out[1])


def test_init_model_for_a_two_dimensional_batch_spawns_dimension_by_dimension():
    cells = [[gs.make_cell("rnn", 3, 2, rng=10 * a + b) for b in range(3)] for a in range(2)]
    ens = gs.stack_cells([gs.stack_cells(row) for row in cells])
    assert ens.batch_shape == (2, 3)
    model = tr.init_model(ens, 2, rng=7)
    assert model.weight_out.shape == (2, 3, 2, 3)
    for a, child in enumerate(np.random.default_rng(7).spawn(2)):
        # member a (a sub-ensemble of 3) is init_model of ens[a] with the a-th child
        row = tr.init_model(ens[a], 2, rng=child)
        np.testing.assert_array_equal(model.weight_out[a], row.weight_out)
        np.testing.assert_array_equal(model[a].weight_out, row.weight_out)
    np.testing.assert_array_equal(model[1, 2].cell.weight_hh, cells[1][2].weight_hh)
    np.testing.assert_array_equal(model[..., 0].weight_out, model.weight_out[:, 0])


def test_stack_models_and_indexing_round_trip():
    singles = [tr.init_model(gs.make_cell("gru", 3, 2, rng=s), 2, rng=s + 10) for s in range(3)]
    model = tr.stack_models(singles)
    assert model.batch_shape == (3,)
    for i, single in enumerate(singles):
        for key, value in single.params.items():
            np.testing.assert_array_equal(model.params[key][i], value)
            np.testing.assert_array_equal(model[i].params[key], value)
    sub = model[1:]
    assert sub.batch_shape == (2,)
    np.testing.assert_array_equal(sub.weight_out, model.weight_out[1:])
    np.testing.assert_array_equal(model[[2, 0]].bias_out, model.bias_out[[2, 0]])


def test_a_shared_readout_is_broadcast_to_every_member():
    ens = ensemble("rnn", 2)
    weight = np.arange(6.0).reshape(2, 3)
    model = tr.Model(ens, weight, np.ones(2))
    assert model.weight_out.shape == (B, 2, 3) and model.bias_out.shape == (B, 2)
    for i in range(B):
        np.testing.assert_array_equal(model.weight_out[i], weight)
    assert not model.weight_out.flags.writeable


# ------------------------------------------------------------------------------------------
# forward, bptt, evaluate: member by member
@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("case", TASKS)
def test_bptt_of_an_ensemble_equals_each_member_alone(name, case, path):
    task = TASKS[case]
    model = tr.init_model(ensemble(name, task.n_input), task.n_output, rng=1)
    inputs, targets = task.sample(5, rng=2)
    result = tr.bptt(model, inputs, targets, readout=task.readout, loss=task.loss)
    outputs = tr.forward(model, inputs, readout=task.readout)
    assert result.loss.shape == (B,)
    assert result.state_grad_norms.shape == result.hidden_grad_norms.shape == (B, task.length + 1)
    for i in range(B):
        alone = tr.bptt(model[i], inputs, targets, readout=task.readout, loss=task.loss)
        assert_close(result.loss[i], alone.loss)
        assert set(result.grads) == set(alone.grads)
        for key, value in alone.grads.items():
            assert result.grads[key].shape == (B,) + value.shape
            assert_close(result.grads[key][i], value)
        assert_close(result.state_grad_norms[i], alone.state_grad_norms)
        assert_close(result.hidden_grad_norms[i], alone.hidden_grad_norms)
        assert_close(outputs[i], tr.forward(model[i], inputs, readout=task.readout))


@pytest.mark.parametrize("case", ["last-mse", "sequence-xent"])
def test_bptt_with_one_batch_per_member(case, path):
    # inputs and targets (B, batch, ...): member i sees only its own batch
    task = TASKS[case]
    model = tr.init_model(ensemble("lstm", task.n_input), task.n_output, rng=3)
    draws = [task.sample(4, rng=10 + i) for i in range(B)]
    inputs = np.stack([d[0] for d in draws])
    targets = np.stack([d[1] for d in draws])
    result = tr.bptt(model, inputs, targets, readout=task.readout, loss=task.loss)
    outputs = tr.forward(model, inputs, readout=task.readout)
    # shared inputs with per-member targets, too
    mixed = tr.bptt(model, draws[0][0], np.stack([draws[0][1]] * B), readout=task.readout, loss=task.loss)
    for i in range(B):
        alone = tr.bptt(model[i], *draws[i], readout=task.readout, loss=task.loss)
        assert_close(result.loss[i], alone.loss)
        for key, value in alone.grads.items():
            assert_close(result.grads[key][i], value)
        assert_close(result.state_grad_norms[i], alone.state_grad_norms)
        assert_close(outputs[i], tr.forward(model[i], draws[i][0], readout=task.readout))
        assert_close(mixed.loss[i], tr.bptt(model[i], *draws[0], readout=task.readout, loss=task.loss).loss)


def test_sequence_mse_on_a_two_dimensional_ensemble():
    # the one (readout, loss) pair no task uses, on batch_shape (2, 3)
    ens = gs.stack_cells([ensemble("gru", 2, members=3, seed=s) for s in range(2)])
    model = tr.init_model(ens, 2, rng=4)
    rng = np.random.default_rng(5)
    inputs, targets = rng.standard_normal((3, 4, 2)), rng.standard_normal((2, 3, 3, 4, 2))
    result = tr.bptt(model, inputs, targets, readout="sequence", loss="mse")
    assert result.loss.shape == (2, 3) and result.grads["weight_hh"].shape == (2, 3, 9, 3)
    assert tr.forward(model, inputs, readout="sequence").shape == (2, 3, 3, 4, 2)
    for a in range(2):
        for b in range(3):
            alone = tr.bptt(model[a, b], inputs, targets[a, b], readout="sequence", loss="mse")
            assert_close(result.loss[a, b], alone.loss)
            for key, value in alone.grads.items():
                assert_close(result.grads[key][a, b], value)


def test_evaluate_scores_each_member_on_the_same_batch():
    task = TASKS["sequence-xent"]
    model = tr.init_model(ensemble("gru-chung", task.n_input), task.n_output, rng=6)
    scores = tr.evaluate(model, task, 50, rng=7)
    assert scores.shape == (B,)
    for i in range(B):
        assert_close(scores[i], tr.evaluate(model[i], task, 50, rng=7))


def test_evaluate_marks_only_the_overflowing_member():
    # member 0: a linear RNN with recurrent weights 50 I: its state grows like 50^40 and its
    # outputs overflow; member 1 is tame. No floating-point warning (warnings are errors here).
    task = adding_problem(200)
    wild = gs.RNN(50.0 * np.eye(3), np.ones((3, 2)), activation="linear")
    tame = gs.RNN(0.5 * np.eye(3), np.ones((3, 2)), activation="linear")
    model = tr.stack_models([tr.init_model(c, 1, rng=0) for c in (wild, tame)])
    scores = tr.evaluate(model, task, 8, rng=1)
    assert math.isnan(scores[0]) and math.isnan(tr.evaluate(model[0], task, 8, rng=1))
    assert_close(scores[1], tr.evaluate(model[1], task, 8, rng=1))


# ------------------------------------------------------------------------------------------
# clipping: each member by its own norm
def member_grads(seed, scales):
    rng = np.random.default_rng(seed)
    return {
        "a": rng.standard_normal((len(scales), 3, 2)) * np.array(scales)[:, None, None],
        "b": rng.standard_normal((len(scales), 5)) * np.array(scales)[:, None],
    }


def test_global_norm_per_member():
    grads = member_grads(0, [1.0, 1e-200, 1e200, 0.0])
    norms = tr.global_norm(grads, batch_shape=(4,))
    assert norms.shape == (4,)
    for i in range(4):
        expected = tr.global_norm({k: v[i] for k, v in grads.items()}) if i != 3 else 0.0
        assert norms[i] == pytest.approx(expected, rel=1e-15, abs=0.0)


def test_clip_by_global_norm_clips_each_member_by_its_own_norm():
    # member 0 is far above the threshold, member 1 below, member 2 near float64's limit: an
    # ensemble-wide norm would shrink member 1 by 1e6 as well; per member it stays untouched.
    grads = member_grads(1, [1e6, 1e-3, 1e300])
    clipped, before, after = tr.clip_by_global_norm(grads, 0.5, batch_shape=(3,))
    assert before.shape == after.shape == (3,)
    assert np.all(after <= 0.5)
    for key in grads:
        np.testing.assert_array_equal(clipped[key][1], grads[key][1])
    for i in range(3):
        alone, b_i, a_i = tr.clip_by_global_norm({k: v[i] for k, v in grads.items()}, 0.5)
        assert before[i] == pytest.approx(b_i, rel=1e-15)
        assert after[i] == pytest.approx(a_i, rel=1e-15)
        for key in grads:
            np.testing.assert_allclose(clipped[key][i], alone[key], rtol=1e-14)


def test_training_clips_each_member_by_its_own_norm():
    # Two copies of one network whose readouts differ by a factor 1000: their gradient norms
    # (~5 and ~5000) differ by ~1000, the threshold 100 sits between them; only the large one is
    # clipped (an ensemble-wide norm would clip both).
    task = adding_problem(5)
    cell = gs.make_cell("rnn", 3, 2, rng=0)
    base = tr.init_model(cell, 1, rng=1)
    big = base.with_params({"weight_out": base.weight_out * 1000.0})
    model = tr.stack_models([base, big])
    record = tr.train_model(model, task, n_updates=3, batch_size=4, optimizer=tr.SGD(1e-6),
                            clip_norm=100.0, rng=2)
    assert np.all(record.grad_norm_before[0] < 100.0)
    np.testing.assert_array_equal(record.grad_norm_after[0], record.grad_norm_before[0])
    assert np.all(record.grad_norm_before[1] > 100.0)
    np.testing.assert_allclose(record.grad_norm_after[1], 100.0, rtol=1e-14)
    for i, single in enumerate((base, big)):
        alone = tr.train_model(single, task, n_updates=3, batch_size=4, optimizer=tr.SGD(1e-6),
                               clip_norm=100.0, rng=2)
        assert_records_close(record[i], alone)


# ------------------------------------------------------------------------------------------
# training: member i of the run is the run of member i alone
TRAIN_CASES = {
    "adam-clip_norm": dict(optimizer=tr.Adam(0.02), clip_norm=0.3),
    "sgd-momentum-clip_value": dict(optimizer=tr.SGD(0.2, momentum=0.5), clip_value=0.05),
    "sgd-both": dict(optimizer=tr.SGD(0.1), clip_norm=0.2, clip_value=0.1),
}


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("case", TRAIN_CASES)
def test_training_an_ensemble_equals_training_each_member_alone(name, case, path):
    task = TASKS["sequence-xent"] if name == "gru" else TASKS["last-mse"]
    model = tr.init_model(ensemble(name, task.n_input, n=4), task.n_output, rng=3)
    options = dict(n_updates=30, batch_size=5, record_steps_at=[0, 17, 29], rng=4, **TRAIN_CASES[case])
    record = tr.train_model(model, task, **options)
    assert record.batch_shape == (B,)
    assert record.losses.shape == record.grad_norm_before.shape == (B, 30)
    assert record.hidden_grad_norms.shape == (B, 3, task.length + 1)
    assert record.diverged.shape == (B,) and not record.diverged.any()
    np.testing.assert_array_equal(record.diverged_at, -1)
    moved = 0.0
    for i in range(B):
        alone = tr.train_model(model[i], task, **options)
        assert_records_close(record[i], alone)
        moved = max(moved, float(np.max(np.abs(alone.model.cell.weight_hh - model[i].cell.weight_hh))))
    assert moved > 1e-3  # the runs did train: far above the tolerance


def test_per_member_batches_follow_the_spawn_rule():
    task = TASKS["last-xent"]
    model = tr.init_model(ensemble("gru", task.n_input), task.n_output, rng=5)
    options = dict(n_updates=12, batch_size=4, optimizer=tr.Adam(0.05), clip_norm=1.0, record_steps_at=[11])
    record = tr.train_model(model, task, rng=6, batches="per_member", **options)
    shared = tr.train_model(model, task, rng=6, **options)
    for i, child in enumerate(np.random.default_rng(6).spawn(B)):
        assert_records_close(record[i], tr.train_model(model[i], task, rng=child, **options))
    assert not np.allclose(record.losses[1], shared.losses[1])  # other batches than the shared ones


def test_training_a_two_dimensional_ensemble():
    task = TASKS["periodic"]
    ens = gs.stack_cells([ensemble("rnn", task.n_input, members=3, seed=s) for s in range(2)])
    model = tr.init_model(ens, task.n_output, rng=8)
    options = dict(n_updates=20, batch_size=3, optimizer=tr.Adam(0.05), clip_norm=0.5, record_steps_at=[5], rng=9)
    record = tr.train_model(model, task, **options)
    assert record.losses.shape == (2, 3, 20) and record.model.batch_shape == (2, 3)
    assert record.state_grad_norms.shape == (2, 3, 1, task.length + 1)
    for a in range(2):
        for b in range(3):
            assert_records_close(record[a, b], tr.train_model(model[a, b], task, **options))
    row = record[1]
    assert row.batch_shape == (3,) and row.losses.shape == (3, 20)


@pytest.mark.parametrize("optimizer", [tr.SGD(0.1), tr.SGD(0.05, momentum=0.9)], ids=["sgd", "momentum"])
def test_a_divergent_member_stops_alone(optimizer):
    # Member 1 is the divergent configuration of test_train.py (linear RNN, orthogonal gain 3,
    # T = 40: its gradient overflows at the second update); members 0 and 2 have gain 0.5 and
    # train on (with momentum 0.9, member 2 diverges too, at update 9). No exception and no
    # floating-point warning (warnings are errors here). With momentum, a stopped member whose
    # velocity kept moving it would fail the last check.
    task = adding_problem(40)
    cells = [gs.make_cell("rnn", 8, 2, init="orthogonal", gain=g, activation="linear", rng=0) for g in (0.5, 3.0, 0.5)]
    models = [tr.init_model(c, 1, rng=1 + i) for i, c in enumerate(cells)]
    model = tr.stack_models(models)
    options = dict(n_updates=30, batch_size=4, optimizer=optimizer, rng=2, record_steps_at=range(30))
    record = tr.train_model(model, task, **options)
    alone = [tr.train_model(m, task, **options) for m in models]
    assert [a.diverged for a in alone][:2] == [False, True]
    np.testing.assert_array_equal(record.diverged, [a.diverged for a in alone])
    np.testing.assert_array_equal(record.diverged_at, [-1 if a.diverged_at is None else a.diverged_at for a in alone])
    stop = alone[1].diverged_at
    assert stop < 29 and record.losses.shape == (3, 30)
    assert np.all(np.isnan(record.losses[1, stop + 1 :]))
    assert np.all(np.isnan(record.hidden_grad_norms[1, stop + 1 :]))
    for i in range(3):
        assert_records_close(record[i], alone[i])
    assert all(np.all(np.isfinite(p)) for p in record.model.params.values())
    # a divergent member keeps its last finite parameters
    for key, value in alone[1].model.params.items():
        assert_close(record.model.params[key][1], value, TRAIN_RTOL)


def test_a_run_where_every_member_diverges_stops_at_the_last_one():
    task = adding_problem(40)
    cells = [gs.make_cell("rnn", 8, 2, init="orthogonal", gain=g, activation="linear", rng=0) for g in (3.0, 2.5)]
    models = [tr.init_model(c, 1, rng=1) for c in cells]
    options = dict(n_updates=60, batch_size=4, optimizer=tr.SGD(0.1), rng=2)
    record = tr.train_model(tr.stack_models(models), task, **options)
    alone = [tr.train_model(m, task, **options) for m in models]
    assert record.diverged.all()
    assert record.losses.shape[1] == max(a.diverged_at for a in alone) + 1
    for i in range(2):
        assert_records_close(record[i], alone[i])


# ------------------------------------------------------------------------------------------
# errors
def test_readout_batch_must_match_the_cells():
    ens = ensemble("rnn", 2)  # batch_shape (4,), N = 3
    with pytest.raises(ValueError, match=exact(
        "`weight_out` must have shape (4, O, 3) for an ensemble of batch_shape (4,) (or (O, 3), shared by "
        "the members); got shape (3, 1, 3)."
    )):
        tr.Model(ens, np.zeros((3, 1, 3)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=exact(
        "`bias_out` must have shape (4, 1) for an ensemble of batch_shape (4,) (or (1,), shared by the "
        "members); got shape (3, 1)."
    )):
        tr.Model(ens, np.zeros((4, 1, 3)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=exact(
        "`weight_out` must have shape (*, 3) for a single network (the cell's batch_shape is ()); a "
        "readout with batch dimensions needs an ensemble cell of that batch_shape; got shape (4, 1, 3)."
    )):
        tr.Model(ens[0], np.zeros((4, 1, 3)), np.zeros(1))
    model = tr.init_model(ens, 1, rng=0)
    with pytest.raises(ValueError, match=exact(
        "`weight_out` must have shape (4, O, 3) for an ensemble of batch_shape (4,) (or (O, 3), shared by "
        "the members); got shape (2, 1, 3)."
    )):
        model.with_params({"weight_out": np.zeros((2, 1, 3))})
    with pytest.raises(TypeError, match=exact("a single-network Model has no len(); it is not an ensemble.")):
        len(model[0])
    with pytest.raises(IndexError, match=r"^ensemble index 4 is out of range for batch_shape \(4,\)\.$"):
        model[4]


def test_ensemble_batch_errors():
    model = tr.init_model(ensemble("rnn", 2), 1, rng=0)
    with pytest.raises(ValueError, match=exact(
        "`inputs` must have shape (B, L, 2), shared by the members, or (4, B, L, 2), one per member of the "
        "ensemble of batch_shape (4,); got shape (3, 5, 5, 2)."
    )):
        tr.bptt(model, np.zeros((3, 5, 5, 2)), np.zeros((5, 1)))
    with pytest.raises(ValueError, match=exact(
        "`inputs` must have shape (B, L, 2) or (4, B, L, 2) with B, L >= 1; got shape (4, 5, 5, 3)."
    )):
        tr.forward(model, np.zeros((4, 5, 5, 3)))
    with pytest.raises(ValueError, match=exact(
        "`targets` must have shape (5, 1), shared by the members, or (4, 5, 1), one per member of the "
        "ensemble of batch_shape (4,); got shape (2, 5, 1)."
    )):
        tr.bptt(model, np.zeros((5, 6, 2)), np.zeros((2, 5, 1)))
    with pytest.raises(ValueError, match=exact(
        "`targets` must have shape (5, 1), shared by the members, or (4, 5, 1), one per member; got "
        "shape (4, 5, 2)."
    )):
        tr.bptt(model, np.zeros((5, 6, 2)), np.zeros((4, 5, 2)))
    with pytest.raises(ValueError, match=r"^`targets` must be integer class indices of shape \(5,\) or \(4, 5\)"):
        tr.bptt(model, np.zeros((5, 6, 2)), np.zeros((4, 5)), loss="xent")
    with pytest.raises(ValueError, match=exact("`targets` must be class indices in [0, 1); got values in [0, 3].")):
        tr.bptt(model, np.zeros((5, 6, 2)), np.arange(4)[:, None] * np.ones((4, 5), dtype=int), loss="xent")
    with pytest.raises(ValueError, match=exact("`batches` must be one of 'shared', 'per_member'; got 'each'.")):
        tr.train_model(model, adding_problem(5), n_updates=1, batches="each")


def test_member_gradient_and_record_errors():
    grads = {"a": np.ones((3, 2)), "b": np.ones((2, 5))}
    with pytest.raises(ValueError, match=exact("`grads['b']` must have the leading batch_shape (3,); got shape (2, 5).")):
        tr.global_norm(grads, batch_shape=(3,))
    with pytest.raises(TypeError, match=exact("`batch_shape` must be a tuple of positive ints (an ensemble's); got 3.")):
        tr.clip_by_global_norm(grads, 1.0, batch_shape=3)
    with pytest.raises(TypeError, match=exact(
        "`batch_shape` must be a tuple of positive ints (an ensemble's); got (0,)."
    )):
        tr.global_norm(grads, batch_shape=(0,))
    task = adding_problem(4)
    single = tr.init_model(gs.make_cell("rnn", 3, 2, rng=0), 1, rng=0)
    record = tr.train_model(single, task, n_updates=1, batch_size=2, rng=0)
    with pytest.raises(TypeError, match=exact(
        "a single network's TrainRecord has no members; only an ensemble's can be indexed."
    )):
        record[0]


def test_stack_models_errors():
    a = tr.init_model(gs.make_cell("rnn", 3, 2, rng=0), 1, rng=0)
    with pytest.raises(ValueError, match=exact(
        "`models` must all have one n_output; item 0 has n_output=1, item 1 has n_output=2."
    )):
        tr.stack_models([a, tr.init_model(gs.make_cell("rnn", 3, 2, rng=1), 2, rng=0)])
    with pytest.raises(ValueError, match=exact(
        "the cells of `models` must all be of one kind; item 0 is RNN, item 1 is GRU."
    )):
        tr.stack_models([a, tr.init_model(gs.make_cell("gru", 3, 2, rng=1), 1, rng=0)])
    with pytest.raises(TypeError, match=exact("`models` must hold only Models; item 1 is 3.")):
        tr.stack_models([a, 3])
    with pytest.raises(TypeError, match=exact("`models` must be a sequence of Models; got a single Model.")):
        tr.stack_models(a)
    with pytest.raises(ValueError, match=exact("`models` must hold at least one Model; got an empty sequence.")):
        tr.stack_models([])
