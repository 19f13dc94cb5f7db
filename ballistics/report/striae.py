"""HTML reports of striation comparisons: aligned signatures, the CCF against lag, and for
bullets the land-by-land matrix with the best phase marked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ballistics.matching.striae import BulletComparison, StriaeComparison
from ballistics.matching.striae.signatures import Signature
from ballistics.report._figures import new_figure
from ballistics.report.html import img_tag, page, table

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["bullets_report", "land_matrix_figure", "signatures_figure", "striae_report"]


def signatures_figure(a: Signature, b: Signature, comparison: StriaeComparison,
                      names: tuple[str, str] = ("A", "B")) -> Figure:
    """The two signatures aligned at the best lag (top) and the CCF against lag (bottom)."""
    c = comparison
    fig = new_figure((10, 5.5))
    axes = fig.subplots(2, 1)
    if c.aligned is not None:
        al, bl = c.aligned
        x = np.arange(al.size) * c.spacing_um
        axes[0].plot(x, al, lw=0.8, label=names[0])
        axes[0].plot(x, bl, lw=0.8, label=names[1] + (" (reversed)" if c.reversed else ""))
    axes[0].set_xlabel("position across the striae (µm)")
    axes[0].set_ylabel("signature (µm)")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_title(f"aligned signatures: CCF {c.ccf_max:.3f} at lag {c.lag_um:.1f} µm, "
                      f"CMS {c.cms}")
    axes[1].plot(c.lags_um, c.ccf_curve, lw=0.8, label="CCF")
    axes[1].axvline(c.lag_um, color="r", lw=0.8, label=f"best lag ({c.lag_um:.1f} µm)")
    axes[1].set_xlabel("lag (µm)")
    axes[1].set_ylabel("CCF")
    axes[1].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def striae_report(
    a: Signature, b: Signature, comparison: StriaeComparison, *,
    names: tuple[str, str] = ("A", "B"), out: str | Path | None = None,
) -> str:
    """An HTML page for one signature comparison (written to ``out`` when given)."""
    scores = comparison.to_dict()
    rows = [(k, v if not isinstance(v, float) else float(v)) for k, v in scores.items()
            if k not in ("warnings", "version")]
    facts = [(n, s.kind, s.direction_deg, s.length_um, s.roughness_um, s.spacing_um)
             for n, s in zip(names, (a, b), strict=True)]
    sections = [
        ("Scores", table(["score", "value"], rows)),
        ("Signatures", table(["input", "kind", "direction (°)", "length (µm)", "Rq (µm)",
                              "spacing (µm)"], facts)),
        ("Alignment", img_tag(signatures_figure(a, b, comparison, names),
                               "aligned signatures and cross-correlation")),
    ]
    warns = list(dict.fromkeys([*a.warnings, *b.warnings, *comparison.warnings]))
    if warns:
        sections.append(("Warnings", "<ul>" + "".join(f"<li>{w}</li>" for w in warns)
                         + "</ul>"))
    html = page(f"Striation comparison: {names[0]} vs {names[1]}", sections)
    if out is not None:
        Path(out).write_text(html, encoding="utf-8")
    return html


def land_matrix_figure(result: BulletComparison) -> Figure:
    """The land-to-land CCF matrix (row = land of A, column = land of B), each value written
    in its square, the pairs of the best phase outlined in red."""
    from matplotlib.patches import Patch, Rectangle

    fig = new_figure((6, 5.4))
    ax = fig.subplots()
    im = ax.imshow(result.ccf, vmin=0, vmax=1, cmap="viridis")
    for i in range(result.ccf.shape[0]):
        j = (i + result.best_phase) % result.ccf.shape[1]
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="r", lw=2))
        for jj in range(result.ccf.shape[1]):
            v = result.ccf[i, jj]
            ax.text(jj, i, "-" if not np.isfinite(v) else f"{v:.2f}", ha="center",
                    va="center", color="w", fontsize=8)
    ax.set_xlabel("land of B")
    ax.set_ylabel("land of A")
    ax.set_title(f"land-to-land CCF, best phase {result.best_phase}", fontsize=10)
    ax.legend(handles=[Patch(fill=False, ec="r", lw=2, label="best-phase pair")],
              loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, frameon=False)
    fig.colorbar(im, ax=ax, label="CCF")
    fig.tight_layout()
    return fig


def bullets_report(
    result: BulletComparison, lands_a: list[str], lands_b: list[str], *,
    out: str | Path | None = None, extra: dict[str, Any] | None = None,
) -> str:
    """An HTML page for a bullet comparison: land matrix, phase scores, best-phase pairs."""
    fig = land_matrix_figure(result)
    rows_m = [[lands_a[i], *[float(v) for v in result.ccf[i]]] for i in range(len(lands_a))]
    phases = [(k, s) for k, s in enumerate(result.phase_scores)]
    pairs = []
    for i in range(min(len(lands_a), len(lands_b))):
        j = (i + result.best_phase) % len(lands_b)
        c = result.pairs[i][j] if result.pairs else None
        pairs.append((lands_a[i], lands_b[j], float(result.ccf[i, j]),
                      "-" if c is None else c.cms, "-" if c is None else f"{c.lag_um:.1f}"))
    sections = [
        ("Summary", table(["best phase", "SAM", "margin", "phase margin", "phase z", "score"],
                          [(result.best_phase, result.sam, result.margin,
                            result.phase_margin, result.phase_z, result.score)])),
        ("Land-to-land CCF (row = land of A; red = best phase)", img_tag(fig, "land matrix")
         + table(["land of A", *lands_b], rows_m)),
        ("SAM per phase", table(["phase k", "SAM"], phases)),
        ("Best-phase land pairs", table(["land A", "land B", "CCF", "CMS", "lag (µm)"], pairs)),
    ]
    if extra:
        sections.append(("Inputs", table(["item", "value"], list(extra.items()))))
    if result.warnings:
        sections.append(("Warnings", "<ul>" + "".join(f"<li>{w}</li>" for w in result.warnings)
                         + "</ul>"))
    html = page("Bullet comparison", sections)
    if out is not None:
        Path(out).write_text(html, encoding="utf-8")
    return html
