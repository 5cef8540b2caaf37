"""BPTT training of a Model around a StackedCell: gradients against finite differences, the
readout of every layer's output, a short run on the adding problem, ensembles of stacks, and
clipping.

The readout of a stack reads its hidden part, every layer's output y^(k) = s^(k)[:N_k] in
layer order (``cell.hidden_index``, n_hidden = sum N_k entries); for an LSTM below another layer
those are not the first n_hidden entries of the state, which the LSTM+RNN stack checks.

Finite-difference tolerance (as in tests/test_modern_cells.py). A central difference with step
h has truncation error h^2 |f'''| / 6 and rounding error about eps |f| / h (eps = 2.2e-16).
Here f(t) is the loss of the model with every parameter moved by t times a random direction:
inputs and targets ~N(0, 1), weights of make_cell's default initialisation, sizes <= 5, 8
steps, so |f| is O(1) and |f'''| at most O(100) (tanh and sigmoid have bounded derivatives,
the readout is linear and the loss quadratic or a softmax): with h = 1e-5 the truncation term
is below ~2e-9 and the rounding term ~1e-11. We demand FD_TOL = 1e-7 times (1 + |reference|).
A wrong term (a layer reading the previous layer's old output, a missing cross-layer
cotangent) is an O(1) relative error. Observed: at most 1.4e-9 of (1 + scale) (lstm+rnn, mse,
along layer 1's parameters), typically 1e-10: a margin of 70. The readout of the wrong state
entries would be consistent with its own gradient; the forward test catches it (reading the
first n_hidden entries of the lstm+rnn state is off by 0.3).

Ensembles against their members are the same arithmetic in other BLAS calls: a few ulps, so
1e-12 of (1 + scale).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gradsim as gs
import gradsim.training.backprop as tr
from gradsim.training.tasks import adding_problem

FD_STEP = 1e-5
FD_TOL = 1e-7
EXACT = 1e-12


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


def _assert_close(actual, expected, what, tol=FD_TOL):
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    scale = float(np.max(np.abs(expected), initial=0.0))
    error = float(np.max(np.abs(actual - expected), initial=0.0))
    assert error <= tol * (1.0 + scale), f"{what}: error {error:.3g} at scale {scale:.3g}"


# (kind, n_hidden) of each layer; layer 0 reads I = 2 inputs
STACKS = {
    "rnn+lstm": (("rnn", 4), ("lstm", 3)),
    "gru+gru": (("gru", 3), ("gru", 4)),
    "lstm+rnn": (("lstm", 3), ("rnn", 5)),  # the hidden part is not the first n_hidden entries
}


def _stack(spec, n_input=2, seed=0, ensemble=None):
    layers, n_in = [], n_input
    for k, (kind, n) in enumerate(spec):
        layers.append(gs.make_cell(kind, n, n_in, rng=seed + k, ensemble=ensemble))
        n_in = n
    return gs.StackedCell(layers)


def _batch(rng, readout, loss, b=4, length=8, o=3):
    x = rng.standard_normal((b, length, 2))
    if loss == "mse":
        y = rng.standard_normal((b, o) if readout == "last" else (b, length, o))
    else:
        y = rng.integers(0, o, size=(b,) if readout == "last" else (b, length))
    return x, y


@pytest.mark.parametrize("stack", list(STACKS))
@pytest.mark.parametrize("readout,loss", [("last", "mse"), ("sequence", "xent")])
def test_bptt_of_a_stack_against_finite_differences(stack, readout, loss):
    cell = _stack(STACKS[stack])
    model = tr.init_model(cell, 3, rng=1)
    rng = np.random.default_rng(2)
    x, y = _batch(rng, readout, loss)
    params = model.params
    assert set(params) == set(cell.parameters()) | {"weight_out", "bias_out"}
    assert any(k.startswith("layer1.") for k in params)
    result = tr.bptt(model, x, y, readout=readout, loss=loss)
    assert set(result.grads) == set(params)
    for k, g in result.grads.items():
        assert g.shape == params[k].shape, k

    def loss_at(t, direction):
        moved = model.with_params({k: params[k] + t * direction[k] for k in direction})
        return tr.bptt(moved, x, y, readout=readout, loss=loss).loss

    # every parameter at once along a random direction, and each layer's parameters on their
    # own (a gradient that is right in sum but wrong per layer cannot pass both)
    groups = [list(params)] + [[k for k in params if k.startswith(f"layer{j}.")] for j in range(2)]
    for names in groups:
        direction = {k: rng.standard_normal(params[k].shape) for k in names}
        analytic = sum(float(np.sum(result.grads[k] * direction[k])) for k in names)
        fd = (loss_at(FD_STEP, direction) - loss_at(-FD_STEP, direction)) / (2 * FD_STEP)
        _assert_close(analytic, fd, f"{stack} {readout} {names[0]}..")


@pytest.mark.parametrize("stack", list(STACKS))
def test_the_readout_reads_every_layers_output(stack):
    cell = _stack(STACKS[stack])
    model = tr.init_model(cell, 2, rng=3)
    x = np.random.default_rng(4).standard_normal((3, 6, 2))
    # the layers run by hand: layer k reads layer k - 1's new output
    outputs = []
    inp = x
    for layer in cell.layers:
        states = gs.unroll(layer, inp)[..., 1:, :]  # (B, L, S_k)
        inp = states[..., : layer.n_hidden]
        outputs.append(inp)
    hidden = np.concatenate(outputs, axis=-1)  # (B, L, n_hidden)
    want = hidden @ model.weight_out.T + model.bias_out
    _assert_close(tr.forward(model, x, readout="sequence"), want, f"{stack} forward", tol=EXACT)
    _assert_close(tr.forward(model, x), want[:, -1], f"{stack} forward last", tol=EXACT)
    assert len(cell.hidden_index) == cell.n_hidden
    # the hidden-part gradient norm at the last step is the norm of W_out^T dL/dy
    y = np.zeros((3, 2))
    result = tr.bptt(model, x, y)
    d_out = 2.0 * want[:, -1] / want[:, -1].size
    _assert_close(result.hidden_grad_norms[-1], np.linalg.norm(d_out @ model.weight_out), f"{stack} norm",
                  tol=EXACT)


def test_with_parameters_of_a_stack():
    cell = _stack(STACKS["rnn+lstm"])
    new = np.zeros_like(cell.parameters()["layer1.weight_hh"])
    moved = cell.with_parameters({"layer1.weight_hh": new})
    assert np.array_equal(moved.layers[1].weight_hh, new)
    assert moved.layers[0] is cell.layers[0]
    for k, v in cell.parameters().items():
        if k != "layer1.weight_hh":
            assert np.array_equal(moved.parameters()[k], v)
    assert cell.with_parameters({}) is cell
    with pytest.raises(ValueError, match=r"^`mapping` has unknown parameter name\(s\) 'layer2.weight_hh' "
                                         r"for StackedCell; the known names are 'layer0.weight_hh'"):
        cell.with_parameters({"layer2.weight_hh": new})
    with pytest.raises(ValueError, match=r"^`mapping` has unknown parameter name\(s\) 'weight_h' for RNN; "
                                         r"the known names are 'weight_hh', 'weight_ih', 'bias_hh', 'bias_ih'\.$"):
        cell.layers[0].with_parameters({"weight_h": new})
    with pytest.raises(TypeError, match=r"^`mapping` must be a dict mapping parameter names"):
        cell.with_parameters([("layer0.weight_hh", new)])
    model = tr.init_model(cell, 1, rng=0)
    with pytest.raises(ValueError, match=r"^`params` must have keys among"):
        model.with_params({"weight_hh": new})


def test_a_stack_learns_the_adding_problem():
    # GRU(8) + GRU(8), T = 20, Adam(0.02), clipping at 1, 150 updates of 32 sequences (~2 s).
    # Predicting the mean scores 1/6 (the task's baseline); remembering only one of the two
    # marked values scores 1/12 at best. The first updates' losses fall from ~2 through the
    # baseline (not stationary, so their spread is no yardstick); passing needs the first 10
    # updates' mean at or above 0.8 baseline, the last 10 updates' mean plus 3 of its standard
    # errors below a tenth of the baseline, and so the held-out MSE (the run reaches ~0.003,
    # 2% of the baseline).
    task = adding_problem(20)
    cell = _stack((("gru", 8), ("gru", 8)), seed=0)
    model = tr.init_model(cell, 1, rng=0)
    record = tr.train_model(model, task, n_updates=150, batch_size=32, optimizer=tr.Adam(0.02),
                            clip_norm=1.0, rng=5)
    assert not record.diverged
    first, last = record.losses[:10], record.losses[-10:]
    assert first.mean() > 0.8 * task.baseline, first.mean()
    assert last.mean() + 3 * last.std(ddof=1) / math.sqrt(10) < 0.1 * task.baseline, last
    assert tr.evaluate(record.model, task, 2000, rng=7) < 0.1 * task.baseline
    assert np.all(record.grad_norm_after <= 1.0 * (1 + 1e-12))
    assert isinstance(record.model.cell, gs.StackedCell)


@pytest.mark.parametrize("batch_size", [4, 64])  # grouped members, and one by one (see _group_size)
def test_an_ensemble_of_stacks_equals_its_members(batch_size):
    spec = (("lstm", 3), ("gru", 4))
    cell = _stack(spec, ensemble=3)
    assert cell.batch_shape == (3,)
    model = tr.init_model(cell, 1, rng=7)
    rng = np.random.default_rng(8)
    x, y = _batch(rng, "last", "mse", b=batch_size, o=1)
    together = tr.bptt(model, x, y)
    for i in range(3):
        alone = tr.bptt(model[i], x, y)
        _assert_close(together.loss[i], alone.loss, f"member {i} loss", tol=EXACT)
        for k, g in alone.grads.items():
            _assert_close(together.grads[k][i], g, f"member {i} {k}", tol=EXACT)


def test_training_an_ensemble_of_stacks_equals_training_each_member():
    task = adding_problem(6)
    cell = _stack((("rnn", 4), ("lstm", 3)), ensemble=2)
    model = tr.init_model(cell, 1, rng=9)
    kwargs = dict(n_updates=6, batch_size=8, optimizer=tr.Adam(0.05), clip_norm=0.1, rng=10,
                  record_steps_at=[0, 5])
    record = tr.train_model(model, task, **kwargs)
    assert record.losses.shape == (2, 6)
    assert isinstance(record.model.cell, gs.StackedCell) and record.model.batch_shape == (2,)
    for i in range(2):
        alone = tr.train_model(model[i], task, **kwargs)
        _assert_close(record.losses[i], alone.losses, f"member {i} losses", tol=EXACT)
        _assert_close(record.grad_norm_after[i], alone.grad_norm_after, f"member {i} clipped", tol=EXACT)
        assert np.all(alone.grad_norm_after <= 0.1 * (1 + 1e-12))
        for k, p in alone.model.params.items():
            _assert_close(record.model.params[k][i], p, f"member {i} {k}", tol=EXACT)


def test_a_stack_ensemble_of_two_batch_dimensions():
    """with_parameters reshapes a (6,) ensemble of stacks into (2, 3) (every layer's arrays at
    once); bptt of the (2, 3) model, which runs flattened and back through with_parameters,
    equals that of the (6,) model member for member."""
    flat_cell = _stack((("lstm", 3), ("rnn", 4)), ensemble=6)
    cell = flat_cell.with_parameters(
        {k: v.reshape((2, 3) + v.shape[1:]) for k, v in flat_cell.parameters().items()}
    )
    assert cell.batch_shape == (2, 3) and all(layer.batch_shape == (2, 3) for layer in cell.layers)
    flat = tr.init_model(flat_cell, 1, rng=11)
    model = tr.Model(cell, flat.weight_out.reshape(2, 3, 1, -1), flat.bias_out.reshape(2, 3, 1))
    x, y = _batch(np.random.default_rng(12), "last", "mse", o=1)
    got, want = tr.bptt(model, x, y), tr.bptt(flat, x, y)
    _assert_close(got.loss.reshape(6), want.loss, "loss", tol=EXACT)
    for k, g in want.grads.items():
        assert got.grads[k].shape == (2, 3) + g.shape[1:], k
        _assert_close(got.grads[k].reshape(g.shape), g, k, tol=EXACT)
