"""Report of a collection search (HTML and PDF): the ranked candidates with their LRs, the
query and its preprocessing, the calibration and parameters, the query beside its top
candidates, aligned."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ballistics.matching.lr.calibration import DEFAULT_FITTED_ON
from ballistics.report._figures import new_figure, normalise, overlay_legend, overlay_rgb
from ballistics.report.case import CaseInfo
from ballistics.report.document import (
    Command,
    Document,
    Link,
    Paragraph,
    Picture,
    Section,
    Table,
    calibration_data,
    format_value,
    inputs_table,
    preprocessing_table,
    render_html,
    write_html,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["DRAW_MAX", "aligned", "candidate_figure", "search_document", "search_report_html",
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


def _calibration_rows(cal: dict[str, Any]) -> list[tuple[str, str]]:
    lo, hi = (cal.get("log10_lr_bounds") or (None, None))[:2]
    metrics = cal.get("metrics") or {}
    fitted = cal.get("fitted") or {}
    return [("source", str(cal.get("source"))),
            ("compare preset", format_value(fitted.get("compare_preset"))),
            ("fitted on", calibration_data(fitted)),
            ("LR method", format_value(cal.get("lr_method"))),
            ("held-out Cllr", "–" if metrics.get("cllr") is None
             else f"{float(metrics['cllr']):.3f}"),
            ("log10 LR bounds", "–" if lo is None or hi is None
             else f"{float(lo):+.2f} … {float(hi):+.2f}")]


def search_document(result: Any, *, max_figures: int = 5, case: CaseInfo | None = None,
                    parameters: dict[str, Any] | None = None,
                    pair_reports: Sequence[Mapping[str, Any]] | None = None) -> Document:
    """The report of one :class:`~ballistics.workflows.search.SearchResult` as a
    :class:`~ballistics.report.document.Document` (HTML and/or PDF with
    :func:`~ballistics.report.document.write_reports`).

    The ranked candidates (score, log10 LR to two decimals with its ENFSI verbal
    equivalent), the query file with its SHA-256 and preprocessing, the calibration, the
    search ``parameters`` the caller gives (collection, filters, shortlist, ...) and the
    re-ranking comparison's parameters, the query beside its top ``max_figures`` candidates
    aligned, warnings.

    ``pair_reports`` (one mapping per candidate, in rank order:
    :func:`ballistics.workflows.search.write_pair_reports`) adds a "full report" column:
    a link to the candidate's pair report (``href``, relative to this report) where one was
    written, else the ``command`` that writes it.
    """
    from ballistics.matching.evidence import preset_name, verbal_scale

    cal = result.calibration
    rows: list[tuple[Any, ...]] = [
        (c["rank"], c["id"], ", ".join(f"{k}={v}" for k, v in c["labels"].items()),
         "-" if c["cmc_count"] is None else c["cmc_count"], f"{float(c['score']):.2f}",
         f"{float(c['log10_lr']):+.2f}", verbal_scale(float(c["log10_lr"])),
         f"{float(c['embedding_similarity']):.3f}")
        for c in result.candidates
    ]
    headers = ["rank", "id", "labels", "CMC (combined)", "score", "log10 LR",
               "verbal equivalent (ENFSI)", "embedding similarity"]
    if pair_reports is not None:
        headers.append("full report")
        rows = [(*row, Link("pair report", str(pr["href"])) if pr.get("href")
                 else Command(str(pr["command"])))
                for row, pr in zip(rows, pair_reports, strict=True)]
    ranked: list[Any] = [Table(headers, rows)]
    if cal.get("source") == "synthetic-default":
        preset = (cal.get("fitted") or {}).get("compare_preset", "default")
        ranked.append(Paragraph("The likelihood ratios come from the calibration shipped "
                                f"with the package for the {preset!r} preset (fitted on "
                                f"{DEFAULT_FITTED_ON}), not on this lab's casings.", "bad"))
    qscan = result.query_scan
    query: list[Any] = []
    if qscan is not None:
        query = [inputs_table([("query", str(result.query["path"]), qscan)]),
                 preprocessing_table([("query", qscan)])]
    else:
        query = [Table(["", "query"], [("file", str(result.query["path"])),
                                       ("SHA-256 of the file", str(result.query["sha256"]))])]
    params: list[tuple[str, str]] = [(k, format_value(v))
                                     for k, v in (parameters or {}).items()]
    if result.comparisons:
        cp = result.comparisons[0].params
        params.append(("comparison preset", str(preset_name(cp))))
        params += [(f"comparison {k}", format_value(v)) for k, v in sorted(cp.applicable().items())]
    params += [(f"time {k} (s)" if k != "reranked" else "comparisons re-ranked",
                format_value(v, ".3g")) for k, v in result.timing_s.items()]
    sections = [
        Section("Ranked candidates", ranked),
        Section("Query", query),
        Section("Calibration", [Table(["", "value"], _calibration_rows(cal))]),
        Section("Search parameters", [Table(["parameter", "value"], params)]),
    ]
    figs = []
    for c, scan, comp in list(zip(result.candidates, result.candidate_scans,
                                  result.comparisons, strict=False))[:max_figures]:
        title = f"#{c['rank']} {c['id']}"
        figs.append(Picture(candidate_figure(result.query_scan, scan, comp, title),
                            f"query and {title}"))
    if figs:
        sections.append(Section("Query and top candidates, aligned", figs))
    if result.warnings:
        sections.append(Section("Warnings", [Paragraph("• " + w, "plain")
                                             for w in result.warnings]))
    return Document("Collection search", sections, case=case or CaseInfo(),
                    footer="Scores and likelihood ratios support, not replace, the examiner's "
                           "comparison.")


def search_report_html(result: Any, *, max_figures: int = 5, case: CaseInfo | None = None,
                       parameters: dict[str, Any] | None = None) -> str:
    """The HTML page of one :class:`~ballistics.workflows.search.SearchResult`: the content
    of :func:`search_document`."""
    return render_html(search_document(result, max_figures=max_figures, case=case,
                                       parameters=parameters))


def write_search_report(result: Any, path: str | Path, *, max_figures: int = 5,
                        case: CaseInfo | None = None,
                        parameters: dict[str, Any] | None = None) -> Path:
    """Write :func:`search_report_html` to ``path``."""
    path = Path(path)
    write_html(search_document(result, max_figures=max_figures, case=case,
                               parameters=parameters), path)
    return path
