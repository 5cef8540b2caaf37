"""gradsim.training.floss (gradient flossing, Engelken 2023) and train_model's flossing option.

References, each independent of the code under test:

* the exponents recorded by ``floss`` are those of ``gs.lyapunov_spectrum`` of the cell of that
  update (recomputed here from the cells of step-by-step runs);
* one flossing update equals one hand-written Adam step on the gradient from ``gs.lyapunov_vjp``
  with the cotangent 2 (lambda - target) / k (lyapunov_vjp is itself tested against finite
  differences in test_lyapunov_vjp.py);
* an ensemble's member equals the member flossed alone (the members share BLAS calls, not
  arithmetic: agreement to rounding, amplified by the chaotic trajectory; see the tolerance);
* the convergence run is checked on a fresh long window, against lyapunov_spectrum's own
  standard error.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gradsim as gs
from gradsim.training.backprop import Adam, Flossing, init_model, train_model
from gradsim.training.floss import FlossResult, floss
from gradsim.training.tasks import adding_problem


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def _chaotic(n=16, seed=1, **options):
    """A tanh RNN at gain 2 (chaotic for these seeds: top exponent > 0 by many s.e.)."""
    return gs.make_cell("rnn", n, 1, gain=2.0, rng=seed, **options)


def _start(n, seed=11):
    return 0.5 * np.random.default_rng(seed).standard_normal(n)


# ------------------------------------------------------------------------------------------
# the update itself
def test_one_update_is_an_adam_step_on_the_exact_gradient():
    cell = _chaotic()
    s0 = _start(16)
    x = 0.3 * np.random.default_rng(2).standard_normal((40, 1))
    k, target, lr = 2, 0.01, 3e-3
    result = floss(cell, x, k, target=target, updates=1, learning_rate=lr, warmup=10, state0=s0)
    lam = gs.lyapunov_spectrum(cell, x, state0=s0, k=k, warmup=10).exponents
    grads = gs.lyapunov_vjp(cell, x, k, 2 * (lam - target) / k, state0=s0, warmup=10).parameters
    adam = Adam(lr=lr)
    params = dict(cell.parameters())
    new, _ = adam.update(params, grads, adam.init(params))
    for name, value in result.cell.parameters().items():
        np.testing.assert_allclose(value, new[name], rtol=0, atol=1e-14)
    np.testing.assert_allclose(result.exponents[0], lam, rtol=0, atol=1e-15)
    after = gs.lyapunov_spectrum(result.cell, x, state0=s0, k=k, warmup=10).exponents
    np.testing.assert_allclose(result.exponents[1], after, rtol=0, atol=1e-15)
    np.testing.assert_allclose(result.losses, np.mean((result.exponents - target) ** 2, axis=-1))
    assert isinstance(result, FlossResult)
    assert result.exponents.shape == (2, k) and result.losses.shape == (2,)
    assert result.grad_norm_before.shape == (1,)
    np.testing.assert_array_equal(result.grad_norm_before, result.grad_norm_after)
    assert result.parameters == tuple(cell.parameters()) and (result.k, result.updates) == (k, 1)


def test_fresh_windows_are_gaussian_with_the_inputs_std():
    """With rng, update u's window is rng.standard_normal(shape) * std(inputs), in order."""
    cell = _chaotic()
    x = 3.0 + 0.3 * np.random.default_rng(2).standard_normal((30, 1))
    result = floss(cell, x, 1, updates=2, rng=5, warmup=5, state0=_start(16))
    gen = np.random.default_rng(5)
    windows = [gen.standard_normal(x.shape) * np.std(x) for _ in range(3)]
    lam0 = gs.lyapunov_spectrum(cell, windows[0], state0=_start(16), k=1, warmup=5).exponents
    np.testing.assert_allclose(result.exponents[0], lam0, rtol=0, atol=1e-15)
    final = gs.lyapunov_spectrum(result.cell, windows[2], state0=_start(16), k=1, warmup=5).exponents
    np.testing.assert_allclose(result.exponents[-1], final, rtol=0, atol=1e-15)


def test_flossing_moves_the_top_exponent_to_the_target_within_its_standard_error():
    """The issue's requirement. A gain-2 tanh RNN (N = 32), driven by N(0, 0.3^2) input, is
    chaotic: lambda_1 = 0.0857 +- 0.0027 (seed 2) and 0.0754 +- 0.0022 (seed 0) on a fresh
    5000-step window. Each flossing update draws 16 fresh windows of 50 steps (warm-up 10);
    their mean exponent is flossed (a mean over windows before squaring: the loss of single
    short windows, E[lambda_w^2] = mean^2 + var, trades the mean for the variance and stops
    short of 0, by about 2.5 s.e. with 4 windows here). 100 Adam updates at 3e-3, then 100 at
    1e-3 (a second call: Adam restarts). The flossed cell's top exponent on a fresh 5000-step
    window from another initial state is then within 3 of its standard errors of 0 (observed
    0.0037 +- 0.0050 and 0.0022 +- 0.0036, z = 0.74 and 0.61). The run is deterministic on one
    machine; elsewhere BLAS rounding, amplified by the chaos, changes the path, and the margin
    (3 s.e. against the observed < 1) is what keeps the test robust to it."""
    for seed in (2, 0):
        cell = gs.make_cell("rnn", 32, 1, gain=2.0, rng=seed)
        rng = np.random.default_rng(1)
        s0 = 0.5 * rng.standard_normal(32)
        windows = 0.3 * rng.standard_normal((16, 50, 1))
        fresh = 0.3 * np.random.default_rng(5).standard_normal((5000, 1))
        s1 = 0.5 * np.random.default_rng(6).standard_normal(32)
        before = gs.lyapunov_spectrum(cell, fresh, state0=s1, k=1, warmup=200)
        assert before.exponents[0] > 20 * before.stderr[0]
        for i, lr in enumerate((3e-3, 1e-3)):
            cell = floss(cell, windows, 1, updates=100, learning_rate=lr, rng=10 + i, warmup=10,
                         state0=s0).cell
        after = gs.lyapunov_spectrum(cell, fresh, state0=s1, k=1, warmup=200)
        assert abs(after.exponents[0]) <= 3 * after.stderr[0], (seed, after.exponents, after.stderr)


def test_loss_decreases():
    cell = _chaotic(32, seed=2)
    result = floss(cell, 150, 1, updates=40, learning_rate=3e-3, warmup=50, state0=_start(32))
    first, last = result.losses[:5].mean(), result.losses[-5:].mean()
    assert last < 0.5 * first, (first, last)


def test_loss_decreases_for_two_exponents():
    """k = 2 on the input-driven network of the convergence test: the mean loss of the last 10
    updates is below 0.8 of the first 10's (observed 0.66: both exponents move down, the top one
    toward 0, the second away from it; k > 1 needs more updates than this test affords)."""
    cell = gs.make_cell("rnn", 32, 1, gain=2.0, rng=2)
    rng = np.random.default_rng(1)
    s0 = 0.5 * rng.standard_normal(32)
    windows = 0.3 * rng.standard_normal((16, 50, 1))
    result = floss(cell, windows, 2, updates=60, learning_rate=3e-3, rng=10, warmup=10, state0=s0)
    assert result.exponents.shape == (61, 2)
    first, last = result.losses[:10].mean(), result.losses[-10:].mean()
    assert last < 0.8 * first, (first, last)


def test_overflowing_gradient_is_reported():
    """A window far too long for a chaotic network: the trajectory's cotangent grows as
    exp(lambda_1 T) = exp(0.21 * 4000), beyond float64."""
    cell = gs.make_cell("rnn", 16, 1, gain=4.0, rng=0)
    with pytest.raises(FloatingPointError, match="the flossing gradient overflowed float64 at flossing update 0"):
        floss(cell, 4000, 1, updates=1, state0=_start(16, 1) * 2)


def test_parameters_restricts_what_changes():
    cell = _chaotic()
    result = floss(cell, 30, 2, updates=3, learning_rate=1e-2, warmup=5, state0=_start(16),
                   parameters=["weight_hh"])
    assert result.parameters == ("weight_hh",)
    for name, value in cell.parameters().items():
        if name == "weight_hh":
            assert np.max(np.abs(result.cell.weight_hh - value)) > 1e-3
        else:
            np.testing.assert_array_equal(getattr(result.cell, name), value)


def test_clip_norm_bounds_the_gradient_and_the_step():
    """With a tiny clip_norm every gradient is cut to it; Adam's step size does not depend on the
    gradient's scale, so the step equals the unclipped one's except through eps: with
    clip_norm = 1e-12 (|g| ~ 1e-12 / sqrt(P) per entry, below eps = 1e-8) the step is
    lr * g / eps, of norm at most lr * 1e-12 / 1e-8 = 1e-4 lr per update."""
    cell = _chaotic()
    s0 = _start(16)
    lr = 1e-2
    free = floss(cell, 30, 2, updates=3, learning_rate=lr, warmup=5, state0=s0)
    clipped = floss(cell, 30, 2, updates=3, learning_rate=lr, warmup=5, state0=s0, clip_norm=1e-12)
    assert np.all(clipped.grad_norm_before > 1.0)
    assert np.all(clipped.grad_norm_after <= 1e-12)
    np.testing.assert_array_equal(free.grad_norm_before, free.grad_norm_after)
    moved = np.sqrt(sum(np.sum((clipped.cell.parameters()[n] - v) ** 2) for n, v in cell.parameters().items()))
    assert moved <= 3 * lr * 1e-4
    step_free = np.sqrt(sum(np.sum((free.cell.parameters()[n] - v) ** 2) for n, v in cell.parameters().items()))
    assert step_free > 100 * moved


def test_every_cell_kind_runs():
    for kind in gs.CELL_KINDS:
        cell = gs.make_cell(kind, 4, 1, rng=0, bias_std=0.1)
        x = 0.5 * np.random.default_rng(1).standard_normal((12, 1))
        result = floss(cell, x, 2, updates=2, warmup=2, state0=0.1 * np.ones(cell.state_size))
        assert result.exponents.shape == (3, 2) and np.all(np.isfinite(result.exponents)), kind
        assert type(result.cell) is type(cell)


def test_lstm_hidden_path():
    cell = gs.make_cell("lstm", 4, 1, rng=0)
    result = floss(cell, np.ones((12, 1)), 4, updates=2, warmup=2, path="hidden")
    assert result.exponents.shape == (3, 4)


# ------------------------------------------------------------------------------------------
# ensembles
# Member i of the ensemble and the lone member differ by rounding (batched BLAS) that the
# chaotic trajectory amplifies by e^(lambda_1 T) ~ e^(0.1 * 30) ~ 20 per window, and three
# Adam steps of size lr add it to the parameters: 1e-9 leaves a margin of 1e3 over the
# observed 1e-12.
ENSEMBLE_ATOL = 1e-9


@pytest.mark.parametrize("clip", [None, 0.5])
def test_ensemble_member_equals_its_lone_run(clip):
    ens = gs.make_cell("rnn", 8, 1, gain=2.0, ensemble=3, rng=4)
    s0 = _start(8)
    x = 0.3 * np.random.default_rng(2).standard_normal((30, 1))
    kwargs = dict(updates=3, learning_rate=1e-2, rng=7, warmup=5, state0=s0, clip_norm=clip)
    together = floss(ens, x, 2, **kwargs)
    assert together.exponents.shape == (4, 3, 2) and together.losses.shape == (4, 3)
    assert together.grad_norm_after.shape == (3, 3)
    for i in range(3):
        alone = floss(ens[i], x, 2, **kwargs)
        np.testing.assert_allclose(together.exponents[:, i], alone.exponents, rtol=0, atol=ENSEMBLE_ATOL)
        np.testing.assert_allclose(together.grad_norm_after[:, i], alone.grad_norm_after, rtol=1e-9)
        for name, value in alone.cell.parameters().items():
            np.testing.assert_allclose(together.cell[i].parameters()[name], value, rtol=0, atol=ENSEMBLE_ATOL)
    if clip is not None:
        assert np.all(together.grad_norm_after <= clip)


def test_batch_of_windows_flosses_their_mean():
    """Several windows of one network (a batch of initial states): the loss is that of the mean
    exponents, i.e. the gradient is the mean of the windows' gradients weighted by the mean."""
    cell = _chaotic()
    starts = np.stack([_start(16, s) for s in (1, 2, 3)])
    result = floss(cell, 30, 1, updates=1, learning_rate=1e-3, warmup=5, state0=starts)
    lam = gs.lyapunov_spectrum(cell, 30, state0=starts, k=1, warmup=5).exponents
    np.testing.assert_allclose(result.exponents[0], lam.mean(axis=0), rtol=0, atol=1e-15)
    assert result.exponents.shape == (2, 1)


# ------------------------------------------------------------------------------------------
# bad input
@pytest.mark.parametrize("kwargs, error, message", [
    (dict(k=17), ValueError, "`k` must be an integer in [1, 16] (the state size along path 'full'); got 17."),
    (dict(k=0), ValueError, "`k` must be an integer in [1, 16]"),
    (dict(target=float("nan")), ValueError, "`target` must be a finite number; got nan."),
    (dict(target="0"), TypeError, "`target` must be a finite number; got '0'."),
    (dict(updates=0), ValueError, "`updates` must be an integer >= 1; got 0."),
    (dict(learning_rate=-1e-3), ValueError, "`learning_rate` must be a positive finite number; got -0.001."),
    (dict(learning_rate=0), ValueError, "`learning_rate` must be a positive finite number; got 0.0."),
    (dict(parameters=["weight_hh", "gain"]), ValueError, "got unknown ['gain']"),
    (dict(parameters=[]), ValueError, "`parameters` must name at least one parameter"),
    (dict(clip_norm=0.0), ValueError, "`clip_norm` must be a positive finite number; got 0.0."),
    (dict(path="cell"), ValueError, "`path` must be one of 'full'; got 'cell'."),
])
def test_bad_input(kwargs, error, message):
    args = dict(k=1, target=0.0, updates=1, learning_rate=1e-3)
    args.update(kwargs)
    with pytest.raises(error) as info:
        floss(_chaotic(), 10, **args)
    assert message in str(info.value)


def test_bad_cell_and_inputs():
    with pytest.raises(TypeError, match="`cell` must be a gradsim Cell"):
        floss(lambda t: _chaotic(), 10, 1)
    with pytest.raises(TypeError, match="`inputs` must be a positive int T or an array"):
        floss(_chaotic(), None, 1)
    with pytest.raises(ValueError, match="`inputs` must contain only finite values"):
        floss(_chaotic(), np.full((5, 1), np.nan), 1)


# ------------------------------------------------------------------------------------------
# train_model(floss=Flossing(...))
def _model(ensemble=None):
    task = adding_problem(20)
    cell = gs.make_cell("rnn", 12, task.n_input, gain=2.0, rng=0, ensemble=ensemble)
    return init_model(cell, task.n_output, rng=1), task


def test_train_model_schedule_and_record():
    model, task = _model()
    spec = Flossing(2, before=3, every=4, updates=2, episodes=2, steps=45, learning_rate=3e-3)
    record = train_model(model, task, n_updates=13, floss=spec, rng=3, clip_norm=1.0)
    # before update 0: 3; episodes before 4 and 8 (at most 2: none at 12).
    np.testing.assert_array_equal(record.floss_updates, [0, 0, 0, 4, 4, 8, 8])
    assert record.floss_exponents.shape == (7, 2) and record.floss_losses.shape == (7,)
    np.testing.assert_allclose(record.floss_losses, np.mean(record.floss_exponents ** 2, axis=-1))
    assert len(record.losses) == 13 and not record.diverged
    # The first flossing row is the starting cell's exponents on the first window: the task's
    # inputs, 45 steps cut from concatenated sequences of the flossing generator (seed 0).
    gen = np.random.default_rng(0)
    window = np.concatenate([task.sample(1, gen)[0][0] for _ in range(3)])[:45]
    lam = gs.lyapunov_spectrum(model.cell, window, k=2, warmup=4).exponents
    np.testing.assert_allclose(record.floss_exponents[0], lam, rtol=0, atol=1e-15)


def test_train_model_flossing_keeps_the_minibatches():
    """The flossing windows have their own generator: with a flossing that changes nothing
    (clip_norm tiny), the training losses equal those of the run without flossing to the
    flossing's tiny steps (< 1e-4 lr per update, see the clipping test)."""
    model, task = _model()
    plain = train_model(model, task, n_updates=4, rng=3)
    spec = Flossing(1, before=2, every=2, updates=1, clip_norm=1e-12)
    flossed = train_model(model, task, n_updates=4, rng=3, floss=spec)
    np.testing.assert_allclose(flossed.losses, plain.losses, rtol=1e-5)
    assert plain.floss_exponents.shape == (0, 0) and plain.floss_updates.shape == (0,)


def test_train_model_flossing_moves_exponents_toward_target():
    task = adding_problem(20)
    cell = gs.make_cell("rnn", 16, task.n_input, gain=3.0, rng=0)  # chaotic on the task's inputs
    model = init_model(cell, task.n_output, rng=1)
    spec = Flossing(1, before=40, learning_rate=1e-2, steps=100, warmup=20)
    record = train_model(model, task, n_updates=2, floss=spec, rng=3)
    # One window's exponent scatters by about 0.05 (80 measured steps): compare means of 10.
    lam, losses = record.floss_exponents[:, 0], record.floss_losses
    assert lam[:10].mean() > 0.05, lam
    assert abs(lam[-10:].mean()) < 0.3 * lam[:10].mean(), lam
    assert losses[-10:].mean() < 0.5 * losses[:10].mean(), losses


@pytest.mark.parametrize("batches", ["shared", "per_member"])
def test_train_model_ensemble_member_equals_lone_run(batches):
    model, task = _model(ensemble=2)
    spec = Flossing(2, before=2, every=2, updates=1, steps=30, learning_rate=3e-3, rng=5)
    record = train_model(model, task, n_updates=4, floss=spec, rng=3, clip_norm=1.0, batches=batches)
    assert record.floss_exponents.shape == (2, 3, 2) and record.floss_losses.shape == (2, 3)
    for i in range(2):
        if batches == "shared":
            lone_spec, lone_rng = spec, 3
        else:
            child = np.random.default_rng(5).spawn(2)[i]
            lone_spec = Flossing(2, before=2, every=2, updates=1, steps=30, learning_rate=3e-3, rng=child)
            lone_rng = np.random.default_rng(3).spawn(2)[i]
        lone = train_model(model[i], task, n_updates=4, floss=lone_spec, rng=lone_rng, clip_norm=1.0)
        member = record[i]
        np.testing.assert_array_equal(member.floss_updates, lone.floss_updates)
        np.testing.assert_allclose(member.floss_exponents, lone.floss_exponents, rtol=0, atol=ENSEMBLE_ATOL)
        np.testing.assert_allclose(member.losses, lone.losses, rtol=1e-9)
        for name, value in lone.model.params.items():
            np.testing.assert_allclose(member.model.params[name], value, rtol=0, atol=ENSEMBLE_ATOL)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(k=0), ValueError, "`k` must be a positive integer"),
    (dict(k=1), ValueError, "`Flossing` must floss: give `before` >= 1 or `every`"),
    (dict(k=1, before=1, target=float("inf")), ValueError, "`target` must be a finite number; got inf."),
    (dict(k=1, every=0), ValueError, "`every` must be an integer >= 1; got 0."),
    (dict(k=1, before=1, learning_rate=0), ValueError, "`learning_rate` must be a positive finite number"),
    (dict(k=1, before=-1), ValueError, "`before` must be an integer >= 0; got -1."),
    (dict(k=1, before=1, steps=1), ValueError, "`steps` must be an integer >= 2; got 1."),
])
def test_flossing_bad_spec(kwargs, error, message):
    with pytest.raises(error) as info:
        Flossing(**kwargs)
    assert message in str(info.value)


def test_train_model_bad_flossing():
    model, task = _model()
    with pytest.raises(ValueError, match=r"`k` must be an integer in \[1, 12\]"):
        train_model(model, task, n_updates=1, floss=Flossing(13, before=1))
    with pytest.raises(ValueError, match=r"`floss.parameters` must hold names .* got unknown \['weight_out'\]"):
        train_model(model, task, n_updates=1, floss=Flossing(1, before=1, parameters=("weight_out",)))
    with pytest.raises(ValueError, match="`floss.warmup` must be smaller than the window's steps"):
        train_model(model, task, n_updates=1, floss=Flossing(1, before=1, steps=10, warmup=10))
    with pytest.raises(TypeError, match="`floss` must be a gradsim.training.Flossing or None"):
        train_model(model, task, n_updates=1, floss=dict(k=1))
