"""``search --report OUT.html --pair-reports N``: the full pair report of the top N hits,
linked from the search report; the other hits name the command that writes theirs, and
that command reproduces the search's numbers."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from ballistics.cli import main
from tests.clirunner import CliRunner

REPO = Path(__file__).resolve().parents[2]


def test_search_writes_and_links_the_top_pair_reports(synth_lab, tmp_path):
    q = str(synth_lab / "s" / "F001-01.x3p")
    report = tmp_path / "case" / "search.html"
    r = CliRunner().invoke(main, [
        "search", q, "--collection", str(synth_lab / "lab"), "--json", "--quiet",
        "--workers", "1", "--report", str(report), "--pair-reports", "2",
        "--case", "2026-0412", "--examiner", "J. Doe"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    pairs = out["pair_reports"]
    assert [p["rank"] for p in pairs] == [c["rank"] for c in out["candidates"]] == [1, 2, 3]
    assert [p["id"] for p in pairs] == [c["id"] for c in out["candidates"]]
    page = report.read_text()
    for p in pairs[:2]:
        path = Path(p["html"])
        assert path.parent == report.parent / "search_pairs"
        assert path.name.startswith(f"{p['rank']:02d}-{p['id']}")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == p["sha256"]
        assert f'<a href="search_pairs/{path.name}">' in page
        pair = path.read_text()
        # the compare report: case, both inputs with their SHA-256, the counts, the LR
        assert "2026-0412" in pair and "J. Doe" in pair
        assert out["query"]["sha256"] in pair and "CMC count" in pair and "log10 LR" in pair
    assert pairs[2]["html"] is None and pairs[2]["sha256"] is None
    assert not (report.parent / "search_pairs" / f"03-{pairs[2]['id']}.html").exists()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))  # commands: one span per argument
    assert pairs[2]["command"] in text and "--case 2026-0412" in text
    # the audit log names the pair reports and their SHA-256
    audit = (synth_lab / "lab" / "audit.jsonl").read_text().strip().splitlines()[-1]
    assert pairs[0]["sha256"] in audit

    # the third hit's command, run as printed, writes its report with the search's numbers
    cmd = shlex.split(pairs[2]["command"])
    assert cmd[:2] == ["ballistics", "compare"]
    done = subprocess.run([sys.executable, "-m", "ballistics", *cmd[1:], "--json", "--quiet"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    cmp = json.loads(done.stdout)
    hit = out["candidates"][2]
    assert cmp["cmc_count_combined"] == hit["cmc_count"]
    assert cmp["score"] == hit["score"] and cmp["log10_lr"] == hit["log10_lr"]
    assert Path(cmp["report"]).is_file() and cmp["case"]["case"] == "2026-0412"


def test_pair_reports_need_a_report(synth_lab):
    r = CliRunner().invoke(main, ["search", str(synth_lab / "s" / "F001-01.x3p"),
                                  "--collection", str(synth_lab / "lab"), "--quiet",
                                  "--pair-reports", "1"])
    assert r.exit_code == 2 and "--pair-reports needs --report" in r.stderr


def test_pair_reports_repeat_that_the_collections_calibration_is_out_of_date(synth_lab,
                                                                             tmp_path):
    """The search report said the collection's own calibration was out of date (casings
    changed after it was fitted), its pair reports did not: each pair's LR carries the
    caveat, as ``compare --collection`` puts it."""
    import shutil

    lab = tmp_path / "lab"
    shutil.copytree(synth_lab / "lab", lab)
    run = CliRunner().invoke
    r = run(main, ["calibrate", "--collection", str(lab), "--pairs", "4", "--quiet",
                   "--threads", "1", "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    r = run(main, ["collection", "remove", "F002-02", "--collection", str(lab), "--quiet"])
    assert r.exit_code == 0, r.output
    report = tmp_path / "search.html"
    r = run(main, ["search", str(synth_lab / "s" / "F001-01.x3p"), "--collection", str(lab),
                   "--json", "--quiet", "--workers", "1", "--report", str(report),
                   "--pair-reports", "1"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert any("calibration was fitted before" in w for w in out["warnings"])
    pair = html.unescape(Path(out["pair_reports"][0]["html"]).read_text())
    assert "calibration was fitted before the collection's casings last changed" in pair


def test_the_audit_log_names_the_query_and_reports_by_absolute_path(synth_lab, tmp_path,
                                                                     monkeypatch):
    """The collection's audit log is read later, from anywhere: a search run with relative
    paths recorded them as given ('Q.x3p', 'search.html'), naming no file once read from
    another folder (ingest records absolute paths). The JSON keeps the paths as given."""
    import shutil

    from ballistics.collection.audit import read_audit

    monkeypatch.chdir(tmp_path)
    shutil.copy(synth_lab / "s" / "F001-01.x3p", "Q.x3p")
    r = CliRunner().invoke(main, [
        "search", "Q.x3p", "--collection", str(synth_lab / "lab"), "--json", "--quiet",
        "--workers", "1", "--shortlist", "2", "--top", "2", "--report", "case/search.html",
        "--pdf", "case/search.pdf", "--pair-reports", "1"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["query"]["path"] == "Q.x3p" and out["report"] == "case/search.html"
    entry = list(read_audit(synth_lab / "lab"))[-1]
    assert entry["command"] == "search"
    assert entry["inputs"][0]["path"] == str(tmp_path / "Q.x3p")
    [rep] = entry["result"]["reports"]
    assert rep["query"] == str(tmp_path / "Q.x3p")
    assert rep["html"] == str(tmp_path / "case" / "search.html")
    assert rep["pdf"] == str(tmp_path / "case" / "search.pdf")
    assert rep["pair_reports"][0]["html"] == str(tmp_path / out["pair_reports"][0]["html"])
    assert Path(rep["pair_reports"][0]["html"]).is_file()


def test_pair_report_command_names_absolute_paths(tmp_path, monkeypatch):
    # printed in reports that are read from elsewhere: a search run with relative paths must
    # still give a command that runs from any folder
    from ballistics.workflows.search import compare_command

    monkeypatch.chdir(tmp_path)
    cmd = shlex.split(compare_command("q/Q.x3p", "refs/R.x3p", "out_pairs/01-R.html",
                                      collection="lab"))
    assert cmd[2:4] == [str(tmp_path / "q" / "Q.x3p"), str(tmp_path / "refs" / "R.x3p")]
    assert cmd[cmd.index("--report") + 1] == str(tmp_path / "out_pairs" / "01-R.html")
    assert cmd[cmd.index("--collection") + 1] == str(tmp_path / "lab")


def test_search_names_a_hit_that_is_one_measurement_with_the_query(synth_lab, tmp_path):
    """A collection may hold another export of the query's own measurement (trial 4: the
    raw TopMatch scan of a casing and the copy another lab processed record one instrument
    serial and one measurement time; compare gave +2.95). The same file is never a
    candidate; such an export was, with no word. search now names it in its warnings."""
    from ballistics.io import read_scan, write_x3p

    md = {"date": "2021-08-25T14:54:04",
          "instrument": {"manufacturer": "Cadre", "model": "TopMatch-GS 3D", "serial": "1062"}}
    own = read_scan(synth_lab / "s" / "F001-01.x3p")
    own = own.replace(metadata={**own.metadata, **md})
    lab = tmp_path / "exhibits"
    lab.mkdir()
    write_x3p(own, lab / "E1.x3p")
    write_x3p(read_scan(synth_lab / "s" / "F002-01.x3p"), lab / "E2.x3p")
    query = write_x3p(own, tmp_path / "Q1.x3p", dtype="float64")  # other bytes, same scan
    r = CliRunner().invoke(main, ["ingest", str(lab), "--collection", str(tmp_path / "lab"),
                                  "--model", "baseline", "--quiet"])
    assert r.exit_code == 0, r.output
    report = tmp_path / "search.html"
    r = CliRunner().invoke(main, ["search", str(query), "--collection", str(tmp_path / "lab"),
                                  "--json", "--quiet", "--workers", "1", "--report",
                                  str(report), "--pair-reports", "2"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {c["id"] for c in out["candidates"]} == {"E1", "E2"}
    said = [w for w in out["warnings"] if "record one measurement" in w]
    assert len(said) == 1 and said[0].startswith("E1: ") and "indicative only" in said[0]
    # the hit's pair report carries it beside the LR, the other hit's does not
    for p in out["pair_reports"]:
        page = Path(p["html"]).read_text()
        result = page[page.index("<h2>Result</h2>"):page.index("<h2>Inputs</h2>")]
        assert ("record one measurement" in result) == (p["id"] == "E1"), p["id"]
