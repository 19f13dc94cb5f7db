"""Reports of striation comparisons (HTML and PDF): the case, the inputs with their SHA-256,
the signature extraction and comparison parameters, the scores, the aligned signatures and
the CCF against lag, and for bullets the land-by-land matrix with the best phase marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ballistics.matching.striae import BulletComparison, StriaeComparison
from ballistics.matching.striae.signatures import Signature
from ballistics.report._figures import new_figure
from ballistics.report.case import CaseInfo
from ballistics.report.document import (
    Document,
    Paragraph,
    Picture,
    Section,
    Table,
    format_value,
    inputs_table,
    params_text,
    render_html,
    write_html,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ballistics.matching.bullet_evidence import BulletEvidence
    from ballistics.scan import Scan

__all__ = ["bullets_document", "bullets_report", "land_matrix_figure", "signatures_figure",
           "striae_document", "striae_report"]


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


def _warnings_section(warns: list[str]) -> list[Section]:
    warns = list(dict.fromkeys(warns))
    return [Section("Warnings", [Paragraph("• " + w, "plain") for w in warns])] if warns else []


def _signature_rows(names: tuple[str, ...], sigs: list[Signature | None]) -> list[tuple]:
    return [(n, "none" if s is None else s.kind,
             "–" if s is None else f"{s.direction_deg:.2f}",
             "–" if s is None else f"{s.length_um:.1f}",
             "–" if s is None else f"{s.roughness_um:.3f}",
             "–" if s is None else f"{s.spacing_um:g}",
             "–" if s is None else params_text(s.params),
             "–" if s is None else params_text({k: v for k, v in s.meta.items()
                                                 if k != "crosscut_table"}))
            for n, s in zip(names, sigs, strict=True)]


_SIGNATURE_HEADERS = ["input", "kind", "direction (°)", "length (µm)", "Rq (µm)",
                      "spacing (µm)", "extraction parameters", "found"]


def striae_document(
    a: Signature, b: Signature, comparison: StriaeComparison, *,
    names: tuple[str, str] = ("A", "B"), scans: tuple[Scan, Scan] | None = None,
    paths: tuple[str | None, str | None] | None = None,
    parameters: dict[str, Any] | None = None, case: CaseInfo | None = None,
) -> Document:
    """The report of one signature comparison as a
    :class:`~ballistics.report.document.Document` (HTML and/or PDF with
    :func:`~ballistics.report.document.write_reports`).

    ``scans`` (the scans the signatures came from) and ``paths`` fill the Inputs table (file,
    SHA-256, points, spacing, provenance); ``parameters`` adds the caller's settings (kind,
    region, mask file and its SHA-256, the comparison's parameters) as the "Comparison
    parameters" table.
    """
    c = comparison
    scores = [(k, format_value(v, ".4g")) for k, v in c.to_dict().items()
              if k not in ("warnings", "version")]
    sections = [Section("Result", [Table(["score", "value"], scores)])]
    if scans is not None:
        paths = paths or (scans[0].source, scans[1].source)
        sections.append(Section("Inputs", [inputs_table(
            [(n, p, s) for n, p, s in zip(names, paths, scans, strict=True)])]))
    sections += [
        Section("Signatures", [Table(_SIGNATURE_HEADERS, _signature_rows(names, [a, b]))]),
        *([Section("Comparison parameters", [Table(["parameter", "value"], [
            (k, format_value(v)) for k, v in parameters.items()])])] if parameters else []),
        Section("Alignment", [Picture(signatures_figure(a, b, comparison, names),
                                      "aligned signatures and cross-correlation")]),
        *_warnings_section([*a.warnings, *b.warnings, *comparison.warnings]),
    ]
    return Document(f"Striation comparison: {names[0]} vs {names[1]}", sections,
                    case=case or CaseInfo())


def striae_report(
    a: Signature, b: Signature, comparison: StriaeComparison, *,
    names: tuple[str, str] = ("A", "B"), out: str | Path | None = None,
    scans: tuple[Scan, Scan] | None = None, parameters: dict[str, Any] | None = None,
    case: CaseInfo | None = None,
) -> str:
    """An HTML page for one signature comparison (written to ``out`` when given): the
    content of :func:`striae_document`."""
    doc = striae_document(a, b, comparison, names=names, scans=scans,
                          parameters=parameters, case=case)
    if out is not None:
        write_html(doc, out)
    return render_html(doc)


def land_matrix_figure(result: BulletComparison) -> Figure:
    """The land-to-land CCF matrix (row = land of A, column = land of B, numbered from 1 in
    file order), each value written in its square, the pairs of the best phase outlined in
    red."""
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
    # lands numbered from 1 in file order, as examiners and the file names (Land_1 ...)
    # number them; 0-based ticks put "land 0" beside a file named Land_1
    rows, cols = result.ccf.shape
    ax.set_xticks(range(cols), [str(k + 1) for k in range(cols)])
    ax.set_yticks(range(rows), [str(k + 1) for k in range(rows)])
    ax.set_xlabel("land of B (1 = its first file)")
    ax.set_ylabel("land of A (1 = its first file)")
    ax.set_title(f"land-to-land CCF, best phase {result.best_phase}", fontsize=10)
    ax.legend(handles=[Patch(fill=False, ec="r", lw=2, label="best-phase pair")],
              loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, frameon=False)
    fig.colorbar(im, ax=ax, label="CCF")
    fig.tight_layout()
    return fig


def bullets_document(
    result: BulletComparison, lands_a: list[str], lands_b: list[str], *,
    scans: tuple[Sequence[Scan | None], Sequence[Scan | None]] | None = None,
    paths: tuple[list[str], list[str]] | None = None,
    signatures: tuple[list[Signature | None], list[Signature | None]] | None = None,
    parameters: dict[str, Any] | None = None, case: CaseInfo | None = None,
    extra: dict[str, Any] | None = None, evidence: BulletEvidence | None = None,
    warnings: Sequence[str] | None = None,
) -> Document:
    """The report of a bullet comparison as a :class:`~ballistics.report.document.Document`:
    land matrix, phase scores, best-phase pairs; ``evidence``
    (:func:`ballistics.matching.bullet_evidence.evaluate_bullets`) adds the learned score,
    the LR on the ENFSI verbal scale and the calibration it came from; with
    ``scans``/``paths`` every land file with its SHA-256, points and spacing; with
    ``signatures`` each land's signature and extraction parameters; ``parameters`` (and the
    older ``extra``) the settings used. ``warnings``: the section "Warnings" (the command's
    list: the lands' reading, the comparison's and the LR's); by default the comparison's
    and the evidence's."""
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
        Section("Result", [Table(["best phase", "SAM", "margin", "phase margin", "phase z",
                                  "SAM + 3 × phase margin"],
                                 [(result.best_phase, result.sam, result.margin,
                                   result.phase_margin, result.phase_z, result.score)])]),
    ]
    if evidence is not None:
        sections.append(_evidence_section(evidence))
    if scans is not None or paths is not None:
        rows = []
        files = paths or (lands_a, lands_b)
        none_a: list[Scan | None] = [None] * len(files[0])
        none_b: list[Scan | None] = [None] * len(files[1])
        both: tuple[Sequence[Scan | None], Sequence[Scan | None]] = scans or (none_a, none_b)
        for bullet, ss, ps in zip(("A", "B"), both, files, strict=True):
            for s, p in zip(ss, ps, strict=True):
                n = Path(p).name
                rows.append((bullet, n, p, "–" if s is None else (s.sha256 or "–"),
                             "–" if s is None else f"{s.shape[0]} × {s.shape[1]}",
                             "–" if s is None else
                             f"{s.spacing_um[0]:g} × {s.spacing_um[1]:g}",
                             "–" if s is None else s.modality,
                             "–" if s is None else (params_text(
                                 {st.get("name", "?"): st.get("params", {})
                                  for st in s.provenance}) if s.provenance
                                 else "none recorded")))
        sections.append(Section("Inputs (one scan per land)", [Table(
            ["bullet", "land", "file", "SHA-256 of the file", "points", "spacing (µm)",
             "modality", "preprocessing"], rows)]))
    if signatures is not None:
        file_names = ([[Path(p).name for p in ps] for ps in paths] if paths is not None
                      else [lands_a, lands_b])
        sig_names = tuple(f"{b} {n}" for b, ns in zip(("A", "B"), file_names, strict=True)
                          for n in ns)
        sections.append(Section("Land signatures", [Table(
            _SIGNATURE_HEADERS, _signature_rows(sig_names, [*signatures[0], *signatures[1]]))]))
    params = dict(parameters or {})
    params.update(extra or {})
    if params:
        sections.append(Section("Comparison parameters", [Table(
            ["parameter", "value"], [(k, format_value(v)) for k, v in params.items()])]))
    sections += [
        Section("Land-to-land CCF (row = land of A; red = best phase)", [
            Picture(fig, "land matrix"), Table(["land of A", *lands_b], rows_m)]),
        Section("SAM per phase", [Table(["phase k", "SAM"], phases)]),
        Section("Best-phase land pairs", [Table(["land A", "land B", "CCF", "CMS", "lag (µm)"],
                                                pairs)]),
        *_warnings_section(list(warnings) if warnings is not None else
                           [*result.warnings, *(evidence.warnings if evidence else ())]),
    ]
    return Document("Bullet comparison", sections, case=case or CaseInfo())


def _evidence_section(evidence: BulletEvidence) -> Section:
    """Learned score, LR, verbal scale and calibration of a bullet comparison."""
    cal = evidence.calibration
    lo, hi = cal.get("log10_lr_bounds", (float("nan"), float("nan")))
    m = cal.get("metrics", {})
    rows = [
        ("score (learned, higher = more similar)", f"{evidence.score:.3f}"),
        ("log10 LR (same barrel vs different barrels)", evidence.lr_text),
        ("verbal equivalent (ENFSI scale)", evidence.verbal),
        ("calibration", f"{cal.get('source')}: {cal.get('fitted', {}).get('data', '–')}; "
                        f"held-out ({m.get('cv', '?')}) Cllr {m.get('cllr', float('nan')):.3f}, "
                        f"AUC {m.get('auc', float('nan')):.3f}; "
                        f"LR bounded to 10^{lo:+.2f} … 10^{hi:+.2f}"),
    ]
    blocks: list[Any] = [Table(["", "value"], rows)]
    if cal.get("source") == "synthetic-default":
        blocks.append(Paragraph("The likelihood ratio comes from the default model fitted on "
                                "synthetic bullets, not on this lab's reference data.", "bad"))
    return Section("Evidence (learned score and likelihood ratio)", blocks)


def bullets_report(
    result: BulletComparison, lands_a: list[str], lands_b: list[str], *,
    out: str | Path | None = None, extra: dict[str, Any] | None = None,
    case: CaseInfo | None = None,
) -> str:
    """An HTML page for a bullet comparison (written to ``out`` when given): the content of
    :func:`bullets_document` (``extra``: settings listed with the parameters)."""
    doc = bullets_document(result, lands_a, lands_b, extra=extra, case=case)
    if out is not None:
        write_html(doc, out)
    return render_html(doc)
