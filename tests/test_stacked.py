"""Tests of StackedCell (layers composed in depth) and of importing and analysing multi-layer
torch networks.

Tolerances.
- Against torch (float64): torch and gradsim evaluate the same expressions in another order
  (fused gate matmuls, another tanh/sigmoid); differences are a few ulps of O(1) numbers per
  step, compounding over 3 layers and 30 contracting-to-marginal steps: 1e-12 absolute.
- Dense vs operator vs VJP: the same sums of products of O(1) numbers in another order, so
  a few ulps times the number of terms: 1e-12 relative to the largest entry.
- Central finite differences with step h = 1e-5: truncation h^2 |f'''| / 6 ~ 1e-11 and rounding
  eps |f| / h ~ 2e-11 for O(1) states and weights; 1e-7 relative to ||J|| (the test_cells.py
  convention) leaves four orders of margin, while a missing or transposed block is an O(1) error.
- Lyapunov sum: the QR's log|R_ii| sum telescopes to log|det| of the same Jacobians; the two
  differ by rounding of ~1e-15 per step, averaged: 1e-8 is the brief's bound, loose by far.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

import gradsim as gs
from gradsim import interop
from gradsim.cells.stacked import StackedCell
from gradsim.interop.analysis import add_arguments, analyze, run
from gradsim.workflow.runner import UsageError

I, N, T = 3, 5, 30
FD_STEP = 1e-5
FD_RTOL = 1e-7
TIGHT = 1e-12


def _rng_weights(rng, gates, n, n_in, gain=1.2):
    return dict(
        weight_hh=gain * rng.standard_normal((gates * n, n)) / np.sqrt(n),
        weight_ih=rng.standard_normal((gates * n, n_in)) / np.sqrt(max(n_in, 1)),
        bias_hh=0.1 * rng.standard_normal(gates * n),
        bias_ih=0.1 * rng.standard_normal(gates * n),
    )


def mixed_stack(seed=0):
    """Every input-Jacobian branch: GRU reset_before, LSTM, residual RNN, GRU chung, GRU torch,
    relu RNN (sizes 3 -> 4 -> 5 -> 3 -> 4 -> 2 -> 4)."""
    rng = np.random.default_rng(seed)
    return StackedCell((
        gs.GRU(variant="reset_before", **_rng_weights(rng, 3, 4, I)),
        gs.LSTM(**_rng_weights(rng, 4, 5, 4)),
        gs.ResidualRNN(activation="tanh", alpha=0.7, **_rng_weights(rng, 1, 3, 5)),
        gs.GRU(variant="chung", **_rng_weights(rng, 3, 4, 3)),
        gs.GRU(variant="torch", **_rng_weights(rng, 3, 2, 4)),
        gs.RNN(activation="relu", **_rng_weights(rng, 1, 4, 2)),
    ))


def torch_stack(torch, kind, layers=3, seed=0, nonlinearity="tanh"):
    torch.manual_seed(seed)
    if kind == "rnn":
        module = torch.nn.RNN(I, N, num_layers=layers, nonlinearity=nonlinearity)
    else:
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](I, N, num_layers=layers)
    module = module.double()
    with torch.no_grad():  # weights larger than torch's U(-1/sqrt N, 1/sqrt N): not saturated, not decayed
        for name, p in module.named_parameters():
            p.mul_(2.0)
    return module


def _point(cell, seed):
    rng = np.random.default_rng(seed)
    return 0.5 * rng.standard_normal(cell.state_size), rng.standard_normal(cell.n_input)


def _fd_jacobian(cell, s, x):
    cols = [(cell.step(s + FD_STEP * e, x) - cell.step(s - FD_STEP * e, x)) / (2 * FD_STEP)
            for e in np.eye(cell.state_size)]
    return np.stack(cols, axis=-1)


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


# ------------------------------------------------------------------------------------------
# forward against torch
@pytest.mark.parametrize("kind, nonlinearity", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)])
def test_forward_matches_torch_three_layers(kind, nonlinearity):
    torch = pytest.importorskip("torch")
    module = torch_stack(torch, kind, nonlinearity=nonlinearity or "tanh")
    cell = interop.from_torch(module)
    assert isinstance(cell, StackedCell) and len(cell.layers) == 3
    inputs = np.random.default_rng(1).standard_normal((T, I))
    states = gs.unroll(cell, inputs)
    with torch.no_grad():
        out, hidden = module(torch.from_numpy(inputs))
    o = cell._offsets
    top = states[1:, o[2] : o[2] + N]
    np.testing.assert_allclose(top, out.numpy(), rtol=0, atol=TIGHT)
    h_n = hidden[0] if kind == "lstm" else hidden
    for k in range(3):
        layer_state = states[-1, o[k] : o[k + 1]]
        np.testing.assert_allclose(layer_state[:N], h_n[k].numpy(), rtol=0, atol=TIGHT)
        if kind == "lstm":
            np.testing.assert_allclose(layer_state[N:], hidden[1][k].numpy(), rtol=0, atol=TIGHT)
    assert np.max(np.abs(out.numpy())) > 0.1  # not a trivially zero comparison


def test_from_torch_layer_argument_and_one_layer_modules():
    torch = pytest.importorskip("torch")
    module = torch_stack(torch, "gru")
    stack = interop.from_torch(module)
    one = interop.from_torch(module, layer=2)
    assert isinstance(one, gs.GRU)
    np.testing.assert_array_equal(one.weight_hh, stack.layers[2].weight_hh)
    np.testing.assert_array_equal(one.weight_ih, module.weight_ih_l2.detach().numpy())
    assert isinstance(interop.from_torch(torch_stack(torch, "lstm", layers=1)), gs.LSTM)
    assert isinstance(interop.from_torch(module.state_dict()), StackedCell)
    # Parameter names of the stack.
    assert list(stack.parameters())[:5] == ["layer0.weight_hh", "layer0.weight_ih", "layer0.bias_hh",
                                            "layer0.bias_ih", "layer1.weight_hh"]
    # Round trip: the stack's state dict loads into a fresh module (strict names) exactly.
    fresh = torch.nn.GRU(I, N, num_layers=3).double()
    fresh.load_state_dict(interop.to_state_dict(stack, as_torch=True))
    for name, value in module.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
    with pytest.raises(ValueError, match="`layer` must be 0 and `reverse` False for a StackedCell"):
        interop.to_state_dict(stack, layer=1)
    bidirectional = torch.nn.LSTM(I, N, num_layers=2, bidirectional=True).double()
    with pytest.raises(ValueError, match=r"`layer` must be given for the bidirectional multi-layer"):
        interop.from_torch(bidirectional)
    assert isinstance(interop.from_torch(bidirectional, layer=1, reverse=True), gs.LSTM)


# ------------------------------------------------------------------------------------------
# derivatives
@pytest.mark.parametrize("seed", [0, 1])
def test_jacobian_operator_and_vjp(seed):
    cell = mixed_stack(seed)
    s, x = _point(cell, seed + 10)
    jac = cell.jacobian(s, x)
    assert jac.shape == (cell.state_size, cell.state_size)
    assert _rel(jac, _fd_jacobian(cell, s, x)) < FD_RTOL
    o = cell._offsets
    # Block lower-triangular, diagonal blocks the layers' own Jacobians.
    for k, layer in enumerate(cell.layers):
        assert np.all(jac[o[k] : o[k + 1], o[k + 1] :] == 0)
        s_k = s[o[k] : o[k + 1]]
        x_k = x if k == 0 else cell.step(s, x)[o[k - 1] : o[k - 1] + cell.layers[k - 1].n_hidden]
        np.testing.assert_allclose(jac[o[k] : o[k + 1], o[k] : o[k + 1]], layer.jacobian(s_k, x_k),
                                   rtol=0, atol=TIGHT)
    assert np.max(np.abs(jac[o[1] :, : o[1]])) > 0.01  # the below-diagonal blocks are exercised
    frame = np.random.default_rng(seed).standard_normal((cell.state_size, 4))
    new, op = cell._jacobian_operator(s, x, "full")
    np.testing.assert_array_equal(new, cell.step(s, x))
    assert not isinstance(op, np.ndarray)
    assert _rel(op @ frame, jac @ frame) < TIGHT
    v = np.random.default_rng(seed + 1).standard_normal(cell.state_size)
    assert _rel(cell.vjp(s, x, v), v @ jac) < TIGHT
    # Batched states and inputs.
    ss = np.stack([s, 0.5 * s]), np.stack([x, -x])
    jacs = cell.jacobian(*ss)
    assert _rel(jacs[1], cell.jacobian(ss[0][1], ss[1][1])) < TIGHT
    vs = np.stack([v, 2 * v])
    assert _rel(cell.vjp(*ss, vs)[1], 2 * v @ jacs[1]) < TIGHT


def test_param_vjp_and_param_jvp_match_finite_differences():
    cell = mixed_stack(3)
    s, x = _point(cell, 4)
    rng = np.random.default_rng(5)
    v = rng.standard_normal(cell.state_size)
    grads = cell.param_vjp(s, x, v)
    params = cell.parameters()
    assert list(grads) == list(params)
    tangent = {name: rng.standard_normal(p.shape) for name, p in params.items()}

    def moved(eps):
        layers = []
        for k, layer in enumerate(cell.layers):
            own = {n: p + eps * tangent[f"layer{k}.{n}"] for n, p in layer.parameters().items()}
            layers.append(type(layer)(**own, **layer.options()))
        return StackedCell(tuple(layers)).step(s, x)

    fd = (moved(FD_STEP) - moved(-FD_STEP)) / (2 * FD_STEP)
    jvp = cell.param_jvp(s, x, tangent)
    assert _rel(jvp, fd) < FD_RTOL
    adjoint = sum(np.sum(grads[n] * tangent[n]) for n in params)
    # param_vjp against the finite difference of v . step along the tangent (measured 6e-10).
    assert abs(adjoint - np.sum(v * fd)) < FD_RTOL * np.sum(np.abs(v * fd))
    assert abs(np.sum(v * jvp) - adjoint) < TIGHT * np.sum(np.abs(v * jvp)) * 10
    # One parameter of a deep layer, per entry, against the finite difference of v . step.
    name = "layer3.weight_hh"
    for index in [(0, 0), (5, 2), (11, 3)]:
        single = {name: np.zeros(params[name].shape)}
        single[name][index] = 1.0
        assert abs(np.sum(v * cell.param_jvp(s, x, single)) - grads[name][index]) < 1e-12
    with pytest.raises(ValueError, match=r"unknown parameter name\(s\) 'weight_hh'"):
        cell.param_jvp(s, x, {"weight_hh": np.zeros((12, 4))})


def test_lyapunov_sum_equals_layers_log_determinants():
    torch = pytest.importorskip("torch")
    cell = interop.from_torch(torch_stack(torch, "lstm", seed=2))
    inputs = np.random.default_rng(6).standard_normal((60, I))
    spectrum = gs.lyapunov_spectrum(cell, inputs)
    states = gs.unroll(cell, inputs)
    o = cell._offsets
    total = 0.0
    for t in range(len(inputs)):
        layer_in = inputs[t]
        for k, layer in enumerate(cell.layers):
            block = layer.jacobian(states[t, o[k] : o[k + 1]], layer_in)
            total += np.linalg.slogdet(block)[1]
            layer_in = states[t + 1, o[k] : o[k] + layer.n_hidden]
    assert abs(spectrum.exponents.sum() - total / len(inputs)) < 1e-8
    assert spectrum.exponents.shape == (cell.state_size,)


def test_ensemble_of_stacks_equals_its_members():
    members = [mixed_stack(seed) for seed in (7, 8)]
    ensemble = StackedCell(tuple(gs.stack_cells([m.layers[k] for m in members])
                                 for k in range(len(members[0].layers))))
    assert ensemble.batch_shape == (2,)
    s, x = _point(members[0], 9)
    np.testing.assert_array_equal(ensemble.jacobian(s, x)[1], members[1].jacobian(s, x))
    assert isinstance(ensemble[0], StackedCell)
    inputs = np.random.default_rng(10).standard_normal((20, I))
    both = gs.lyapunov_spectrum(ensemble, inputs).exponents
    one = gs.lyapunov_spectrum(members[1], inputs).exponents
    np.testing.assert_allclose(both[1], one, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------------------
# bad input
def test_bad_layers_are_refused():
    rng = np.random.default_rng(0)
    a = gs.RNN(**_rng_weights(rng, 1, 4, I))
    b = gs.LSTM(**_rng_weights(rng, 4, 5, 3))
    with pytest.raises(ValueError, match=r"`layers\[1\]` must have n_input = 4, the output size "
                                         r"\(n_hidden\) of layers\[0\]; got n_input=3\."):
        StackedCell((a, b))
    with pytest.raises(ValueError, match="`layers` must hold at least one cell"):
        StackedCell(())
    with pytest.raises(TypeError, match="`layers` must be a sequence of cells"):
        StackedCell(a)
    with pytest.raises(TypeError, match=r"`layers\[1\]` must be one of RNN, ResidualRNN, LSTM, GRU"):
        StackedCell((a, gs.LeakyRNN(weight_hh=np.eye(3), weight_ih=np.ones((3, 4)))))
    pair = gs.stack_cells([a, a])
    with pytest.raises(ValueError, match=r"`layers\[1\]` must have the ensemble batch_shape \(2,\)"):
        StackedCell((pair, gs.RNN(**_rng_weights(rng, 1, 4, 4))))
    with pytest.raises(TypeError, match="a single StackedCell has no members"):
        StackedCell((a,))[0]


# ------------------------------------------------------------------------------------------
# gradsim analyze of a whole network
def test_analyze_two_layer_torch_model(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    module = torch_stack(torch, "gru", layers=2, seed=3)
    weights = tmp_path / "net.pt"
    torch.save(module.state_dict(), weights)
    inputs = np.random.default_rng(11).standard_normal((40, I))
    np.save(tmp_path / "x.npy", inputs)
    result = analyze(weights, inputs_file=tmp_path / "x.npy", out=tmp_path / "out")
    assert result.csv_path == tmp_path / "out" / "analyze-net-layers0-1.csv"
    assert isinstance(result.cell, StackedCell)
    meta = json.loads(result.meta_path.read_text())
    assert meta["cell"] == "StackedCell" and meta["layer"] is None
    assert meta["layers"] == ["GRU", "GRU"] and meta["state_size"] == 2 * N
    frame = result.frame
    assert set(frame.path) == {"full"}
    spectrum = gs.lyapunov_spectrum(interop.from_torch(module), inputs)
    ly = frame[frame.quantity == "lyapunov_exponent"].value.to_numpy()
    np.testing.assert_array_equal(ly, spectrum.exponents)
    assert len(ly) == 2 * N
    # --layer K still reads one layer.
    one = analyze(weights, layer=1, steps=20, out=tmp_path / "out")
    assert one.csv_path.name == "analyze-net-layer1.csv" and isinstance(one.cell, gs.GRU)
    # The command line, end to end: the whole network by default, one layer with --layer.
    parser = argparse.ArgumentParser(prog="gradsim analyze")
    add_arguments(parser)
    assert run(parser.parse_args([str(weights), "--steps", "25", "--out", str(tmp_path / "cli")])) == 0
    printed = capsys.readouterr().out
    assert "analyze-net-layers0-1.csv" in printed and "2-layer stack of GRU (torch), GRU (torch)" in printed
    frame = pd.read_csv(tmp_path / "cli" / "analyze-net-layers0-1.csv")
    assert (frame.quantity == "lyapunov_exponent").sum() == 2 * N
    assert frame[frame.quantity == "log_gradient_norm"].t.max() == 25
    assert run(parser.parse_args([str(weights), "--layer", "0", "--steps", "25",
                                  "--out", str(tmp_path / "cli")])) == 0
    frame = pd.read_csv(tmp_path / "cli" / "analyze-net-layer0.csv")
    assert set(frame.path) == {"full", "direct"}  # one GRU layer: its two paths
    assert ((frame.quantity == "lyapunov_exponent") & (frame.path == "full")).sum() == N
    with pytest.raises(UsageError, match=r"`layer` must be one of the layers in net.pt \(0, 1\); got 2"):
        run(parser.parse_args([str(weights), "--layer", "2", "--out", str(tmp_path / "cli")]))
