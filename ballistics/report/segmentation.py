"""Figures of the automatic breech-face segmentation: the scan, the fitted circles, the mask."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ballistics.report._figures import new_figure, png_bytes, value_label

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

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


#: The colour of the area left out of the breech-face region (RGBA).
EXCLUDED_RGBA = (0.1, 0.3, 1.0, 0.35)


def plot_segmentation(ax: Axes, scan: Scan, seg: Segmentation, *, title: str | None = None,
                      truth_mask: np.ndarray | None = None, max_points: int = 500
                      ) -> AxesImage:
    """Draw ``scan`` in grey, the excluded area tinted, and the fitted circles on ``ax``.

    Primer in red, firing pin in cyan, firing-pin aperture (when found) dashed orange; the
    area outside the breech-face region tinted blue, its edge in yellow (the ground truth's
    edge dashed magenta when ``truth_mask`` is given). Axes are in points, row 0 at the top;
    large scans are shown with a stride so that at most ``max_points`` points per side are
    drawn. Returns the grey image of the scan (for a colour bar of its heights or grey
    levels); :func:`segmentation_legend_handles` names what is drawn.
    """
    full = np.asarray(scan.heights, dtype=np.float32)
    rows, cols = full.shape
    k = max(1, int(np.ceil(max(rows, cols) / max_points)))  # display stride (file size)
    h = full[::k, ::k]
    ext = (-0.5, cols - 0.5, rows - 0.5, -0.5)
    yy, xx = np.arange(0, rows, k), np.arange(0, cols, k)
    lo, hi = np.nanpercentile(h, [1, 99]) if np.isfinite(h).any() else (0, 1)
    image = ax.imshow(h, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", extent=ext)
    shade = np.zeros((*h.shape, 4), np.float32)
    shade[~seg.mask[::k, ::k]] = EXCLUDED_RGBA
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
    return image


def segmentation_legend_handles(segs: Sequence[Segmentation], *, truth: bool = False
                                ) -> list[Artist]:
    """Legend entries for what :func:`plot_segmentation` draws of ``segs``: the excluded
    area, the region's edge, and the circles found in any of them."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def ring(color: str, label: str, ls: str = "-") -> Line2D:
        return Line2D([], [], color=color, ls=ls, lw=1.5, marker="o", ms=9, mfc="none",
                      label=label)

    handles: list[Artist] = [
        Patch(color=EXCLUDED_RGBA, label="outside the breech-face region (excluded)"),
        Line2D([], [], color="yellow", lw=1.5, label="breech-face region edge (mask)"),
    ]
    if truth:
        handles.append(Line2D([], [], color="magenta", lw=1.5, ls="--",
                              label="ground-truth region edge"))
    if any(s.primer is not None for s in segs):
        handles.append(ring("red", "primer circle (+ centre)"))
    if any(s.firing_pin is not None for s in segs):
        handles.append(ring("cyan", "firing-pin circle (+ centre)"))
    if any(getattr(s, "aperture", None) is not None for s in segs):
        handles.append(ring("orange", "firing-pin aperture", "--"))
    return handles


def segmentation_figure(items: Sequence[tuple[str, Scan, Segmentation]], *,
                        truth_masks: Sequence[np.ndarray | None] | None = None,
                        ncols: int = 3, panel_in: float = 4.2) -> Figure:
    """A grid of :func:`plot_segmentation` panels, one per ``(title, scan, segmentation)``.

    Each panel is ``panel_in`` inches wide with a colour bar of the scan's values ("height
    (µm)" for topographies, "grey level" for 2D images); one legend below the grid names the
    excluded area, the region's edge and the circles drawn.
    """
    n = len(items)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig = new_figure((panel_in * ncols, 0.9 * panel_in * nrows + 1.0), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fontsize = 9 if panel_in < 6 else 11
    for i, (title, scan, seg) in enumerate(items):
        ax = axes[i // ncols][i % ncols]
        tm = None if truth_masks is None else truth_masks[i]
        text = title
        if seg.primer is not None:
            text += f"\nprimer r={seg.primer.radius_um:.0f} µm"
        if seg.firing_pin is not None:
            text += f", firing pin r={seg.firing_pin.radius_um:.0f} µm"
        image = plot_segmentation(ax, scan, seg, title=text, truth_mask=tm)
        ax.title.set_fontsize(fontsize)
        fig.colorbar(image, ax=ax, shrink=0.8, label=value_label(scan.modality))
    for j in range(n, nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")
    truth = truth_masks is not None and any(t is not None for t in truth_masks)
    fig.legend(handles=segmentation_legend_handles([s for _, _, s in items], truth=truth),
               loc="outside lower center", ncol=2 if ncols == 1 else 3, fontsize=fontsize,
               frameon=False)
    return fig


def save_segmentation_figure(items: Sequence[tuple[str, Scan, Segmentation]],
                             path: str | Path, *, dpi: int = 100, **kwargs) -> Path:
    """Write :func:`segmentation_figure` as a PNG (``dpi``, Agg canvas) and return its path.

    ``kwargs`` go to :func:`segmentation_figure` (``truth_masks``, ``ncols``, ``panel_in``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(segmentation_figure(items, **kwargs), dpi=dpi, tight=False))
    return path


__all__ = ["EXCLUDED_RGBA", "plot_segmentation", "save_segmentation_figure",
           "segmentation_figure", "segmentation_legend_handles"]
