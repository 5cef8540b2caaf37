"""Plot helpers: DataFrame + Axes -> Axes, and one deterministic way to save a figure.

The palette is Okabe & Ito's (2008), distinguishable under the common colour-vision
deficiencies. Saved files are byte-identical across runs in the same environment: Agg
backend, a fixed SVG hash salt, and no dates in the metadata.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # never a window: figures are only saved

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .runner import atomic_write  # noqa: E402

__all__ = ["PALETTE", "new_figure", "plot_lines", "save_figure"]

PALETTE = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "svg.hashsalt": "gradsim",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
}


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2):
    """A figure with the package's style; returns ``(fig, axes)`` as ``plt.subplots``."""
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                                 squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_prop_cycle(color=PALETTE)
        ax.grid(True, alpha=0.3)
    return fig, (axes[0, 0] if axes.size == 1 else axes)


def plot_lines(ax, frame, x: str, y: str, hue=None, *, label=None, logy: bool = False,
               markers: bool = True, **style):
    """One line per group of ``hue`` columns, x against y; returns ``ax``.

    Parameters
    ----------
    ax : matplotlib Axes
    frame : pandas.DataFrame
    x, y : str
        Column names.
    hue : str or list of str, optional
        Columns whose value combinations make the lines.
    label : callable (dict) -> str, optional
        Legend text from a group's hue values (default "col=value, ...").
    logy : bool
        Log scale on y.
    """
    hue = [hue] if isinstance(hue, str) else list(hue or [])
    groups = frame.groupby(hue, sort=False) if hue else [((), frame)]
    for i, (key, group) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        values = dict(zip(hue, key))
        text = label(values) if label else ", ".join(f"{k}={v}" for k, v in values.items())
        group = group.sort_values(x)
        ax.plot(group[x].to_numpy(), group[y].to_numpy(), color=PALETTE[i % len(PALETTE)],
                marker=_MARKERS[i % len(_MARKERS)] if markers else None, markersize=3,
                label=text or None, **style)
    if logy:
        ax.set_yscale("log")
    return ax


def save_figure(fig, stem) -> list[Path]:
    """Save ``fig`` as ``stem``.png, .svg and .pdf, reproducibly; close it; return the paths."""
    stem = Path(stem)
    paths = []
    with plt.rc_context({"svg.hashsalt": "gradsim"}):
        for suffix, metadata in (
            (".png", {"Software": None}),
            (".svg", {"Date": None, "Creator": None}),
            (".pdf", {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}),
        ):
            path = stem.with_suffix(suffix)
            buffer = io.BytesIO()
            fig.savefig(buffer, format=suffix[1:], metadata=metadata)
            atomic_write(path, buffer.getvalue())
            paths.append(path)
    plt.close(fig)
    return paths


def finite(values):
    """The finite entries of ``values`` (an array), for axis limits and summaries."""
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]
