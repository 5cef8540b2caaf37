"""gradsim against PyTorch autodiff: ``python -m gradsim.bench.vs_torch [--threads N] [--quick]``.

Needs PyTorch (``pip install 'gradsim[torch]'``). Prints, from one run with one thread count
for numpy's BLAS and for torch (``threadpoolctl`` and ``torch.set_num_threads`` set to the same
value, default 1, so that the ratios compare equal resources on a shared, noisy machine):

1. the time of the full product d s_T / d s_0 of a tanh RNN and an LSTM (N = 128, T = 200,
   float64, 8 inputs of N(0, 1) per step, a random initial state): by gradsim's analytic
   product (:func:`gradsim.jacobian_product`), by ``torch.func.jacrev`` and by
   ``torch.autograd.functional.jacobian`` (its default, one backward pass per output) of the
   ``nn.RNN`` / ``nn.LSTM`` module's forward pass over the sequence, with the ratios and the
   largest difference between gradsim's product and jacrev's, relative to the largest entry;

2. the time of the full Lyapunov spectrum (all S exponents over the same T steps): by
   :func:`gradsim.lyapunov_spectrum` and by the PyTorch loop of published Lyapunov-spectrum
   codes for RNNs (Vogt et al. 2022): one-step Jacobian written analytically in torch, frame
   pushed and re-orthonormalised by ``torch.linalg.qr`` every step, exponents the mean of
   log|R_ii|; and the same loop with the one-step Jacobian from ``torch.func.jacrev`` (what
   one writes without deriving the Jacobian). The largest difference between the spectra is
   printed next to each.

The weights are the same in both libraries (exported with :func:`gradsim.interop.to_state_dict`);
see ``CASES`` for the initialisations. Every time is the best of ``--repeats`` runs
(one run for a method slower than 2 s).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from ..cells import LSTM, make_cell
from ..interop.weights import to_state_dict
from ..numeric import jacobian_product, lyapunov_spectrum

TARGET_PRODUCT = 1.5  # gradsim's product at least this many times faster than jacrev
TARGET_SPECTRUM = 3.0  # gradsim's spectrum at least this many times faster than per-step QR

# (cell, label, make_cell keywords). The first two are gradsim.bench's defaults (Gaussian gain 1
# tanh RNN, PyTorch-default LSTM, inputs of unit drive). The spectrum's speed depends on the
# spread of the exponents (how fast the frame's columns align, hence how often gradsim must
# re-orthonormalise, see gradsim.numeric), so two better-conditioned cases follow: an
# orthogonal RNN with weak input drive and an orthogonal LSTM with forget-gate bias 1.
CASES = (
    ("rnn", "gaussian", dict(init="gaussian", gain=1.0, activation="tanh")),
    ("lstm", "pytorch", dict(init="pytorch")),
    ("rnn", "orth,in0.3", dict(init="orthogonal", gain=1.0, activation="tanh", input_gain=0.3)),
    ("lstm", "orth,fb1", dict(init="orthogonal", forget_bias=1.0)),
)


def _best(run, repeats: int):
    """(best wall time of ``repeats`` calls, last result); one call when it takes > 2 s."""
    best, result = np.inf, None
    for i in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
        if best > 2.0:
            break
    return best, result


def _module(torch, cell):
    kind = torch.nn.LSTM if isinstance(cell, LSTM) else torch.nn.RNN
    module = kind(cell.n_input, cell.n_hidden).double()
    module.load_state_dict(to_state_dict(cell, as_torch=True))
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _final_state_fn(torch, module, lstm: bool, x):
    """s0 -> s_T through the module's own forward pass (the fused nn.RNN / nn.LSTM kernels)."""
    n = module.hidden_size

    def f(s0):
        if lstm:
            _, (h, c) = module(x, (s0[None, :n], s0[None, n:]))
            return torch.cat([h[0], c[0]])
        return module(x, s0[None])[1][0]

    return f


def _torch_step_and_jacobian(torch, cell):
    """(state, x) -> (next state, one-step Jacobian), written analytically in torch."""
    w_ih, w_hh = torch.from_numpy(np.array(cell.weight_ih)), torch.from_numpy(np.array(cell.weight_hh))
    bias = torch.from_numpy(np.array(cell.bias_ih + cell.bias_hh))
    n = cell.n_hidden
    if not isinstance(cell, LSTM):
        def rnn(h, x):
            h_new = torch.tanh(w_ih @ x + w_hh @ h + bias)
            return h_new, (1 - h_new**2)[:, None] * w_hh
        return rnn

    w_i, w_f, w_g, w_o = w_hh[:n], w_hh[n : 2 * n], w_hh[2 * n : 3 * n], w_hh[3 * n :]

    def lstm(s, x):
        h, c = s[:n], s[n:]
        a = w_ih @ x + w_hh @ h + bias
        i, f, g, o = (torch.sigmoid(a[:n]), torch.sigmoid(a[n : 2 * n]), torch.tanh(a[2 * n : 3 * n]),
                      torch.sigmoid(a[3 * n :]))
        c_new = f * c + i * g
        tc = torch.tanh(c_new)
        dc_dh = ((c * f * (1 - f))[:, None] * w_f + (g * i * (1 - i))[:, None] * w_i
                 + (i * (1 - g**2))[:, None] * w_g)
        out = o * (1 - tc**2)
        dh_dh = (tc * o * (1 - o))[:, None] * w_o + out[:, None] * dc_dh
        jac = torch.cat([torch.cat([dh_dh, torch.diag(out * f)], 1),
                         torch.cat([dc_dh, torch.diag(f)], 1)], 0)
        return torch.cat([o * tc, c_new]), jac

    return lstm


def _torch_jacrev_step(torch, module, lstm: bool):
    """(state, x) -> (next state, one-step Jacobian by torch.func.jacrev of the module)."""
    def step_and_jac(s, x):
        f = _final_state_fn(torch, module, lstm, x[None])
        return f(s), torch.func.jacrev(f)(s)
    return step_and_jac


def _torch_qr_spectrum(torch, step_and_jac, s0, inputs):
    """Lyapunov exponents by a QR of the frame after every step (Benettin et al. 1980)."""
    size = s0.shape[0]
    q = torch.eye(size, dtype=torch.float64)
    total = torch.zeros(size, dtype=torch.float64)
    s = s0
    for x in inputs:
        s, jac = step_and_jac(s, x)
        q, r = torch.linalg.qr(jac @ q)
        total += torch.log(torch.abs(torch.diagonal(r)))
    return torch.sort(total / inputs.shape[0], descending=True).values.numpy()


def run(n_hidden: int = 128, steps: int = 200, threads: int = 1, repeats: int = 3,
        out=sys.stdout) -> list[dict]:
    """Run the benchmark, print its tables to ``out`` and return one dict per cell."""
    import torch

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        with threadpool_limits(limits=threads):
            libs = ", ".join(f"{i['internal_api']} ({i['num_threads']} thread(s))" for i in threadpool_info())
            print(f"gradsim vs PyTorch {torch.__version__}: float64, N={n_hidden}, T={steps}, "
                  f"torch threads {torch.get_num_threads()}, {libs}; best of {repeats}", file=out)
            for kind, init, keywords in CASES:
                rows.append(_one_cell(torch, kind, init, keywords, n_hidden, steps, repeats))
            _print(rows, out)
    finally:
        torch.set_num_threads(old_threads)
    return rows


def _one_cell(torch, kind, init, keywords, n_hidden, steps, repeats) -> dict:
    cell = make_cell(kind, n_hidden, 8, rng=1, **keywords)
    lstm = kind == "lstm"
    rng = np.random.default_rng(2)
    inputs = rng.standard_normal((steps, cell.n_input))
    s0 = 0.5 * rng.standard_normal(cell.state_size)
    module = _module(torch, cell)
    x, s0_t = torch.from_numpy(inputs), torch.from_numpy(s0)
    f = _final_state_fn(torch, module, lstm, x)
    # Untimed warm-up on two steps: torch.func's first call sets up its transforms (~0.5 s).
    short = _final_state_fn(torch, module, lstm, x[:2])
    torch.func.jacrev(short)(s0_t)
    torch.autograd.functional.jacobian(short, s0_t)
    _torch_qr_spectrum(torch, _torch_jacrev_step(torch, module, lstm), s0_t, x[:2])

    t_gs, (log_scale, matrix) = _best(lambda: jacobian_product(cell, inputs, s0), repeats)
    product = np.exp(log_scale) * matrix
    t_jr, ref = _best(lambda: torch.func.jacrev(f)(s0_t), repeats)
    t_ag, ref_ag = _best(lambda: torch.autograd.functional.jacobian(f, s0_t), repeats)
    ref, ref_ag = ref.numpy(), ref_ag.numpy()
    scale = float(np.max(np.abs(ref)))

    t_ly, spectrum = _best(lambda: lyapunov_spectrum(cell, inputs, s0), repeats)
    analytic = _torch_step_and_jacobian(torch, cell)
    t_qr, ref_ly = _best(lambda: _torch_qr_spectrum(torch, analytic, s0_t, x), repeats)
    t_qr_jr, ref_ly_jr = _best(
        lambda: _torch_qr_spectrum(torch, _torch_jacrev_step(torch, module, lstm), s0_t, x), repeats)
    return dict(
        cell=kind, init=init, size=cell.state_size,
        spread=float(spectrum.exponents[0] - spectrum.exponents[-1]), product_gradsim=t_gs, product_jacrev=t_jr,
        product_autograd=t_ag, product_diff=float(np.max(np.abs(product - ref))) / scale,
        autograd_diff=float(np.max(np.abs(ref_ag - ref))) / scale, product_scale=scale,
        spectrum_gradsim=t_ly, spectrum_torch_qr=t_qr, spectrum_torch_qr_jacrev=t_qr_jr,
        spectrum_diff=float(np.max(np.abs(spectrum.exponents - ref_ly))),
        spectrum_diff_jacrev=float(np.max(np.abs(spectrum.exponents - ref_ly_jr))),
        top_exponent=float(spectrum.exponents[0]),
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _print(rows, out):
    print("\nd s_T / d s_0 (seconds)", file=out)
    print(f"{'cell':5} {'init':10} {'S':>4} {'gradsim':>8} {'jacrev':>8} {'autograd':>9} {'jacrev/gs':>9} "
          f"{'autograd/gs':>11} {'max|gs-jacrev|/max|P|':>22} {'max|P|':>9}", file=out)
    for r in rows:
        print(f"{r['cell']:5} {r['init']:10} {r['size']:4d} {r['product_gradsim']:8.3f} {r['product_jacrev']:8.3f} "
              f"{r['product_autograd']:9.3f} {r['product_jacrev'] / r['product_gradsim']:9.2f} "
              f"{r['product_autograd'] / r['product_gradsim']:11.2f} {r['product_diff']:22.2e} "
              f"{r['product_scale']:9.3g}", file=out)
    print("\nLyapunov spectrum, all S exponents (seconds; diff = max |gradsim - torch| per step)", file=out)
    print(f"{'cell':5} {'init':10} {'S':>4} {'gradsim':>8} {'QR loop':>8} {'QR/gs':>6} {'diff':>9} "
          f"{'QR+jacrev':>9} {'QR+jr/gs':>8} {'diff':>9} {'top exp':>8} {'spread':>7}", file=out)
    for r in rows:
        print(f"{r['cell']:5} {r['init']:10} {r['size']:4d} {r['spectrum_gradsim']:8.3f} {r['spectrum_torch_qr']:8.3f} "
              f"{r['spectrum_torch_qr'] / r['spectrum_gradsim']:6.2f} {r['spectrum_diff']:9.1e} "
              f"{r['spectrum_torch_qr_jacrev']:9.3f} "
              f"{r['spectrum_torch_qr_jacrev'] / r['spectrum_gradsim']:8.2f} "
              f"{r['spectrum_diff_jacrev']:9.1e} {r['top_exponent']:8.4f} {r['spread']:7.2f}", file=out)
    print("  QR loop: one-step Jacobian written analytically in torch, torch.linalg.qr every step;"
          "\n  QR+jacrev: the same loop with the one-step Jacobian from torch.func.jacrev;"
          "\n  spread: largest minus smallest exponent (nats per step).", file=out)
    print("\ntargets:", file=out)
    for r in rows:
        speed = r["product_jacrev"] / r["product_gradsim"]
        ok = speed >= TARGET_PRODUCT and r["product_diff"] <= 1e-12
        print(f"  {r['cell']} {r['init']}: product {speed:.2f}x faster than jacrev (target >= {TARGET_PRODUCT}x), "
              f"rel. diff {r['product_diff']:.1e} (target <= 1e-12): {_verdict(ok)}", file=out)
        speed = r["spectrum_torch_qr"] / r["spectrum_gradsim"]
        ok = speed >= TARGET_SPECTRUM
        print(f"  {r['cell']} {r['init']}: spectrum {speed:.2f}x faster than the per-step-QR loop (target >= "
              f"{TARGET_SPECTRUM}x), diff {r['spectrum_diff']:.1e} per step: {_verdict(ok)}", file=out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsim.bench.vs_torch",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for numpy's BLAS and torch (default 1)")
    parser.add_argument("--n", type=int, default=128, help="hidden units N (default 128)")
    parser.add_argument("--steps", type=int, default=200, help="horizon T (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats, best kept (default 3)")
    parser.add_argument("--quick", action="store_true", help="N=16, T=20, one repeat: a smoke run")
    args = parser.parse_args(argv)
    for name in ("threads", "n", "steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1; got {getattr(args, name)}")
    try:
        import torch  # noqa: F401
    except ImportError:
        parser.error("needs PyTorch: pip install 'gradsim[torch]'")
    if args.quick:
        args.n, args.steps, args.repeats = 16, 20, 1
    run(n_hidden=args.n, steps=args.steps, threads=args.threads, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
