"""A report as data: sections of tables, paragraphs and pictures, rendered to HTML or PDF.

Every report of the toolkit (compare, compare-striae, compare-bullets, search) is built as
one :class:`Document` and written by :func:`write_html` (one self-contained page, figures
inline as PNG) and/or :func:`write_pdf` (``ballistics.report.pdf``: text pages for the
tables, the pictures on the pages; matplotlib's PDF backend through its object API). Both
carry the same content, framed the same way:

- first the "Case" section: case number, exhibit, examiner, notes (:class:`CaseInfo`) and
  the date and time the report was generated (UTC, ISO 8601);
- then the report's own sections (inputs with their SHA-256 and the preprocessing each
  went through, parameters, results, pictures, warnings);
- last the "Software versions" section (:func:`ballistics.provenance.versions`).

The helpers :func:`inputs_table` and :func:`preprocessing_table` state what was compared:
each input file with its SHA-256 and every step of its provenance with its parameters.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ballistics._version import __version__
from ballistics.jsonutil import to_jsonable
from ballistics.provenance import versions
from ballistics.report._figures import png_bytes
from ballistics.report.case import CaseInfo, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ballistics.scan import Scan

__all__ = ["Command", "Document", "Link", "Paragraph", "Picture", "Section", "Table", "cell_text",
           "file_sha256",
           "format_value", "inputs_table", "params_text", "preprocessing_table",
           "render_html", "write_html", "write_reports"]

#: the caveat every report ends with
CAVEAT = "The software proposes; the examiner decides."


def format_value(v: Any, floatfmt: str = ".6g") -> str:
    """A value as report text: floats with ``floatfmt`` (NaN and None as "–"), booleans as
    yes/no, lists as ``[a, b]``, mappings as ``k=v`` pairs (:func:`params_text`)."""
    v = to_jsonable(v)
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else format(v, floatfmt)
    if isinstance(v, list):
        return "[" + ", ".join(format_value(x, floatfmt) for x in v) + "]"
    if isinstance(v, dict):
        return params_text(v)
    return str(v)


def params_text(params: Mapping[str, Any], prefix: str = "") -> str:
    """Parameters as one line of ``key=value`` pairs, nested mappings as ``outer.inner``;
    "none" for an empty mapping."""
    parts: list[str] = []
    for k, v in to_jsonable(dict(params)).items():
        if isinstance(v, dict) and v:
            parts.append(params_text(v, f"{prefix}{k}."))
        else:
            parts.append(f"{prefix}{k}={format_value(v)}")
    return ", ".join(parts) if parts else "none"


@dataclass(frozen=True)
class Link:
    """A table cell that links to another file: ``text`` shown, ``href`` (a path relative
    to the report, or a URL) the target; the HTML renders a link, the PDF the text and the
    target."""

    text: str
    href: str


@dataclass(frozen=True)
class Command:
    """A table cell holding a shell command line (arguments quoted for a POSIX shell, as
    :func:`shlex.join` writes them). The HTML wraps it only at the spaces between arguments
    (a long path also after its ``/``), never inside an option such as ``--report``; the text
    copied from the page is the command as given."""

    text: str


def cell_text(v: Any, floatfmt: str = ".3f") -> str:
    """One table cell as text: floats with ``floatfmt``, a :class:`Link` as ``text
    (href)``, a :class:`Command` as its text, the rest as :func:`format_value`."""
    if isinstance(v, Link):
        return f"{v.text} ({v.href})"
    if isinstance(v, Command):
        return v.text
    if isinstance(v, float) and math.isfinite(v):
        return format(v, floatfmt)
    return format_value(v)


@dataclass(frozen=True)
class Table:
    """A table: column headings and rows of values (formatted by :func:`cell_text`)."""

    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    floatfmt: str = ".3f"

    def text_rows(self) -> list[list[str]]:
        """The rows as text, as both renderers show them."""
        return [[cell_text(v, self.floatfmt) for v in r] for r in self.rows]


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text; ``style`` ``"note"`` (small, grey), ``"plain"`` or
    ``"bad"`` (a caveat, in red)."""

    text: str
    style: str = "note"


@dataclass
class Picture:
    """A figure of the report; rendered once to PNG (``dpi``) for both outputs."""

    figure: Figure
    alt: str
    dpi: int = 110
    _png: bytes | None = field(default=None, repr=False)

    def png(self) -> bytes:
        """The figure as PNG (Agg canvas, tight bounding box), rendered on first use."""
        if self._png is None:
            self._png = png_bytes(self.figure, dpi=self.dpi)
        return self._png


Block = Table | Paragraph | Picture


@dataclass(frozen=True)
class Section:
    """A heading and its blocks, in order."""

    heading: str
    blocks: Sequence[Block]


@dataclass
class Document:
    """One report: title, case, sections, footer; :meth:`all_sections` frames them.

    Parameters
    ----------
    title
        The report's title (also the PDF's title).
    sections
        The report's own sections.
    case
        The case it belongs to (:class:`CaseInfo`; empty = not given).
    footer
        A closing remark (method references).
    generated_utc
        When the report was generated (UTC, ISO 8601); now by default.
    """

    title: str
    sections: Sequence[Section]
    case: CaseInfo = field(default_factory=CaseInfo)
    footer: str = ""
    generated_utc: str = field(default_factory=utc_now)

    def case_section(self) -> Section:
        """The "Case" section: the case fields and the generation time and software."""
        rows = [*self.case.rows(), ("report generated (UTC)", self.generated_utc),
                ("generated by", f"ballistics {__version__}")]
        return Section("Case", [Table(["field", "value"], rows)])

    def all_sections(self) -> list[Section]:
        """The case section, the report's sections and the "Software versions" section."""
        soft = Table(["software", "version"],
                     [(k, "–" if v is None else v) for k, v in versions().items()])
        return [self.case_section(), *self.sections, Section("Software versions", [soft])]

    def closing(self) -> str:
        """The closing line: generator, caveat, footer."""
        return f"Generated by ballistics {__version__}. {CAVEAT} {self.footer}".strip()


# --- inputs and their provenance ---------------------------------------------------------
def _summary_step(scan: Scan) -> Mapping[str, Any] | None:
    """The first ``preprocess`` summary step of ``scan``'s provenance (raw input facts)."""
    return next((s for s in scan.provenance if s.get("name") == "preprocess"), None)


def calibration_data(fitted: Mapping[str, Any]) -> str:
    """What a calibration was fitted on, in words: the shipped one's ``data``, or a
    collection's name, generation and pairs (``"–"`` when not recorded)."""
    if fitted.get("data"):
        return str(fitted["data"])
    if fitted.get("collection") is None:
        return "–"
    same = ((fitted.get("sampling") or {}).get("same_source") or {}).get("chosen")
    pairs = fitted.get("pairs")
    text = f"collection {fitted['collection']}"
    if fitted.get("generation") is not None:
        text += f" (generation {fitted['generation']})"
    if pairs is not None:
        text += f", {pairs} pairs" + ("" if same is None else f" ({same} same source)")
    if fitted.get("source_column"):
        text += f", sources by {fitted['source_column']}"
    return text


def inputs_table(inputs: Sequence[tuple[str, str | None, Scan]], *,
                 detected: Sequence[Mapping[str, Any] | None] | None = None,
                 compared: Sequence[Mapping[str, Any] | None] | None = None) -> Table:
    """The "Inputs" table: for each ``(name, path, scan)``, one after the other, the file,
    the SHA-256 of its bytes (as read: the raw file, or the processed file that was given),
    the modality, the raw scan the preprocessing started from (points, spacing, SHA-256
    where the provenance records them), the scan compared (points, spacing, missing
    fraction) and how it was preprocessed. ``scan`` is the scan as compared (after
    preprocessing); its ``sha256`` is the file's (:class:`~ballistics.scan.Scan`).
    ``detected``: per input, the preprocessing detected before the comparison
    (:meth:`ballistics.preprocess.Detection.to_dict`): one row per step, applied or skipped,
    with its evidence. ``compared``: per input, ``{"shape", "spacing_um"}`` as the
    comparison used it (``Comparison.reference``/``target``); where the comparison
    resampled the scan to the pair's coarser spacing, the table lists the preprocessed
    scan's points, spacing and missing fraction, then the points and spacing compared.
    """
    def raw(scan: Scan, key: str) -> Any:
        s = _summary_step(scan)
        return None if s is None else s.get("fitted", {}).get(key)

    def pts(shape: Any) -> str:
        return "–" if not shape else f"{int(shape[0])} × {int(shape[1])}"

    def sp(spacing: Any) -> str:
        return "–" if not spacing else f"{float(spacing[0]):g} × {float(spacing[1]):g}"

    def how(scan: Scan) -> str:
        s = _summary_step(scan)
        if s is None:
            return ("none recorded: the file's surface as read" if not scan.provenance
                    else f"{len(scan.provenance)} step(s) recorded, no preprocessing summary")
        preset = s.get("fitted", {}).get("preset") or s.get("params", {}).get("name")
        return (f"ballistics {s.get('version', '?')}, preset {preset}, "
                f"{len(scan.provenance)} step(s) (see Preprocessing)")

    def detection_rows(det: Mapping[str, Any] | None) -> list[tuple[str, str]]:
        if not det:
            return []
        head = (f"{det.get('state', '?')} ({det.get('source', '?')}, mode "
                f"{det.get('mode', '?')})")
        out = [("preprocessing detected", head)]
        for st in det.get("steps", []):
            verb = "applied" if st.get("needed") else "skipped"
            out.append((f"  {st.get('step')}", f"{verb}: {st.get('evidence', '')}"))
        return out

    def scan_rows(scan: Scan, used: Mapping[str, Any] | None) -> list[tuple[str, str]]:
        missing = f"{scan.missing_fraction:.3f}"
        if not used or all(math.isclose(float(u), float(v), rel_tol=1e-6)
                           for u, v in zip(used["spacing_um"], scan.spacing_um, strict=True)):
            return [("compared: points", pts(scan.shape)),
                    ("compared: spacing (µm)", sp(scan.spacing_um)),
                    ("compared: missing fraction", missing)]
        # the comparison resampled it to the pair's coarser spacing
        return [("preprocessed: points", pts(scan.shape)),
                ("preprocessed: spacing (µm)", sp(scan.spacing_um)),
                ("preprocessed: missing fraction", missing),
                ("compared: points", pts(used["shape"])),
                ("compared: spacing (µm)",
                 f"{sp(used['spacing_um'])} (resampled to the pair's coarser spacing)")]

    rows: list[tuple[str, str, Any]] = []
    dets = list(detected) if detected is not None else [None] * len(inputs)
    useds = list(compared) if compared is not None else [None] * len(inputs)
    for (name, path, scan), det, used in zip(inputs, dets, useds, strict=True):
        facts = [
            ("file", path or scan.source or "–"),
            ("SHA-256 of the file", scan.sha256 or "–"),
            ("modality", scan.modality),
            ("raw scan: points", pts(raw(scan, "input_shape"))),
            ("raw scan: spacing (µm)", sp(raw(scan, "input_spacing_um"))),
            ("raw scan: SHA-256", raw(scan, "input_sha256") or "–"),
            *scan_rows(scan, used),
            ("preprocessing", how(scan)),
            *detection_rows(det),
        ]
        rows += [(name if k == 0 else "", item, value) for k, (item, value) in enumerate(facts)]
    return Table(["input", "item", "value"], rows)


def preprocessing_table(inputs: Sequence[tuple[str, Scan]]) -> Table:
    """The "Preprocessing" table: every provenance step of every input, in order, with
    its parameters, what it fitted and the software that ran it."""
    rows = []
    for name, scan in inputs:
        if not scan.provenance:
            rows.append((name, "–", "none recorded", "used as given", "", ""))
        for k, step in enumerate(scan.provenance, start=1):
            by = f"{step.get('producer') or '?'} {step.get('version') or ''}".strip()
            rows.append((name, str(k), step.get("name", "?"), params_text(step.get("params", {})),
                         params_text(step.get("fitted", {})), by))
    return Table(["input", "#", "step", "parameters", "fitted / result", "by"], rows)


# --- HTML ----------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:.2em .5em;
text-align:right;vertical-align:top}th{background:#f3f3f3}img{max-width:100%}
td.wrap{text-align:left;max-width:48em;overflow-wrap:anywhere}td.code{font-family:monospace}
td.cmd{overflow-wrap:normal;word-break:normal}.cmd .arg{white-space:nowrap}
.note{color:#555;font-size:.9em}.ok{color:#070}.bad{color:#a00}.plain{white-space:pre-wrap}
"""


#: characters that mark a table cell as code rather than words (paths, key=value, commands)
_CODE_LIKE = re.compile(r"[=/\\_:{}\[\]]|--")


#: arguments longer than this (paths) may also wrap after a ``/``
_LONG_ARG = 32


def _command_html(command: str) -> str:
    """A command line as HTML that wraps only between arguments: each argument (its shell
    quoting kept) is one unbreakable span; one longer than :data:`_LONG_ARG` characters is
    split into unbreakable pieces after each ``/`` with a break opportunity (``<wbr>``)
    between them, so a long path stays readable. The page's text is the command as given."""
    import shlex

    try:
        args = [shlex.quote(a) for a in shlex.split(command)]
    except ValueError:  # not a shell line (an unclosed quote): its words as they are
        args = command.split()
    if " ".join(args) != command:  # quoted otherwise than shlex.join: keep the words
        args = command.split(" ")
    out = []
    for a in args:
        pieces = re.findall(r"/?[^/]*/|[^/]+", a) if len(a) > _LONG_ARG else [a]
        out.append("<wbr>".join(f"<span class='arg'>{html.escape(p)}</span>"
                                for p in pieces if p))
    return " ".join(out)


def _html_table(t: Table) -> str:
    def td(text: str, heading: bool) -> str:
        # a long value is wrapped, left-aligned, in monospace when it reads as code (a path,
        # a hash, a command, parameters), not when it is words (the verbal scale); the
        # first column names the row (a quantity, an input): the table's alignment and font
        if heading or len(text) <= 40:
            return f"<td>{html.escape(text)}</td>"
        cls = "wrap code" if _CODE_LIKE.search(text) or not re.search(r"\s", text) else "wrap"
        return f"<td class='{cls}'>{html.escape(text)}</td>"

    def cell(value: Any, text: str, heading: bool) -> str:
        if isinstance(value, Command):
            return f"<td class='wrap code cmd'>{_command_html(value.text)}</td>"
        if isinstance(value, Link):
            return (f"<td><a href=\"{html.escape(value.href, quote=True)}\">"
                    f"{html.escape(value.text)}</a></td>")
        return td(text, heading)

    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(cell(v, c, k == 0) for k, (v, c) in
                                    enumerate(zip(raw, r, strict=True)))
                   + "</tr>" for raw, r in zip(t.rows, t.text_rows(), strict=True))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_block(b: Block) -> str:
    import base64

    if isinstance(b, Table):
        return _html_table(b)
    if isinstance(b, Paragraph):
        text = html.escape(b.text).replace("\n", "<br>")
        return f"<p class='{html.escape(b.style)}'>{text}</p>"
    uri = "data:image/png;base64," + base64.b64encode(b.png()).decode("ascii")
    return f'<img alt="{html.escape(b.alt)}" src="{uri}">'


def render_html(doc: Document) -> str:
    """The document as one self-contained HTML page (no external resources)."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(doc.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(doc.title)}</h1>",
    ]
    for s in doc.all_sections():
        parts.append(f"<h2>{html.escape(s.heading)}</h2>")
        parts.extend(_html_block(b) for b in s.blocks)
    parts.append(f"<p class='note'>{html.escape(doc.closing())}</p></body></html>")
    return "".join(parts)


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_html(doc: Document, path: str | Path) -> str:
    """Write :func:`render_html` to ``path`` (UTF-8); return the file's SHA-256."""
    data = render_html(doc).encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def write_reports(doc: Document, *, html_path: str | Path | None = None,
                  pdf_path: str | Path | None = None) -> dict[str, str]:
    """Write the document as HTML and/or PDF; return ``{"html": sha256, "pdf": sha256}``
    for the files written (the ``report_sha256`` of the command line's JSON)."""
    out: dict[str, str] = {}
    if html_path is not None:
        out["html"] = write_html(doc, html_path)
    if pdf_path is not None:
        from ballistics.report.pdf import write_pdf

        out["pdf"] = write_pdf(doc, pdf_path)
    return out
