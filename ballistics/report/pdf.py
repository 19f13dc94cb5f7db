"""A report :class:`~ballistics.report.document.Document` as a PDF (matplotlib's PDF backend).

A4 portrait pages built as plain :class:`matplotlib.figure.Figure` objects and written with
:class:`matplotlib.backends.backend_pdf.PdfPages` (no pyplot, no ``matplotlib.use``): the
sections flow down the pages, tables as monospaced text (long cells wrapped; a table that
continues on the next page repeats its header), the pictures as the same PNG renderings the
HTML page holds, scaled to the page width. Each page carries a header (title, case,
exhibit) and a footer (generation time, toolkit version, page n of N). Fonts are embedded
as TrueType (``pdf.fonttype`` 42), so the text can be searched and copied; the case fields
are also in the PDF's document information (title, author = examiner, subject, keywords).
"""

from __future__ import annotations

import hashlib
import io
import textwrap
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.report.document import CAVEAT, Document, Paragraph, Picture, Table

__all__ = ["PAGE_SIZE_IN", "pdf_pages", "write_pdf"]

#: A4 portrait, inches
PAGE_SIZE_IN = (8.27, 11.69)
_MX, _TOP, _BOTTOM = 0.6, 0.75, 0.75          # margins (in)
_MONO, _SANS = "DejaVu Sans Mono", "DejaVu Sans"
_MONO_EM = 1233 / 2048                         # advance of DejaVu Sans Mono, em
_TABLE_PT, _TEXT_PT, _HEAD_PT, _TITLE_PT, _SMALL_PT = 6.8, 8.5, 11.5, 15.0, 6.5
_LEADING = 1.32
_GAP = 2                                       # characters between table columns


def _line_h(pt: float) -> float:
    return pt * _LEADING / 72.0


def _chars(pt: float, width_in: float) -> int:
    """Characters of the monospaced font (or fewer of the sans font) in ``width_in``."""
    return max(8, int(width_in * 72.0 / (_MONO_EM * pt)))


def _numeric(text: str) -> bool:
    try:
        float(text.replace(" ", "").replace("+", ""))
    except ValueError:
        return False
    return True


def _widths(natural: list[int], avail: int, floor: int = 4) -> list[int]:
    """Column widths: the natural ones when they fit, else every column capped at the
    largest common width that fits (narrow columns keep their width)."""
    if sum(natural) <= avail:
        return natural
    lo, hi = floor, max(natural)
    while lo < hi:  # the largest cap c with sum(min(n, c)) <= avail
        c = (lo + hi + 1) // 2
        if sum(min(n, c) for n in natural) <= avail:
            lo = c
        else:
            hi = c - 1
    return [max(min(n, lo), min(n, floor)) for n in natural]


#: characters after which a word longer than its column breaks first ("key=" | "value,")
_BREAK_AFTER = "=,;:_/"


def _numeric_char(ch: str) -> bool:
    return ch.isdigit() or ch in ".-+"


def _break_point(word: str, room: int, *, line_start: bool) -> int | None:
    """Where ``word`` (longer than ``room``) breaks: after the last ``=``, ``,``, ``;``,
    ``:``, ``_`` or ``/`` within ``room`` (in its second half at the start of a line);
    at the start of a line else at the last place not inside a number; None when there
    is none (the word then starts the next line)."""
    for i in range(room, max(room // 2, 1) - 1 if line_start else 0, -1):
        if word[i - 1] in _BREAK_AFTER:
            return i
    if not line_start:
        return None
    for i in range(room, 0, -1):
        if not (_numeric_char(word[i - 1]) and _numeric_char(word[i])):
            return i
    return None


class _Wrapper(textwrap.TextWrapper):
    """textwrap's wrapper, but a word longer than the column breaks after a separator or
    outside a number: breaking anywhere cut ``highpass_cutoff_um=250,`` into ``...=25`` and
    ``0,``, which reads as another number."""

    def _handle_long_word(self, reversed_chunks: list[str], cur_line: list[str],
                          cur_len: int, width: int) -> None:
        room = max(width - cur_len, 1)
        chunk = reversed_chunks[-1]
        end = _break_point(chunk, room, line_start=not cur_line)
        if end is None:
            if cur_line:  # start the word on the next line, where it has the whole width
                return
            end = room
        cur_line.append(chunk[:end])
        reversed_chunks[-1] = chunk[end:]


def _wrap(text: str, width: int) -> list[str]:
    wrapper = _Wrapper(width=width, break_long_words=True, break_on_hyphens=False,
                       replace_whitespace=False)
    out: list[str] = []
    for para in str(text).split("\n"):
        out.extend(wrapper.wrap(para) or [""])
    return out


@dataclass
class _Op:
    kind: str           # "text" | "image" | "rule"
    y: float            # inches from the top of the page (top of the item)
    x: float = _MX
    text: str = ""
    pt: float = _TEXT_PT
    family: str = _SANS
    weight: str = "normal"
    color: str = "#222222"
    image: Any = None
    w: float = 0.0
    h: float = 0.0


@dataclass
class _Layout:
    """Flows blocks down A4 pages; each page is a list of operations."""

    pages: list[list[_Op]] = field(default_factory=lambda: [[]])
    y: float = _TOP

    @property
    def width(self) -> float:
        return PAGE_SIZE_IN[0] - 2 * _MX

    @property
    def bottom(self) -> float:
        return PAGE_SIZE_IN[1] - _BOTTOM

    def new_page(self) -> None:
        self.pages.append([])
        self.y = _TOP

    def need(self, h: float) -> bool:
        """Start a new page unless ``h`` inches fit below; True when one was started."""
        if self.y + h > self.bottom + 1e-9 and self.y > _TOP + 1e-9:
            self.new_page()
            return True
        return False

    def line(self, text: str, pt: float, *, family: str = _SANS, weight: str = "normal",
             color: str = "#222222", x: float = _MX) -> None:
        self.need(_line_h(pt))
        self.pages[-1].append(_Op("text", self.y, x, text, pt, family, weight, color))
        self.y += _line_h(pt)

    def space(self, inches: float) -> None:
        self.y = min(self.y + inches, self.bottom)

    # --- blocks --------------------------------------------------------------------------
    def heading(self, text: str, first_h: float) -> None:
        self.space(0.12)
        self.need(_line_h(_HEAD_PT) + 0.08 + first_h)
        self.line(text, _HEAD_PT, weight="bold")
        self.pages[-1].append(_Op("rule", self.y + 0.02, w=self.width, color="#999999"))
        self.space(0.08)

    def paragraph(self, p: Paragraph) -> None:
        pt = _TEXT_PT if p.style == "plain" else _TEXT_PT - 0.5
        color = {"bad": "#aa0000", "note": "#555555"}.get(p.style, "#222222")
        for ln in _wrap(p.text, _chars(pt, self.width)):
            self.line(ln, pt, color=color)
        self.space(0.06)

    def table_lines(self, t: Table) -> tuple[list[str], list[list[str]]]:
        """The header line and each row's lines of ``t`` in the monospaced font."""
        rows = t.text_rows()
        ncol = len(t.headers)
        natural = [max([len(str(t.headers[j]))]
                       + [max(len(x) for x in r[j].split("\n")) for r in rows])
                   for j in range(ncol)]
        widths = _widths(natural, _chars(_TABLE_PT, self.width) - _GAP * (ncol - 1))

        # a column of numbers alone (besides "–") is right-aligned, the rest left-aligned
        right = [bool(rows) and all(_numeric(r[j]) or r[j] in ("–", "") for r in rows)
                 for j in range(ncol)]

        def lines(cells: list[str], header: bool = False) -> list[str]:
            wrapped = [_wrap(c, w) for c, w in zip(cells, widths, strict=True)]
            out = []
            for k in range(max(len(c) for c in wrapped)):
                parts = []
                for c, w, r in zip(wrapped, widths, right, strict=True):
                    s = c[k] if k < len(c) else ""
                    parts.append(s.rjust(w) if r and not header else s.ljust(w))
                out.append((" " * _GAP).join(parts).rstrip())
            return out

        head = lines([str(h) for h in t.headers], header=True)
        return head, [lines(r) for r in rows]

    def table(self, t: Table) -> None:
        head, rows = self.table_lines(t)
        lh = _line_h(_TABLE_PT)
        rule_w = min(self.width, max((len(x) for x in [*head, *sum(rows, [])]), default=1)
                     * _MONO_EM * _TABLE_PT / 72.0)

        def header() -> None:
            for ln in head:
                self.line(ln, _TABLE_PT, family=_MONO, weight="bold")
            self.pages[-1].append(_Op("rule", self.y, w=rule_w, color="#999999"))
            self.space(0.03)

        self.need(lh * (len(head) + (len(rows[0]) if rows else 0)) + 0.03)
        header()
        page_of_header = len(self.pages)
        for r in rows:
            h = lh * len(r)
            if h <= self.bottom - _TOP - lh * (len(head) + 1):  # keep a row on one page
                self.need(h)
            for ln in r:
                if self.need(lh) or len(self.pages) != page_of_header:
                    page_of_header = len(self.pages)
                    header()
                self.line(ln, _TABLE_PT, family=_MONO)
        self.space(0.1)

    def picture_size(self, p: Picture) -> tuple[np.ndarray, float, float]:
        """The picture's pixels and its size on the page (inches): the page width at
        most, its own size (pixels / dpi) at most, and at most one page high."""
        from PIL import Image

        img = np.asarray(Image.open(io.BytesIO(p.png())).convert("RGB"))
        ph, pw = img.shape[:2]
        w = min(self.width, pw / p.dpi)
        h = w * ph / pw
        max_h = self.bottom - _TOP - 0.1
        if h > max_h:
            w, h = w * max_h / h, max_h
        return img, w, h

    def picture(self, p: Picture) -> None:
        img, w, h = self.picture_size(p)
        self.need(h)
        x = _MX + (self.width - w) / 2
        self.pages[-1].append(_Op("image", self.y, x, image=img, w=w, h=h))
        self.y += h + 0.12

    def first_height(self, block: Any) -> float:
        """The height of ``block``'s first piece: a heading is not left alone above it."""
        if isinstance(block, Picture):
            return self.picture_size(block)[2]
        if isinstance(block, Table):
            head, rows = self.table_lines(block)
            first = len(rows[0]) if rows else 0
            return min(_line_h(_TABLE_PT) * (len(head) + first) + 0.03, self.bottom - _TOP)
        return _line_h(_TEXT_PT) * 2


def _draw(ops: list[_Op], header: str, footer: str) -> Any:
    from matplotlib.figure import Figure

    W, H = PAGE_SIZE_IN
    fig = Figure(figsize=PAGE_SIZE_IN)
    kw: dict[str, Any] = {"va": "top", "ha": "left", "parse_math": False}
    fig.text(_MX / W, 1 - 0.4 / H, header, fontsize=_SMALL_PT, family=_SANS,
             color="#666666", **kw)
    fig.text(_MX / W, 1 - (H - 0.55) / H, footer, fontsize=_SMALL_PT, family=_SANS,
             color="#666666", **kw)
    for op in ops:
        if op.kind == "text":
            fig.text(op.x / W, 1 - op.y / H, op.text, fontsize=op.pt, family=op.family,
                     weight=op.weight, color=op.color, **kw)
        elif op.kind == "rule":
            fig.add_artist(_rule(op, W, H))
        else:
            ax = fig.add_axes((op.x / W, 1 - (op.y + op.h) / H, op.w / W, op.h / H))
            ax.imshow(op.image, interpolation="none", aspect="auto")
            ax.set_axis_off()
    return fig


def _rule(op: _Op, W: float, H: float) -> Any:
    from matplotlib.lines import Line2D

    y = 1 - op.y / H
    return Line2D([op.x / W, (op.x + op.w) / W], [y, y], lw=0.5, color=op.color)


def pdf_pages(doc: Document) -> list[Any]:
    """The document laid out on A4 pages: one :class:`~matplotlib.figure.Figure` each."""
    lay = _Layout()
    for ln in _wrap(doc.title, _chars(_TITLE_PT, lay.width)):
        lay.line(ln, _TITLE_PT, weight="bold")
    lay.space(0.1)
    for s in doc.all_sections():
        lay.heading(s.heading, lay.first_height(s.blocks[0]) if s.blocks else 0.0)
        for b in s.blocks:
            if isinstance(b, Table):
                lay.table(b)
            elif isinstance(b, Paragraph):
                lay.paragraph(b)
            else:
                lay.picture(b)
    lay.space(0.1)
    lay.paragraph(Paragraph(doc.closing(), "note"))
    case = doc.case
    head = " · ".join([doc.title, *[f"{k} {v}" for k, v in (("case", case.case),
                                                           ("exhibit", case.exhibit))
                                    if v is not None]])
    n = len(lay.pages)
    return [_draw(ops, head, f"Generated {doc.generated_utc} by ballistics {__version__}. "
                             f"{CAVEAT}    Page {i} of {n}")
            for i, ops in enumerate(lay.pages, start=1)]


def _metadata(doc: Document) -> dict[str, Any]:
    c = doc.case
    subject = "; ".join(f"{k} {v}" for k, v in (("case", c.case), ("exhibit", c.exhibit))
                        if v is not None)
    meta: dict[str, Any] = {"Title": doc.title, "Creator": f"ballistics {__version__}",
                            "Subject": subject or None, "Author": c.examiner,
                            "Keywords": subject or None}
    try:
        meta["CreationDate"] = datetime.strptime(doc.generated_utc, "%Y-%m-%dT%H:%M:%SZ"
                                                 ).replace(tzinfo=timezone.utc)
    except ValueError:
        pass
    return {k: v for k, v in meta.items() if v is not None}


def write_pdf(doc: Document, path: str | Path) -> str:
    """Write the document as a PDF to ``path``; return the file's SHA-256 (hex).

    Text is embedded as TrueType (searchable); the compression follows matplotlib's
    ``pdf.compression`` setting. The user's matplotlib backend and pyplot are untouched.
    """
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        pages = pdf_pages(doc)
        with PdfPages(buf, metadata=_metadata(doc)) as pdf:
            for fig in pages:
                pdf.savefig(fig)
    data = buf.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()

