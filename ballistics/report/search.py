"""HTML report of a collection search: the query beside its top candidates, aligned."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ballistics.report._figures import new_figure, normalise, overlay_legend, overlay_rgb
from ballistics.report.html import img_tag, page, table

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["DRAW_MAX", "aligned", "candidate_figure", "search_report_html",
           "write_search_report"]

#: Longest side (points) of the surfaces drawn in the report.
DRAW_MAX = 320


def _small(heights: np.ndarray) -> tuple[np.ndarray, int]:
    step = max(1, int(np.ceil(max(heights.shape) / DRAW_MAX)))
    return np.asarray(heights[::step, ::step], np.float64), step


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    m = np.isfinite(a) & np.isfinite(b)
    if m.sum() < 20:
        return float("nan")
    x, y = a[m] - a[m].mean(), b[m] - b[m].mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 0 else float("nan")


def aligned(query: Any, cand: Any, comparison: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """The query and the candidate turned and shifted onto it by the comparison's consensus
    pose (:func:`ballistics.matching.breechface.align_target`), both decimated for drawing,
    and their correlation on the overlap."""
    from ballistics.matching.breechface.pose import align_target

    if cand.spacing_um != query.spacing_um:
        from ballistics.preprocess import resample

        cand = resample(cand, query.spacing_um)
    full = align_target(query, cand, comparison)
    q, step = _small(query.heights)
    t = np.asarray(full[::step, ::step], np.float64)
    return q, t, _corr(q, t)


def candidate_figure(query: Any, cand: Any, comparison: Any, title: str = "candidate"
                     ) -> Figure:
    """The query, one candidate and the candidate aligned onto the query, overlaid.

    ``query`` and ``cand`` are processed :class:`~ballistics.scan.Scan` objects and
    ``comparison`` their :class:`~ballistics.matching.breechface.Comparison`. The overlay is
    a false-colour composite: red = query, green and blue = aligned candidate (each scaled by
    its 1st-99th percentiles), so the query shows red where it is the higher, the candidate
    cyan, agreeing points grey; a legend names the colours and the title gives the
    correlation ``r`` on the overlap.
    """
    q, t, r = aligned(query, cand, comparison)
    fig = new_figure((11, 4.4))
    axes = fig.subplots(1, 3)
    axes[0].imshow(normalise(q), cmap="gray")
    axes[0].set_title("query")
    c, _ = _small(cand.heights)
    axes[1].imshow(normalise(c), cmap="gray")
    axes[1].set_title(title)
    axes[2].imshow(overlay_rgb(q, t), interpolation="nearest")
    axes[2].set_title(f"aligned overlay (query red, candidate cyan), r = {r:.2f}",
                      fontsize=9)
    overlay_legend(axes[2], "query", "candidate")
    for a in axes:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    return fig


def search_report_html(result: Any, *, max_figures: int = 5) -> str:
    """The report page of one :class:`~ballistics.workflows.search.SearchResult`."""
    cal = result.calibration
    head = (f"<p>Query <code>{html.escape(str(result.query['path']))}</code>, SHA-256 "
            f"<code>{html.escape(str(result.query['sha256']))}</code>.</p>"
            f"<p>Calibration: <b>{html.escape(str(cal.get('source')))}</b>"
            f" ({html.escape(str(cal.get('lr_method')))}; log10 LR bounded to "
            f"{cal.get('log10_lr_bounds')})</p>")
    if cal.get("source") == "synthetic-default":
        head += ("<p class='bad'>The likelihood ratios come from the default calibration "
                 "fitted on synthetic data, not on this lab's casings.</p>")
    rows = [
        (c["rank"], c["id"], ", ".join(f"{k}={v}" for k, v in c["labels"].items()),
         "-" if c["cmc_count"] is None else c["cmc_count"], float(c["score"]),
         float(c["log10_lr"]), float(c["embedding_similarity"]))
        for c in result.candidates
    ]
    sections = [("Query", head),
                ("Ranked candidates", table(
                    ["rank", "id", "labels", "CMC (combined)", "score", "log10 LR",
                     "embedding similarity"], rows, floatfmt=".2f"))]
    figs = []
    for c, scan, comp in list(zip(result.candidates, result.candidate_scans,
                                  result.comparisons, strict=False))[:max_figures]:
        title = f"#{c['rank']} {c['id']}"
        figs.append(img_tag(candidate_figure(result.query_scan, scan, comp, title),
                            f"query and {title}"))
    if figs:
        sections.append(("Query and top candidates, aligned", "".join(figs)))
    if result.warnings:
        sections.append(("Warnings", "<ul>" + "".join(
            f"<li>{html.escape(w)}</li>" for w in result.warnings) + "</ul>"))
    return page("Collection search", sections,
                footer="Scores and likelihood ratios support, not replace, the examiner's "
                       "comparison.")


def write_search_report(result: Any, path: str | Path, *, max_figures: int = 5) -> Path:
    """Write :func:`search_report_html` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(search_report_html(result, max_figures=max_figures), encoding="utf-8")
    return path
