"""The examiner's report of an areal (breech-face) comparison, as HTML and PDF.

The case, the result (counts, pose, score, LR with its verbal equivalent and calibration),
the inputs with their SHA-256 and every preprocessing step, the comparison parameters, both
surfaces, the target turned and shifted onto the reference (overlay), the cell grid with the
congruent cells marked, the CMC-theta distribution of both directions, the per-cell table,
the features, warnings and software versions (:func:`compare_document`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ballistics.matching.breechface.comparison import Comparison
from ballistics.matching.breechface.pose import align_target
from ballistics.matching.evidence import Evidence, calibration_label
from ballistics.matching.lr.calibration import DEFAULT_FITTED_ON
from ballistics.report._figures import (
    limits,
    new_figure,
    overlay_legend,
    overlay_rgb,
    value_label,
    value_unit,
)
from ballistics.report.case import CaseInfo
from ballistics.report.document import (
    Document,
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
from ballistics.scan import Scan

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


__all__ = ["cell_grid_figure", "cmc_theta_figure", "compare_document", "compare_report",
           "overlay_figure", "surfaces_figure"]


def surfaces_figure(reference: Scan, target: Scan,
                    names: tuple[str, str] = ("reference", "target")) -> Figure:
    """Both surfaces side by side, in mm, each with a colour bar of its values.

    The colour bar says "height (µm)" for topographies and "grey level" for 2D images
    (``Scan.modality``). Arrays are (rows, cols) = (y, x), row 0 at the top.
    """
    fig = new_figure((10, 4.8))
    axes = fig.subplots(1, 2)
    for ax, s, n in zip(axes, (reference, target), names, strict=True):
        lo, hi = limits(s.heights)
        ext = (0, s.extent_um[1] / 1000, s.extent_um[0] / 1000, 0)
        im = ax.imshow(s.heights, cmap="viridis", vmin=lo, vmax=hi, extent=ext)
        ax.set_title(n)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
        fig.colorbar(im, ax=ax, shrink=0.8, label=value_label(s.modality))
    fig.tight_layout()
    return fig


def overlay_figure(reference: Scan, aligned: np.ndarray) -> Figure:
    """The reference and the aligned target (:func:`align_target`, same shape) overlaid.

    Left: a false-colour composite (red = reference, green and blue = aligned target, each
    scaled by its 1st-99th percentiles), so the reference shows red where it is the higher,
    the target cyan where it is the higher, and agreeing points grey; a legend names the
    colours. Right: the difference reference - aligned target, in µm for topographies and
    in grey levels for 2D images.
    """
    fig = new_figure((10, 5.4))
    axes = fig.subplots(1, 2)
    axes[0].imshow(overlay_rgb(reference.heights, aligned), interpolation="nearest")
    axes[0].set_title("overlay: reference red, aligned target cyan", fontsize=10)
    overlay_legend(axes[0], "reference", "aligned target")
    diff = reference.heights - aligned
    _, hi = limits(np.abs(diff))
    im = axes[1].imshow(diff, cmap="coolwarm", vmin=-hi, vmax=hi, interpolation="nearest")
    unit = value_unit(reference.modality)
    axes[1].set_title(f"difference reference - aligned target{unit}", fontsize=10)
    fig.colorbar(im, ax=axes[1], shrink=0.8,
                 label="grey-level difference" if reference.modality == "image"
                 else "height difference (µm)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def cell_grid_figure(reference: Scan, comparison: Comparison) -> Figure:
    """The reference in grey with its cells outlined by verdict (reference -> target).

    Green: CMC under the original rule; gold: High CMC only; red: compared, not congruent;
    grey: too incomplete to compare. Each cell is labelled with its (row, column) index.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    c = comparison
    g = c.forward.result.geometry
    fig = new_figure((6.5, 7.0))
    ax = fig.subplots()
    lo, hi = limits(reference.heights)
    ax.imshow(reference.heights, cmap="gray", vmin=lo, vmax=hi)
    styles = {"cmc": ("lime", 2.0), "high": ("gold", 1.5), "no": ("tab:red", 0.8),
              "invalid": ("0.6", 0.4)}
    for k, cell in enumerate(c.cells):
        r0, c0 = (int(v) for v in g.cell_start[k])
        h, w = (int(v) for v in g.cell_size[k])
        key = ("cmc" if cell["is_cmc"] else "high" if cell["is_high_cmc"]
               else "no" if cell["valid"] else "invalid")
        color, lw = styles[key]
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), w, h, fill=False, ec=color, lw=lw))
        ax.text(c0 + w / 2, r0 + h / 2, f"{cell['index'][0]},{cell['index'][1]}",
                ha="center", va="center", fontsize=6, color=color)
    labels = {"cmc": f"CMC ({c.cmc_count})", "high": "High CMC only",
              "no": "not congruent", "invalid": "too incomplete"}
    ax.legend(handles=[Line2D([], [], color=styles[k][0], lw=2, label=v)
                       for k, v in labels.items()],
              loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=4, fontsize=7,
              frameon=False)
    ax.set_title("reference cells, reference → target", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def cmc_theta_figure(comparison: Comparison) -> Figure:
    """The CMC-theta distributions (High CMC candidates per rotation), both directions."""
    c = comparison
    fig = new_figure((10, 3.4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (name, d) in zip(axes, (("reference → target", c.forward),
                                    ("target → reference", c.reverse)), strict=True):
        th = sorted(d.high.theta_counts)
        counts = [d.high.theta_counts[t] for t in th]
        step = float(np.min(np.diff(th))) if len(th) > 1 else 1.0
        ax.bar(th, counts, width=0.8 * step, color="tab:blue", label="CMC candidates")
        if counts:
            top = max(counts)
            ax.axhline(max(top - c.params.tau, 0), color="tab:orange", lw=0.8, ls="--",
                       label=f"max - tau ({c.params.tau:g})")
            ax.legend(fontsize=7)
        ax.set_title(f"CMC-theta distribution, {name}", fontsize=9)
        ax.set_xlabel("rotation of the target θ (°)")
    axes[0].set_ylabel("CMC candidates")
    fig.tight_layout()
    return fig


def _fmt(v: Any) -> Any:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return v


def compare_document(reference: Scan, target: Scan, comparison: Comparison, *,
                     names: tuple[str, str] | None = None,
                     paths: tuple[str | None, str | None] | None = None,
                     evidence: Evidence | None = None,
                     case: CaseInfo | None = None,
                     viewer: tuple[str, str] | None = None,
                     detected: tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]
                     | None = None, command: str | None = None) -> Document:
    """The report of one comparison as a :class:`~ballistics.report.document.Document`
    (write it with :func:`~ballistics.report.document.write_reports` as HTML and/or PDF).

    ``reference``/``target`` are the scans that were compared (processed: their provenance
    lists the preprocessing, their ``sha256`` is the file's); ``paths`` the files they were
    read from (default: ``Scan.source``); ``evidence``
    (:func:`ballistics.matching.evidence.evaluate`) adds the score, the LR on the ENFSI
    verbal scale and the calibration it came from; ``case`` the case fields; ``viewer``
    (path, SHA-256) the interactive viewer page written for the same comparison
    (:func:`ballistics.report.viewer.write_viewer`), named in the result with its hash;
    ``detected`` the preprocessing detected for each input
    (:meth:`ballistics.preprocess.Detection.to_dict`); ``command`` the command line that
    reproduces the numbers (``compare --json``'s ``command``), under the parameters. The
    section "Warnings" lists the
    inputs' own warnings (``Scan.warnings``: what the reader tolerated or reinterpreted,
    the preprocessing detected), then the comparison's and the evidence's, as ``compare
    --json`` does.
    """
    c = comparison
    paths = paths or (reference.source, target.source)
    names = names or (Path(paths[0]).name if paths[0] else "reference",
                      Path(paths[1]).name if paths[1] else "target")
    summary: list[tuple[str, Any]] = [
        ("CMC count (reference → target, original rule)", c.cmc_count),
        ("CMC count (target → reference, original rule)", c.cmc_count_reverse),
        ("High CMC count (reference → target)", c.cmc_count_high),
        ("CMC count, both directions combined (cmcR)", c.cmc_count_combined),
        ("consensus rotation of the target θ (°)", f"{c.theta_deg:.2f}"),
        ("consensus translation dx, dy (µm)", f"{c.dx_um:.1f}, {c.dy_um:.1f}"),
        ("whole-scan CCF max (masked NCC)", f"{c.ccf_max:.4f}"),
        ("valid cells compared", int(c.features.get("n_cells_valid", 0))),
    ]
    blocks: list[Any] = []
    if evidence is not None:
        cal = evidence.calibration
        fitted = cal.get("fitted", {})
        lo, hi = cal.get("log10_lr_bounds", (None, None))
        cllr = cal.get("metrics", {}).get("cllr", float("nan"))
        summary += [
            ("score (learned, higher = more similar)", f"{evidence.score:.3f}"),
            ("log10 LR (same source vs different sources)", evidence.lr_text),
            ("verbal equivalent (ENFSI scale)", evidence.qualified_verbal),
            ("calibration", f"{calibration_label(cal)}: {calibration_data(fitted)}; "
                            f"held-out Cllr {cllr:.3f}; "
                            f"LR bounded to 10^{lo:+.2f} … 10^{hi:+.2f}"),
        ]
        if cal.get("source") == "synthetic-default":
            preset = fitted.get("compare_preset", "default")
            blocks.append(Paragraph("The likelihood ratio comes from the calibration shipped "
                                    f"with the package for the {preset!r} preset, fitted on "
                                    f"{DEFAULT_FITTED_ON}, not on this lab's reference data.",
                                    "bad"))
        # caveats that qualify the LR itself (another preset than the calibration's, 2D
        # images on a topography calibration) stand under the result, not only at the end
        blocks += [Paragraph(w[0].upper() + w[1:] + ".", "bad") for w in evidence.lr_caveats]
    cell_rows = [
        (f"{x['index'][0]},{x['index'][1]}", _fmt(x["valid"]), _fmt(x["dx_um"]),
         _fmt(x["dy_um"]), _fmt(x["theta_deg"]),
         _fmt(None if x["corr"] is None else round(x["corr"], 3)),
         _fmt(None if x["ccf"] is None else round(x["ccf"], 3)),
         round(x["missing_fraction"], 3), _fmt(x["is_cmc"]), _fmt(x["is_high_cmc"]))
        for x in c.cells
    ]
    from ballistics.matching.evidence import preset_name

    params = [("preset", preset_name(c.params)),
              *sorted((k, format_value(v)) for k, v in c.params.applicable().items()),
              ("spacing compared (µm)", format_value(list(c.spacing_um))),
              ("device", c.device), ("seconds", f"{c.seconds:.3f}")]
    aligned = align_target(reference, target, c)
    sections = [
        Section("Result", [Table(["quantity", "value"], summary), *blocks, Paragraph(
            "θ is the rotation that turns the target onto the reference (cmcR's convention: "
            "clockwise positive with row 0 at the top); dx, dy are the displacement of the "
            "reference cells' content in the rotated target."),
            *([Paragraph(f"Interactive viewer of this comparison: {Path(viewer[0]).name} "
                         f"(SHA-256 {viewer[1]}); open it in a browser, no network needed.",
                         "plain")] if viewer else [])]),
        Section("Inputs", [inputs_table([(names[0], paths[0], reference),
                                         (names[1], paths[1], target)],
                                        detected=detected,
                                        compared=(c.reference, c.target))]),
        Section("Preprocessing", [preprocessing_table([(names[0], reference),
                                                       (names[1], target)])]),
        Section("Comparison parameters", [Table(["parameter", "value"], params), *(
            [Paragraph("The same files give the same numbers (counts, pose, cells, score, "
                       f"LR) with: {command}", "plain")] if command else [])]),
        Section("Surfaces", [Picture(surfaces_figure(reference, target, names),
                                     "reference and target surfaces")]),
        Section("Aligned overlay", [Picture(overlay_figure(reference, aligned),
                                            "aligned overlay")]),
        Section("Cell grid", [Picture(cell_grid_figure(reference, c),
                                      "cell grid with congruent cells")]),
        Section("CMC-theta distribution", [
            Picture(cmc_theta_figure(c), "CMC-theta distribution"),
            Paragraph(f"High CMC, both directions: {c.combined.reason}.")]),
        Section("Cells (reference → target, each at its best-correlation angle)", [
            Table(["cell", "valid", "dx (µm)", "dy (µm)", "θ (°)", "corr", "CCF", "missing",
                   "CMC", "High CMC"], cell_rows)]),
        Section("Features", [Table(["feature", "value"],
                                   [(k, "–" if v != v else round(float(v), 4))
                                    for k, v in c.features.items()], floatfmt=".4g")]),
    ]
    # the inputs' own warnings first (what the reader tolerated or reinterpreted: units, a
    # mask layer no checksum covers; preprocessing detected), as the JSON and stderr list them
    warns = dict.fromkeys([*reference.warnings, *target.warnings, *c.warnings,
                           *(evidence.warnings if evidence else ())])
    if warns:
        sections.append(Section("Warnings", [Paragraph("• " + w, "plain") for w in warns]))
    return Document(f"Comparison: {names[0]} vs {names[1]}", sections,
                    case=case or CaseInfo(),
                    footer="Method: Song (2013) Congruent Matching Cells as implemented by "
                           "cmcR (Zemmels et al. 2022), High CMC of Tong et al. (2015).")


def compare_report(reference: Scan, target: Scan, comparison: Comparison, *,
                   names: tuple[str, str] | None = None,
                   out: str | Path | None = None, evidence: Evidence | None = None,
                   case: CaseInfo | None = None) -> str:
    """The HTML page of one comparison (written to ``out`` when given); returns the HTML.

    The content is :func:`compare_document`'s (``case``: the case fields); for a PDF of
    the same, write that document with :func:`~ballistics.report.document.write_reports`.
    """
    doc = compare_document(reference, target, comparison, names=names, evidence=evidence,
                           case=case)
    if out is not None:
        write_html(doc, out)
    return render_html(doc)
