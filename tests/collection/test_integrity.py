"""Integrity of a collection: a flipped bit in a shard's small datasets or in the manifest is
a ``CollectionCorruptError`` (CLI: one line, exit 1) that ``verify`` reports, never a wrong
answer or an untyped crash; an old collection without the checksums opens with a warning.

The collection: six small synthetic casings (three firearms W04, W05, W06, two casings
each, 132 x 116 points at 12.5 µm) ingested with the baseline embedder into two shards.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ballistics.cli import main
from ballistics.collection import shards as shard_io
from ballistics.collection.manifest import CHECKSUM_KEY, LEGACY_WARNING, MANIFEST_NAME
from ballistics.collection.store import Collection
from ballistics.errors import CollectionCorruptError
from ballistics.scan import Scan
from tests.clirunner import CliRunner
from tests.surfaces import ellipse_surface, turned

FIREARMS = (("W04", 4), ("W05", 5), ("W06", 6))


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A study folder with ``col/`` (the collection) and ``query.x3p`` (a W04 casing)."""
    from ballistics.io import write_x3p

    d = tmp_path_factory.mktemp("integrity")
    rows = []
    for firearm, seed in FIREARMS:
        ref = ellipse_surface(seed)
        for k, h in ((1, ref), (2, turned(ref, -3.0))):
            write_x3p(Scan(h, (12.5, 12.5)), d / f"{firearm}-{k}.x3p")
            rows.append({"path": f"{firearm}-{k}.x3p", "firearm_id": firearm})
    write_x3p(Scan(turned(ellipse_surface(4), 4.0, (-1, 2)), (12.5, 12.5)), d / "query.x3p")
    with open(d / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "firearm_id"])
        w.writeheader()
        w.writerows(rows)
    r = _run("ingest", *[str(d / row["path"]) for row in rows], "--collection", str(d / "col"),
             "--labels", str(d / "labels.csv"), "--processed", "--model", "baseline",
             "--commit-every", "3", "--workers", "1", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["shards"] == 2
    return d


@pytest.fixture
def study(pristine, tmp_path) -> Path:
    """A private copy of the study (each test damages its own collection)."""
    d = tmp_path / "study"
    shutil.copytree(pristine, d)
    return d


def _search_cli(study: Path, *extra: str):
    return _run("search", str(study / "query.x3p"), "--collection", str(study / "col"),
                "--processed", "--json", "--device", "cpu", "--workers", "1", *extra)


def _shard_of(col_dir: Path, casing_id: str) -> tuple[Path, int]:
    col = Collection.open(col_dir)
    for entry in col.manifest["shards"]:
        ids = shard_io.read_table(col_dir / entry["file"]).ids
        if casing_id in ids:
            return col_dir / entry["file"], ids.index(casing_id)
    raise AssertionError(casing_id)


def _flip_in_dataset(shard: Path, name: str, row: int, target: bytes | None = None) -> None:
    """Flip the lowest bit of one stored byte of ``name[row]`` (the last byte of ``target``
    within it, else its middle byte) in the file's raw bytes."""
    import re

    import h5py

    good = shard.read_bytes()
    with h5py.File(shard, "r") as f:
        ds = f[name]
        before = ds[()]
        if name == "spacing_um":  # contiguous float64 (rows, 2): a mantissa bit of dy
            offsets = [ds.id.get_offset() + row * 16 + 5]
        else:  # a variable-length string: in the global heap after its 8-byte size
            value = ds[row]
            pos = value.index(target) + len(target) - 1 if target else len(value) // 2
            pattern = re.escape(len(value).to_bytes(8, "little") + value)
            offsets = [m.start() + 8 + pos for m in re.finditer(pattern, good)]
    for offset in offsets:  # equal strings of other datasets share the pattern: find ours
        raw = bytearray(good)
        raw[offset] ^= 0x01
        shard.write_bytes(bytes(raw))
        with h5py.File(shard, "r") as f:
            if not np.array_equal(f[name][()], before):
                return
    raise AssertionError(f"no stored byte of {name}[{row}] found")


def test_intact_collection_searches_and_verifies(study):
    r = _run("verify", "--collection", str(study / "col"), "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["ok"] and rep["problems"] == [] and rep["warnings"] == []
    manifest = json.loads((study / "col" / MANIFEST_NAME).read_text())
    assert list(manifest)[-1] == CHECKSUM_KEY
    assert all(len(e["datasets_sha256"]) == 64 for e in manifest["shards"])
    r = _search_cli(study, "--shortlist", "1", "--top", "1")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["candidates"][0]["labels"] == {"firearm_id": "W04"}
    assert not any("checksum" in w for w in out["warnings"])


# (dataset, casing whose row is damaged, the byte flipped: last of target or the middle)
SHARD_CASES = [
    ("ids", "W04-1", b"W04"),        # W04-1 -> W05-1: an id twice
    ("paths", "W04-2", b"W04"),      # points to W05-2's file
    ("labels", "W04-2", b"W04"),     # firearm_id W04 shown as W05
    ("sha256", "W05-1", None),
    ("modality", "W05-1", None),
    ("metadata", "W04-1", None),
    ("provenance", "W04-1", None),
    ("warnings", "W04-1", None),     # "[]" -> "[\\": not JSON (was a ValueError)
    ("spacing_um", "W04-2", None),   # 12.5 µm -> another spacing
]


@pytest.mark.parametrize(("name", "casing", "target"), SHARD_CASES,
                         ids=[c[0] for c in SHARD_CASES])
def test_flipped_bit_in_a_shard_dataset(study, name, casing, target):
    from ballistics.workflows.search import SearchOptions, search

    col_dir = study / "col"
    shard, row = _shard_of(col_dir, casing)
    _flip_in_dataset(shard, name, row, target)
    # every casing shortlisted: the damaged shard is read whichever it is
    opts = SearchOptions(top=6, shortlist=6, processed=True, device="cpu", workers=1)
    with pytest.raises(CollectionCorruptError) as info:
        search(study / "query.x3p", col_dir, opts, audit=False)
    assert shard.name in str(info.value) and "ballistics verify" in str(info.value)
    r = _search_cli(study, "--shortlist", "6", "--top", "6")
    assert r.exit_code == 1 and r.stdout == ""
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and shard.name in err[0]
    assert "Traceback" not in r.stderr
    # verify: the whole-file SHA-256 fails; the full check names the dataset
    r = _run("verify", "--collection", str(col_dir), "--json")
    assert r.exit_code == 1
    problems = json.loads(r.stdout)["problems"]
    assert [p["file"] for p in problems] == [shard.relative_to(col_dir).as_posix()]
    entry = next(e for e in Collection.open(col_dir).manifest["shards"]
                 if e["file"] == problems[0]["file"])
    found = shard_io.check_shard(shard, digest=entry["datasets_sha256"])
    assert any(f":{name}:" in p for p in found), found


# (id, top-level key, text in the value of that key whose last character gets a flipped
# bit; "" = the value's first character)
MANIFEST_CASES = [
    ("modality", "modality", '"topography'),            # -> topographx
    ("compare.preset", "compare", '"default'),           # -> defaulu
    ("model_hash", "embedding", '"model_hash": "0'),
    ("dim", "embedding", '"dim": 31'),                   # 3120 -> 3020
    ("label_columns", "label_columns", '["firearm_id'),  # -> firearm_ie
    ("generation", "generation", ""),
    ("final-newline", None, None),                       # the last byte cut off
]


def _flip_manifest(path: Path, key: str, text: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    prefix = f' "{key}": '
    i = next(k for k, ln in enumerate(lines) if ln.startswith(prefix))
    j = lines[i].index(text, len(prefix)) + len(text) - 1 if text else len(prefix)
    line = lines[i]
    lines[i] = line[:j] + chr(ord(line[j]) ^ 0x01) + line[j + 1:]
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.mark.parametrize(("key", "text"), [c[1:] for c in MANIFEST_CASES],
                         ids=[c[0] for c in MANIFEST_CASES])
def test_damaged_manifest(study, key, text):
    col_dir = study / "col"
    path = col_dir / MANIFEST_NAME
    before = json.loads(path.read_text(encoding="utf-8"))
    if key is None:
        path.write_bytes(path.read_bytes()[:-1])
    else:
        _flip_manifest(path, key, text)
    after = json.loads(path.read_text(encoding="utf-8"))  # still JSON: only the checks tell
    assert (after != before) == (key is not None)
    with pytest.raises(CollectionCorruptError) as info:
        Collection.open(col_dir)
    assert MANIFEST_NAME in str(info.value) and "ballistics verify" in str(info.value)
    r = _search_cli(study, "--shortlist", "1", "--top", "1")
    assert r.exit_code == 1 and r.stdout == ""
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and MANIFEST_NAME in err[0] and "Traceback" not in r.stderr
    r = _run("verify", "--collection", str(col_dir), "--json")
    assert r.exit_code == 1
    rep = json.loads(r.stdout)
    assert not rep["ok"] and [p["file"] for p in rep["problems"]] == [MANIFEST_NAME]
    assert ("truncated" if key is None else "checksum") in rep["problems"][0]["problem"]
    # a writer does not publish over it; --drop-damaged refuses to
    r = _run("verify", "--collection", str(col_dir), "--drop-damaged")
    assert r.exit_code == 1 and "restore manifest.json from a backup" in r.stderr
    col = Collection.open(col_dir, check=False)
    with col.lock("t") as lock, pytest.raises(CollectionCorruptError):
        col.update_index(lock=lock, rebuild=True)
    assert json.loads(path.read_text(encoding="utf-8")) == after


def _make_legacy(col_dir: Path) -> None:
    """Turn the collection into one written before the checksums: no dataset digests in the
    shards, no ``datasets_sha256`` entries, no ``manifest_sha256`` (old indented format)."""
    import h5py

    from ballistics.collection.fsio import file_entry

    path = col_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest[CHECKSUM_KEY]
    for entry in manifest["shards"]:
        with h5py.File(col_dir / entry["file"], "r+") as f:
            del f.attrs[shard_io.DIGEST_ATTR]
        del entry["datasets_sha256"]
        entry.update(file_entry(col_dir / entry["file"], col_dir))
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def test_old_collection_without_checksums_opens_with_a_warning(study):
    col_dir = study / "col"
    _make_legacy(col_dir)
    col = Collection.open(col_dir)
    assert col.manifest_warning == LEGACY_WARNING and col.warnings[0] == LEGACY_WARNING
    assert "2 shard(s)" in col.warnings[1]
    assert col.ids == ["W04-1", "W04-2", "W05-1", "W05-2", "W06-1", "W06-2"]
    r = _run("verify", "--collection", str(col_dir))
    assert r.exit_code == 0 and "warning: manifest.json carries no checksum" in r.stderr
    scans = col.surfaces(range(col.count))  # readable without the digests
    assert [s.source for s in scans] == col.columns()["path"]
    assert all(s.spacing_um == (12.5, 12.5) for s in scans)
    # the search says so (a filter that leaves no casing: nothing to compare, kept quick)
    r = _search_cli(study, "--where", "firearm_id=none", "--shortlist", "1", "--top", "1")
    assert r.exit_code == 0, r.output
    assert LEGACY_WARNING in json.loads(r.stdout)["warnings"]
    # without the checksum only the keys an old manifest held are accepted
    path = col_dir / MANIFEST_NAME
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"modality":', '"modalitx":'), encoding="utf-8")
    with pytest.raises(CollectionCorruptError, match="unknown key"):
        Collection.open(col_dir)
    path.write_text(text, encoding="utf-8")
    # the next write adds the manifest checksum (old shards stay without digests)
    with col.lock("t") as lock:
        col.update_index(lock=lock, rebuild=True)
    col = Collection.open(col_dir)
    assert col.manifest_warning is None and len(col.warnings) == 1
    assert CHECKSUM_KEY in json.loads(path.read_text(encoding="utf-8"))


def test_random_bit_flips_never_give_a_wrong_answer(pristine, tmp_path):
    """Any single flipped bit of a shard: the reads give the stored values or raise
    CollectionCorruptError (no other exception, no altered value)."""
    col_dir = tmp_path / "col"
    shutil.copytree(pristine / "col", col_dir)
    col = Collection.open(col_dir)
    shard = col_dir / col.manifest["shards"][0]["file"]

    def read_all():
        shard_io.forget_verified()
        c = Collection.open(col_dir)
        scans = c.surfaces(range(c.count))
        return (c.columns(), [s.heights for s in scans], [s.spacing_um for s in scans],
                [(s.metadata, s.provenance, s.warnings, s.source, s.sha256, s.modality)
                 for s in scans], c.embeddings())

    ref = read_all()
    good = shard.read_bytes()
    rng = np.random.default_rng(21)
    caught = 0
    for offset in rng.choice(len(good), size=100, replace=False):
        raw = bytearray(good)
        raw[offset] ^= 1 << int(rng.integers(8))
        shard.write_bytes(bytes(raw))
        try:
            got = read_all()
        except CollectionCorruptError:
            caught += 1
            continue
        assert got[0] == ref[0] and got[2] == ref[2] and got[3] == ref[3], offset
        for a, b in zip(got[1], ref[1], strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(got[4], ref[4])
    shard.write_bytes(good)
    assert caught > 0 and read_all()[0] == ref[0]


@pytest.mark.parametrize(("name", "target"), [("labels", b"F00"), ("spacing_um", None)])
def test_a_damaged_worker_shard_is_refused_at_commit(tmp_path, name, target):
    from tests.collection.helpers import make_record

    col = Collection.create(tmp_path / "col", embedding={"model": "t", "model_hash": "h",
                                                          "dim": 16})
    ext = shard_io.write_shard(tmp_path / "worker.h5", [make_record(i, seed=3) for i in range(3)])
    _flip_in_dataset(ext, name, 1, target)
    with col.lock("t") as lock, pytest.raises(CollectionCorruptError, match=name):
        col.commit_shard(ext, lock=lock)
    assert Collection.open(col.directory).count == 0 and ext.is_file()  # left where it was


def test_a_manifest_an_older_ballistics_wrote_after_this_one_is_read_with_a_warning(study):
    """An older writer keeps the stale checksum while it moves generation and updated on
    (a flipped bit changes one of them, not both: see the generation case above)."""
    col_dir = study / "col"
    path = col_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["generation"] += 1
    manifest["updated"] = "2030-01-01T00:00:00+00:00"
    manifest["index"]["built"] = manifest["updated"]
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    col = Collection.open(col_dir)
    assert col.manifest_warning.startswith("manifest.json was last written by an older")
    assert col.count == 6 and col.warnings == [col.manifest_warning]
    r = _run("verify", "--collection", str(col_dir), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["warnings"] == col.warnings
    with col.lock("t") as lock:  # the next write checksums it again
        col.update_index(lock=lock, rebuild=True)
    assert Collection.open(col_dir).manifest_warning is None
