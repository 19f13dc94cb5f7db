"""Shared helpers of the report figures: object-oriented matplotlib only.

Figures are :class:`matplotlib.figure.Figure` objects made directly, never through
``matplotlib.pyplot``: building a report changes neither the user's backend nor pyplot's list
of open figures. PNGs are rendered with the Agg canvas.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: Colours of the two-surface overlay (:func:`overlay_rgb`), as RGB triples.
OVERLAY_FIRST = (1.0, 0.0, 0.0)   # red: the first surface (reference / query) higher
OVERLAY_SECOND = (0.0, 1.0, 1.0)  # cyan: the second surface (aligned target) higher
OVERLAY_MISSING = (1.0, 1.0, 1.0)  # white: missing in either surface


def new_figure(
    figsize: tuple[float, float],
    *,
    layout: Literal["constrained", "compressed", "tight"] | None = None,
) -> Figure:
    """A :class:`~matplotlib.figure.Figure` with an Agg canvas, unknown to pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure, *, dpi: int = 110, tight: bool = True) -> bytes:
    """The figure rendered as PNG by the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def value_label(modality: str) -> str:
    """What the values of a scan of ``modality`` are: heights in µm or grey levels."""
    return "grey level" if modality == "image" else "height (µm)"


def value_unit(modality: str) -> str:
    """The unit suffix of a scan's values: ``" (µm)"`` for topographies, none for images."""
    return "" if modality == "image" else " (µm)"


def limits(h: np.ndarray) -> tuple[float, float]:
    """The 1st and 99th percentiles of the finite values (a colour range)."""
    v = h[np.isfinite(h)]
    if v.size == 0:
        return -1.0, 1.0
    lo, hi = np.percentile(v, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1e-6)


def normalise(h: np.ndarray) -> np.ndarray:
    """``h`` scaled to [0, 1] by its 1st-99th percentiles; NaN stays NaN."""
    lo, hi = limits(h)
    return np.clip((h - lo) / (hi - lo), 0, 1)


def overlay_rgb(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A false-colour composite of two surfaces of one shape (rows, cols).

    Red = ``first``, green = blue = ``second`` (each scaled to [0, 1] by its percentiles):
    where the first is higher the pixel is red, where the second is higher it is cyan, where
    they agree it is grey (black to white). Points missing in either are white.
    """
    a, b = normalise(np.asarray(first, np.float64)), normalise(np.asarray(second, np.float64))
    both = np.isfinite(a) & np.isfinite(b)
    rgb = np.empty((*a.shape, 3), np.float64)
    rgb[...] = OVERLAY_MISSING
    rgb[both, 0] = a[both]
    rgb[both, 1] = b[both]
    rgb[both, 2] = b[both]
    return rgb


def overlay_legend(ax, first: str, second: str) -> None:
    """A legend naming the colours of :func:`overlay_rgb` on ``ax``."""
    from matplotlib.patches import Patch

    handles = [Patch(color=OVERLAY_FIRST, label=f"{first} higher"),
               Patch(color=OVERLAY_SECOND, label=f"{second} higher"),
               Patch(color=(0.5, 0.5, 0.5), label="agree (grey)"),
               Patch(facecolor=OVERLAY_MISSING, edgecolor="0.5", label="missing in either")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2,
              fontsize=7, frameon=False)
