"""CLI of collections: ingest, search (JSON contract, filters, batch, report), verify,
index rebuild, lock refusal, audit log, SIGKILL of a real ``ballistics ingest`` + --resume.

Casings: real Weller scans (processed, so ``--processed``), decimated 4x to 142 x 143 points
at 25 µm to keep the re-ranking comparisons few and quick; the baseline embedder (no
weights needed)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ballistics.cli import main
from tests.clirunner import CliRunner

REPO = Path(__file__).resolve().parents[2]
CASINGS = ["TW08-01", "TW08-02", "TW08-03", "TW09-01", "TW09-02", "TW10-01", "TW10-02"]


@pytest.fixture(scope="module")
def study(real_data, tmp_path_factory) -> Path:
    from ballistics.io import read_scan, write_x3p

    out = tmp_path_factory.mktemp("weller-small")
    rows = []
    for name in CASINGS:
        s = read_scan(real_data / "weller" / f"{name}.x3p")
        small = s.with_heights(np.array(s.heights[::4, ::4]), (25.0, 25.0))
        write_x3p(small, out / f"{name}.x3p")
        rows.append({"path": f"{name}.x3p", "firearm_id": "W" + name[2:4], "casing_id": name})
    (out / "broken.x3p").write_bytes(b"PK\x03\x04 not really a zip")
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "firearm_id", "casing_id"])
        w.writeheader()
        w.writerows(rows)
    return out


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def collection(study, tmp_path_factory) -> Path:
    col = tmp_path_factory.mktemp("col") / "lab"
    files = [str(study / f"{n}.x3p") for n in CASINGS[:-1]]
    r = _run("ingest", *files, str(study / "broken.x3p"), "--collection", str(col),
             "--labels", str(study / "labels.csv"), "--processed", "--model", "baseline",
             "--commit-every", "3", "--workers", "2", "--json", "--quiet")
    assert r.exit_code == 2  # one file failed
    out = json.loads(r.stdout)
    assert out["ingested"] == 6 and out["skipped_duplicates"] == 0 and out["shards"] == 2
    assert [f["path"] for f in out["failed"]] == [str(study / "broken.x3p")]
    assert out["failed"][0]["reason"]
    assert out["index"]["kind"] == "flat" and out["index"]["count"] == 6
    assert out["model"]["model"] == "baseline" and out["version"]
    assert out["schema"] == 1 and out["versions"]["h5py"]
    return col


def test_reingest_skips_duplicates_and_adds_new(collection, study):
    r = _run("ingest", str(study), "--collection", str(collection), "--processed", "--json",
             "--quiet", "--labels", str(study / "labels.csv"))
    out = json.loads(r.stdout)
    assert out["skipped_duplicates"] == 6 and out["ingested"] == 1 and out["count"] == 7
    assert r.exit_code == 2 and len(out["failed"]) == 1  # broken.x3p again


def test_search_json_contract_filters_and_report(collection, study, tmp_path):
    q = str(study / "TW08-01.x3p")
    report, pdf = tmp_path / "hit.html", tmp_path / "hit.pdf"
    r = _run("search", q, "--collection", str(collection), "--shortlist", "2", "--top", "2",
             "--processed", "--json", "--report", str(report), "--device", "cpu",
             "--pdf", str(pdf), "--case", "CASE-9", "--examiner", "J. Doe")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert list(out) == ["schema", "query", "calibration", "candidates", "case", "report",
                         "report_pdf", "report_sha256", "version", "versions", "warnings"]
    assert out["case"] == {"case": "CASE-9", "exhibit": None, "examiner": "J. Doe",
                           "notes": None}
    # the JSON's warnings reach the terminal too (stderr), each once, as compare --json's
    assert out["warnings"] and any("calibration shipped" in w for w in out["warnings"])
    err = r.stderr.splitlines()
    assert all(err.count(f"warning: {w}") == 1 for w in out["warnings"])
    from ballistics.collection.audit import read_audit
    from ballistics.io import sha256_file

    hashes = {"html": sha256_file(report), "pdf": sha256_file(pdf)}
    assert out["report_sha256"] == hashes
    line = list(read_audit(collection))[-1]  # the audit log names the case and the reports
    assert line["command"] == "search" and line["parameters"]["case"] == out["case"]
    assert line["result"]["reports"] == [{"query": q, "html": str(report), "pdf": str(pdf),
                                          "sha256": hashes}]
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert out["schema"] == 1 and out["versions"]["faiss"]
    assert out["query"]["path"] == q and len(out["query"]["sha256"]) == 64
    assert out["calibration"]["source"] == "synthetic-default"
    assert any("synthetic" in w for w in out["warnings"])
    cands = out["candidates"]
    assert [c["rank"] for c in cands] == [1, 2]
    assert all(c["id"] != "TW08-01" for c in cands)  # its own SHA-256 is left out
    for c in cands:
        assert set(c) == {"rank", "id", "path", "labels", "embedding_similarity", "cmc_count",
                          "score", "log10_lr"}
        lo, hi = out["calibration"]["log10_lr_bounds"]
        assert lo <= c["log10_lr"] <= hi and isinstance(c["cmc_count"], int)
    assert cands[0]["score"] >= cands[1]["score"]
    assert cands[0]["labels"]["firearm_id"] == "W08"
    html = report.read_text()
    assert "top candidates, aligned" in html and "TW08-01" in html and "<img" in html
    assert "<h2>Software versions</h2>" in html
    assert "<td>CASE-9</td>" in html and out["query"]["sha256"] in html
    assert "<h2>Search parameters</h2>" in html and "<td>shortlist</td><td>2</td>" in html
    # filters: only W10, shortlist 1
    r = _run("search", q, "--collection", str(collection), "--shortlist", "1", "--top", "1",
             "--processed", "--json", "--where", "firearm_id=W10", "--device", "cpu")
    out = json.loads(r.stdout)
    assert [c["labels"]["firearm_id"] for c in out["candidates"]] == ["W10"]


def test_batch_queries_print_json_lines(collection, study, tmp_path):
    lst = tmp_path / "queries.txt"
    lst.write_text(f"{study / 'TW09-01.x3p'}\n{study / 'missing.x3p'}\n")
    table = tmp_path / "all.csv"
    r = _run("search", "--queries", str(lst), "--collection", str(collection), "--shortlist",
             "1", "--top", "1", "--processed", "--exclude", "firearm_id=W08",
             "--exclude", "firearm_id=W10", "--device", "cpu", "--csv", str(table))
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.exit_code == 2 and len(lines) == 2
    assert lines[0]["candidates"][0]["id"] == "TW09-02"
    assert lines[1]["error"] and lines[1]["candidates"] == []
    # the failed query's error line on stderr too (one per failed query)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert errors == [f"error: {study / 'missing.x3p'}: {lines[1]['error']}"]
    shown = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: ")]
    assert all(f"warning: {w}" in shown for w in lines[0]["warnings"])
    assert len(shown) == len(set(shown))  # a batch repeats no warning
    assert all(x["schema"] == 1 and "versions" in x for x in lines)  # error lines too
    # one CSV for the batch: the answered query's rows, none for the failed one
    _, rows = _csv_rows(table.read_text(encoding="utf-8"))
    assert [(row["query"], row["id"], row["labels.firearm_id"]) for row in rows] == [
        (lines[0]["query"]["path"], "TW09-02", "W09")]


def _csv_rows(text: str) -> tuple[list[str], list[dict]]:
    import io

    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames), list(reader)


def test_search_csv_agrees_with_json(collection, study, tmp_path):
    from ballistics.cli.search import CANDIDATE_CSV_COLUMNS

    q = str(study / "TW08-01.x3p")
    table = tmp_path / "hits.csv"
    base = ["search", q, "--collection", str(collection), "--shortlist", "2", "--top", "2",
            "--processed", "--device", "cpu"]
    r = _run(*base, "--json", "--csv", str(table))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    columns, rows = _csv_rows(table.read_text(encoding="utf-8"))
    assert columns == [*CANDIDATE_CSV_COLUMNS, "labels.firearm_id", "labels.casing_id"]
    assert len(rows) == len(out["candidates"]) == 2
    for row, c in zip(rows, out["candidates"], strict=True):
        assert row["query"] == q and row["query_sha256"] == out["query"]["sha256"]
        assert (int(row["rank"]), row["id"], row["path"]) == (c["rank"], c["id"], c["path"])
        for key in ("embedding_similarity", "score", "log10_lr"):
            assert float(row[key]) == c[key]  # the same digits as the JSON
        assert int(row["cmc_count"]) == c["cmc_count"]
        assert {k: row[f"labels.{k}"] for k in c["labels"]} == c["labels"]
    # '-': the table alone on stdout (no text table), and not together with JSON
    r = _run(*base, "--csv", "-")
    assert r.exit_code == 0, r.output
    assert _csv_rows(r.stdout)[1] == rows
    r = CliRunner().invoke(main, [*base, "--json", "--csv", "-"])
    assert r.exit_code == 2 and "--csv -" in r.stderr


def test_verify_corrupt_index_rebuild_and_audit(collection, study):
    r = _run("verify", "--collection", str(collection), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"]
    assert json.loads(r.stdout)["schema"] == 1 and json.loads(r.stdout)["versions"]["numpy"]
    manifest = json.loads((collection / "manifest.json").read_text())
    index = collection / manifest["index"]["file"]
    index.write_bytes(index.read_bytes()[:100])  # truncated
    r = _run("search", str(study / "TW09-01.x3p"), "--collection", str(collection),
             "--processed", "--json", "--shortlist", "1", "--top", "1")
    assert r.exit_code == 1
    assert "index rebuild" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _run("verify", "--collection", str(collection))
    assert r.exit_code == 1 and "ballistics index rebuild" in r.stderr
    r = _run("index", "rebuild", "--collection", str(collection), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["index"]["count"] == 7
    assert json.loads(r.stdout)["schema"] == 1
    assert _run("verify", "--collection", str(collection)).exit_code == 0
    from ballistics.collection.audit import read_audit

    commands = [e["command"] for e in read_audit(collection)]
    assert {"ingest", "search", "verify", "index rebuild"} <= set(commands)
    entry = next(e for e in read_audit(collection) if e["command"] == "search")
    assert entry["inputs"][0]["sha256"] and entry["user"] and entry["time"].endswith("+00:00")
    assert entry["versions"]["ballistics"] == entry["version"] and entry["versions"]["faiss"]


def test_second_ingest_is_refused_while_locked(collection, study):
    from ballistics.collection.lock import CollectionLock

    with CollectionLock(collection, "ingest (test holder)"):
        r = _run("ingest", str(study / "TW10-02.x3p"), "--collection", str(collection),
                 "--processed")
    assert r.exit_code == 1
    assert "being written by process" in r.stderr and "ingest (test holder)" in r.stderr


@pytest.mark.slow
def test_sigkill_real_ingest_then_resume(study, tmp_path):
    col = tmp_path / "killed"
    files = [str(study / f"{n}.x3p") for n in CASINGS]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from ballistics.cli import main; main()", "ingest", *files,
           "--collection", str(col), "--processed", "--model", "baseline", "--commit-every",
           "1", "--quiet", "--labels", str(study / "labels.csv")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if json.loads((col / "manifest.json").read_text())["count"] >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    r = _run("verify", "--collection", str(col), "--json")
    rep = json.loads(r.stdout)
    assert r.exit_code == 0 and rep["ok"] and 2 <= rep["count"] < len(CASINGS)
    assert (col / "ingest-job.json").exists()
    r = _run("ingest", "--collection", str(col), "--resume", "--json", "--quiet")
    out = json.loads(r.stdout)
    assert r.exit_code == 0, r.output
    assert out["count"] == len(CASINGS) and out["ingested"] == len(CASINGS) - rep["count"]
    from ballistics.collection.store import Collection

    c = Collection.open(col)
    assert sorted(c.ids) == sorted(CASINGS) and c.verify()["ok"]
    assert c.columns()["labels"][0]["firearm_id"].startswith("W")
    assert not (col / "ingest-job.json").exists()


@pytest.mark.slow
def test_demo_end_to_end_small(tmp_path):
    r = _run("demo", "--out", str(tmp_path / "demo"), "--firearms", "3", "--casings", "2",
             "--queries", "1", "--shortlist", "3", "--top", "2", "--model", "baseline",
             "--workers", "1", "--quiet", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["ingested"] == 6 and out["n_queries"] == 1 and not out["failed"]
    q = out["queries"][0]
    assert len(q["candidates"]) == 2 and q["candidates"][0]["rank"] == 1
    assert Path(out["report"]).read_text().count("<img") >= 1
    assert "calibration: synthetic-default" in r.stderr and "report:" in r.stderr
    assert set(out["seconds"]) == {"generate", "ingest", "search", "report", "total"}
    # only the searched held-out casing is generated; the ingested X3P files are gone
    scans = tmp_path / "demo" / "scans"
    assert [p.name for p in scans.glob("*.x3p")] == [Path(q["query"]["path"]).name]
    assert (scans / "manifest.csv").is_file() and out["scans_kept"] is False
    total = sum(f.stat().st_size for f in (tmp_path / "demo").rglob("*") if f.is_file())
    assert out["disk_bytes"] == total


def test_search_bad_filters_queries_and_collection_exit_2(collection, study, tmp_path):
    q = str(study / "TW08-01.x3p")
    base = ["search", q, "--collection", str(collection), "--processed", "--json", "--quiet",
            "--device", "cpu"]
    r = CliRunner().invoke(main, [*base, "--where", "firearm=W10"])
    assert r.exit_code == 2 and "unknown label column(s) 'firearm'" in r.stderr
    assert "firearm_id" in r.stderr  # the known columns are listed
    r = CliRunner().invoke(main, [*base, "--exclude", "="])
    assert r.exit_code == 2 and "COLUMN=VALUE" in r.stderr
    empty = tmp_path / "none.txt"
    empty.write_text("# nothing\n\n")
    r = CliRunner().invoke(main, ["search", "--queries", str(empty), "--collection",
                                  str(collection), "--json", "--quiet"])
    assert r.exit_code == 2 and "names no scan" in r.stderr
    r = CliRunner().invoke(main, ["search", q, "--collection", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "not a collection" in r.stderr
    assert all(len(x.stderr.strip().splitlines()) == 1 for x in [r])


def test_ingest_of_an_empty_folder_is_bad_input(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["ingest", str(empty), "--collection", str(tmp_path / "c"),
                                  "--quiet"])
    assert r.exit_code == 2 and "no scan files found" in r.stderr
    assert not (tmp_path / "c").exists()  # nothing was created
