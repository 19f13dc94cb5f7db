"""The examiner's HTML report of an areal (breech-face) comparison.

One self-contained page: both surfaces, the target turned and shifted onto the reference
(overlay), the cell grid with the congruent cells marked, the per-cell table, the CMC-theta
distribution of both directions, the scores and the parameters and versions used.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.matching.breechface.comparison import Comparison
from ballistics.matching.breechface.pose import align_target
from ballistics.report.html import img_tag, page, table
from ballistics.scan import Scan


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _limits(h: np.ndarray) -> tuple[float, float]:
    v = h[np.isfinite(h)]
    if v.size == 0:
        return -1.0, 1.0
    lo, hi = np.percentile(v, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1e-6)


def _surfaces(ref: Scan, tgt: Scan, names: tuple[str, str]) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, s, n in zip(axes, (ref, tgt), names, strict=True):
        lo, hi = _limits(s.heights)
        ext = (0, s.extent_um[1] / 1000, s.extent_um[0] / 1000, 0)
        im = ax.imshow(s.heights, cmap="viridis", vmin=lo, vmax=hi, extent=ext)
        ax.set_title(n)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
        fig.colorbar(im, ax=ax, shrink=0.8, label="height (µm)")
    fig.tight_layout()
    return img_tag(fig, "reference and target surfaces")


def _overlay(ref: Scan, aligned: np.ndarray) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))

    def norm(h: np.ndarray) -> np.ndarray:
        lo, hi = _limits(h)
        return np.clip((h - lo) / (hi - lo), 0, 1)

    a, b = norm(ref.heights), norm(aligned)
    rgb = np.ones(ref.shape + (3,), np.float32)
    rgb[..., 0] = np.where(np.isfinite(a), a, 1.0)
    rgb[..., 1] = np.where(np.isfinite(b), b, 1.0)
    rgb[..., 2] = np.where(np.isfinite(a) & np.isfinite(b), 0.5 * (a + b), 1.0)
    axes[0].imshow(np.nan_to_num(rgb, nan=1.0))
    axes[0].set_title("overlay: reference red, aligned target green")
    diff = ref.heights - aligned
    lo, hi = _limits(np.abs(diff))
    axes[1].imshow(diff, cmap="coolwarm", vmin=-hi, vmax=hi)
    axes[1].set_title("height difference reference - aligned target (µm)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return img_tag(fig, "aligned overlay")


def _cell_grid(ref: Scan, c: Comparison) -> str:
    plt = _plt()
    from matplotlib.patches import Rectangle

    g = c.forward.result.geometry
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    lo, hi = _limits(ref.heights)
    ax.imshow(ref.heights, cmap="gray", vmin=lo, vmax=hi)
    for k, cell in enumerate(c.cells):
        r0, c0 = (int(v) for v in g.cell_start[k])
        h, w = (int(v) for v in g.cell_size[k])
        if cell["is_cmc"]:
            color, lw = "lime", 2.0
        elif cell["is_high_cmc"]:
            color, lw = "gold", 1.5
        elif cell["valid"]:
            color, lw = "tab:red", 0.8
        else:
            color, lw = "0.6", 0.4
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), w, h, fill=False, ec=color, lw=lw))
        ax.text(c0 + w / 2, r0 + h / 2, f"{cell['index'][0]},{cell['index'][1]}",
                ha="center", va="center", fontsize=6, color=color)
    ax.set_title(f"reference cells: green = CMC ({c.cmc_count}), gold = High CMC only, "
                 "red = not congruent, grey = too incomplete", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return img_tag(fig, "cell grid with congruent cells")


def _theta_distribution(c: Comparison) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, (name, d) in zip(axes, (("reference → target", c.forward),
                                    ("target → reference", c.reverse)), strict=True):
        th = sorted(d.high.theta_counts)
        counts = [d.high.theta_counts[t] for t in th]
        step = float(np.min(np.diff(th))) if len(th) > 1 else 1.0
        ax.bar(th, counts, width=0.8 * step, color="tab:blue")
        if counts:
            top = max(counts)
            ax.axhline(max(top - c.params.tau, 0), color="tab:orange", lw=0.8, ls="--",
                       label=f"max - tau ({c.params.tau:g})")
            ax.legend(fontsize=7)
        ax.set_title(f"CMC-theta distribution, {name}", fontsize=9)
        ax.set_xlabel("rotation of the target θ (°)")
    axes[0].set_ylabel("CMC candidates")
    fig.tight_layout()
    return img_tag(fig, "CMC-theta distribution")


def _fmt(v: Any) -> Any:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return v


def compare_report(reference: Scan, target: Scan, comparison: Comparison, *,
                   names: tuple[str, str] | None = None,
                   out: str | Path | None = None) -> str:
    """The HTML page of one comparison (written to ``out`` when given); returns the HTML.

    ``reference``/``target`` are the scans that were compared (processed).
    """
    c = comparison
    names = names or (Path(reference.source).name if reference.source else "reference",
                      Path(target.source).name if target.source else "target")
    summary = [
        ("CMC count (reference → target, original rule)", c.cmc_count),
        ("CMC count (target → reference, original rule)", c.cmc_count_reverse),
        ("High CMC count (reference → target)", c.cmc_count_high),
        ("CMC count, both directions combined (cmcR)", c.cmc_count_combined),
        ("consensus rotation of the target θ (°)", round(c.theta_deg, 2)),
        ("consensus translation dx, dy (µm)", f"{c.dx_um:.1f}, {c.dy_um:.1f}"),
        ("whole-scan CCF max (masked NCC)", round(c.ccf_max, 4)),
        ("valid cells compared", int(c.features.get("n_cells_valid", 0))),
    ]
    inputs = [(n, s.source or "–", s.sha256 or "–", f"{s.shape[0]} × {s.shape[1]}",
               f"{s.spacing_um[0]:g} × {s.spacing_um[1]:g}", f"{s.missing_fraction:.3f}")
              for n, s in zip(names, (reference, target), strict=True)]
    cell_rows = [
        (f"{x['index'][0]},{x['index'][1]}", _fmt(x["valid"]), _fmt(x["dx_um"]),
         _fmt(x["dy_um"]), _fmt(x["theta_deg"]),
         _fmt(None if x["corr"] is None else round(x["corr"], 3)),
         _fmt(None if x["ccf"] is None else round(x["ccf"], 3)),
         round(x["missing_fraction"], 3), _fmt(x["is_cmc"]), _fmt(x["is_high_cmc"]))
        for x in c.cells
    ]
    params = sorted(c.params.to_dict().items())
    aligned = align_target(reference, target, c)
    sections = [
        ("Summary", table(["quantity", "value"], summary)
         + "<p class='note'>θ is the rotation that turns the target onto the reference "
           "(cmcR's convention: clockwise positive with row 0 at the top); dx, dy are the "
           "displacement of the reference cells' content in the rotated target.</p>"),
        ("Inputs", table(["", "file", "sha256", "points", "spacing (µm)", "missing"], inputs)),
        ("Surfaces", _surfaces(reference, target, names)),
        ("Aligned overlay", _overlay(reference, aligned)),
        ("Cell grid", _cell_grid(reference, c)),
        ("CMC-theta distribution", _theta_distribution(c)
         + f"<p class='note'>High CMC, both directions: {html.escape(c.combined.reason)}.</p>"),
        ("Cells (reference → target, each at its best-correlation angle)",
         table(["cell", "valid", "dx (µm)", "dy (µm)", "θ (°)", "corr", "CCF", "missing",
                "CMC", "High CMC"], cell_rows)),
        ("Features", table(["feature", "value"],
                           [(k, "–" if v != v else round(float(v), 4))
                            for k, v in c.features.items()])),
        ("Parameters and versions", table(["parameter", "value"], [
            *[(k, str(v)) for k, v in params],
            ("device", c.device), ("seconds", round(c.seconds, 3)),
            ("ballistics", __version__),
        ])),
    ]
    if c.warnings:
        sections.append(("Warnings", "<ul>" + "".join(
            f"<li>{html.escape(w)}</li>" for w in c.warnings) + "</ul>"))
    doc = page(f"Comparison: {names[0]} vs {names[1]}", sections,
               footer="Method: Song (2013) Congruent Matching Cells as implemented by cmcR "
                      "(Zemmels et al. 2022), High CMC of Tong et al. (2015).")
    if out is not None:
        Path(out).write_text(doc, encoding="utf-8")
    return doc
