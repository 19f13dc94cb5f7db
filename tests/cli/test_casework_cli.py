"""``compare`` as a case record: case options and case file, HTML and PDF reports with their
SHA-256 in the JSON, every preprocessing step of raw inputs; the usage errors."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from ballistics.cli import main
from tests.clirunner import CliRunner
from tests.report.test_casework_report import pdf_page_count, pdf_text


@pytest.fixture(scope="module")
def raw_pair(tmp_path_factory):
    """Two raw synthetic casings of one firearm (25 µm; no provenance: the command
    preprocesses them)."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.io import write_x3p

    d = tmp_path_factory.mktemp("raw")
    p = params_for("realistic", spacing_um=25.0, field_um=(4480.0, 4700.0))
    gun = make_firearm("C1", 11, p)
    paths = []
    for k in (1, 2):
        path = d / f"raw{k}.x3p"
        write_x3p(fire(gun, k, p).scan, path)
        paths.append(str(path))
    return paths, d


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_compare_raw_inputs_case_html_and_pdf(raw_pair):
    (a, b), d = raw_pair
    case_file = d / "case.json"
    case_file.write_text(json.dumps({"case": "CASE-2026-0412", "exhibit": "from the file",
                                     "notes": "Received sealed."}))
    html, pdf = d / "r.html", d / "r.pdf"
    res = CliRunner().invoke(main, [
        "compare", a, b, "--rotation=-3,3,3", "--device", "cpu", "--json",
        "--case-file", str(case_file), "--exhibit", "Q1 vs K3", "--examiner", "J. Doe",
        "--report", str(html), "--pdf", str(pdf)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["case"] == {"case": "CASE-2026-0412", "exhibit": "Q1 vs K3",
                           "examiner": "J. Doe", "notes": "Received sealed."}
    assert out["report"] == str(html) and out["report_pdf"] == str(pdf)
    assert out["report_sha256"] == {"html": _sha(html), "pdf": _sha(pdf)}
    # the raw file's hash, and every step that made the compared scan from it
    assert out["reference"]["sha256"] == _sha(a) and out["target"]["sha256"] == _sha(b)
    steps = [s["name"] for s in out["reference"]["preprocessing"]]
    assert steps[0] == "segment" and steps[-1] == "preprocess"
    assert {"level", "bandpass", "resample"} <= set(steps)
    assert out["reference"]["preprocessing"][0]["params"]["method"] == "auto"
    for key in ("cmc_count", "log10_lr", "lr_verbal", "calibration", "params", "versions"):
        assert key in out  # the existing contract is intact
    text = html.read_text()
    assert "<td>CASE-2026-0412</td>" in text and "<td>J. Doe</td>" in text
    assert _sha(a) in text and "<td>bandpass</td>" in text and "short_um=16" in text
    assert "179 × 188" in text  # the raw scan's points, beside the compared scan's
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and pdf_page_count(data) >= 4
    assert b"CASE-2026-0412" in data
    pages = pdf_text(pdf)
    if pages is not None:
        assert "CASE-2026-0412" in pages and "Q1 vs K3" in pages and _sha(a) in pages
        assert "bandpass" in pages and out["lr_verbal"] in pages


def test_case_and_report_usage_errors(raw_pair, tmp_path):
    (a, b), _ = raw_pair
    runner = CliRunner()
    res = runner.invoke(main, ["compare", a, b, "--report", str(tmp_path / "r.pdf")])
    assert res.exit_code == 2 and "--pdf" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    bad = tmp_path / "case.json"
    bad.write_text('{"case": "1", "examinor": "x"}')
    res = runner.invoke(main, ["compare", a, b, "--case-file", str(bad)])
    assert res.exit_code == 2 and "examinor" in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(main, ["compare", a, b, "--case-file", str(tmp_path / "none.json")])
    assert res.exit_code == 2 and "case file not found" in res.stderr
    res = runner.invoke(main, ["compare", a, b, "--case", "two\nlines"])
    assert res.exit_code == 2 and "one line" in res.stderr
    for cmd in ("compare", "compare-striae", "compare-bullets", "search"):
        res = runner.invoke(main, [cmd, "--help"])
        assert all(re.search(rf"--{o}\b", res.output)
                   for o in ("case", "exhibit", "examiner", "notes", "case-file", "pdf")), cmd


def test_compare_names_two_exports_of_one_measurement(raw_pair, tmp_path):
    """Two files that record one measurement (the instrument's serial and the same date and
    time, as a raw TopMatch export and the copy another lab processed) agree as no two
    casings do: compare gave the DFSC raw and processed scans of one casing log10 LR +2.95,
    "moderately strong support for same source", with no word that they are one casing
    (trial 4). The JSON's warnings and the report (in red beside the LR) now say so; the
    raw pair of two casings, which records no serial, gets no such warning."""
    from ballistics.io import read_scan, write_x3p

    (a, b), _ = raw_pair
    md = {"date": "2021-08-25T14:54:04",
          "instrument": {"manufacturer": "Cadre", "model": "TopMatch-GS 3D", "serial": "1062"}}
    one = []
    for k, path in enumerate((a, b)):
        scan = read_scan(path)
        out = tmp_path / f"export{k}.x3p"
        write_x3p(scan.replace(metadata={**scan.metadata, **md}), out)
        one.append(str(out))
    html = tmp_path / "one.html"
    runs = {}
    for name, pair in (("one", one), ("two", [a, b])):
        args = ["compare", *pair, "--rotation=-3,3,3", "--device", "cpu", "--json"]
        res = CliRunner().invoke(main, args + (["--report", str(html)] if name == "one" else []))
        assert res.exit_code == 0, res.output
        runs[name] = json.loads(res.stdout.strip().splitlines()[-1])
    said = [w for w in runs["one"]["warnings"] if "record one measurement" in w]
    assert len(said) == 1 and "(Cadre TopMatch-GS 3D serial 1062, 2021-08-25T14:54:04)" in said[0]
    assert "indicative only" in said[0]
    assert not [w for w in runs["two"]["warnings"] if "measurement" in w or "same file" in w]
    page = html.read_text()
    result = page[page.index("<h2>Result</h2>"):page.index("<h2>Inputs</h2>")]
    assert "record one measurement" in result and "class='bad'" in result


def test_compare_text_and_report_qualify_the_verbal_scale(raw_pair, tmp_path):
    """A caveat that qualifies the LR (here: parameters of no preset, ``--rotation``; in
    trial 4 a processed file against a raw one, where a same-gun pair read "moderate
    support for different sources") stood only among a dozen stderr lines and under the
    report's Result table: the text line and the table's verbal row read as findings. Both
    now say "indicative only", and the text output prints each LR caveat."""
    import dataclasses

    from ballistics.matching.evidence import Evidence

    (a, b), _ = raw_pair
    html = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["compare", a, b, "--rotation=-3,3,3", "--device", "cpu",
                                    "--report", str(html)])
    assert res.exit_code == 0, res.output
    [line] = [ln for ln in res.stdout.splitlines() if ln.startswith("score:")]
    assert "; indicative only, see the LR caveats; calibration:" in line
    caveats = [ln for ln in res.stdout.splitlines() if ln.startswith("LR caveat: ")]
    assert caveats and all("indicative only" in c for c in caveats)
    page = html.read_text()
    assert re.search(r"<td>verbal equivalent \(ENFSI scale\)</td><td[^>]*>[^<]*; indicative "
                     r"only, see the LR caveats</td>", page)
    plain = Evidence(1.0, 1.5, "moderate support for same source", {}, ("no LR caveat",))
    assert plain.qualified_verbal == plain.verbal
    assert dataclasses.replace(plain, warnings=("x: indicative only",)).qualified_verbal == \
        "moderate support for same source; indicative only, see the LR caveats"


def test_compare_records_the_command_that_reproduces_it(raw_pair, tmp_path, monkeypatch):
    """The report recorded the inputs' SHA-256, every parameter and the versions but not
    how to run the comparison again (trial 4: an examiner reproducing a result in court
    had to rebuild the options from the parameters table). ``compare --json`` and the
    report now carry the command line, and running it gives the same numbers."""
    import html as html_lib
    import shlex

    (a, b), d = raw_pair
    monkeypatch.chdir(d)  # relative paths as given: the command names them absolutely
    report = tmp_path / "cmd.html"
    res = CliRunner().invoke(main, ["compare", "raw1.x3p", "raw2.x3p", "--rotation=-3,3,3",
                                    "--preprocess", "raw", "--device", "cpu", "--json",
                                    "--case", "C-9", "--report", str(report)])
    assert res.exit_code == 0, res.output
    first = json.loads(res.stdout.strip().splitlines()[-1])
    assert first["command"] == shlex.join(["ballistics", "compare", str(d / "raw1.x3p"),
                                           str(d / "raw2.x3p"), "--rotation=-3,3,3",
                                           "--preprocess", "raw"])
    assert first["command"] in html_lib.unescape(report.read_text())
    monkeypatch.chdir(tmp_path)
    args = shlex.split(first["command"])[1:]
    again = CliRunner().invoke(main, [*args, "--json"])
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout.strip().splitlines()[-1])
    for key in ("cmc_count", "cmc_count_reverse", "cmc_count_combined", "theta_deg", "dx_um",
                "dy_um", "cells", "score", "log10_lr", "params", "command"):
        assert second[key] == first[key], key
