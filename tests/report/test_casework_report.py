"""The casework report: case fields, inputs with their hashes and preprocessing, the PDF
(a real PDF with the case on its pages), LRs to two decimals."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from ballistics.errors import InputError, ParameterError
from ballistics.report.case import CaseInfo
from ballistics.scan import Scan
from tests.surfaces import ellipse_surface, turned

PDFTOTEXT = shutil.which("pdftotext")


def pdf_page_count(data: bytes) -> int:
    """Pages of a PDF by its page objects (``/Type /Page``, not ``/Pages``)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def pdf_text(path) -> str | None:
    """The PDF's text by pdftotext, None where it is not installed."""
    if PDFTOTEXT is None:
        return None
    r = subprocess.run([PDFTOTEXT, "-layout", str(path), "-"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _raw_like(seed: int, source: str) -> Scan:
    """A scan 'read' from a file and put through two recorded steps, as preprocessing
    leaves it: the SHA-256 stays the file's, the provenance lists the steps."""
    h = ellipse_surface(seed) if seed == 1 else turned(ellipse_surface(1))
    raw = Scan(h, (12.5, 12.5), sha256=hashlib.sha256(source.encode()).hexdigest(),
               source=source)
    s = raw.with_step("level", {"method": "plane"}, {"coefficients": [0.5, 1e-3, -2e-3]})
    return s.with_step("preprocess", {"name": "default"},
                       {"preset": "default", "input_shape": [264, 232],
                        "input_spacing_um": [6.25, 6.25], "input_sha256": raw.sha256})


@pytest.fixture(scope="module")
def compared():
    from ballistics.matching.breechface import compare
    from ballistics.matching.evidence import evaluate

    a, b = _raw_like(1, "/cases/Q1.x3p"), _raw_like(2, "/cases/K3.x3p")
    c = compare(a, b, "cmcR", rotation=(-6, 3, 3), device="cpu")
    return a, b, c, evaluate(c)


CASE = CaseInfo(case="CASE-2026-0412", exhibit="Q1 vs K3", examiner="J. Doe",
                notes="Received sealed.\nSecond line: $5 & <b>not bold</b>")


@pytest.fixture(scope="module")
def document(compared):
    """The comparison's report (its pictures render once, for HTML and PDF alike)."""
    from ballistics.report.compare import compare_document

    a, b, c, ev = compared
    return compare_document(a, b, c, evidence=ev, case=CASE)


def test_case_info_file_options_and_errors(tmp_path):
    f = tmp_path / "case.json"
    f.write_text(json.dumps({"case": " 2026-0412 ", "exhibit": "Q1", "notes": "a\nb"}))
    c = CaseInfo.read(f).updated(exhibit="Q2", examiner="J. Doe", notes=None)
    assert c.to_dict() == {"case": "2026-0412", "exhibit": "Q2", "examiner": "J. Doe",
                           "notes": "a\nb"}  # options override the file; None keeps it
    assert CaseInfo().is_empty and CaseInfo().rows()[0] == ("case", "not given")
    f.write_text(json.dumps({"case": "1", "exibit": "Q1"}))
    with pytest.raises(InputError, match="unknown case field.*'exibit'"):
        CaseInfo.read(f)
    f.write_text("[1, 2]")
    with pytest.raises(InputError, match="one JSON object"):
        CaseInfo.read(f)
    f.write_text("{not json")
    with pytest.raises(InputError, match="not JSON"):
        CaseInfo.read(f)
    with pytest.raises(InputError, match="not found"):
        CaseInfo.read(tmp_path / "missing.json")
    with pytest.raises(ParameterError, match="one line"):
        CaseInfo(case="a\nb")
    with pytest.raises(ParameterError, match="at most 200"):
        CaseInfo(examiner="x" * 201)
    with pytest.raises(ParameterError, match="must be text"):
        CaseInfo.from_mapping({"case": ["a"]})
    assert CaseInfo.from_mapping({"case": 412}).case == "412"


def test_compare_html_has_case_inputs_and_every_preprocessing_step(compared, document):
    from ballistics.report.document import render_html

    a, b, c, ev = compared
    html = render_html(document)
    assert re.search(r"<h2>Case</h2>.*CASE-2026-0412.*Q1 vs K3.*J\. Doe", html)
    assert "Second line: $5 &amp; &lt;b&gt;not bold&lt;/b&gt;" in html  # escaped, kept
    assert re.search(r"report generated \(UTC\)</td><td>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ<", html)
    assert html.index("<h2>Case</h2>") < html.index("<h2>Result</h2>")
    # inputs: the file, its SHA-256, the raw scan before preprocessing and the scan compared
    assert a.sha256 in html and b.sha256 in html and "/cases/Q1.x3p" in html
    assert "264 × 232" in html and "132 × 116" in html and "6.25 × 6.25" in html
    # every step of each input with its parameters, in order
    pre = html[html.index("<h2>Preprocessing</h2>"):html.index("<h2>Comparison parameters")]
    assert pre.count("<td>level</td>") == 2 and pre.count("<td>preprocess</td>") == 2
    assert "method=plane" in pre and "coefficients=[0.5, 0.001, -0.002]" in pre
    assert pre.index("Q1.x3p") < pre.index("K3.x3p")
    params = html[html.index("<h2>Comparison parameters"):html.index("<h2>Surfaces")]
    # cmcR's settings with another rotation range: "custom", every value listed
    assert "<td>preset</td><td>custom</td>" in params
    assert "<td>theta_min_deg</td><td>-6</td>" in params
    # the result: counts, LR with its verbal equivalent, the calibration
    import html as html_lib

    # (this pair's LR is the calibration's ceiling: the row says so beside the value)
    assert re.search(rf"<td[^>]*>{re.escape(html_lib.escape(ev.lr_text))}</td>", html)
    assert ev.lr_text.startswith(f"{ev.log10_lr:+.2f}") and ev.verbal in html
    assert "synthetic-default" in html and html.count("<img") == 4
    assert "<h2>Software versions</h2>" in html


def test_compare_result_carries_the_caveats_that_qualify_the_lr(compared, document):
    """A comparison with another preset than the calibration's (here cmcR's settings at
    another rotation range): "indicative only" stands in red under the result, not only in
    the Warnings section at the end of the page."""
    from ballistics.report.document import render_html

    ev = compared[3]
    assert any("indicative only" in w for w in ev.warnings)
    html = render_html(document)
    result = html[html.index("<h2>Result</h2>"):html.index("<h2>Inputs</h2>")]
    result = result.replace("&#x27;", "'")
    assert re.search(r"<p class='bad'>The calibration was fitted on comparisons with the "
                     r"'cmcR' preset, these used parameters of no preset \('custom'\): the LRs "
                     r"are indicative only and can point the wrong way [^<]*no --rotation\)\.</p>",
                     result), result[-600:]


def test_compare_pdf_is_a_pdf_with_the_case_on_it(compared, document, tmp_path):
    import matplotlib

    from ballistics.report.document import file_sha256, write_reports

    a, b, c, ev = compared
    doc = document
    backend = matplotlib.get_backend()
    with matplotlib.rc_context({"pdf.compression": 0}):
        hashes = write_reports(doc, html_path=tmp_path / "r.html", pdf_path=tmp_path / "r.pdf")
    assert matplotlib.get_backend() == backend
    data = (tmp_path / "r.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert 4 <= pdf_page_count(data) <= 12  # text pages, the four pictures, the cell table
    assert hashes == {"html": file_sha256(tmp_path / "r.html"),
                      "pdf": hashlib.sha256(data).hexdigest()}
    # the document information holds the case (uncompressed in every PDF)
    assert b"CASE-2026-0412" in data and b"J. Doe" in data
    text = pdf_text(tmp_path / "r.pdf")
    if text is not None:  # the pages themselves (poppler's pdftotext)
        for s in ("CASE-2026-0412", "Q1 vs K3", "J. Doe", "Received sealed.", a.sha256,
                  "Preprocessing", "method=plane", ev.verbal, "Software versions",
                  "Page 1 of"):
            assert s in text, s


def test_image_scans_are_labelled_in_grey_levels(compared):
    from ballistics.report.compare import compare_document
    from ballistics.report.document import Picture

    a, b, c, _ = compared
    doc = compare_document(a.replace(modality="image"), b.replace(modality="image"), c)
    figs = [blk.figure for s in doc.sections for blk in s.blocks if isinstance(blk, Picture)]
    labels = [ax.get_ylabel() for f in figs for ax in f.axes] + [
        ax.get_title() for f in figs for ax in f.axes]
    assert "grey level" in labels and "grey-level difference" in labels
    assert not any("µm" in t and ("height" in t or "difference" in t) for t in labels)


def test_search_report_prints_lrs_with_two_decimals(compared):
    from ballistics.report.document import render_html
    from ballistics.report.search import search_document
    from ballistics.workflows.search import SearchResult

    a, b, c, _ = compared
    res = SearchResult(
        query={"path": "/cases/Q1.x3p", "sha256": a.sha256},
        calibration={"source": "collection", "lr_method": "logistic",
                     "log10_lr_bounds": [-1.5723456789012345, 2.1833333333333336],
                     "metrics": {"cllr": 0.08234567}, "fitted": {"data": "lab"}},
        candidates=[{"rank": 1, "id": "K3", "path": "/lab/K3.x3p", "labels": {"gun": "G1"},
                     "embedding_similarity": 0.912345678, "cmc_count": 7,
                     "score": 3.14159265358979, "log10_lr": 1.0 / 3.0}],
        timing_s={"total": 1.23456789, "reranked": 1},
        query_scan=a, candidate_scans=[b], comparisons=[c])
    html = render_html(search_document(res, case=CASE, parameters={"top": 10}))
    assert "<td>+0.33</td>" in html and "<td>3.14</td>" in html
    assert "-1.57 … +2.18" in html and "<td>0.082</td>" in html
    assert "weak support for same source" in html
    assert not re.search(r"\d\.\d{7,}", html.split("<img")[0])  # no long decimals in the text
    assert "CASE-2026-0412" in html and a.sha256 in html and "method=plane" in html
    assert html.count("<img") == 1


def test_bullet_and_striae_pages_list_inputs_and_parameters(tmp_path):
    from ballistics.datasets.synthetic.striae import make_mark, make_tool, striae_params
    from ballistics.matching.striae import compare_bullets, compare_signatures
    from ballistics.matching.striae.signatures import extract_signature
    from ballistics.report.document import render_html
    from ballistics.report.striae import bullets_document, striae_document

    p = striae_params("realistic")
    tool = make_tool("F1", 1, p)
    scans = [make_mark(tool, k, p, direction_deg=90.0, shape=(110, 260)).scan.replace(
        sha256=f"{k:064x}") for k in (1, 2)]
    sa, sb = (extract_signature(s) for s in scans)
    c = compare_signatures(sa, sb)
    html = render_html(striae_document(sa, sb, c, names=("a.x3p", "b.x3p"),
                                       scans=(scans[0], scans[1]), paths=("a.x3p", "b.x3p"),
                                       parameters={"kind": "mark", "mask": "none"},
                                       case=CASE))
    assert f"{1:064x}" in html and f"{2:064x}" in html and "110 × 260" in html
    assert "<h2>Comparison parameters</h2>" in html and "<td>kind</td><td>mark</td>" in html
    assert "<h2>Signatures</h2>" in html and "CASE-2026-0412" in html
    r = compare_bullets([sa, sb], [sb, sa])
    html = render_html(bullets_document(r, ["l1.x3p", "l2.x3p"], ["m1.x3p", "m2.x3p"],
                                        scans=([scans[0], scans[1]], [scans[1], scans[0]]),
                                        signatures=([sa, sb], [sb, sa]),
                                        parameters={"compare max_lag_um": None}, case=CASE))
    assert html.count(f"{1:064x}") == 2 and "<h2>Land signatures</h2>" in html
    assert "compare max_lag_um" in html and "Q1 vs K3" in html


def test_pdf_tables_wrap_within_the_page(tmp_path):
    from ballistics.report.document import Document, Paragraph, Section, Table
    from ballistics.report.pdf import _TABLE_PT, _chars, _Layout, pdf_pages

    long = "k=" + "x" * 300
    rows = [(i, f"step{i}", long, "sha " + "ab" * 32) for i in range(60)]
    doc = Document("Wide", [Section("Many rows", [Table(["#", "step", "parameters", "sha"],
                                                        rows)]),
                            Section("Text", [Paragraph("word " * 400, "plain")])])
    lay = _Layout()
    head, lines = lay.table_lines(doc.sections[0].blocks[0])
    limit = _chars(_TABLE_PT, lay.width)
    assert all(len(ln) <= limit for ln in [*head, *sum(lines, [])])
    pages = pdf_pages(doc)
    assert len(pages) >= 3  # 60 rows of ~4 lines each do not fit on one page
    # every page after the first that continues the table repeats its header
    texts = [[t.get_text() for t in f.texts] for f in pages]
    assert sum(any(t.startswith("#") and "parameters" in t for t in page) for page in texts) \
        >= len(pages) - 1
    assert all(f"Page {i} of {len(pages)}" in " ".join(t) for i, t in enumerate(texts, 1))
    assert np.isclose(pages[0].get_size_inches(), (8.27, 11.69)).all()


def test_html_long_cells_wrap_and_only_tokens_are_monospace():
    """A quantity's name (first column) longer than 40 characters keeps the table's font and
    alignment, a long verbal scale is wrapped text in the page's font (both switched to
    left-aligned monospace at 41 characters: "moderately strong support for same source"
    looked unlike "moderate support for different sources"); a long path or hash keeps
    monospace."""
    from ballistics.report.document import Document, Section, Table, render_html

    label = "CMC count (reference → target, original rule)"
    verbal = "moderately strong support for same source"
    sha = "ab" * 32
    page = render_html(Document("T", [Section("Result", [Table(
        ["quantity", "value"], [(label, 19), ("verbal equivalent", verbal),
                                ("file", "/data/case/" + "x" * 40 + ".x3p"), ("sha", sha)])])]))
    assert f"<tr><td>{label}</td>" in page  # a row's name: the table's font and alignment
    assert f"<td class='wrap'>{verbal}</td>" in page
    assert f"<td class='wrap code'>{sha}</td>" in page
    assert "<td class='wrap code'>/data/case/" in page
    page = render_html(Document("T", [Section("Hits", [Table(
        ["rank", "full report"], [(1, "ballistics compare /data/q.x3p /data/k.x3p --report "
                                      "r.html")])])]))
    assert "<td class='wrap code'>ballistics compare" in page  # a command reads as code
    css = re.search(r"<style>(.*)</style>", page, re.S).group(1)
    wrap_rule = re.search(r"td\.wrap\{([^}]*)\}", css).group(1)
    assert "monospace" not in wrap_rule and "td.code{font-family:monospace}" in css


@pytest.mark.parametrize("rotation", ["grid", "full"])
def test_reports_list_only_the_parameters_of_the_rotation_mode(compared, rotation):
    """The search report listed theta_min/max/step under rotation "full", which never uses
    them; the search and compare reports now list only the parameters of the comparison's
    rotation mode (the JSON keeps every field)."""
    import dataclasses

    from ballistics.matching.breechface.params import ROTATION_FIELDS
    from ballistics.report.compare import compare_document
    from ballistics.report.document import render_html
    from ballistics.report.search import search_document
    from ballistics.workflows.search import SearchResult

    a, b, c, ev = compared
    c = dataclasses.replace(c, params=c.params.replace(rotation=rotation))
    assert set(c.to_dict()["params"]) >= {f for fs in ROTATION_FIELDS.values() for f in fs}
    res = SearchResult(
        query={"path": "/cases/Q1.x3p", "sha256": a.sha256},
        calibration={"source": "synthetic-default", "lr_method": "pav",
                     "log10_lr_bounds": [-1.5, 2.0], "metrics": {}, "fitted": {}},
        candidates=[{"rank": 1, "id": "K3", "path": "/lab/K3.x3p", "labels": {},
                     "embedding_similarity": 0.9, "cmc_count": 7, "score": 3.1,
                     "log10_lr": 0.3}],
        timing_s={"total": 1.0}, query_scan=a, candidate_scans=[b], comparisons=[c])
    other = "full" if rotation == "grid" else "grid"
    for html, prefix in ((render_html(search_document(res, max_figures=0)), "comparison "),
                         (render_html(compare_document(a, b, c, evidence=ev)), "")):
        rows = re.findall(r"<tr><td>([^<]*)</td><td>", html)
        assert f"{prefix}rotation" in rows and f"{prefix}tcorr" in rows
        for f in ROTATION_FIELDS[rotation]:
            assert f"{prefix}{f}" in rows, (f, rows)
        for f in ROTATION_FIELDS[other]:
            assert f"{prefix}{f}" not in rows, f


def test_commands_wrap_only_between_arguments(compared):
    """The search report's "full report" commands wrapped inside an option ("--rep" /
    "ort", "CASE-" / "2026-0412"): the cell broke anywhere. Each argument is now one
    unbreakable span (a long path also breaks after its '/'), and the page's text is still
    the command as given (copy and paste)."""
    import html as html_lib

    from ballistics.report.document import render_html
    from ballistics.report.search import search_document
    from ballistics.workflows.search import SearchResult, compare_command

    a, b, c, _ = compared
    long_path = "/data/lab/" + "/".join(f"folder-{i:02d}" for i in range(8)) + "/K-3.x3p"
    cmd = compare_command("/cases/Q1.x3p", long_path, "/cases/pair-1.html",
                          case={"case": "CASE-2026-0412", "exhibit": "Q1 vs K3"})
    res = SearchResult(
        query={"path": "/cases/Q1.x3p", "sha256": a.sha256},
        calibration={"source": "synthetic-default", "lr_method": "pav",
                     "log10_lr_bounds": [-1.5, 2.0], "metrics": {}, "fitted": {}},
        candidates=[{"rank": 1, "id": "K3", "path": long_path, "labels": {},
                     "embedding_similarity": 0.9, "cmc_count": 7, "score": 3.1,
                     "log10_lr": 0.3}],
        timing_s={"total": 1.0}, query_scan=a, candidate_scans=[b], comparisons=[c])
    page = render_html(search_document(res, max_figures=0, pair_reports=[{"command": cmd}]))
    [cell] = re.findall(r"<td class='wrap code cmd'>(.*?)</td>", page)
    assert html_lib.unescape(re.sub(r"<[^>]+>", "", cell)) == cmd  # the text, unchanged
    spans = [html_lib.unescape(s) for s in re.findall(r"<span class='arg'>(.*?)</span>", cell)]
    for arg in ("--report", "--case", "CASE-2026-0412", "'Q1 vs K3'", "/cases/pair-1.html",
                "/cases/Q1.x3p"):
        assert arg in spans, arg  # whole, unbreakable
    assert ["/data/", "lab/", "folder-00/"] == spans[3:6] and "K-3.x3p" in spans  # at / only
    assert re.search(r"\.cmd \.arg\{white-space:nowrap\}", page)
    assert re.search(r"td\.cmd\{overflow-wrap:normal", page)  # not 'anywhere' as td.wrap


def test_compare_report_lists_the_inputs_warnings(compared):
    """The report's Warnings listed the comparison's and the LR's only: a raw TopMatch
    export whose increments the reader took as µm, not the metres the file declares, and
    whose mask layer no checksum covers, said so in ``compare --json`` and on stderr but
    not in the case record (trial 4). The inputs' warnings now come first."""
    from ballistics.report.compare import compare_document
    from ballistics.report.document import render_html

    a, b, c, ev = compared
    units = ("/cases/Q1.x3p: implausible x increment 7.37468 m (over 1 mm): read as "
             "micrometres (spacing 7.37468 µm)")
    mask = "/cases/K3.x3p: the mask layer 'bindata/mask.png' is not covered by any checksum"
    html = render_html(compare_document(a.with_warnings(units), b.with_warnings(mask), c,
                                        evidence=ev))
    warns = html[html.index("<h2>Warnings</h2>"):]
    assert warns.index("implausible x increment 7.37468 m") < warns.index("mask.png")
    assert warns.index("mask.png") < warns.index(ev.warnings[0][:40])


@pytest.mark.parametrize("width", [12, 17, 22, 29, 39])
def test_pdf_wrap_never_splits_a_number(width):
    """The PDF's tables broke a long ``key=value`` anywhere: the bullet report's extraction
    parameters read ``highpass_cutoff_um=25`` on one line and ``0,`` on the next (250 µm;
    trial 4). A word longer than its column now breaks after ``=``, ``,``, ``_``, ... or
    outside a number; the text is unchanged but for the line breaks."""
    from ballistics.report.pdf import _wrap

    text = ("highpass_cutoff_um=250, lowpass_cutoff_um=10, min_roughness_um=0.001, "
            "grooves_um=[265.625, 2210.94], land_width_um=1945.31, "
            "firing_pin_fit.equivalent_radius_um=1099, arc_radius_um=4187.92")
    lines = _wrap(text, width)
    assert all(len(ln) <= width for ln in lines)
    number = r"\d+(?:\.\d+)?"
    assert [n for ln in lines for n in re.findall(number, ln)] == re.findall(number, text)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_inputs_table_states_the_spacing_compared_at(compared):
    """Two scans at different spacings are compared at the coarser one: the report's Inputs
    said "compared: spacing 6.25 × 6.25" for a raw TopMatch scan prepared here while the
    comparison (and the JSON's ``reference.spacing_um``) ran at the other lab's 7.37364 µm
    (trial 4). The preprocessed scan and the scan compared are now two sets of rows."""
    from ballistics.matching.breechface import compare
    from ballistics.report.compare import compare_document
    from ballistics.report.document import render_html

    a, b, _, _ = compared
    from ballistics.errors import ScanWarning

    fine = a.replace(spacing_um=(10.0, 10.0))
    with pytest.warns(ScanWarning, match="resampled from 10 x 10 um"):
        c = compare(fine, b, "cmcR", rotation=(-3, 3, 3), device="cpu")
    assert c.reference["spacing_um"] == [12.5, 12.5]
    html = render_html(compare_document(fine, b, c))
    inputs = html[html.index("<h2>Inputs</h2>"):html.index("<h2>Preprocessing</h2>")]
    q1, k3 = inputs.split("K3.x3p", 1)
    assert "<td>preprocessed: spacing (µm)</td><td>10 × 10</td>" in q1
    shape = "{} × {}".format(*c.reference["shape"])
    assert f"<td>compared: points</td><td>{shape}</td>" in q1
    assert "<td>compared: spacing (µm)</td><td class='wrap'>12.5 × 12.5 (resampled" in q1
    assert "compared: spacing (µm)</td><td>10 × 10" not in inputs
    # the target, compared at its own spacing, keeps the one set of rows
    assert "<td>compared: spacing (µm)</td><td>12.5 × 12.5</td>" in k3
    assert "preprocessed:" not in k3


def test_compare_report_marks_an_lr_at_the_calibration_bound(compared):
    """The LR row of the report reads "+2.95, at the calibration's upper bound" where the
    value is the calibration's ceiling (trial 4: Q3 vs K1), not "+2.95" alone."""
    import dataclasses

    from ballistics.report.compare import compare_document
    from ballistics.report.document import render_html

    a, b, c, ev = compared
    top = dataclasses.replace(ev, log10_lr=2.95, at_bound="upper")
    html = render_html(compare_document(a, b, c, evidence=top))
    assert re.search(r"<td>log10 LR \(same source vs different sources\)</td><td[^>]*>"
                     r"\+2\.95, at the calibration&#x27;s upper bound</td>", html)
    plain = render_html(compare_document(a, b, c, evidence=dataclasses.replace(
        ev, log10_lr=0.5, at_bound=None)))
    assert re.search(r"<td>log10 LR \(same source vs different sources\)</td><td[^>]*>"
                     r"\+0\.50</td>", plain)
