"""Argument validation of the cells, the initialisers and ``make_cell``.

Every message has the form "`name` must be <expectation>; got <received>." (gradsim/_validate.py),
and each test pins the argument's name and the received value. Errors of gradsim.numeric are
tested with that module.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import gradsim as gs
from gradsim import init


def exact(message: str) -> str:
    """A regex matching ``message`` literally and entirely."""
    return "^" + re.escape(message) + "$"


ACTS = "'tanh', 'relu', 'linear', 'sigmoid'"
KINDS = (
    "'rnn', 'irnn', 'residual', 'lstm', 'gru', 'leaky', 'rate', 'lru', 'mingru', 'minlstm', 'indrnn', "
    "'antisymmetric', 'cornn'"
)
INITS = ", ".join(repr(k) for k in init.INITIALISERS)
RNG_TYPE = "`rng` must be None, a non-negative int seed, a SeedSequence or a numpy Generator; got "


def rnn(n=3, n_in=2):
    return gs.RNN(np.eye(n), np.ones((n, n_in)))


def lstm(n=2, n_in=1):
    return gs.LSTM(np.ones((4 * n, n_in)), np.ones((4 * n, n)) * 0.1)


def gru(n=2, n_in=1):
    return gs.GRU(np.ones((3 * n, n_in)), np.ones((3 * n, n)) * 0.1)


# ------------------------------------------------------------------------------------------
# weight shapes
@pytest.mark.parametrize("cls", [gs.RNN, gs.ResidualRNN])
def test_rnn_weight_hh_must_be_square(cls):
    with pytest.raises(
        ValueError, match=exact(f"`weight_hh` must be square (N, N) for {cls.__name__}; got shape (3, 4).")
    ):
        cls(np.zeros((3, 4)))


def test_lstm_weight_hh_needs_4n_rows():
    with pytest.raises(
        ValueError, match=exact("`weight_hh` must be of shape (4 N, N) for LSTM; got shape (6, 2).")
    ):
        gs.LSTM(None, np.zeros((6, 2)))
    with pytest.raises(ValueError, match=re.escape("(4 N, N) for LSTM; got shape (3, 3).")):
        gs.LSTM(None, np.zeros((3, 3)))  # a square RNN matrix passed to an LSTM


def test_gru_weight_hh_needs_3n_rows():
    with pytest.raises(
        ValueError, match=exact("`weight_hh` must be of shape (3 N, N) for GRU; got shape (8, 2).")
    ):
        gs.GRU(None, np.zeros((8, 2)))  # an LSTM matrix passed to a GRU


def test_weight_hh_must_be_2d_and_nonempty():
    with pytest.raises(ValueError, match=exact("`weight_hh` must be a 2-d array (or (..., rows, N) for an ensemble); got shape (3,).")):
        gs.RNN(np.zeros(3))
    with pytest.raises(
        ValueError, match=exact("`weight_hh` must have at least one hidden unit; got shape (0, 0).")
    ):
        gs.RNN(np.zeros((0, 0)))


def test_weight_must_be_numeric():
    with pytest.raises(
        TypeError, match=exact("`weight_hh` must be an array of real numbers; got 'abc'.")
    ):
        gs.RNN("abc")


@pytest.mark.parametrize(
    "make,rows",
    [
        (lambda w: gs.RNN(np.eye(3), w), 3),
        (lambda w: gs.LSTM(w, np.zeros((8, 2))), 8),
        (lambda w: gs.GRU(w, np.zeros((6, 2))), 6),
    ],
    ids=["RNN", "LSTM", "GRU"],
)
def test_weight_ih_rows_must_match(make, rows):
    with pytest.raises(
        ValueError, match=exact(f"`weight_ih` must have {rows} rows (n_input columns); got shape (5, 1).")
    ):
        make(np.zeros((5, 1)))
    with pytest.raises(ValueError, match=exact("`weight_ih` must be a 2-d array (or (..., rows, I) for an ensemble); got shape (5,).")):
        make(np.zeros(5))


@pytest.mark.parametrize("name", ["bias_hh", "bias_ih"])
@pytest.mark.parametrize(
    "cls,rows",
    [(gs.RNN, 3), (gs.LSTM, 12), (gs.GRU, 9)],
    ids=["RNN", "LSTM", "GRU"],
)
@pytest.mark.parametrize("bad_shape", [(4,), (1, 3)])
def test_bias_shape(cls, rows, name, bad_shape):
    n = 3
    kw = {name: np.zeros(bad_shape)}
    with pytest.raises(
        ValueError, match=exact(f"`{name}` must have shape ({rows},); got shape {bad_shape}.")
    ):
        if cls is gs.RNN:
            cls(np.eye(n), np.zeros((rows, 1)), **kw)
        else:
            cls(np.zeros((rows, 1)), np.zeros((rows, n)), **kw)


# ------------------------------------------------------------------------------------------
# non-finite parameters
def _params(cls):
    n = 2
    rows = {gs.RNN: n, gs.ResidualRNN: n, gs.LSTM: 4 * n, gs.GRU: 3 * n}[cls]
    return dict(
        weight_hh=np.full((rows, n), 0.1),
        weight_ih=np.full((rows, 1), 0.1),
        bias_hh=np.zeros(rows),
        bias_ih=np.zeros(rows),
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", ["weight_hh", "weight_ih", "bias_hh", "bias_ih"])
@pytest.mark.parametrize("cls", [gs.RNN, gs.ResidualRNN, gs.LSTM, gs.GRU], ids=lambda c: c.__name__)
def test_non_finite_parameters_rejected(cls, name, bad):
    params = _params(cls)
    params[name] = params[name].copy()
    params[name].flat[-1] = bad
    with pytest.raises(
        ValueError, match=exact(f"`{name}` must contain only finite values; got NaN or inf.")
    ):
        cls(**params)


@pytest.mark.parametrize("alpha", [np.nan, np.inf])
def test_residual_alpha_must_be_finite(alpha):
    with pytest.raises(ValueError, match=exact(f"`alpha` must be a finite number; got {alpha!r}.")):
        gs.ResidualRNN(np.eye(2), alpha=alpha)
    with pytest.raises(TypeError, match=exact("`alpha` must be a finite number; got 'big'.")):
        gs.ResidualRNN(np.eye(2), alpha="big")


def test_complex_weights_rejected():
    """numpy silently drops the imaginary part when casting to float64 (only a ComplexWarning);
    a cell must refuse complex weights instead of computing with their real part."""
    with pytest.raises(TypeError, match="`weight_hh`"):
        gs.RNN(np.eye(2) * (1 + 1j))


# ------------------------------------------------------------------------------------------
# state, x, cotangent
CELLS = {"RNN": rnn, "LSTM": lstm, "GRU": gru}


@pytest.mark.parametrize("make", list(CELLS.values()), ids=list(CELLS))
@pytest.mark.parametrize("method", ["step", "jacobian", "vjp"])
def test_state_last_dimension(make, method):
    cell = make()
    s = cell.state_size
    bad = np.zeros(s + 1)
    call = {
        "step": lambda st: cell.step(st, np.zeros(cell.n_input)),
        "jacobian": lambda st: cell.jacobian(st, np.zeros(cell.n_input)),
        "vjp": lambda st: cell.vjp(st, np.zeros(cell.n_input), np.zeros(s)),
    }[method]
    with pytest.raises(
        ValueError, match=exact(f"`state` must have last dimension state_size={s}; got shape ({s + 1},).")
    ):
        call(bad)
    with pytest.raises(ValueError, match=re.escape(f"state_size={s}; got shape ().")):
        call(np.float64(0.0))


def test_lstm_state_is_h_and_c():
    """A user passing only h (length N) to an LSTM gets told the state is 2N long."""
    cell = lstm(n=3)
    with pytest.raises(ValueError, match=re.escape("`state` must have last dimension state_size=6; got shape (3,).")):
        cell.step(np.zeros(3), np.zeros(1))


@pytest.mark.parametrize("make", list(CELLS.values()), ids=list(CELLS))
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_state_and_x_must_be_finite(make, bad):
    cell = make()
    s = np.zeros(cell.state_size)
    s[0] = bad
    with pytest.raises(ValueError, match=exact("`state` must contain only finite values; got NaN or inf.")):
        cell.step(s, np.zeros(cell.n_input))
    x = np.zeros(cell.n_input)
    x[0] = bad
    with pytest.raises(ValueError, match=exact("`x` must contain only finite values; got NaN or inf.")):
        cell.jacobian(np.zeros(cell.state_size), x)


@pytest.mark.parametrize("make", list(CELLS.values()), ids=list(CELLS))
def test_x_last_dimension(make):
    cell = make()
    s = np.zeros(cell.state_size)
    i = cell.n_input
    for call in (cell.step, cell.jacobian):
        with pytest.raises(
            ValueError, match=exact(f"`x` must have last dimension n_input={i}; got shape ({i + 2},).")
        ):
            call(s, np.zeros(i + 2))
    with pytest.raises(ValueError, match=re.escape(f"n_input={i}; got shape (4, {i + 1}).")):
        cell.vjp(np.zeros((4, cell.state_size)), np.zeros((4, i + 1)), np.zeros((4, cell.state_size)))


def test_cell_without_input_rejects_an_input():
    cell = gs.RNN(np.eye(2))
    with pytest.raises(ValueError, match=exact("`x` must have last dimension n_input=0; got shape (1,).")):
        cell.step(np.zeros(2), np.ones(1))


@pytest.mark.parametrize(
    "make,path,size",
    [(rnn, "full", 3), (lstm, "full", 4), (lstm, "cell", 2), (lstm, "hidden", 2), (gru, "direct", 2)],
)
def test_cotangent_last_dimension_and_finiteness(make, path, size):
    cell = make()
    s, x = np.zeros(cell.state_size), np.zeros(cell.n_input)
    with pytest.raises(
        ValueError,
        match=exact(f"`cotangent` must have last dimension {size} (path {path!r}); got shape ({size + 1},)."),
    ):
        cell.vjp(s, x, np.zeros(size + 1), path)
    with pytest.raises(ValueError, match=exact("`cotangent` must contain only finite values; got NaN or inf.")):
        cell.vjp(s, x, np.full(size, np.nan), path)


def test_mismatched_batch_shapes_name_the_arguments():
    """state of batch 2 and x of batch 3 cannot be paired; the error must say which arguments
    (a bare numpy broadcasting error does not)."""
    cell = lstm(n=3)
    with pytest.raises(ValueError, match=r"`(state|x)`"):
        cell.step(np.zeros((2, 6)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"`(state|x)`"):
        rnn().jacobian(np.zeros((2, 3)), np.zeros((3, 2)))


# ------------------------------------------------------------------------------------------
# names: activation, variant, kind, init, path
@pytest.mark.parametrize("bad", ["softplus", "Tanh", None])
def test_unknown_activation(bad):
    with pytest.raises(ValueError, match=exact(f"`activation` must be one of {ACTS}; got {bad!r}.")):
        gs.RNN(np.eye(2), activation=bad)
    with pytest.raises(ValueError, match=exact(f"`activation` must be one of {ACTS}; got {bad!r}.")):
        gs.make_cell("residual", 2, activation=bad)


def test_unknown_variant():
    with pytest.raises(
        ValueError, match=exact("`variant` must be one of 'torch', 'reset_before', 'chung'; got 'keras'.")
    ):
        gs.GRU(None, np.zeros((6, 2)), variant="keras")
    with pytest.raises(ValueError, match=re.escape("`variant` must be one of")):
        gs.make_cell("gru", 2, variant="cudnn")


def test_unknown_kind():
    with pytest.raises(ValueError, match=exact(f"`kind` must be one of {KINDS}; got 'transformer'.")):
        gs.make_cell("transformer", 3)
    with pytest.raises(ValueError, match=exact(f"`kind` must be one of {KINDS}; got 'LSTM'.")):
        gs.make_cell("LSTM", 3)


def test_unknown_init():
    with pytest.raises(ValueError, match=exact(f"`init` must be one of {INITS}; got 'glorot'.")):
        gs.make_cell("rnn", 3, init="glorot")
    with pytest.raises(ValueError, match=exact(f"`init` must be one of {INITS}; got 'kaiming'.")):
        init.initialise("kaiming", 3)


@pytest.mark.parametrize(
    "make,bad,options",
    [
        (rnn, "cell", "'full'"),
        (lstm, "direct", "'full', 'cell', 'hidden'"),
        (gru, "hidden", "'full', 'direct'"),
        (gru, None, "'full', 'direct'"),
    ],
)
def test_unknown_path(make, bad, options):
    cell = make()
    s, x = np.zeros(cell.state_size), np.zeros(cell.n_input)
    msg = exact(f"`path` must be one of {options}; got {bad!r}.")
    with pytest.raises(ValueError, match=msg):
        cell.jacobian(s, x, bad)
    with pytest.raises(ValueError, match=msg):
        cell.vjp(s, x, np.zeros(cell.state_size), bad)
    with pytest.raises(ValueError, match=msg):
        cell.path_size(bad)


@pytest.mark.parametrize("kind", ["lstm", "gru", "irnn"])
def test_make_cell_rejects_unknown_activation_even_where_unused(kind):
    """`activation` is unused by these kinds, but a misspelt name must not pass silently."""
    with pytest.raises(ValueError, match=r"`activation`.*'softplus'"):
        gs.make_cell(kind, 3, activation="softplus")


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_make_cell_rejects_unknown_variant_even_where_unused(kind):
    with pytest.raises(ValueError, match=r"`variant`.*'keras'"):
        gs.make_cell(kind, 3, variant="keras")


# ------------------------------------------------------------------------------------------
# numbers: gain, seeds, sizes
@pytest.mark.parametrize("name", ["gain", "input_gain", "bias_std"])
@pytest.mark.parametrize("bad", [-1.0, -1, np.nan, np.inf])
def test_make_cell_negative_or_nonfinite_scales(name, bad):
    with pytest.raises(
        ValueError, match=exact(f"`{name}` must be a non-negative finite number; got {float(bad)!r}.")
    ):
        gs.make_cell("rnn", 3, **{name: bad})


@pytest.mark.parametrize("name", ["gain", "input_gain", "bias_std"])
def test_make_cell_scale_type(name):
    with pytest.raises(TypeError, match=exact(f"`{name}` must be a non-negative finite number; got '1'.")):
        gs.make_cell("rnn", 3, **{name: "1"})
    with pytest.raises(TypeError, match=exact(f"`{name}` must be a non-negative finite number; got True.")):
        gs.make_cell("rnn", 3, **{name: True})


@pytest.mark.parametrize("name", ["gaussian", "orthogonal", "xavier_uniform", "xavier_normal", "he_normal", "he_uniform"])
def test_initialiser_negative_gain(name):
    with pytest.raises(ValueError, match=exact("`gain` must be a non-negative finite number; got -0.5.")):
        getattr(init, name)(3, gain=-0.5)
    with pytest.raises(ValueError, match=exact("`gain` must be a non-negative finite number; got nan.")):
        getattr(init, name)(3, gain=np.nan)


def test_identity_negative_scale():
    with pytest.raises(ValueError, match=exact("`scale` must be a non-negative finite number; got -1.0.")):
        init.identity(3, scale=-1)


@pytest.mark.parametrize(
    "call",
    [
        lambda rng: gs.make_cell("lstm", 3, rng=rng),
        lambda rng: init.gaussian(3, rng=rng),
        lambda rng: init.orthogonal(3, rng=rng),
        lambda rng: init.pytorch_uniform(3, 3, rng=rng),
        lambda rng: init.chrono_bias(3, 10.0, rng=rng),
    ],
    ids=["make_cell", "gaussian", "orthogonal", "pytorch_uniform", "chrono_bias"],
)
def test_negative_seed_and_bad_rng_type(call):
    with pytest.raises(ValueError, match=exact("`rng` must be a non-negative seed; got -1.")):
        call(-1)
    with pytest.raises(TypeError, match=exact(RNG_TYPE + "1.5.")):
        call(1.5)
    with pytest.raises(TypeError, match=exact(RNG_TYPE + "'seed'.")):
        call("seed")


@pytest.mark.parametrize("bad,exc,shown", [(2.5, TypeError, "2.5"), ("4", TypeError, "'4'"), (True, TypeError, "True"), (0, ValueError, "0"), (-3, ValueError, "-3")])
def test_make_cell_n_hidden(bad, exc, shown):
    with pytest.raises(exc, match=exact(f"`n_hidden` must be an integer >= 1; got {shown}.")):
        gs.make_cell("rnn", bad)


@pytest.mark.parametrize("bad,exc,shown", [(1.0, TypeError, "1.0"), (-1, ValueError, "-1")])
def test_make_cell_n_input(bad, exc, shown):
    with pytest.raises(exc, match=exact(f"`n_input` must be an integer >= 0; got {shown}.")):
        gs.make_cell("rnn", 3, bad)


def test_numpy_integer_sizes_accepted():
    cell = gs.make_cell("gru", np.int64(3), np.int32(2), rng=np.uint8(1))
    assert (cell.n_hidden, cell.n_input) == (3, 2)


def test_initialiser_shape_errors():
    with pytest.raises(
        TypeError, match=exact("`shape` must be an int n or a pair (fan_out, fan_in); got (3,).")
    ):
        init.gaussian((3,))
    with pytest.raises(TypeError, match=re.escape("got (2, 3, 4).")):
        init.orthogonal((2, 3, 4))
    with pytest.raises(ValueError, match=exact("`shape` must be an integer >= 1; got 0.")):
        init.gaussian(0)
    with pytest.raises(ValueError, match=exact("`shape[0]` must be an integer >= 0; got -1.")):
        init.xavier_normal((-1, 3))
    with pytest.raises(TypeError, match=exact("`shape[1]` must be an integer >= 0; got 2.0.")):
        init.he_normal((3, 2.0))
    with pytest.raises(ValueError, match=exact("`n_hidden` must be an integer >= 1; got 0.")):
        init.pytorch_uniform(3, 0)


# ------------------------------------------------------------------------------------------
# LSTM-only options
@pytest.mark.parametrize("kind", ["rnn", "irnn", "residual", "gru"])
@pytest.mark.parametrize("option", [{"forget_bias": 1.0}, {"chrono_t_max": 100.0}])
def test_lstm_only_options_rejected_for_other_kinds(kind, option):
    with pytest.raises(
        ValueError,
        match=exact(f"`forget_bias` and `chrono_t_max` apply to kind='lstm' only; got kind={kind!r}."),
    ):
        gs.make_cell(kind, 3, **option)


@pytest.mark.parametrize("t_max", [2.0, 1.5])
def test_chrono_bias_t_max_at_most_two(t_max):
    with pytest.raises(
        ValueError,
        match=exact(f"`t_max` must be a number > 2 (the longest memory in steps); got {t_max!r}."),
    ):
        init.chrono_bias(3, t_max)
    with pytest.raises(ValueError, match=exact("`t_max` must be a positive finite number; got -5.0.")):
        init.chrono_bias(3, -5.0)


@pytest.mark.parametrize("t_max", [2.0, 1.0, -5.0, np.inf])
def test_make_cell_chrono_t_max_error_names_chrono_t_max(t_max):
    """The user passed `chrono_t_max`; the message must name that argument, not an internal one."""
    with pytest.raises(ValueError, match=r"`chrono_t_max`.*" + re.escape(repr(float(t_max)))):
        gs.make_cell("lstm", 3, chrono_t_max=t_max)


@pytest.mark.parametrize("bad", [np.nan, np.inf, "1"])
def test_make_cell_forget_bias_error_names_forget_bias(bad):
    """Same for `forget_bias`: the message must name it (and show the value), not `value`."""
    with pytest.raises((ValueError, TypeError), match=r"`forget_bias`.*" + re.escape(repr(bad))):
        gs.make_cell("lstm", 3, forget_bias=bad)


def test_forget_gate_bias_value_must_be_finite():
    with pytest.raises(ValueError, match=exact("`value` must be a finite number; got nan.")):
        init.forget_gate_bias(3, np.nan)
