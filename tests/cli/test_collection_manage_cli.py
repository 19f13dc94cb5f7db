"""``ballistics collection list|remove|relabel|export`` and the ingest fixes of issue #23:
round trips on a small collection, search and ``verify`` after each change, the audit log,
a re-ingest with other labels (warning, then ``--update-labels``), ``ingest DIR`` of
``ballistics synth`` output (its mask PNGs are not scans).

Casings: a tiny synthetic study (3 firearms x 2 casings, 25 µm, 96 x 120 points) written by
``ballistics synth``'s generator; the ``baseline`` embedder (no weights needed)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from ballistics.cli import main
from ballistics.collection.audit import read_audit
from tests.clirunner import CliRunner


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    from ballistics.datasets.synthetic import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, 3, 2, spacing_um=25.0, quiet=True, field_um=(2400, 3000), seed=7)
    return out


@pytest.fixture(scope="module")
def built(study, tmp_path_factory) -> tuple[Path, dict]:
    col = tmp_path_factory.mktemp("col") / "lab"
    r = _run("ingest", str(study), "--collection", str(col), "--labels",
             str(study / "manifest.csv"), "--model", "baseline", "--commit-every", "4",
             "--json", "--quiet")
    assert r.exit_code == 0, r.output
    return col, json.loads(r.stdout)


@pytest.fixture
def lab(built, tmp_path) -> Path:
    """A private copy of the built collection for one test."""
    dst = tmp_path / "lab"
    shutil.copytree(built[0], dst)
    return dst


def _list(col: Path, *extra: str) -> list[dict]:
    r = _run("collection", "list", "--collection", str(col), "--json", *extra)
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines()]


def _verify_ok(col: Path) -> None:
    r = _run("verify", "--collection", str(col), "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["ok"], out["problems"]
    # no superseded shard left behind (an ingest keeps the previous index for readers)
    assert not [o for o in out["orphans"] if o.startswith("shards/")]
    assert out["index"]["pending"] == 0


def _search(col: Path, query: Path) -> list[dict]:
    r = _run("search", str(query), "--collection", str(col), "--shortlist", "8", "--top", "8",
             "--json", "--device", "cpu", "--quiet")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["candidates"]


def test_ingest_of_synth_output_skips_the_mask_pngs(study, built):
    col, out = built
    masks = sorted((study / "masks").glob("*.png"))
    assert len(masks) >= 6  # one breech-face mask per casing, plus shear masks
    assert out["ingested"] == 6 and out["failed"] == [] and out["count"] == 6
    assert out["skipped_companions"] == len(masks) and out["label_conflicts"] == []
    r = _run("ingest", str(study), "--collection", str(col), "--quiet")  # text summary
    assert r.exit_code == 0 and f"skipped {len(masks)} mask file(s)" in r.stdout
    # a mask named on its own is taken as a scan (and fails as one: an image)
    r = _run("ingest", str(masks[0]), "--collection", str(col), "--json", "--quiet")
    assert r.exit_code == 2 and "cannot join a topography" in r.stdout


def test_discover_inputs_companions(tmp_path):
    from ballistics.workflows.ingest import companion_of, discover_inputs

    for name in ("A.x3p", "masks/A_mask.png", "masks/A_shear.png", "B.png", "B-mask.png",
                 "C_mask.png", "D.mask.tif"):
        p = tmp_path / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
    comp: list[str] = []
    got = [p.name for p in discover_inputs([tmp_path], companions=comp)]
    # C_mask.png and D.mask.tif have no scan C / D beside them: they are scans
    assert got == ["A.x3p", "B.png", "C_mask.png", "D.mask.tif"]
    assert sorted(Path(c).name for c in comp) == ["A_mask.png", "A_shear.png", "B-mask.png"]
    assert companion_of("F001-01_mask.png") == "F001-01" and companion_of("mask.png") is None


def test_list_json_lines_text_and_filters(lab, built):
    entries = _list(lab)
    assert [e["id"] for e in entries] == ["F001-01", "F001-02", "F002-01", "F002-02",
                                          "F003-01", "F003-02"]
    for e in entries:
        assert list(e) == ["schema", "id", "path", "sha256", "labels", "version", "versions",
                           "warnings"]
        assert e["schema"] == 1 and e["versions"]["h5py"] and len(e["sha256"]) == 64
        assert e["labels"]["firearm_id"] == e["id"][:4]
    assert [e["id"] for e in _list(lab, "--where", "firearm_id=F002")] == ["F002-01",
                                                                            "F002-02"]
    assert len(_list(lab, "--exclude", "firearm_id=F002", "--where", "study=synthetic")) == 4
    r = _run("collection", "list", "--collection", str(lab))
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and len(lines) == 6
    assert lines[0].startswith("F001-01  ") and "firearm_id=F001" in lines[0]
    r = _run("collection", "list", "--collection", str(lab), "--where", "gun=1")
    assert r.exit_code == 2 and "unknown label column" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_remove_by_id_and_filter_then_search_verify_audit(lab, study):
    gen = json.loads((lab / "manifest.json").read_text())["generation"]
    r = _run("collection", "remove", "F001-01", "--where", "firearm_id=F003", "--collection",
             str(lab), "--dry-run", "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["dry_run"]
    assert [e["id"] for e in out["removed"]] == ["F001-01", "F003-01", "F003-02"]
    assert json.loads((lab / "manifest.json").read_text())["generation"] == gen  # untouched
    r = _run("collection", "remove", "F001-01", "--where", "firearm_id=F003", "--collection",
             str(lab), "--json", "--quiet")
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["count"] == 3 and out["generation"] > gen
    assert out["index"]["count"] == 3 and out["schema"] == 1
    assert [e["id"] for e in _list(lab)] == ["F001-02", "F002-01", "F002-02"]
    _verify_ok(lab)
    cands = _search(lab, study / "F001-01.x3p")  # the removed casing is the query now
    assert sorted(c["id"] for c in cands) == ["F001-02", "F002-01", "F002-02"]
    assert cands[0]["id"] == "F001-02"
    line = [a for a in read_audit(lab) if a["command"] == "collection remove"][-1]
    assert [i["id"] for i in line["inputs"]] == ["F001-01", "F003-01", "F003-02"]
    assert line["result"]["count"] == 3 and line["versions"]["faiss"]
    # removed casings can be ingested again
    r = _run("ingest", str(study / "F001-01.x3p"), "--collection", str(lab), "--json",
             "--quiet")
    assert json.loads(r.stdout)["ingested"] == 1
    _verify_ok(lab)


def test_relabel_set_unset_shows_in_search_and_audit(lab, study):
    r = _run("collection", "relabel", "F001-01", "--set", "firearm_id=F777", "--set",
             "note=re-examined", "--unset", "tooling", "--collection", str(lab), "--json",
             "--quiet")
    out = json.loads(r.stdout)
    assert r.exit_code == 0, r.output
    [e] = out["relabelled"]
    assert e["before"]["firearm_id"] == "F001" and e["after"]["firearm_id"] == "F777"
    assert e["after"]["note"] == "re-examined" and "tooling" not in e["after"]
    assert "tooling" in e["before"] and out["unchanged"] == 0
    _verify_ok(lab)
    cands = {c["id"]: c for c in _search(lab, study / "F001-02.x3p")}
    assert cands["F001-01"]["labels"]["firearm_id"] == "F777"
    assert cands["F001-01"]["labels"]["note"] == "re-examined"
    assert cands["F002-01"]["labels"]["firearm_id"] == "F002"
    line = [a for a in read_audit(lab) if a["command"] == "collection relabel"][-1]
    assert line["result"]["changes"][0]["before"]["firearm_id"] == "F001"
    # the same change again changes nothing (no new generation)
    gen = json.loads((lab / "manifest.json").read_text())["generation"]
    r = _run("collection", "relabel", "F001-01", "--set", "firearm_id=F777", "--collection",
             str(lab), "--json")
    assert json.loads(r.stdout)["unchanged"] == 1
    assert json.loads((lab / "manifest.json").read_text())["generation"] == gen


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def test_export_relabel_from_csv_round_trip(lab, tmp_path):
    table = tmp_path / "export.csv"
    r = _run("collection", "export", "--collection", str(lab), "--csv", str(table))
    assert r.exit_code == 0, r.output
    columns, rows = _read_csv(table)
    assert columns[:4] == ["path", "id", "sha256", "modality"] and "firearm_id" in columns
    assert [row["id"] for row in rows] == [e["id"] for e in _list(lab)]
    entries = {e["id"]: e for e in _list(lab)}
    for row in rows:
        e = entries[row["id"]]
        assert row["path"] == e["path"] and row["sha256"] == e["sha256"]
        assert {k: v for k, v in row.items() if k in e["labels"]} == e["labels"]
    # edit one label of one row, keyed by id
    rows[2]["firearm_id"] = "F042"
    edited = tmp_path / "edited.csv"
    with open(edited, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    r = _run("collection", "relabel", "--from-csv", str(edited), "--collection", str(lab),
             "--json", "--quiet")
    out = json.loads(r.stdout)
    assert r.exit_code == 0, r.output
    assert [e["id"] for e in out["relabelled"]] == [rows[2]["id"]] and out["unchanged"] == 5
    again = tmp_path / "again.csv"
    _run("collection", "export", "--collection", str(lab), "--csv", str(again))
    assert _read_csv(again) == (columns, rows)
    _verify_ok(lab)
    # keyed by sha256 only, with a row that matches nothing: a warning, the rest applied
    by_sha = tmp_path / "by_sha.csv"
    by_sha.write_text(f"sha256,firearm_id\n{rows[0]['sha256']},F100\n{'0' * 64},F101\n")
    r = _run("collection", "relabel", "--from-csv", str(by_sha), "--collection", str(lab),
             "--json", "--quiet")
    out = json.loads(r.stdout)
    assert [e["id"] for e in out["relabelled"]] == [rows[0]["id"]]
    assert any("match no entry" in w for w in out["warnings"])
    # stdout table
    r = _run("collection", "export", "--collection", str(lab), "--csv", "-",
             "--where", "firearm_id=F100")
    got = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["id"] for row in got] == [rows[0]["id"]]


def test_reingest_with_other_labels_warns_then_update_labels(lab, study, tmp_path):
    target = study / "F002-02.x3p"
    labels = tmp_path / "fixed.csv"
    labels.write_text(f"path,firearm_id,casing_id\n{target},F099,F002-02\n")
    gen = json.loads((lab / "manifest.json").read_text())["generation"]
    r = _run("ingest", str(target), "--collection", str(lab), "--labels", str(labels),
             "--json", "--quiet")
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["skipped_duplicates"] == 1 and out["relabelled"] == 0
    [c] = out["label_conflicts"]
    assert c["id"] == "F002-02" and c["labels"] == {
        "firearm_id": {"collection": "F002", "given": "F099"}} and not c["updated"]
    [w] = [w for w in out["warnings"] if "different labels" in w]
    assert str(target) in w and "'F002' in the collection, 'F099' given" in w
    assert "ballistics collection relabel F002-02 --set firearm_id=F099" in w
    assert _list(lab, "--where", "id=F002-02")[0]["labels"]["firearm_id"] == "F002"
    # text mode says so on stderr
    r = _run("ingest", str(target), "--collection", str(lab), "--labels", str(labels),
             "--quiet")
    assert "warning:" in r.stderr and "--update-labels" in r.stderr
    r = _run("ingest", str(target), "--collection", str(lab), "--labels", str(labels),
             "--update-labels", "--json", "--quiet")
    out = json.loads(r.stdout)
    assert out["relabelled"] == 1 and out["label_conflicts"][0]["updated"]
    assert not [w for w in out["warnings"] if "different labels" in w]
    [e] = _list(lab, "--where", "id=F002-02")
    assert e["labels"]["firearm_id"] == "F099" and e["labels"]["tooling"]  # others kept
    assert json.loads((lab / "manifest.json").read_text())["generation"] > gen
    _verify_ok(lab)


def test_bad_input_is_one_line_and_exit_2(lab):
    gen = json.loads((lab / "manifest.json").read_text())["generation"]
    for args in (["remove", "NOPE"], ["remove"], ["relabel", "F001-01"],
                 ["relabel", "--set", "a=b"], ["relabel", "F001-01", "--set", "id=x"],
                 ["relabel", "F001-01", "--set", "novalue"],
                 ["remove", "--where", "firearm_id=F999"]):
        r = _run("collection", *args, "--collection", str(lab))
        assert r.exit_code == 2, (args, r.output)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    r = _run("collection", "list", "--collection", str(lab.parent / "nothing"))
    assert r.exit_code == 2 and "not a collection" in r.stderr
    assert json.loads((lab / "manifest.json").read_text())["generation"] == gen
    # one key column named as one ('id identify an entry and are not labels' before)
    r = _run("collection", "relabel", "F001-01", "--set", "id=x", "--collection", str(lab))
    assert r.stderr.startswith("error: 'id' identifies an entry and is not a label: it cannot "
                               "be set or unset"), r.stderr


@pytest.mark.parametrize("where", ["missing", "empty folder"])
def test_not_a_collection_is_bad_input_for_every_command(tmp_path, where):
    """A --collection path that holds no collection (a typo, the scans' folder) is bad input:
    exit 2 and one line that says what to give, whichever command was given it."""
    col = tmp_path / "lab"
    if where == "empty folder":
        col.mkdir()
    c = str(col)
    for args in (["verify", "--collection", c], ["calibrate", "--collection", c],
                 ["collection", "list", "--collection", c],
                 ["collection", "export", "--collection", c, "--csv", str(tmp_path / "e.csv")],
                 ["collection", "remove", "X", "--collection", c],
                 ["index", "rebuild", "--collection", c],
                 ["search", str(tmp_path / "q.x3p"), "--collection", c],
                 ["compare", str(tmp_path / "a.x3p"), str(tmp_path / "b.x3p"),
                  "--collection", c]):
        r = _run(*args)
        assert r.exit_code == 2, (args, r.output)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {c}: not a collection"), args
        assert "ballistics ingest" in lines[0]
    assert not col.exists() or not any(col.iterdir())  # nothing was created


def test_json_objects_carry_warnings_even_when_there_are_none(lab):
    """README: every JSON object carries ``warnings``; ``collection list``, ``calibrate``
    and the manage commands' objects lacked the key when there was nothing to say."""
    for args in (["collection", "list"], ["collection", "relabel", "F001-01", "--set",
                                          "note=x", "--dry-run"],
                 ["calibrate", "--pairs", "4", "--quiet", "--threads", "1", "--device", "cpu"]):
        r = _run(*args, "--collection", str(lab), "--json")
        assert r.exit_code == 0, (args, r.output)
        for line in r.stdout.strip().splitlines():
            obj = json.loads(line)
            assert list(obj)[0] == "schema", args
            assert list(obj)[-2:] == ["versions", "warnings"], (args, list(obj))
            assert isinstance(obj["warnings"], list)


def _stale(messages: list[str]) -> list[str]:
    return [m for m in messages if "calibration was fitted before" in m]


def test_ingest_warns_that_the_collections_calibration_is_out_of_date(lab, study):
    """A new user added casings to a collection with its own calibration and nothing said
    it was out of date (``collection remove`` said so). ``ingest`` now warns as remove does,
    naming the command to run; search and compare --collection warn until it is refitted."""
    r = _run("collection", "remove", "F001-01", "--collection", str(lab), "--json", "--quiet")
    assert r.exit_code == 0 and not _stale(json.loads(r.stdout)["warnings"])  # none yet
    r = _run("calibrate", "--collection", str(lab), "--pairs", "4", "--quiet", "--threads", "1",
             "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    _verify_ok(lab)  # the calibration entry's shards_digest is part of a valid manifest
    query = study / "F001-02.x3p"
    search = ("search", str(query), "--collection", str(lab), "--shortlist", "3", "--top", "3",
              "--json", "--device", "cpu", "--quiet")
    compare = ("compare", str(query), str(study / "F002-01.x3p"), "--collection", str(lab),
               "--json", "--device", "cpu", "--quiet")
    for args in (search, compare):  # freshly fitted: nothing to say
        r = _run(*args)
        assert r.exit_code == 0 and not _stale(json.loads(r.stdout)["warnings"]), r.output
    r = _run("ingest", str(study / "F001-01.x3p"), "--collection", str(lab), "--labels",
             str(study / "manifest.csv"), "--quiet")
    assert r.exit_code == 0 and "ingested 1" in r.stdout
    [w] = [m for m in r.stderr.splitlines() if "calibration was fitted before" in m]
    assert w.startswith("warning: ") and f"`ballistics calibrate --collection {lab}`" in w
    # remove words it the same way; so does ingest's JSON
    r = _run("collection", "remove", "F002-02", "--collection", str(lab), "--json", "--quiet")
    assert _stale(json.loads(r.stdout)["warnings"]) == [w.removeprefix("warning: ")]
    r = _run("ingest", str(study / "F002-02.x3p"), "--collection", str(lab), "--labels",
             str(study / "manifest.csv"), "--json")
    out = json.loads(r.stdout)
    assert out["ingested"] == 1 and _stale(out["warnings"]) == [w.removeprefix("warning: ")]
    # nothing ingested (a duplicate): nothing changed, no warning from this ingest
    r = _run("ingest", str(study / "F001-01.x3p"), "--collection", str(lab), "--json")
    assert json.loads(r.stdout)["ingested"] == 0 and not _stale(json.loads(r.stdout)["warnings"])
    for args in (search, compare):  # stale until refitted
        r = _run(*args)
        [s] = [m for m in json.loads(r.stdout)["warnings"] if "calibration was fitted" in m]
        assert "casings last changed" in s and f"--collection {lab}`" in s, args[0]
    r = _run("calibrate", "--collection", str(lab), "--pairs", "4", "--quiet", "--threads", "1",
             "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    r = _run(*search)
    assert not [m for m in json.loads(r.stdout)["warnings"] if "calibration was fitted" in m]


def test_verify_drop_damaged_warns_that_the_calibration_is_out_of_date(lab):
    """``verify --drop-damaged`` removes the casings of a damaged shard, as ``collection
    remove`` does, so a calibration fitted before is out of date: it says so as remove does
    (search and compare --collection warned afterwards, verify itself did not)."""
    r = _run("calibrate", "--collection", str(lab), "--pairs", "4", "--quiet", "--threads", "1",
             "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    shard = sorted((lab / "shards").glob("*.h5"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])  # an interrupted copy
    r = _run("verify", "--collection", str(lab), "--drop-damaged", "--json", "--quiet")
    out = json.loads(r.stdout)
    assert out["lost"] and out["after"]["ok"], r.output
    [w] = _stale(out["warnings"])
    assert f"`ballistics calibrate --collection {lab}`" in w
    r = _run("verify", "--collection", str(lab), "--drop-damaged", "--quiet")  # text mode
    assert r.exit_code == 0 and not _stale(r.stderr.splitlines()), r.output  # nothing dropped


def test_calibration_fitted_while_an_ingest_commits_is_out_of_date(lab, study, monkeypatch):
    """``calibrate`` compares its pairs without the write lock, so an ingest can commit
    casings meanwhile. The calibration is stored as fitted on the casings it compared: the
    command warns, and search warns that it is out of date until refitted (the digest of
    the state it was published into made it look current, with the new casing never part
    of it)."""
    from ballistics.workflows import calibrate as cal_mod

    r = _run("collection", "remove", "F003-02", "--collection", str(lab), "--quiet")
    assert r.exit_code == 0, r.output
    real = cal_mod.compare_pairs

    def compare_then_ingest(*args, **kwargs):
        rows = real(*args, **kwargs)  # the real comparisons; then another writer commits
        r = _run("ingest", str(study / "F003-02.x3p"), "--collection", str(lab), "--labels",
                 str(study / "manifest.csv"), "--quiet")
        assert r.exit_code == 0 and "ingested 1" in r.stdout, r.output
        return rows

    monkeypatch.setattr(cal_mod, "compare_pairs", compare_then_ingest)
    r = _run("calibrate", "--collection", str(lab), "--pairs", "4", "--quiet", "--threads", "1",
             "--device", "cpu")
    assert r.exit_code == 0, r.output
    [w] = [m for m in r.stderr.splitlines() if "changed while the calibration" in m]
    assert w.startswith("warning: ") and f"`ballistics calibrate --collection {lab}`" in w
    [line] = [e for e in read_audit(lab) if e["command"] == "calibrate"]  # on record too
    assert line["result"]["warnings"] == [w.removeprefix("warning: ")]
    r = _run("search", str(study / "F001-02.x3p"), "--collection", str(lab), "--shortlist",
             "3", "--top", "3", "--json", "--device", "cpu", "--quiet")
    [s] = [m for m in json.loads(r.stdout)["warnings"] if "calibration was fitted" in m]
    assert "casings last changed" in s


def test_verify_drop_damaged_says_what_it_did_and_what_to_ingest_again(lab, study):
    """On a terminal, ``verify --drop-damaged`` names the shards it dropped, the state after
    the repair and the source files to ingest again (it printed only the damage found, then
    exited 0; the files were in the JSON alone). A shard too damaged to read its paths is
    named with its casing count and what to do instead."""
    first, second = sorted((lab / "shards").glob("*.h5"))
    in_second = [str(study / f"{i}.x3p") for i in ("F003-01", "F003-02")]
    first.write_bytes(first.read_bytes()[:1000])  # an interrupted copy: nothing readable
    data = bytearray(second.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped bit in its surfaces: the paths still read
    second.write_bytes(bytes(data))
    r = _run("verify", "--collection", str(lab), "--drop-damaged", "--quiet")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert f"dropped shards/{first.name} (kept aside as shards/{first.name}.damaged)" in lines
    assert f"dropped shards/{second.name} (kept aside as shards/{second.name}.damaged)" in lines
    assert f"{lab}: after the repair: OK: 0 casings, 1 files checked, index covers 0" in lines, \
        r.stdout
    assert [ln.removeprefix("ingest again: ") for ln in lines
            if ln.startswith("ingest again: /")] == in_second
    [unreadable] = [ln for ln in lines if ln.startswith("ingest again: 4 casings of ")]
    assert f"shards/{first.name}" in unreadable and "--labels CSV" in unreadable


def test_verify_does_not_call_the_previous_index_an_orphan(lab, study):
    """An ingest keeps the previous index file for searches that opened the previous
    manifest. ``verify`` listed it as an "orphan file ... (left by an interrupted writer;
    removed by the next ingest)" after every ordinary ingest: neither is true, and it told a
    lab that a command had been interrupted. A temporary file a killed writer left is still
    one."""
    r = _run("collection", "remove", "F003-02", "--collection", str(lab), "--quiet")
    assert r.exit_code == 0, r.output
    r = _run("ingest", str(study / "F003-02.x3p"), "--collection", str(lab), "--quiet")
    assert r.exit_code == 0, r.output
    assert len(list((lab / "index").glob("*.faiss"))) == 2  # the current and the previous
    r = _run("verify", "--collection", str(lab))
    assert r.exit_code == 0 and "orphan" not in r.stderr, r.output
    r = _run("verify", "--collection", str(lab), "--json")
    assert json.loads(r.stdout)["orphans"] == []
    (lab / "index" / ".index-000099-abcd.faiss.tmp").write_bytes(b"partial")
    r = _run("verify", "--collection", str(lab))
    assert "note: orphan file index/.index-000099-abcd.faiss.tmp" in r.stderr, r.output


def _ingest_in_pairs(study, col):
    """``ingest`` of the study into ``col``, committing every two casings."""
    return _run("ingest", str(study), "--collection", str(col), "--labels",
                str(study / "manifest.csv"), "--model", "baseline", "--commit-every", "2",
                "--quiet")


def test_interrupted_ingest_names_the_command_that_finishes_it(study, tmp_path, monkeypatch):
    """Ctrl-C during an ingest: one line that says the committed casings are kept and gives
    the ``--resume`` command (it said "error: interrupted" alone); exit 130. The command, run
    as given, finishes the job with every casing once."""
    import shlex

    from ballistics.collection.writer import CollectionWriter

    col = tmp_path / "my lab"
    real = CollectionWriter.commit

    def commit_then_ctrl_c(self, *args, **kwargs):
        real(self, *args, **kwargs)  # the batch is committed, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(CollectionWriter, "commit", commit_then_ctrl_c)
    r = _ingest_in_pairs(study, col)
    assert r.exit_code == 130, r.output
    [line] = r.stderr.splitlines()
    assert line.startswith("error: interrupted; the casings committed so far are kept: `")
    cmd = shlex.split(line.split("`")[1])
    assert cmd == ["ballistics", "ingest", "--collection", str(col), "--resume"]
    monkeypatch.setattr(CollectionWriter, "commit", real)
    r = _run(*cmd[1:], "--json", "--quiet")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["ingested"], out["skipped_duplicates"], out["count"]) == (4, 2, 6)


def test_calibrate_names_the_casings_without_a_source_label(lab, study):
    """A casing ingested without labels has no source: calibrate leaves it out of every
    pair, and now says so (it said nothing, so a casing ingested without --labels dropped
    out of the lab's calibration unnoticed)."""
    r = _run("collection", "relabel", "F002-01", "--unset", "firearm_id", "--collection",
             str(lab), "--quiet")
    assert r.exit_code == 0, r.output
    r = _run("calibrate", "--collection", str(lab), "--pairs", "4", "--quiet", "--threads", "1",
             "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    [w] = [m for m in out["warnings"] if "left out of the calibration" in m]
    assert w.startswith("1 of 6 casings have no 'firearm_id' label") and "(F002-01)" in w
    assert f"--set firearm_id=SOURCE --collection {lab}`" in w
    assert out["sampling"]["sources"] == 3


def test_ingest_onto_a_full_disk_stops_cleanly_and_resumes(study, tmp_path, monkeypatch):
    """HDF5 does not report a full disk to Python (its failed writes are ignored errors at
    close) and the process crashed with a segmentation fault when the file system of the
    collection filled during an ingest. The free space is checked before a shard is
    written: one error line, exit 1, nothing half-written, and --resume continues once
    there is space. (The file system's free space is what is simulated here.)"""
    import shutil as _shutil

    real = _shutil.disk_usage
    col = tmp_path / "lab"

    def full(path):
        u = real(path)
        return type(u)(u.total, u.total - 1000, 1000)

    monkeypatch.setattr(_shutil, "disk_usage", full)
    r = _ingest_in_pairs(study, col)
    assert r.exit_code == 1, r.output
    [line] = r.stderr.splitlines()
    assert line.startswith(f"error: {col / 'shards'}: not enough free disk space to write the "
                           "next shard of 2 casing(s)")
    assert f"`ballistics ingest --collection {col} --resume`" in line
    assert not list((col / "shards").iterdir())  # no partial shard left behind
    monkeypatch.setattr(_shutil, "disk_usage", real)
    r = _run("ingest", "--collection", str(col), "--resume", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["count"] == 6
    _verify_ok(col)


def test_a_full_disk_elsewhere_is_one_line_naming_it():
    """Any other write that finds the disk full (the manifest, the audit log, a report) is
    one line that says so, not 'unexpected OSError'."""
    import errno

    import click

    from ballistics.cli.common import handle_errors

    @click.command()
    @handle_errors
    def cmd() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "lab/audit.jsonl")

    r = CliRunner().invoke(cmd, [])
    assert r.exit_code == 1
    assert r.stderr == ("error: no space left on the device writing lab/audit.jsonl; free "
                        "disk space and run the command again\n")


def test_a_damaged_shard_met_by_search_points_to_the_repair_verify_offers(lab, study):
    """search on a collection with a truncated shard: one line, exit 1, naming the repair
    that ``verify`` offers (it said "re-ingest the affected casings into a new collection",
    while verify's fix is --drop-damaged and ingesting the listed files into this one)."""
    shard = sorted((lab / "shards").glob("*.h5"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    r = _run("search", str(study / "F001-02.x3p"), "--collection", str(lab), "--shortlist",
             "2", "--top", "2", "--device", "cpu", "--quiet")
    assert r.exit_code == 1 and len(r.stderr.splitlines()) == 1, r.output
    assert "`ballistics verify --collection DIR --drop-damaged`" in r.stderr
    assert "new collection" not in r.stderr


def test_ingest_keeps_the_collections_preprocessing_preset(study, tmp_path):
    """One preset per collection: a later ingest without --preset prepares its casings with
    the collection's (it took the default preset, mixing two preprocessings while search
    prepares every query with the collection's); another --preset is refused, and an unknown
    one is bad input before anything is created (it was recorded in the new collection's
    manifest and every search of it then failed)."""
    from ballistics.collection.store import Collection

    r = _run("ingest", str(study / "F001-01.x3p"), "--collection", str(tmp_path / "x"),
             "--preset", "nope", "--model", "baseline", "--quiet")
    assert r.exit_code == 2 and "unknown preset 'nope'" in r.stderr, r.output
    assert not (tmp_path / "x").exists()
    col = tmp_path / "lab"
    base = ("--collection", str(col), "--model", "baseline", "--quiet")
    r = _run("ingest", str(study / "F001-01.x3p"), *base, "--preset", "cmcr")  # any case
    assert r.exit_code == 0, r.output
    r = _run("ingest", str(study / "F002-01.x3p"), *base)
    assert r.exit_code == 0, r.output
    c = Collection.open(col)
    assert c.manifest["preprocess"]["preset"] == "cmcR"
    first, second = c.surfaces([0, 1])
    assert [s["name"] for s in second.provenance] == [s["name"] for s in first.provenance]
    r = _run("ingest", str(study / "F003-01.x3p"), *base, "--preset", "default")
    assert r.exit_code == 2, r.output
    assert "prepared with the preprocessing preset 'cmcR', not 'default'" in r.stderr
    assert Collection.open(col).count == 2 and not (col / "ingest-job.json").exists()
