"""``gradsim analyze``: the gradient dynamics of a trained network, or of one of its layers.

    gradsim analyze WEIGHTS_FILE [--layer K] [--reverse] [--inputs FILE | --steps T] [--out DIR]

reads a recurrent network (PyTorch ``.pt`` / ``.npz`` state dict, or Keras ``.npz``; see
:mod:`gradsim.interop`) or a reservoirpy reservoir saved by the user (``reservoirpy.save``'s
``.rpy``, or a pickled ``Reservoir`` node ``.pkl``; needs ``pip install 'gradsim[reservoir]'``;
a pickle runs code when it is read, so load only files you trust), runs it from the zero state
over the given inputs (or T steps of zero input) and writes, like a study,
``<out>/analyze-<stem>-layer<K>.csv`` with its ``.meta.json`` sidecar and a figure (``.png``,
``.svg``, ``.pdf``).

Without ``--layer``, a PyTorch network of L > 1 unidirectional layers is analysed whole, as
one :class:`gradsim.StackedCell` (the inputs feed layer 0; layer k reads layer k - 1's outputs
of the same step; the state is every layer's state, concatenated), in
``analyze-<stem>-layers0-<L-1>.csv``; a one-layer file gives ``-layer0`` as before.
``--layer K`` analyses layer K alone, driven by the inputs given (which must then have layer
K's input size). A bidirectional multi-layer network needs ``--layer``. The CSV is tidy, one
row per number, with the columns

``quantity``
    ``log_singular_value`` (natural log of the ``index``-th singular value of P_t = d s_t / d s_0,
    descending), ``lyapunov_exponent`` (per step, natural log, descending; ``stderr`` from the
    spread of 20 blocks) or ``log_gradient_norm`` (log ||dL/ds_t|| for L = u . s_T, u the unit
    vector of equal entries);
``path``
    the Jacobian path: ``full`` for every cell, plus ``cell`` and ``hidden`` for an LSTM and
    ``direct`` for a GRU (see :class:`gradsim.LSTM`, :class:`gradsim.GRU`);
``t``, ``index``, ``value``, ``stderr``
    step, rank (0 = largest), the number, its standard error (Lyapunov exponents only).

:func:`analyze_cell` (numbers only) and :func:`plot_analysis` (figure only) are pure; only
:func:`analyze` writes. :func:`add_arguments` and :func:`run` are the command line's hooks.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .._validate import describe, positive_int
from ..cells import GRU, LSTM, Cell
from ..cells.stacked import StackedCell
from .reservoirpy import load_reservoir
from .weights import KERAS_KINDS, TORCH_NONLINEARITIES, load_weights
from ..numeric import gradient_norms, log_singular_values, lyapunov_spectrum
from ..workflow.runner import UsageError, prepare_out, write_table

__all__ = ["analyze", "analyze_cell", "plot_analysis", "read_inputs", "AnalysisResult",
           "add_arguments", "run", "DEFAULT_STEPS"]

DEFAULT_STEPS = 200
# Horizons at which singular values are read: about this many, geometrically spaced in [1, T].
N_TIMES = 24
COLUMNS = ["quantity", "path", "t", "index", "value", "stderr"]
# Files read as a pickled reservoirpy node (load_reservoir) rather than as a weights file.
RESERVOIR_SUFFIXES = (".rpy", ".pkl", ".pickle")
_PATH_NAMES = {"full": "full state", "cell": "LSTM cell path c -> c",
               "hidden": "LSTM hidden path h -> h", "direct": "GRU direct path diag(z)"}


@dataclass(frozen=True)
class AnalysisResult:
    """What :func:`analyze` wrote: paths, the tidy frame and the cell it analysed."""

    csv_path: Path
    meta_path: Path
    figure_paths: list
    frame: pd.DataFrame
    cell: Cell


def _horizons(n_steps: int, count: int = N_TIMES) -> list[int]:
    grid = np.unique(np.round(np.geomspace(1, n_steps, count)).astype(int))
    return sorted(set(grid.tolist()) | {n_steps})


def analyze_cell(cell: Cell, inputs, *, warmup: int = 0) -> pd.DataFrame:
    """Singular values, Lyapunov spectrum and gradient norms of ``cell`` along every path.

    Parameters
    ----------
    cell : Cell
    inputs : int or array, shape (T, n_input)
        As in :func:`gradsim.unroll`; the state starts at zero.
    warmup : int
        Steps skipped before the Lyapunov average (0 <= warmup < T).

    Returns
    -------
    pandas.DataFrame
        Columns ``quantity, path, t, index, value, stderr`` (see the module notes).
    """
    n_steps = inputs if isinstance(inputs, int) else np.shape(inputs)[-2]
    times = _horizons(n_steps)
    rows = []
    # One BLAS thread, as the study runner: the numbers do not depend on the machine's thread
    # count, and a second process on the cores cannot stall OpenBLAS's spinning threads.
    with threadpool_limits(limits=1):
        rows = _analysis_rows(cell, inputs, times, warmup)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    # Lyapunov exponents belong to no step: an empty cell in the CSV, not a sentinel.
    frame["t"] = frame["t"].astype("Int64").mask(frame["t"] < 0)
    return frame


def _analysis_rows(cell, inputs, times, warmup):
    rows = []
    for path in cell.paths:
        logs = log_singular_values(cell, inputs, times=times, path=path)
        for t, values in zip(times, logs):
            rows += [("log_singular_value", path, t, i, float(v), math.nan) for i, v in enumerate(values)]
        spectrum = lyapunov_spectrum(cell, inputs, warmup=warmup, path=path)
        rows += [("lyapunov_exponent", path, -1, i, float(v), float(e))
                 for i, (v, e) in enumerate(zip(spectrum.exponents, spectrum.stderr))]
        norms = gradient_norms(cell, inputs, path=path)
        rows += [("log_gradient_norm", path, t, 0, float(v), math.nan) for t, v in enumerate(norms)]
    return rows


def _cell_label(cell: Cell) -> str:
    if isinstance(cell, StackedCell):
        return f"{len(cell.layers)}-layer stack of " + ", ".join(_cell_label(c) for c in cell.layers)
    if isinstance(cell, LSTM):
        return "LSTM"
    if isinstance(cell, GRU):
        return f"GRU ({cell.variant})"
    return f"{type(cell).__name__} ({cell.activation})"  # RNN, LeakyRNN (a reservoir)


def plot_analysis(frame: pd.DataFrame, title: str = ""):
    """Three panels: log singular values of P_t (full state), Lyapunov spectra, gradient norms."""
    from ..workflow.plotting import PALETTE, finite, new_figure

    fig, axes = new_figure(ncols=3, width=3.8, height=3.2)
    ax_sv, ax_ly, ax_gn = axes[0]
    sv = frame[(frame.quantity == "log_singular_value") & (frame.path == "full")]
    size = int(sv["index"].max()) + 1 if len(sv) else 0
    ranks = sorted(set(np.round(np.linspace(0, size - 1, min(size, 7))).astype(int).tolist()))
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(ranks))]
    for colour, rank in zip(colours, ranks):
        line = sv[sv["index"] == rank].sort_values("t")
        ax_sv.plot(line["t"].astype(float), line["value"], color=colour, marker="o", markersize=2,
                   label=f"rank {rank + 1} of {size}")
    ax_sv.axhline(0.0, color="0.3", lw=0.8, ls=":")
    ax_sv.set_xlabel("step t")
    ax_sv.set_ylabel(r"$\log \sigma_i(P_t)$, $P_t = \partial s_t / \partial s_0$")
    ax_sv.set_title("singular values (full state)", fontsize=8)
    ax_sv.legend(fontsize=6)

    paths = list(dict.fromkeys(frame.path))
    for i, path in enumerate(paths):
        colour = PALETTE[i % len(PALETTE)]
        ly = frame[(frame.quantity == "lyapunov_exponent") & (frame.path == path)].sort_values("index")
        n = len(ly)
        rank = (ly["index"].to_numpy() + 0.5) / max(n, 1)
        values, err = ly["value"].to_numpy(), ly["stderr"].to_numpy()
        ax_ly.plot(rank, values, color=colour, lw=1.2, label=_PATH_NAMES.get(path, path))
        if np.any(np.isfinite(err)):
            ax_ly.fill_between(rank, values - err, values + err, color=colour, alpha=0.25, lw=0)
        gn = frame[(frame.quantity == "log_gradient_norm") & (frame.path == path)].sort_values("t")
        ax_gn.plot(gn["t"].astype(float), gn["value"], color=colour, lw=1.2,
                   label=_PATH_NAMES.get(path, path))
    ly_all = finite(frame.loc[frame.quantity == "lyapunov_exponent", "value"])
    if ly_all.size:
        low, high = ly_all.min(), ly_all.max()
        pad = 0.05 * (high - low) or 0.1
        ax_ly.set_ylim(low - pad, high + pad)
    ax_ly.axhline(0.0, color="0.3", lw=0.8, ls=":")
    ax_ly.set_xlabel("exponent rank / path size")
    ax_ly.set_ylabel("Lyapunov exponent (nats per step)")
    ax_ly.set_title("Lyapunov spectra (band: 1 s.e.)", fontsize=8)
    ax_ly.legend(fontsize=6)
    ax_gn.set_xlabel("step t")
    ax_gn.set_ylabel(r"$\log \|\partial L / \partial s_t\|$, $L = u \cdot s_T$")
    ax_gn.set_title("back-propagated gradient", fontsize=8)
    ax_gn.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


# ------------------------------------------------------------------------------------------
def read_inputs(path, n_input: int) -> np.ndarray:
    """Inputs (T, n_input) from ``.npy``, ``.npz`` (one array, or one named ``inputs``) or text.

    Text files (``.csv``, ``.txt``, ...) hold one step per line, values separated by commas or
    whitespace. A 1-d array is taken as (T, 1) when the layer has one input.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no inputs file at {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                names = data.files
                if "inputs" in names:
                    array = data["inputs"]
                elif len(names) == 1:
                    array = data[names[0]]
                else:
                    raise ValueError(
                        f"{path.name} must hold one array or one named 'inputs'; it holds {', '.join(names)}"
                    )
        else:
            text = path.read_text()
            delimiter = "," if "," in text else None
            array = np.loadtxt(path, delimiter=delimiter, ndmin=2, dtype=np.float64)
    except (ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"cannot read the inputs file {path.name}: {exc}") from None
    try:
        array = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"the inputs file {path.name} must hold real numbers; got dtype {array.dtype}") from None
    if array.ndim == 1 and n_input == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != n_input or array.shape[0] < 1:
        raise ValueError(
            f"the inputs in {path.name} must have shape (T, {n_input}) (T >= 1 steps, one column "
            f"per input of the layer); got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"the inputs in {path.name} must be finite; got NaN or inf")
    return array


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _layers_text(cell: Cell, layer) -> str:
    """``layer<K>`` for one layer, ``layers0-<L-1>`` for a whole stacked network."""
    if layer is None and isinstance(cell, StackedCell):
        return f"layers0-{len(cell.layers) - 1}"
    return f"layer{0 if layer is None else layer}"


def _stem(weights_file: Path, layers_text: str, reverse: bool, prefix) -> str:
    parts = [weights_file.stem]
    if prefix:
        parts.append(re.sub(r"[^A-Za-z0-9_.-]+", "_", prefix.strip("./")))
    parts.append(layers_text)
    if reverse:
        parts.append("reverse")
    return "analyze-" + "-".join(parts)


def _load_cell(weights_file, layer, reverse, load_options) -> Cell:
    """A weights file's layer, or the LeakyRNN of a saved reservoirpy reservoir."""
    if Path(weights_file).suffix.lower() not in RESERVOIR_SUFFIXES:
        return load_weights(weights_file, layer, reverse, **load_options)
    layer = 0 if layer is None else layer  # a reservoir is one layer: the whole network is layer 0
    given = {key: value for key, value in load_options.items() if value is not None}
    if (isinstance(layer, bool) or layer != 0) or reverse or given:
        options = ", ".join(f"{key}={value!r}" for key, value in given.items())
        raise ValueError(
            f"{Path(weights_file).name} holds a reservoirpy reservoir (one layer): `layer` must be 0, "
            "`reverse` False and no PyTorch or Keras option given; got "
            f"layer={layer!r}, reverse={reverse!r}{', ' + options if options else ''}."
        )
    return load_reservoir(weights_file)


def _prepare(weights_file, layer, reverse, inputs_file, steps, warmup, load_options):
    """Load and check everything (no computation): (cell, inputs, inputs description)."""
    if inputs_file is not None and steps is not None:
        raise ValueError("give either inputs (a file) or steps, not both")
    cell = _load_cell(weights_file, layer, reverse, load_options)
    if inputs_file is not None:
        inputs = read_inputs(inputs_file, cell.n_input)
        source = {"inputs_file": str(inputs_file), "inputs_sha256": _sha256(Path(inputs_file))}
    else:
        inputs = positive_int(DEFAULT_STEPS if steps is None else steps, "steps")
        source = {"inputs_file": None, "inputs": "zeros"}
    n_steps = inputs if isinstance(inputs, int) else inputs.shape[0]
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < n_steps:
        raise ValueError(f"`warmup` must be an integer in [0, T) = [0, {n_steps}); got {describe(warmup)}.")
    return cell, inputs, source


def _write(cell, inputs, source, frame, weights_file, layer, reverse, prefix, warmup, out, load_options):
    weights_file = Path(weights_file)
    out = prepare_out(out)
    layers_text = _layers_text(cell, layer)
    stem = _stem(weights_file, layers_text, reverse, prefix)
    csv_path = out / f"{stem}.csv"
    n_steps = inputs if isinstance(inputs, int) else int(inputs.shape[0])
    if layers_text.startswith("layers"):
        where = f"layers 0-{len(cell.layers) - 1}"
    else:
        where = f"layer {layers_text[len('layer'):]}"
    title = (f"{weights_file.name}, {where}{' (reverse)' if reverse else ''}: "
             f"{_cell_label(cell)}, N={cell.n_hidden}, T={n_steps}")
    from ..workflow.plotting import save_figure

    figure_paths = save_figure(plot_analysis(frame, title), out / stem)
    write_table(frame, csv_path, {
        "command": "analyze",
        "weights_file": str(weights_file),
        "weights_sha256": _sha256(weights_file),
        "layer": layer,
        "reverse": reverse,
        "prefix": prefix,
        "load_options": {k: v for k, v in load_options.items() if v is not None},
        "cell": type(cell).__name__,
        "layers": [type(c).__name__ for c in (cell.layers if isinstance(cell, StackedCell) else (cell,))],
        "activation": getattr(cell, "activation", None),
        "variant": getattr(cell, "variant", None),
        "n_hidden": cell.n_hidden,
        "n_input": cell.n_input,
        "state_size": cell.state_size,
        "paths": list(cell.paths),
        "steps": n_steps,
        "warmup": warmup,
        "state0": "zeros",
        **source,
        "figures": [p.name for p in figure_paths],
    })
    return AnalysisResult(csv_path, csv_path.with_suffix(".meta.json"), figure_paths, frame, cell)


def analyze(weights_file, layer: int | None = None, reverse: bool = False, inputs_file=None, steps=None,
            out="reports", *, prefix=None, nonlinearity=None, kind=None, reset_after=None,
            activation=None, recurrent_activation=None, warmup: int = 0) -> AnalysisResult:
    """Analyse a trained network (or one layer) and write its CSV, metadata and figure.

    Parameters
    ----------
    weights_file : str or Path
        PyTorch state dict (``.pt``, ``.pth``; needs PyTorch), ``.npz`` with PyTorch's or
        Keras's names (see :func:`gradsim.interop.load_weights`), or a saved reservoirpy
        reservoir (``.rpy``, ``.pkl``, ``.pickle``; see :func:`gradsim.interop.load_reservoir`:
        a pickle runs code when it is read, so load only files you trust).
    layer, reverse, prefix
        Which layer (``weight_hh_l{layer}[_reverse]`` under the module path ``prefix``).
        ``layer=None`` (the default): the whole network, a :class:`gradsim.StackedCell` of a
        PyTorch network's layers (layer 0 fed the inputs, layer k the outputs of layer k - 1),
        or its one layer.
    inputs_file : str or Path, optional
        Inputs (T, n_input), see :func:`read_inputs`.
    steps : int, optional
        T steps of zero input (default 200 when no ``inputs_file``).
    out : str or Path
        Output folder.
    nonlinearity, kind, reset_after, activation, recurrent_activation
        Passed to :func:`gradsim.interop.load_weights`.
    warmup : int
        Steps skipped before the Lyapunov average.

    Returns
    -------
    AnalysisResult
        Files ``<out>/analyze-<stem>[-<prefix>]-layer<K>[-reverse].csv`` (``-layers0-<L-1>``
        for a whole L-layer network), ``.meta.json`` and
        the figure's ``.png``, ``.svg``, ``.pdf``.
    """
    options = dict(prefix=prefix, nonlinearity=nonlinearity, kind=kind, reset_after=reset_after,
                   activation=activation, recurrent_activation=recurrent_activation)
    cell, inputs, source = _prepare(weights_file, layer, reverse, inputs_file, steps, warmup, options)
    frame = analyze_cell(cell, inputs, warmup=warmup)
    return _write(cell, inputs, source, frame, weights_file, layer, reverse, prefix, warmup, out, options)


# ------------------------------------------------------------------------------------------
# command-line hooks
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``analyze`` arguments to ``parser`` (a sub-command parser of ``gradsim``)."""
    parser.add_argument("weights_file", help=(
        "PyTorch .pt/.pth state dict, .npz (PyTorch or Keras names), or a reservoirpy reservoir "
        "saved with reservoirpy.save (.rpy) or pickled (.pkl, .pickle; needs "
        "pip install 'gradsim[reservoir]'). A pickle runs code when it is read: only load "
        "reservoir files you trust"))
    parser.add_argument("--layer", type=int, default=None, metavar="K", help=(
        "analyse layer K alone (fed the given inputs). Default: the whole network, every layer "
        "of a multi-layer PyTorch RNN/LSTM/GRU stacked as one recurrence (inputs to layer 0, "
        "each layer reading the previous layer's outputs); a one-layer file's only layer"))
    parser.add_argument("--reverse", action="store_true", help="the _reverse direction of a bidirectional layer")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--inputs", default=None, metavar="FILE",
                       help="inputs (T, n_input): .npy, .npz or comma/space-separated text")
    group.add_argument("--steps", type=int, default=None, metavar="T",
                       help=f"T steps of zero input (default {DEFAULT_STEPS})")
    parser.add_argument("--out", default="reports", help="output folder (default: reports)")
    parser.add_argument("--prefix", default=None,
                        help="module path of the layer when the file holds several (e.g. encoder.rnn)")
    parser.add_argument("--nonlinearity", default=None, choices=TORCH_NONLINEARITIES,
                        help="PyTorch nn.RNN: the nonlinearity, which a state dict does not record (default tanh)")
    parser.add_argument("--keras-kind", dest="kind", default=None, choices=KERAS_KINDS,
                        help="Keras .npz: the layer type (default: read from the shapes)")
    parser.add_argument("--reset-after", dest="reset_after", default=None,
                        action=argparse.BooleanOptionalAction,
                        help="Keras GRU: reset_after (default: read from the bias shape)")
    parser.add_argument("--activation", default=None,
                        help="Keras: the layer's activation (default tanh)")
    parser.add_argument("--recurrent-activation", dest="recurrent_activation", default=None,
                        help="Keras LSTM/GRU: the gates' activation (only sigmoid is supported)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="steps skipped before the Lyapunov average (default 0)")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def run(args) -> int:
    """Run ``gradsim analyze`` from parsed ``args``; bad input raises :class:`UsageError`."""
    options = dict(prefix=args.prefix, nonlinearity=args.nonlinearity, kind=args.kind,
                   reset_after=args.reset_after, activation=args.activation,
                   recurrent_activation=args.recurrent_activation)
    try:
        cell, inputs, source = _prepare(args.weights_file, args.layer, args.reverse, args.inputs,
                                        args.steps, args.warmup, options)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        raise UsageError(_one_line(exc)) from None
    try:
        # An overflowing state is reported by gradsim.numeric as one FloatingPointError;
        # numpy's warnings on the way there would only repeat it.
        with np.errstate(over="ignore", invalid="ignore"):
            frame = analyze_cell(cell, inputs, warmup=args.warmup)
    except FloatingPointError as exc:  # an unbounded activation overflowed: the input's fault
        raise UsageError(_one_line(exc)) from None
    result = _write(cell, inputs, source, frame, args.weights_file, args.layer, args.reverse,
                    args.prefix, args.warmup, args.out, options)
    top = frame[(frame.quantity == "lyapunov_exponent") & (frame.path == "full")]["value"].max()
    print(f"{result.csv_path} ({len(frame)} rows; {_cell_label(cell)}, N={cell.n_hidden}; "
          f"largest Lyapunov exponent {top:.4g} per step); figure {result.figure_paths[0]}")
    return 0
