"""Tests of weight import and export (gradsim.interop) and of ``gradsim analyze``.

PyTorch tests compare against torch itself (``pytest.importorskip("torch")`` in each of them, so
the rest runs without torch): forward states of ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` over 50
steps, one-step and 50-step Jacobians from ``torch.func.jacrev``, exact round trips. Keras tests
need no Keras: the Keras equations are written out below in numpy, from the Keras docs and
source (keras/src/layers/rnn/{simple_rnn,lstm,gru}.py), and compared with the imported cell.

Tolerances. Both sides evaluate the same float64 expressions in a different order (BLAS
blocking, fused kernels, sigmoid as 1/(1+e^-x) vs scipy's expit): each step differs by a few
ulps of O(1) numbers, ~1e-15. Over 50 steps of a recurrence with one-step Jacobians of norm
about 1 (weights N(0, 1/N), the edge of chaos) these differences are carried, not amplified
much, so 1e-12 leaves a factor ~100 of margin; a wrong gate order or a missing transpose gives
O(1) errors. Jacobians and their products are compared relative to their largest entry: the
rounding of a product of T matrices is ~T N eps ~ 1e-13 of its norm, and a wrong Jacobian is
wrong at that scale whatever the scale is. The Keras reference is a direct transcription evaluated on O(1) numbers: 1e-14 (a few
ulps), as the cells' own reimplementation tests (tests/test_cells.py, REF_TOL).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import expit

import gradsim as gs
from gradsim import interop
from gradsim.interop.analysis import add_arguments, analyze, read_inputs, run
from gradsim.workflow.runner import UsageError

TORCH_TOL = 1e-12
REF_TOL = 1e-14
N, I, T = 7, 3, 50
TORCH_KINDS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)]


# ------------------------------------------------------------------------------------------
# helpers
def random_state_dict(kind, n=N, n_in=I, layers=(0,), reverse=False, rng=0, bias=True):
    """A numpy state dict with PyTorch's names: recurrent weights N(0, 1.5^2 / n) (a little past
    the edge of chaos, so that the products neither vanish nor saturate over 50 steps), input
    weights N(0, 0.5^2 / I), biases N(0, 0.1^2)."""
    rng = np.random.default_rng(rng)
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    out = {}
    for layer in layers:
        for sfx in [""] + (["_reverse"] if reverse else []):
            s = f"_l{layer}{sfx}"
            width = n_in if layer == 0 else n * (2 if reverse else 1)
            out["weight_ih" + s] = 0.5 * rng.standard_normal((gates * n, width)) / np.sqrt(width)
            out["weight_hh" + s] = 1.5 * rng.standard_normal((gates * n, n)) / np.sqrt(n)
            if bias:
                out["bias_ih" + s] = 0.1 * rng.standard_normal(gates * n)
                out["bias_hh" + s] = 0.1 * rng.standard_normal(gates * n)
    return out


def torch_module(torch, kind, nonlinearity=None, layers=1, bidirectional=False, rng=0, bias=True,
                 dtype=None):
    """A float64 torch module holding random_state_dict's weights (no gradients on them)."""
    dtype = dtype or torch.float64
    if kind == "rnn":
        module = torch.nn.RNN(I, N, num_layers=layers, nonlinearity=nonlinearity,
                              bidirectional=bidirectional, bias=bias)
    else:
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
        module = cls(I, N, num_layers=layers, bidirectional=bidirectional, bias=bias)
    module = module.to(dtype)
    sd = random_state_dict(kind, layers=range(layers), reverse=bidirectional, rng=rng, bias=bias)
    module.load_state_dict({k: torch.from_numpy(v).to(dtype) for k, v in sd.items()})
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def torch_step_fn(torch, module, kind, inputs):
    """s0 (S,) -> s_T (S,) of a one-layer module over ``inputs`` (T, I); S = 2N for the LSTM."""
    x = torch.as_tensor(inputs)

    def f(s0):
        if kind == "lstm":
            _, (h, c) = module(x, (s0[None, :N], s0[None, N:]))
            return torch.cat([h[0], c[0]])
        return module(x, s0[None])[1][0]

    return f


def max_rel(a, b):
    """Largest difference relative to the largest entry of the reference b."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ------------------------------------------------------------------------------------------
# PyTorch: forward states and Jacobians against torch
@pytest.mark.parametrize("kind, nonlinearity", TORCH_KINDS)
def test_forward_states_match_torch(kind, nonlinearity):
    torch = pytest.importorskip("torch")
    module = torch_module(torch, kind, nonlinearity)
    cell = interop.from_torch(module)
    assert cell.n_hidden == N and cell.n_input == I
    if kind == "rnn":
        assert cell.activation == nonlinearity
    rng = np.random.default_rng(1)
    inputs = rng.standard_normal((T, I))
    s0 = 0.5 * rng.standard_normal(cell.state_size)
    states = gs.unroll(cell, inputs, s0)
    x = torch.as_tensor(inputs)
    if kind == "lstm":
        out, (h, c) = module(x, (torch.as_tensor(s0[None, :N]), torch.as_tensor(s0[None, N:])))
        np.testing.assert_allclose(states[-1, N:], c[0].numpy(), rtol=0, atol=TORCH_TOL)
    else:
        out, _ = module(x, torch.as_tensor(s0[None]))
    # out[t] is h_{t+1}: every one of the 50 hidden states, not only the last. ReLU states grow
    # (to ~1e3 here), so the tolerance is relative to the largest state.
    scale = max(1.0, float(np.max(np.abs(states))))
    np.testing.assert_allclose(states[1:, :N], out.numpy(), rtol=0, atol=TORCH_TOL * scale)
    assert np.max(np.abs(np.diff(states[:, :N], axis=0))) > 0.1  # the dynamics are not trivial


@pytest.mark.parametrize("kind, nonlinearity", TORCH_KINDS)
def test_jacobians_match_torch_jacrev(kind, nonlinearity):
    torch = pytest.importorskip("torch")
    module = torch_module(torch, kind, nonlinearity, rng=2)
    cell = interop.from_torch(module)
    rng = np.random.default_rng(3)
    inputs = rng.standard_normal((T, I))
    s0 = 0.5 * rng.standard_normal(cell.state_size)
    states = gs.unroll(cell, inputs, s0)
    # One-step Jacobians at several states along the trajectory.
    for t in (0, 1, 17, T - 1):
        f = torch_step_fn(torch, module, kind, inputs[t : t + 1])
        ref = torch.func.jacrev(f)(torch.as_tensor(states[t])).numpy()
        assert max_rel(cell.jacobian(states[t], inputs[t]), ref) < TORCH_TOL
    # The 50-step product d s_T / d s_0.
    ref = torch.func.jacrev(torch_step_fn(torch, module, kind, inputs))(torch.as_tensor(s0)).numpy()
    log_scale, matrix = gs.jacobian_product(cell, inputs, s0)
    product = np.exp(log_scale) * matrix
    assert max_rel(product, ref) < TORCH_TOL
    assert np.max(np.abs(ref)) > 1e-100  # decayed (to 1e-7 .. 1e-10 here), but not to zero


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_two_layer_bidirectional_network_matches_torch(kind):
    """Every (layer, direction) cell, chained as torch chains them, gives torch's outputs."""
    torch = pytest.importorskip("torch")
    module = torch_module(torch, kind, "tanh" if kind == "rnn" else None, layers=2,
                          bidirectional=True, rng=4)
    inputs = np.random.default_rng(5).standard_normal((20, I))
    layer_in = inputs
    for layer in range(2):
        forward = gs.unroll(interop.from_torch(module, layer), layer_in)[1:, :N]
        backward = gs.unroll(interop.from_torch(module, layer, reverse=True), layer_in[::-1])[1:, :N]
        layer_in = np.concatenate([forward, backward[::-1]], axis=1)
    out, _ = module(torch.as_tensor(inputs))
    np.testing.assert_allclose(layer_in, out.numpy(), rtol=0, atol=TORCH_TOL)


@pytest.mark.parametrize("kind, nonlinearity", TORCH_KINDS)
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
def test_round_trip_torch_gradsim_torch_is_exact(kind, nonlinearity, dtype_name):
    torch = pytest.importorskip("torch")
    dtype = getattr(torch, dtype_name)
    module = torch_module(torch, kind, nonlinearity, layers=2, bidirectional=True, rng=6, dtype=dtype)
    rebuilt = {}
    for layer in range(2):
        for reverse in (False, True):
            cell = interop.from_torch(module, layer, reverse)
            rebuilt.update(interop.to_state_dict(cell, layer, reverse, as_torch=True))
    fresh = torch_module(torch, kind, nonlinearity, layers=2, bidirectional=True, rng=99, dtype=dtype)
    fresh.load_state_dict(rebuilt)  # strict: exactly the same names
    for name, value in module.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
        assert rebuilt[name].dtype == torch.float64


def test_round_trip_without_bias_and_torch_cells():
    torch = pytest.importorskip("torch")
    module = torch_module(torch, "gru", bias=False, rng=7)
    cell = interop.from_torch(module)
    assert not np.any(cell.bias_ih) and not np.any(cell.bias_hh)
    sd = interop.to_state_dict(cell, bias=False, as_torch=True, dtype=torch.float64)
    assert set(sd) == set(module.state_dict())
    # nn.LSTMCell / RNNCell: tensors without a layer suffix.
    lstm_cell = torch.nn.LSTMCell(I, N).double()
    cell = interop.from_torch(lstm_cell)
    np.testing.assert_array_equal(cell.weight_hh, lstm_cell.weight_hh.detach().numpy())
    assert interop.from_torch(torch.nn.RNNCell(I, N, nonlinearity="relu")).activation == "relu"
    with pytest.raises(ValueError, match="`layer` must be 0 and `reverse` False for a single cell"):
        interop.from_torch(lstm_cell, layer=1)


def test_nonlinearity_from_module_and_from_state_dict():
    torch = pytest.importorskip("torch")
    module = torch_module(torch, "rnn", "relu")
    assert interop.from_torch(module).activation == "relu"
    # A state dict does not record it: tanh (PyTorch's default) unless told.
    assert interop.from_torch(module.state_dict()).activation == "tanh"
    assert interop.from_torch(module.state_dict(), nonlinearity="relu").activation == "relu"
    with pytest.raises(ValueError, match=r"`nonlinearity` must match the module's \('relu'\)"):
        interop.from_torch(module, nonlinearity="tanh")
    with pytest.raises(ValueError, match="`nonlinearity` applies to RNN layers only"):
        interop.from_torch(torch_module(torch, "lstm"), nonlinearity="relu")


def test_module_inside_a_model_and_prefixes():
    torch = pytest.importorskip("torch")

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.GRU(I, N)
            self.decoder = torch.nn.RNN(N, 5, nonlinearity="relu")
            self.head = torch.nn.Linear(5, 1)

    model = Model()
    with pytest.raises(ValueError, match=r"`prefix` must be given: .* \('decoder', 'encoder'\)"):
        interop.from_torch(model)
    decoder = interop.from_torch(model, prefix="decoder")
    assert decoder.activation == "relu" and decoder.n_input == N  # module's nonlinearity found
    assert isinstance(interop.from_torch(model.state_dict(), prefix="encoder."), gs.GRU)
    with pytest.raises(ValueError, match=r"`prefix` must name a recurrent module .*; got 'head'"):
        interop.from_torch(model, prefix="head")


def test_proj_size_lstm_is_refused_with_the_reason():
    torch = pytest.importorskip("torch")
    module = torch.nn.LSTM(I, N, proj_size=3)
    with pytest.raises(ValueError, match=r"proj_size > 0 are not supported: .*smaller space.*"
                                         r"`weight_hr_l0` of shape \(3, 7\)"):
        interop.from_torch(module)
    with pytest.raises(ValueError, match="proj_size > 0 are not supported"):
        interop.from_torch(module.state_dict())


def test_pt_files(tmp_path):
    torch = pytest.importorskip("torch")
    module = torch_module(torch, "lstm", layers=2, rng=8)
    path = tmp_path / "net.pt"
    torch.save(module.state_dict(), path)
    cell = interop.load_torch(path, layer=1)
    np.testing.assert_array_equal(cell.weight_ih, module.weight_ih_l1.numpy())
    # A checkpoint nesting the state dict next to other things.
    torch.save({"model": module.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    np.testing.assert_array_equal(interop.load_torch(tmp_path / "ckpt.pt", 1).weight_hh,
                                  module.weight_hh_l1.numpy())
    # A pickled module: torch.load(weights_only=True) refuses to run its pickle.
    torch.save(module, tmp_path / "whole.pt")
    with pytest.raises(ValueError, match=r"weights_only=True.*save module.state_dict\(\) instead"):
        interop.load_torch(tmp_path / "whole.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ValueError, match="tensor.pt is not a recurrent layer: it holds Tensor"):
        interop.load_torch(tmp_path / "tensor.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pt cannot be read by torch.load"):
        interop.load_torch(tmp_path / "junk.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "linear.pt")
    with pytest.raises(ValueError, match=r"linear.pt is not a recurrent layer: .*fc.weight"):
        interop.load_torch(tmp_path / "linear.pt")


# ------------------------------------------------------------------------------------------
# PyTorch names in .npz files: no torch needed
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_npz_with_torch_names(tmp_path, kind):
    sd = random_state_dict(kind, layers=(0, 1), reverse=True, rng=10)
    path = tmp_path / "w.npz"
    np.savez(path, **sd)
    cell = interop.load_torch(path, layer=1, reverse=True)
    assert type(cell) is {"rnn": gs.RNN, "lstm": gs.LSTM, "gru": gs.GRU}[kind]
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        np.testing.assert_array_equal(getattr(cell, name), sd[f"{name}_l1_reverse"])
    # Export gives the same names and values back.
    exported = interop.to_state_dict(cell, 1, True)
    assert exported.keys() == {k for k in sd if k.endswith("_l1_reverse")}
    for key, value in exported.items():
        np.testing.assert_array_equal(value, sd[key])
        assert value.flags.writeable


def test_npz_errors_name_the_tensor_and_shapes(tmp_path):
    def load(sd, **kw):
        path = tmp_path / "bad.npz"
        np.savez(path, **sd)
        return interop.load_torch(path, **kw)

    good = random_state_dict("lstm", layers=(0, 1))
    with pytest.raises(ValueError, match=r"bad.npz is not a recurrent layer: it has no `weight_hh_l<k>`"
                                         r".*; it has bias, weight"):
        load({"weight": np.zeros((2, 2)), "bias": np.zeros(2)})
    sd = dict(good)
    del sd["weight_ih_l0"]
    with pytest.raises(ValueError, match=r"missing the tensor `weight_ih_l0` .* \(shape \(28, I\)\)"):
        load(sd)
    sd = dict(good, weight_ih_l0=np.zeros((27, I)))
    with pytest.raises(ValueError, match=r"`weight_ih_l0` must have shape \(28, I\) to match "
                                         r"`weight_hh_l0` of shape \(28, 7\); got shape \(27, 3\)\."):
        load(sd)
    sd = dict(good, bias_hh_l0=np.zeros(27))
    with pytest.raises(ValueError, match=r"`bias_hh_l0` must have shape \(28,\) .*; got shape \(27,\)\."):
        load(sd)
    sd = dict(good)
    del sd["bias_hh_l1"]
    with pytest.raises(ValueError, match=r"missing the tensor `bias_hh_l1` \(shape \(28,\)\)"):
        load(sd, layer=1)
    sd = dict(good, weight_hh_l0=np.zeros((35, 7)))
    with pytest.raises(ValueError, match=r"`weight_hh_l0` must have shape \(G N, N\) with G = 1 \(RNN\), "
                                         r"3 \(GRU\) or 4 \(LSTM\); got shape \(35, 7\)\."):
        load(sd)
    with pytest.raises(ValueError, match=r"`layer` must be one of the layers in bad.npz \(0, 1\); got 2\."):
        load(good, layer=2)
    with pytest.raises(ValueError, match=r"`reverse` must be False: .*no `weight_hh_l0_reverse`"):
        load(good, reverse=True)
    with pytest.raises(ValueError, match="`weight_hh_l0` must contain only finite values"):
        load(dict(good, weight_hh_l0=np.full((28, 7), np.nan)))
    with pytest.raises(ValueError, match=r"proj_size > 0 are not supported: .*`weight_hr_l0`"):
        load(dict(good, weight_hr_l0=np.zeros((3, 7))))
    with pytest.raises(ValueError, match="`nonlinearity` must be one of 'tanh', 'relu'; got 'gelu'"):
        load(random_state_dict("rnn"), nonlinearity="gelu")
    with pytest.raises(FileNotFoundError, match="no weights file at"):
        interop.load_torch(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="`source` must be a torch.nn.Module or a state dict"):
        interop.from_torch([1, 2])


def test_export_refuses_cells_torch_cannot_run():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 4))
    with pytest.raises(ValueError, match="torch.nn has no ResidualRNN"):
        interop.to_state_dict(gs.ResidualRNN(w))
    with pytest.raises(ValueError, match=r"activation 'tanh' or 'relu' .*; got activation='linear'"):
        interop.to_state_dict(gs.RNN(w, activation="linear"))
    gru = gs.make_cell("gru", 4, variant="reset_before", rng=0)
    with pytest.raises(ValueError, match="variant='torch' to export .*; got variant='reset_before'"):
        interop.to_state_dict(gru)
    with pytest.raises(ValueError, match="`bias` must be True for a cell with non-zero biases"):
        interop.to_state_dict(gs.RNN(w, bias_hh=np.ones(4)), bias=False)
    with pytest.raises(TypeError, match="`cell` must be a gradsim Cell"):
        interop.to_state_dict(w)


def test_core_does_not_import_torch():
    code = ("import sys, gradsim, gradsim.interop, gradsim.interop.analysis, gradsim.bench.vs_torch; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------
# Keras: the equations, written out in numpy (row vectors, as Keras computes)
def keras_simple_rnn(x, h, kernel, rec, bias, act):
    b = 0.0 if bias is None else bias
    return act(x @ kernel + h @ rec + b)


def keras_lstm(x, h, c, kernel, rec, bias):
    u = rec.shape[0]
    z = x @ kernel + h @ rec + (0.0 if bias is None else bias)
    i, f = expit(z[:, :u]), expit(z[:, u : 2 * u])
    c_new = f * c + i * np.tanh(z[:, 2 * u : 3 * u])
    o = expit(z[:, 3 * u :])
    return o * np.tanh(c_new), c_new


def keras_gru(x, h, kernel, rec, bias, reset_after):
    u = rec.shape[0]
    if bias is None:
        in_b, rec_b = np.zeros(3 * u), np.zeros(3 * u)
    elif reset_after:
        in_b, rec_b = bias[0], bias[1]
    else:
        in_b, rec_b = bias, np.zeros(3 * u)  # reset_before: the bias is on the input side only
    mx = x @ kernel + in_b
    x_z, x_r, x_h = mx[:, :u], mx[:, u : 2 * u], mx[:, 2 * u :]
    z = expit(x_z + h @ rec[:, :u] + rec_b[:u])
    r = expit(x_r + h @ rec[:, u : 2 * u] + rec_b[u : 2 * u])
    if reset_after:
        rec_h = r * (h @ rec[:, 2 * u :] + rec_b[2 * u :])
    else:
        rec_h = (r * h) @ rec[:, 2 * u :]
    hh = np.tanh(x_h + rec_h)
    return z * h + (1 - z) * hh


def keras_weights(gates, units=5, n_in=3, rng=0, bias_shape="flat"):
    rng = np.random.default_rng(rng)
    kernel = rng.standard_normal((n_in, gates * units))
    rec = rng.standard_normal((units, gates * units)) / np.sqrt(units)
    if bias_shape is None:
        return kernel, rec, None
    shape = (2, gates * units) if bias_shape == "pair" else (gates * units,)
    return kernel, rec, rng.standard_normal(shape)


KERAS_ACTS = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0), "linear": lambda a: a,
              None: lambda a: a, "sigmoid": expit}


@pytest.mark.parametrize("activation", list(KERAS_ACTS))
@pytest.mark.parametrize("with_bias", [True, False])
def test_keras_simple_rnn_equations(activation, with_bias):
    kernel, rec, bias = keras_weights(1, rng=1, bias_shape="flat" if with_bias else None)
    cell = interop.from_keras("simple_rnn", kernel, rec, bias, activation=activation)
    rng = np.random.default_rng(2)
    x, h = rng.standard_normal((16, 3)), rng.standard_normal((16, 5))
    ref = keras_simple_rnn(x, h, kernel, rec, bias, KERAS_ACTS[activation])
    np.testing.assert_allclose(cell.step(h, x), ref, rtol=0, atol=REF_TOL * max(1, np.abs(ref).max()))


@pytest.mark.parametrize("with_bias", [True, False])
def test_keras_lstm_equations(with_bias):
    kernel, rec, bias = keras_weights(4, rng=3, bias_shape="flat" if with_bias else None)
    cell = interop.from_keras("lstm", kernel, rec, bias)
    rng = np.random.default_rng(4)
    x, h, c = rng.standard_normal((16, 3)), rng.standard_normal((16, 5)), rng.standard_normal((16, 5))
    h_ref, c_ref = keras_lstm(x, h, c, kernel, rec, bias)
    out = cell.step(np.concatenate([h, c], axis=1), x)
    np.testing.assert_allclose(out, np.concatenate([h_ref, c_ref], axis=1), rtol=0, atol=REF_TOL)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_keras_gru_equations(reset_after, with_bias):
    shape = ("pair" if reset_after else "flat") if with_bias else None
    kernel, rec, bias = keras_weights(3, rng=5, bias_shape=shape)
    cell = interop.from_keras("gru", kernel, rec, bias, reset_after=reset_after)
    assert cell.variant == ("torch" if reset_after else "reset_before")
    rng = np.random.default_rng(6)
    x, h = rng.standard_normal((16, 3)), rng.standard_normal((16, 5))
    ref = keras_gru(x, h, kernel, rec, bias, reset_after)
    np.testing.assert_allclose(cell.step(h, x), ref, rtol=0, atol=REF_TOL)
    # and over a trajectory: 30 steps of the reference loop against gs.unroll
    inputs = rng.standard_normal((30, 3))
    h_ref = np.zeros((1, 5))
    for x_t in inputs:
        h_ref = keras_gru(x_t[None], h_ref, kernel, rec, bias, reset_after)
    np.testing.assert_allclose(gs.unroll(cell, inputs)[-1], h_ref[0], rtol=0, atol=TORCH_TOL)


def test_keras_gate_reordering_is_a_permutation_of_blocks():
    """The GRU's z and r blocks swap places; the LSTM keeps i, f, c, o = i, f, g, o."""
    kernel, rec, bias = keras_weights(3, rng=7, bias_shape="pair")
    cell = interop.from_keras("gru", kernel, rec, bias)
    u = 5
    np.testing.assert_array_equal(cell.weight_hh[:u], rec[:, u : 2 * u].T)  # r
    np.testing.assert_array_equal(cell.weight_hh[u : 2 * u], rec[:, :u].T)  # z
    np.testing.assert_array_equal(cell.bias_hh[2 * u :], bias[1, 2 * u :])  # n's recurrent bias
    kernel, rec, bias = keras_weights(4, rng=8)
    lstm = interop.from_keras("lstm", kernel, rec, bias)
    np.testing.assert_array_equal(lstm.weight_ih, kernel.T)
    np.testing.assert_array_equal(lstm.bias_ih, bias)
    assert not np.any(lstm.bias_hh)


def test_keras_activation_errors():
    lstm = keras_weights(4)
    with pytest.raises(ValueError, match=r"`recurrent_activation` must be 'sigmoid' for a Keras LSTM: "
                                         r".*got 'hard_sigmoid' \('hard_sigmoid' was the default"):
        interop.from_keras("lstm", *lstm, recurrent_activation="hard_sigmoid")
    with pytest.raises(ValueError, match="`recurrent_activation` must be 'sigmoid' for a Keras GRU"):
        interop.from_keras("gru", *keras_weights(3, bias_shape="pair"), recurrent_activation="hard_sigmoid")
    with pytest.raises(ValueError, match=r"`activation` must be 'tanh' for a Keras LSTM: .*; got 'relu'\."):
        interop.from_keras("lstm", *lstm, activation="relu")
    with pytest.raises(ValueError, match=r"`activation` must be 'tanh' for a Keras GRU: .*; got None\."):
        interop.from_keras("gru", *keras_weights(3, bias_shape="pair"), activation=None)
    with pytest.raises(ValueError, match=r"`activation` must be one of 'tanh', 'relu', 'linear', "
                                         r"'sigmoid' or None .*; got 'softsign'\."):
        interop.from_keras("simple_rnn", *keras_weights(1), activation="softsign")
    with pytest.raises(ValueError, match="`recurrent_activation` must be None for a Keras SimpleRNN"):
        interop.from_keras("simple_rnn", *keras_weights(1), recurrent_activation="sigmoid")
    with pytest.raises(TypeError, match="`activation` must be a Keras activation name"):
        interop.from_keras("simple_rnn", *keras_weights(1), activation=np.tanh)
    with pytest.raises(ValueError, match="`kind` must be one of 'simple_rnn' .*; got 'conv'"):
        interop.from_keras("conv", *keras_weights(1))
    # sigmoid stated explicitly is fine, and case does not matter
    interop.from_keras("lstm", *lstm, activation="TANH", recurrent_activation="sigmoid")


def test_keras_shape_errors():
    kernel, rec, bias = keras_weights(3, bias_shape="flat")
    with pytest.raises(ValueError, match=r"`bias` must have shape \(2, 15\) for a GRU with reset_after=True "
                                         r".*a 1-d bias means reset_after=False\); got shape \(15,\)\."):
        interop.from_keras("gru", kernel, rec, bias)
    with pytest.raises(ValueError, match=r"`bias` must have shape \(15,\) for a GRU with reset_after=False; "
                                         r"got shape \(2, 15\)\."):
        interop.from_keras("gru", kernel, rec, np.zeros((2, 15)), reset_after=False)
    with pytest.raises(ValueError, match=r"`kernel` must have shape \(I, 15\) to match `recurrent_kernel` "
                                         r"of shape \(5, 15\); got shape \(15, 3\)\."):
        interop.from_keras("gru", kernel.T, rec, bias, reset_after=False)
    with pytest.raises(ValueError, match=r"`recurrent_kernel` must have shape \(U, 4 U\) for a Keras lstm; "
                                         r"got shape \(5, 15\)\."):
        interop.from_keras("lstm", kernel, rec, None)


def test_load_keras_npz(tmp_path):
    kernel, rec, bias = keras_weights(3, bias_shape="flat", rng=9)
    path = tmp_path / "gru.npz"
    np.savez(path, kernel=kernel, recurrent_kernel=rec, bias=bias)
    cell = interop.load_keras_npz(path)  # kind and reset_after read from the shapes
    assert isinstance(cell, gs.GRU) and cell.variant == "reset_before"
    ref = interop.from_keras("gru", kernel, rec, bias, reset_after=False)
    np.testing.assert_array_equal(cell.weight_hh, ref.weight_hh)
    # Keras weight paths as keys, two layers: the prefix selects one.
    lstm = keras_weights(4, rng=10)
    gru = keras_weights(3, bias_shape="pair", rng=11)
    path = tmp_path / "model.npz"
    np.savez(path, **{"lstm/lstm_cell/kernel:0": lstm[0], "lstm/lstm_cell/recurrent_kernel:0": lstm[1],
                      "lstm/lstm_cell/bias:0": lstm[2], "gru/gru_cell/kernel:0": gru[0],
                      "gru/gru_cell/recurrent_kernel:0": gru[1], "gru/gru_cell/bias:0": gru[2]})
    with pytest.raises(ValueError, match=r"`prefix` must be given: .*\('gru/gru_cell', 'lstm/lstm_cell'\)"):
        interop.load_keras_npz(path)
    assert interop.load_keras_npz(path, prefix="gru/gru_cell").variant == "torch"
    assert isinstance(interop.load_weights(path, prefix="lstm/lstm_cell"), gs.LSTM)
    # A GRU without bias: reset_after cannot be read, so it must be said.
    np.savez(tmp_path / "nobias.npz", kernel=gru[0], recurrent_kernel=gru[1])
    with pytest.raises(ValueError, match="`reset_after` must be given for a GRU without bias"):
        interop.load_keras_npz(tmp_path / "nobias.npz")
    assert interop.load_keras_npz(tmp_path / "nobias.npz", reset_after=False).variant == "reset_before"
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz is not a Keras recurrent layer"):
        interop.load_keras_npz(tmp_path / "other.npz")
    with pytest.raises(ValueError, match=r"holds Keras weights: `layer` must be 0"):
        interop.load_weights(tmp_path / "gru.npz", layer=1)


def test_load_weights_dispatch(tmp_path):
    path = tmp_path / "rnn.npz"
    np.savez(path, **random_state_dict("rnn", rng=12))
    assert interop.load_weights(path, activation="relu").activation == "relu"
    with pytest.raises(ValueError, match="`reset_after` applies to Keras weights only"):
        interop.load_weights(path, reset_after=True)


# ------------------------------------------------------------------------------------------
# gradsim analyze
def test_analyze_writes_csv_meta_and_figure(tmp_path):
    weights = tmp_path / "net.npz"
    np.savez(weights, **random_state_dict("lstm", n=6, layers=(0, 1), rng=13))
    inputs = np.random.default_rng(14).standard_normal((40, 6))
    np.save(tmp_path / "x.npy", inputs)
    result = analyze(weights, layer=1, inputs_file=tmp_path / "x.npy", out=tmp_path / "out")
    assert result.csv_path == tmp_path / "out" / "analyze-net-layer1.csv"
    assert [p.suffix for p in result.figure_paths] == [".png", ".svg", ".pdf"]
    assert all(p.is_file() for p in result.figure_paths)
    frame = result.frame
    assert list(frame.columns) == ["quantity", "path", "t", "index", "value", "stderr"]
    assert set(frame.path) == {"full", "cell", "hidden"}
    meta = json.loads(result.meta_path.read_text())
    assert meta["steps"] == 40 and meta["n_hidden"] == 6 and meta["cell"] == "LSTM"
    assert meta["inputs_sha256"] and meta["weights_sha256"]
    # The numbers are those of the library functions on the loaded cell.
    cell = interop.load_torch(weights, layer=1)
    full = frame[frame.path == "full"]
    spectrum = gs.lyapunov_spectrum(cell, inputs)
    np.testing.assert_array_equal(full[full.quantity == "lyapunov_exponent"].value, spectrum.exponents)
    norms = gs.gradient_norms(cell, inputs)
    np.testing.assert_array_equal(full[full.quantity == "log_gradient_norm"].value, norms)
    last = full[(full.quantity == "log_singular_value") & (full.t == 40)].value
    # Reading several horizons changes where the QRs fall; gradsim.numeric keeps each QR's
    # rounding under 1e-8 relative, i.e. 1e-8 in the log, for singular values e^-260 apart.
    np.testing.assert_allclose(last, gs.log_singular_values(cell, inputs)[0], rtol=0, atol=1e-7)
    # Written reproducibly: a second run gives the same CSV bytes.
    csv = result.csv_path.read_bytes()
    analyze(weights, layer=1, inputs_file=tmp_path / "x.npy", out=tmp_path / "out")
    assert result.csv_path.read_bytes() == csv


def _cli(argv):
    parser = argparse.ArgumentParser(prog="gradsim analyze")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def test_analyze_command_hooks(tmp_path, capsys):
    kernel, rec, bias = keras_weights(3, units=4, n_in=2, bias_shape="pair", rng=15)
    weights = tmp_path / "kgru.npz"
    np.savez(weights, kernel=kernel, recurrent_kernel=rec, bias=bias)
    assert _cli([str(weights), "--steps", "30", "--out", str(tmp_path)]) == 0
    assert "analyze-kgru-layer0.csv" in capsys.readouterr().out
    frame = __import__("pandas").read_csv(tmp_path / "analyze-kgru-layer0.csv")
    assert set(frame.path) == {"full", "direct"}
    assert frame[frame.quantity == "log_gradient_norm"].t.max() == 30

    bad_cases = [
        ([str(tmp_path / "nope.pt")], "no weights file at"),
        ([str(weights), "--recurrent-activation", "hard_sigmoid"], "got 'hard_sigmoid'"),
        ([str(weights), "--steps", "0"], "`steps` must be an integer >= 1; got 0"),
        ([str(weights), "--layer", "1"], "holds Keras weights: `layer` must be 0"),
        ([str(weights), "--warmup", "30", "--steps", "30"], r"`warmup` must be an integer in \[0, T\)"),
    ]
    np.save(tmp_path / "wrong.npy", np.zeros((10, 3)))
    bad_cases.append(([str(weights), "--inputs", str(tmp_path / "wrong.npy")],
                      r"must have shape \(T, 2\) .*; got shape \(10, 3\)"))
    for argv, message in bad_cases:
        with pytest.raises(UsageError, match=message):
            _cli(argv + ["--out", str(tmp_path)])
    # An unbounded network that overflows: one line, not a traceback.
    sd = random_state_dict("rnn", n=4, rng=16)
    sd["weight_hh_l0"] = 10 * np.eye(4)
    np.savez(tmp_path / "relu.npz", **sd)
    with pytest.raises(UsageError, match="the state became non-finite"):
        _cli([str(tmp_path / "relu.npz"), "--nonlinearity", "relu", "--steps", "400",
              "--out", str(tmp_path)])


def test_read_inputs_formats(tmp_path):
    x = np.arange(12.0).reshape(6, 2) / 7
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    np.testing.assert_array_equal(read_inputs(tmp_path / "x.csv", 2), x)
    np.savez(tmp_path / "x.npz", inputs=x, other=x)
    np.testing.assert_array_equal(read_inputs(tmp_path / "x.npz", 2), x)
    np.save(tmp_path / "one.npy", x[:, 0])
    assert read_inputs(tmp_path / "one.npy", 1).shape == (6, 1)
    with pytest.raises(ValueError, match=r"must have shape \(T, 1\)"):
        read_inputs(tmp_path / "x.csv", 1)
