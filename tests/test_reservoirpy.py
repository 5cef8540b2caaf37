"""Tests of the reservoirpy import (gradsim.interop.from_reservoirpy) and ``gradsim analyze``
of a saved reservoir, against reservoirpy's own forward run."""

import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradsim as gs
from gradsim.interop import from_reservoirpy, load_reservoir
from gradsim.workflow.cli import main

try:
    import reservoirpy
    from reservoirpy.nodes import ES2N, Reservoir
except ImportError:  # the optional extra is not installed
    reservoirpy = None

needs_v04 = pytest.mark.skipif(
    reservoirpy is None or reservoirpy.__version__.startswith("0.3"),
    reason=("reservoirpy is not installed (the optional extra: pip install 'gradsim[reservoir]')"
            if reservoirpy is None else
            "these tests drive reservoirpy 0.4's API (node.state dict, run(iters=...)); 0.3 has its own test"),
)

# The cell's states and reservoirpy's agree to rounding. Per step the two runs do the same float64
# operations in the same order (W x + Win u + b, then (1 - lr) x + lr f(.)) except (i) the matrix-
# vector products, whose sums run over a row's nonzeros in another order (CSR in column order
# against dense BLAS blocks, possibly with FMA), a relative difference below k eps with k <= 40
# nonzeros per row, ~1e-14 of sum_j |W_ij x_j|, and (ii) the sigmoid (scipy's expit against
# reservoirpy's exp formula), 1-2 ulp. These differences propagate through the step Jacobian
# (1 - lr) I + lr D W; in the echo-state regime (and over 300 steps for sr up to 1.25) their
# sum stays within a few times one step's: observed at most 4e-16 relative to the largest state.
# 1e-12 leaves three orders of margin, while a wrong convention (input of the previous row,
# the leak on the wrong term, a missing bias) differs at O(1e-2) or more.
RTOL = 1e-12


def _dense(matrix):
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def _relative_error(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# (units, sr, lr, activation, bias, input_scaling, input_dim, rc_connectivity)
CONFIGS = [
    (30, 0.9, 0.3, "tanh", 0.0, 1.0, 3, 0.1),
    (50, 1.25, "per-unit", "tanh", 0.4, [0.5, 2.0], 2, 0.2),
    (64, 0.5, 1.0, "sigmoid", "array", 0.3, 1, 0.1),
    (20, 0.8, 0.6, "relu", 0.1, 2.0, 4, 0.5),
    (40, 0.95, 0.1, "identity", "array", 0.5, 3, 0.1),
    (12, 0.7, "per-unit", "sigmoid", -0.2, 1.5, 2, 1.0),
]


def _reservoir(units, sr, lr, activation, bias, input_scaling, input_dim, connectivity, seed):
    rng = np.random.default_rng(1000 + seed)
    if isinstance(lr, str):
        lr = rng.uniform(0.05, 1.0, units)
    if isinstance(bias, str):
        bias = rng.uniform(-0.5, 0.5, units)
    if isinstance(input_scaling, list):
        input_scaling = np.asarray(input_scaling)
    node = Reservoir(units, lr=lr, sr=sr, activation=activation, bias=bias, input_scaling=input_scaling,
                     rc_connectivity=connectivity, input_connectivity=0.5, seed=seed)
    inputs = rng.standard_normal((300, input_dim))
    return node, inputs


@needs_v04
@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_forward_states_equal_reservoirpy_run(index):
    node, inputs = _reservoir(*CONFIGS[index], seed=index)
    expected = node.run(inputs)  # initialises the node and runs it from zeros
    cell = from_reservoirpy(node)
    units = CONFIGS[index][0]
    assert type(cell).__name__ == "LeakyRNN"
    assert (cell.n_hidden, cell.n_input) == (units, inputs.shape[1])
    assert cell.activation == {"identity": "linear"}.get(CONFIGS[index][3], CONFIGS[index][3])
    # Dense float64 copies of reservoirpy's matrices (sparse, or dense at connectivity 1);
    # bias_hh carries the bias.
    assert hasattr(node.W, "toarray") == (CONFIGS[index][7] < 1)
    np.testing.assert_array_equal(cell.weight_hh, _dense(node.W))
    np.testing.assert_array_equal(cell.weight_ih, _dense(node.Win))
    np.testing.assert_array_equal(cell.bias_hh, np.broadcast_to(node.bias, (units,)))
    np.testing.assert_array_equal(cell.bias_ih, np.zeros(units))
    np.testing.assert_array_equal(np.broadcast_to(cell.alpha, (units,)), np.broadcast_to(node.lr, (units,)))
    # W was rescaled to spectral radius sr exactly (so the sr < 1 regimes below are what they say).
    radius = np.max(np.abs(np.linalg.eigvals(cell.weight_hh)))
    assert radius == pytest.approx(CONFIGS[index][1], rel=1e-9)

    states = gs.unroll(cell, inputs)
    np.testing.assert_array_equal(states[0], np.zeros(units))  # both start from zeros
    assert _relative_error(states[1:], expected) <= RTOL
    # The input of step t is row t (x[t+1] = ... Win u[t+1]): the previous row would not match.
    shifted = gs.unroll(cell, np.vstack([np.zeros((1, inputs.shape[1])), inputs[:-1]]))
    assert _relative_error(shifted[1:], expected) > 1e-3


@needs_v04
def test_dense_weights_and_activation_functions():
    # W, Win and bias given as dense arrays bypass sr and input scaling; the activation as a
    # function object (reservoirpy's, or numpy's tanh) maps by identity.
    rng = np.random.default_rng(7)
    units, dim = 25, 2
    W = 0.9 * rng.standard_normal((units, units)) / np.sqrt(units)
    Win = rng.uniform(-1, 1, (units, dim))
    bias = rng.uniform(-0.3, 0.3, units)
    inputs = rng.standard_normal((200, dim))
    for function, name in [(reservoirpy.activationsfunc.relu, "relu"), (np.tanh, "tanh"),
                           (reservoirpy.activationsfunc.identity, "linear")]:
        node = Reservoir(W=W, Win=Win, bias=bias, lr=0.4, activation=function)
        expected = node.run(inputs)
        cell = from_reservoirpy(node)
        assert cell.activation == name
        np.testing.assert_array_equal(cell.weight_hh, W)
        assert _relative_error(gs.unroll(cell, inputs)[1:], expected) <= RTOL


@needs_v04
def test_initial_state_convention():
    # reservoirpy starts a run from its current state (zeros after initialize or reset) and keeps
    # the final one; gradsim's cell has no state: the same continuation is unroll's state0.
    node, inputs = _reservoir(*CONFIGS[0], seed=11)
    node.initialize(inputs)
    np.testing.assert_array_equal(node.state["out"], np.zeros(node.units))
    cell = from_reservoirpy(node)  # initialised, never run
    first, second = inputs[:120], inputs[120:]
    expected_first = node.run(first)
    x_mid = node.state["out"].copy()
    np.testing.assert_array_equal(x_mid, expected_first[-1])
    expected_second = node.run(second)
    assert _relative_error(gs.unroll(cell, first)[1:], expected_first) <= RTOL
    continued = gs.unroll(cell, second, state0=x_mid)
    assert _relative_error(continued[1:], expected_second) <= RTOL
    # From zeros instead, the second run differs (the state carried over matters) ...
    assert _relative_error(gs.unroll(cell, second)[1:], expected_second) > 1e-3
    # ... and after reset() reservoirpy starts from zeros again, as unroll's default.
    node.reset()
    assert _relative_error(gs.unroll(cell, second)[1:], node.run(second)) <= RTOL


@needs_v04
def test_autonomous_reservoir():
    # input_dim 0 (node.run(iters=T)): Win has shape (units, 0), the cell no input.
    node = Reservoir(16, lr=0.5, sr=0.9, bias=0.3, seed=3)
    expected = node.run(iters=80)
    cell = from_reservoirpy(node)
    assert cell.n_input == 0
    states = gs.unroll(cell, 80)
    assert np.max(np.abs(expected)) > 0.1  # the bias drives it away from zero
    assert _relative_error(states[1:], expected) <= RTOL


@needs_v04
def test_bad_nodes():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"`node` must be an initialized Reservoir \(call "
                                          r"node.initialize\(X\) or run it once first\); got an "
                                          r"uninitialized Reservoir of 10 units\."):
        from_reservoirpy(Reservoir(10, seed=0))
    for activation in ("softplus", "softmax", lambda a: np.tanh(2 * a)):
        node = Reservoir(10, activation=activation, seed=0)
        node.initialize(X)
        name = getattr(activation, "__name__", activation)
        with pytest.raises(ValueError, match=rf"`node.activation` must be one of reservoirpy's tanh "
                                             rf"\('tanh'\), .*; got {name}, which has no gradsim cell\."):
            from_reservoirpy(node)
    es2n = ES2N(10, seed=0)
    es2n.initialize(X)
    with pytest.raises(TypeError, match=r"`node` must be a reservoirpy Reservoir node "
                                        r"\(reservoirpy.nodes.Reservoir\); got a reservoirpy.nodes.es2n.ES2N\."):
        from_reservoirpy(es2n)
    model = Reservoir(10, seed=0) >> reservoirpy.nodes.Ridge()
    with pytest.raises(TypeError, match=r"a Model or ESN holds its reservoir as one of its nodes: pass that node"):
        from_reservoirpy(model)
    for thing, received in [({"W": np.eye(3)}, "a dict"), (None, "None"), (np.eye(3), r"a numpy.ndarray")]:
        with pytest.raises(TypeError, match=rf"`node` must be a reservoirpy Reservoir node .*; got {received}\."):
            from_reservoirpy(thing)

    class Doubled(Reservoir):
        def _step(self, state, x):
            return super()._step(super()._step(state, x), x)

    doubled = Doubled(10, seed=0)
    doubled.initialize(X)
    with pytest.raises(TypeError, match=r"got a subclass Doubled that overrides `_step`"):
        from_reservoirpy(doubled)
    for lr, shown in [(0.0, "0.0"), (1.5, "1.5"), (np.r_[0.5, -0.1, np.full(8, 0.5)], "-0.1")]:
        node = Reservoir(10, lr=lr, seed=0)
        node.initialize(X)
        with pytest.raises(ValueError, match=rf"`node.lr` must lie in \(0, 1\] .*; got {shown}\."):
            from_reservoirpy(node)
    node = Reservoir(10, lr=np.full(3, 0.5), seed=0)
    node.initialize(X)
    with pytest.raises(ValueError, match=r"`node.lr` must be a number or an array of shape \(10,\); got shape \(3,\)\."):
        from_reservoirpy(node)


@needs_v04
def test_lyapunov_spectrum_of_reservoir():
    # A linear reservoir's step Jacobian is the constant matrix (1 - lr) I + lr W whatever the
    # input, so its exponents are exactly log|1 - lr + lr mu_i| over W's eigenvalues mu_i; with
    # sr < 1 every one is below log((1 - lr) + lr sr) < 0. gradsim's measured spectrum converges
    # to them as O(log cond(V) / T), V the eigenvectors (transient growth of the non-normal W).
    rng = np.random.default_rng(5)
    inputs = rng.standard_normal((3000, 2))
    node = Reservoir(40, lr=0.3, sr=0.9, activation="identity", input_scaling=0.5,
                     rc_connectivity=0.2, seed=21)
    node.initialize(inputs)
    cell = from_reservoirpy(node)
    mu = np.linalg.eigvals(cell.weight_hh)
    exact = np.sort(np.log(np.abs(1 - 0.3 + 0.3 * mu)))[::-1]
    measured = gs.lyapunov_spectrum(cell, inputs).exponents
    cond = np.linalg.cond(np.linalg.eig(cell.weight_hh)[1])
    np.testing.assert_allclose(measured, exact, rtol=0, atol=4 * np.log(cond) / inputs.shape[0])
    assert measured[0] < np.log(0.7 + 0.3 * 0.9) + 1e-3

    # A tanh reservoir in the echo-state regime (sr < 1, driven): it forgets its initial state,
    # so the top exponent is negative (measured -0.146 +- 0.0002 per step; the sign, not the
    # value, is the property: sr < 1 alone does not bound the products of D_t-scaled steps).
    node = Reservoir(60, lr=0.5, sr=0.8, input_scaling=1.0, bias=0.1, seed=22)
    node.initialize(inputs)
    spectrum = gs.lyapunov_spectrum(from_reservoirpy(node), inputs, k=5, warmup=100)
    assert spectrum.exponents[0] + 4 * spectrum.stderr[0] < 0
    # A chaotic-regime reservoir (sr = 3, weak input) has a positive top exponent: the sign is
    # measured, not built in.
    node = Reservoir(60, lr=1.0, sr=3.0, input_scaling=0.05, seed=23)
    node.initialize(inputs)
    chaotic = gs.lyapunov_spectrum(from_reservoirpy(node), inputs[:1500], k=1, warmup=100)
    assert chaotic.exponents[0] - 4 * chaotic.stderr[0] > 0


# ------------------------------------------------------------------------------------------
# gradsim analyze of a saved reservoir
@needs_v04
def test_analyze_saved_reservoir(tmp_path, capsys):
    node, inputs = _reservoir(*CONFIGS[1], seed=31)
    node.initialize(inputs)
    saved = Path(reservoirpy.save(node, tmp_path / "esn"))
    assert saved.name == "esn.rpy"
    np.save(tmp_path / "u.npy", inputs[:150])
    out = tmp_path / "out"
    assert main(["analyze", str(saved), "--inputs", str(tmp_path / "u.npy"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "analyze-esn-layer0.csv" in printed and "LeakyRNN (tanh), N=50" in printed
    csv = out / "analyze-esn-layer0.csv"
    assert all((out / f"analyze-esn-layer0{suffix}").is_file() for suffix in (".png", ".svg", ".pdf"))
    meta = json.loads(csv.with_suffix(".meta.json").read_text())
    assert meta["cell"] == "LeakyRNN" and meta["n_hidden"] == 50 and meta["n_input"] == 2
    assert meta["steps"] == 150 and meta["weights_sha256"] and meta["inputs_sha256"]
    frame = __import__("pandas").read_csv(csv)
    assert set(frame.quantity) == {"log_singular_value", "lyapunov_exponent", "log_gradient_norm"}
    # The numbers are the library's on the imported cell (to the CSV's 12 significant digits).
    cell = from_reservoirpy(node)
    exponents = frame[frame.quantity == "lyapunov_exponent"].sort_values("index").value
    np.testing.assert_allclose(exponents, gs.lyapunov_spectrum(cell, inputs[:150]).exponents, rtol=1e-11, atol=1e-13)
    norms = frame[frame.quantity == "log_gradient_norm"].sort_values("t").value
    np.testing.assert_allclose(norms, gs.gradient_norms(cell, inputs[:150]), rtol=1e-11, atol=1e-13)

    # A pickled node (.pkl) reads the same; load_reservoir returns the same cell.
    with open(tmp_path / "node.pkl", "wb") as handle:
        pickle.dump(node, handle)
    loaded = load_reservoir(tmp_path / "node.pkl")
    np.testing.assert_array_equal(loaded.weight_hh, cell.weight_hh)
    np.testing.assert_array_equal(loaded.alpha, cell.alpha)
    assert main(["analyze", str(tmp_path / "node.pkl"), "--steps", "20", "--out", str(out)]) == 0
    assert (out / "analyze-node-layer0.csv").is_file()


@needs_v04
def test_analyze_reservoir_bad_invocations(tmp_path, capsys):
    node = Reservoir(8, seed=0)
    node.initialize(np.zeros((3, 1)))
    good = Path(reservoirpy.save(node, tmp_path / "r.rpy"))
    with open(tmp_path / "dict.pkl", "wb") as handle:
        pickle.dump({"W": np.eye(3)}, handle)
    (tmp_path / "broken.rpy").write_bytes(b"not a pickle")
    uninitialised = Path(reservoirpy.save(Reservoir(8, seed=0), tmp_path / "fresh.rpy"))
    cases = [
        ([str(good), "--layer", "1"], r"r.rpy holds a reservoirpy reservoir \(one layer\): `layer` must be 0"),
        ([str(good), "--nonlinearity", "relu"], r"no PyTorch or Keras option given; got layer=0, "
                                                 r"reverse=False, nonlinearity='relu'"),
        ([str(tmp_path / "dict.pkl")], r"the object in dict.pkl must be a reservoirpy Reservoir node"),
        ([str(tmp_path / "broken.rpy")], r"cannot read broken.rpy as a pickled reservoirpy node"),
        ([str(uninitialised)], r"the object in fresh.rpy must be an initialized Reservoir \(call node.initialize"),
        ([str(tmp_path / "missing.rpy")], r"no reservoir file at"),
    ]
    for argv, message in cases:
        assert main(["analyze", *argv, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(message, err), err
    # The help text warns that a pickle runs code.
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    assert "only load reservoir files you trust" in " ".join(capsys.readouterr().out.split())


def test_analyze_without_reservoirpy(tmp_path, capsys, monkeypatch):
    # Without reservoirpy, one line naming the extra and exit 2, before anything is unpickled
    # (the file here is not even a pickle).
    monkeypatch.setitem(sys.modules, "reservoirpy", None)  # `import reservoirpy` raises ImportError
    (tmp_path / "esn.rpy").write_bytes(b"whatever")
    assert main(["analyze", str(tmp_path / "esn.rpy"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "reservoirpy is needed to read reservoirpy reservoirs" in err
    assert "pip install 'gradsim[reservoir]'" in err
    with pytest.raises(ImportError, match=r"install it with pip install 'gradsim\[reservoir\]'"):
        from_reservoirpy(object())


# ------------------------------------------------------------------------------------------
# reservoirpy 0.3 (optional: GRADSIM_RESERVOIRPY03 names a folder with reservoirpy 0.3.x installed
# by `pip install --target DIR 'reservoirpy==0.3.16'`; CI installs only the current version)
_V03_SCRIPT = textwrap.dedent("""
    import numpy as np, reservoirpy, pytest
    assert reservoirpy.__version__.startswith("0.3"), reservoirpy.__version__
    reservoirpy.verbosity(0)
    from reservoirpy.nodes import Reservoir, Ridge
    import gradsim as gs
    from gradsim.interop import from_reservoirpy
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    worst = 0.0
    for seed, (lr, sr, act) in enumerate([(0.3, 0.9, "tanh"), (rng.uniform(0.1, 1, 30), 1.1, "sigmoid"),
                                          (1.0, 0.5, "relu"), (0.5, 0.9, "identity")]):
        node = Reservoir(30, lr=lr, sr=sr, activation=act, seed=seed)  # 0.3 default: a bias
        expected = node.run(X)
        cell = from_reservoirpy(node)
        assert np.any(cell.bias_hh != 0)
        got = gs.unroll(cell, X)[1:]
        worst = max(worst, np.max(np.abs(got - expected)) / np.max(np.abs(expected)))
    assert worst <= 1e-12, worst
    with pytest.raises(ValueError, match="must be an initialized Reservoir"):
        from_reservoirpy(Reservoir(10))
    node = Reservoir(10, equation="external", seed=0); node.run(X)
    with pytest.raises(ValueError, match="got equation='external', which is not supported"):
        from_reservoirpy(node)
    node = Reservoir(10, noise_rc=0.01, seed=0); node.run(X)
    with pytest.raises(ValueError, match="must have zero noise .*; got noise_rc=0.01"):
        from_reservoirpy(node)
    reservoir, readout = Reservoir(10, seed=0), Ridge(1, ridge=1e-6)
    reservoir <<= readout
    model = reservoir >> readout
    model.fit(X, X[:, :1])
    with pytest.raises(ValueError, match="must have no feedback; got feedback weights Wfb"):
        from_reservoirpy(reservoir)
    print("ok", worst)
""")


@pytest.mark.skipif(not os.environ.get("GRADSIM_RESERVOIRPY03"),
                    reason="GRADSIM_RESERVOIRPY03 (a folder with reservoirpy 0.3.x) is not set")
def test_reservoirpy_03_nodes():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.environ["GRADSIM_RESERVOIRPY03"], str(Path(__file__).resolve().parents[1])]))
    done = subprocess.run([sys.executable, "-c", _V03_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")
