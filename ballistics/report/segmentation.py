"""Figures of the automatic breech-face segmentation: the scan, the fitted circles, the mask."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ballistics.preprocess.segment import Segmentation
    from ballistics.scan import Scan


def _draw_circle(ax: Axes, circle, spacing_um, color: str, label: str, ls: str = "-") -> None:
    from matplotlib.patches import Circle as MplCircle

    if circle is None:
        return
    cy = circle.center_um[0] / spacing_um[0]
    cx = circle.center_um[1] / spacing_um[1]
    r = circle.radius_um / spacing_um[1]
    ax.add_patch(MplCircle((cx, cy), r, fill=False, color=color, lw=1.5, ls=ls, label=label))
    ax.plot([cx], [cy], "+", color=color, ms=8)


def plot_segmentation(ax: Axes, scan: Scan, seg: Segmentation, *, title: str | None = None,
                      truth_mask: np.ndarray | None = None, max_points: int = 500) -> None:
    """Draw ``scan`` in grey, the excluded area tinted, and the fitted circles on ``ax``.

    Primer in red, firing pin in cyan, firing-pin aperture (when found) dashed orange; the
    mask edge in yellow (the ground truth's edge in
    magenta when ``truth_mask`` is given). Axes are in points, row 0 at the top; large scans
    are shown with a stride so that at most ``max_points`` points per side are drawn.
    """
    full = np.asarray(scan.heights, dtype=np.float32)
    rows, cols = full.shape
    k = max(1, int(np.ceil(max(rows, cols) / max_points)))  # display stride (file size)
    h = full[::k, ::k]
    ext = (-0.5, cols - 0.5, rows - 0.5, -0.5)
    yy, xx = np.arange(0, rows, k), np.arange(0, cols, k)
    lo, hi = np.nanpercentile(h, [1, 99]) if np.isfinite(h).any() else (0, 1)
    ax.imshow(h, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", extent=ext)
    shade = np.zeros((*h.shape, 4), np.float32)
    shade[~seg.mask[::k, ::k]] = (0.1, 0.3, 1.0, 0.35)
    ax.imshow(shade, interpolation="nearest", extent=ext)
    ax.contour(xx, yy, seg.mask[::k, ::k].astype(np.float32), levels=[0.5], colors="yellow",
               linewidths=0.8)
    if truth_mask is not None:
        ax.contour(xx, yy, np.asarray(truth_mask, np.float32)[::k, ::k], levels=[0.5],
                   colors="magenta", linewidths=0.8, linestyles="dashed")
    _draw_circle(ax, seg.primer, scan.spacing_um, "red", "primer")
    _draw_circle(ax, seg.firing_pin, scan.spacing_um, "cyan", "firing pin")
    _draw_circle(ax, getattr(seg, "aperture", None), scan.spacing_um, "orange", "aperture",
                 ls="--")
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def segmentation_figure(items: Sequence[tuple[str, Scan, Segmentation]], *,
                        truth_masks: Sequence[np.ndarray | None] | None = None,
                        ncols: int = 3) -> Figure:
    """A grid of :func:`plot_segmentation` panels, one per ``(title, scan, segmentation)``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(items)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.2 * nrows), squeeze=False)
    for i, (title, scan, seg) in enumerate(items):
        ax = axes[i // ncols][i % ncols]
        tm = None if truth_masks is None else truth_masks[i]
        text = title
        if seg.primer is not None:
            text += f"\nprimer r={seg.primer.radius_um:.0f} µm"
        if seg.firing_pin is not None:
            text += f", firing pin r={seg.firing_pin.radius_um:.0f} µm"
        plot_segmentation(ax, scan, seg, title=text, truth_mask=tm)
    for j in range(n, nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")
    fig.tight_layout()
    return fig


def save_segmentation_figure(items: Sequence[tuple[str, Scan, Segmentation]],
                             path: str | Path, *, dpi: int = 60, **kwargs) -> Path:
    """Write :func:`segmentation_figure` as a PNG (``dpi``) and return its path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = segmentation_figure(items, **kwargs)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


__all__ = ["plot_segmentation", "save_segmentation_figure", "segmentation_figure"]
