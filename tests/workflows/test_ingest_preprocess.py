"""``--preprocess auto|raw|processed`` of ingest, search, embed and view: auto prepares a
processed export as ``--processed`` did and a raw scan as ``raw`` does, the decision is
stored per casing and reported for the query, and ``--processed`` contradicting
``--preprocess`` is a usage error."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest

from ballistics.cli import main
from ballistics.collection.store import Collection
from ballistics.errors import ParameterError
from ballistics.scan import Scan
from ballistics.workflows.ingest import (
    IngestOptions,
    detected_of,
    prepare_casing,
    preprocess_mode,
)
from ballistics.workflows.search import SearchOptions, collection_preprocess, compare_command
from tests.clirunner import CliRunner
from tests.surfaces import ellipse_surface, turned


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``a``, ``b``: band-limited surfaces cut to an annulus (processed exports, without
    this toolkit's provenance); ``raw``: a raw synthetic casing (12.5 µm)."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.io import write_x3p

    d = tmp_path_factory.mktemp("prep")
    ref = ellipse_surface(3)
    yy, xx = np.mgrid[: ref.shape[0], : ref.shape[1]]
    hole = (yy - ref.shape[0] / 2) ** 2 + (xx - ref.shape[1] / 2) ** 2 < 22 ** 2
    out = {}
    for name, h in (("a", ref), ("b", turned(ref))):
        write_x3p(Scan(np.where(hole, np.nan, h).astype(np.float32), (12.5, 12.5)),
                  d / f"{name}.x3p")
        out[name] = str(d / f"{name}.x3p")
    p = params_for("realistic", spacing_um=12.5)
    cas = fire(make_firearm("P1", 11, p), 1, p, modality="topography")
    write_x3p(cas.scan, d / "raw.x3p")
    out["raw"] = str(d / "raw.x3p")
    out["dir"] = d
    return out


def _prepared(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = prepare_casing(path, **kw)
    assert not hasattr(res, "reason"), res
    return res


def _same(s1: Scan, s2: Scan) -> None:
    assert s1.spacing_um == s2.spacing_um
    assert np.array_equal(s1.heights, s2.heights, equal_nan=True)


def test_prepare_casing_auto_equals_the_right_mode(files):
    auto = _prepared(files["a"])
    forced = _prepared(files["a"], processed=True)
    _same(auto.scan, forced.scan)
    assert auto.detected["mode"] == "auto" and auto.detected["state"] == "processed"
    assert forced.detected["mode"] == "processed" and forced.detected["source"] == "forced"
    assert detected_of(auto.scan) == auto.detected  # recorded in the metadata
    raw_auto = _prepared(files["raw"])
    raw = _prepared(files["raw"], mode="raw")
    _same(raw_auto.scan, raw.scan)
    assert raw_auto.detected["state"] == "raw" and raw_auto.detected["source"] == "measured"
    # the processed export prepared as raw is changed (filtered again): the modes differ
    again = _prepared(files["a"], mode="raw")
    assert not np.array_equal(again.scan.heights, auto.scan.heights, equal_nan=True)


def test_modes_and_their_older_spelling():
    assert preprocess_mode(None) == "auto" and preprocess_mode("RAW") == "raw"
    assert preprocess_mode("auto", True) == "processed"
    assert preprocess_mode("auto", False) == "raw"
    with pytest.raises(ParameterError, match="contradicts"):
        preprocess_mode("raw", True)
    with pytest.raises(ParameterError):
        preprocess_mode("sometimes")
    assert IngestOptions(processed=True).preprocess == "processed"
    assert IngestOptions().settings == {"preset": "default", "mode": "auto", "processed": None}
    assert SearchOptions(processed=True).preprocess == "processed"
    with pytest.raises(ParameterError):
        SearchOptions(processed=True, preprocess="raw")
    # a hit's pair-report command prepares the query as the search did
    cmd = compare_command("q.x3p", "c.x3p", "r.html", options=SearchOptions(processed=True))
    assert cmd.endswith("--preprocess processed")
    assert "--preprocess" not in compare_command("q.x3p", "c.x3p", "r.html")
    # collections written before modes were recorded
    assert collection_preprocess({"preprocess": {"preset": "default", "processed": True}}) \
        == {"preset": "default", "mode": "processed"}
    assert collection_preprocess({"preprocess": {"preset": "cmcR", "processed": None}}) \
        == {"preset": "cmcR", "mode": "unknown"}
    assert collection_preprocess({}) == {"preset": "default", "mode": "unknown"}
    assert detected_of(Scan(np.zeros((4, 4), np.float32), (1.0, 1.0))) is None


def _ok(args):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return res


def _stored(col_dir):
    col = Collection.open(col_dir)
    ids = col.ids
    return dict(zip(ids, col.surfaces(range(len(ids))), strict=True)), col


@pytest.fixture(scope="module")
def collections(files):
    d = files["dir"]
    base = ["--model", "baseline", "--json", "--quiet"]
    _ok(["ingest", files["a"], files["b"], files["raw"], "--collection", str(d / "auto"), *base])
    _ok(["ingest", files["a"], files["b"], "--collection", str(d / "proc"), "--processed",
         *base])
    _ok(["ingest", files["raw"], "--collection", str(d / "raw"), "--preprocess", "raw", *base])
    return d


def test_ingest_auto_stores_what_the_right_mode_stores(collections):
    auto, col = _stored(collections / "auto")
    proc, pcol = _stored(collections / "proc")
    raw, rcol = _stored(collections / "raw")
    for name in ("a", "b"):
        _same(auto[name], proc[name])
    _same(auto["raw"], raw["raw"])
    assert col.manifest["preprocess"] == {"preset": "default", "mode": "auto",
                                          "processed": None}
    assert pcol.manifest["preprocess"]["mode"] == "processed"
    assert pcol.manifest["preprocess"]["processed"] is True  # as older versions wrote it
    assert rcol.manifest["preprocess"]["mode"] == "raw"
    states = {k: (detected_of(s) or {}).get("state") for k, s in auto.items()}
    assert states == {"a": "processed", "b": "processed", "raw": "raw"}
    assert detected_of(proc["a"])["source"] == "forced"
    # the embeddings agree too (same surfaces, same model)
    rows = [col.ids.index("a")], [pcol.ids.index("a")]
    assert np.allclose(col.embeddings_at(rows[0]), pcol.embeddings_at(rows[1]), atol=1e-6)


def _search(col, query, *extra):
    res = _ok(["search", query, "--collection", str(col), "--top", "3", "--json",
               "--device", "cpu", "--quiet", *extra])
    return json.loads(res.stdout)


def test_search_query_auto_equals_the_right_mode(files, collections):
    auto = _search(collections / "auto", files["a"])
    forced = _search(collections / "auto", files["a"], "--processed")
    assert auto["schema"] == 1
    key = ("id", "cmc_count", "score", "log10_lr")
    assert [[c[k] for k in key] for c in auto["candidates"]] == \
        [[c[k] for k in key] for c in forced["candidates"]]
    det = auto["query"]["preprocessing_detected"]
    assert det["mode"] == "auto" and det["state"] == "processed"
    assert forced["query"]["preprocessing_detected"]["source"] == "forced"
    raw_auto = _search(collections / "auto", files["raw"])
    raw = _search(collections / "auto", files["raw"], "--preprocess", "raw")
    assert raw_auto["query"]["preprocessing_detected"]["state"] == "raw"
    assert [[c[k] for k in key] for c in raw_auto["candidates"]] == \
        [[c[k] for k in key] for c in raw["candidates"]]
    # a collection built with --processed: a query measured raw is still prepared (auto
    # measures the query), with a warning that the two were not treated alike
    mixed = _search(collections / "proc", files["raw"])
    assert mixed["query"]["preprocessing_detected"]["state"] == "raw"
    assert any("treated as processed" in w for w in mixed["warnings"])
    assert not any("treated as processed" in w
                   for w in _search(collections / "proc", files["b"])["warnings"])


def test_embed_auto_equals_processed(files, tmp_path):
    out = {}
    for name, extra in (("auto", []), ("proc", ["--processed"])):
        res = _ok(["embed", files["a"], "--out", str(tmp_path / f"{name}.h5"), "--model",
                   "baseline", "--json", "--quiet", *extra])
        out[name] = json.loads(res.stdout)
        with h5py.File(tmp_path / f"{name}.h5") as f:
            out[name]["vec"] = f["embeddings"][()]
    assert np.array_equal(out["auto"]["vec"], out["proc"]["vec"])
    assert [d["state"] for d in out["auto"]["preprocessing_detected"]] == ["processed"]
    assert out["proc"]["preprocessing_detected"][0]["mode"] == "processed"


@pytest.mark.parametrize("command", ["ingest", "search", "embed", "view"])
def test_processed_contradicting_preprocess_is_a_usage_error(files, command):
    d = files["dir"]
    args = {"ingest": [files["a"], "--collection", str(d / "never")],
            "search": [files["a"], "--collection", str(d / "auto")],
            "embed": [files["a"], "--out", str(d / "never.h5")],
            "view": [files["a"], files["b"], "--out", str(d / "never.html")]}[command]
    for mode in ("auto", "raw"):
        res = CliRunner().invoke(main, [command, *args, "--processed", "--preprocess", mode])
        assert res.exit_code == 2, res.output
        assert f"--processed contradicts --preprocess {mode}" in res.stderr
        assert "Traceback" not in res.output
    assert not (d / "never").exists() and not (d / "never.h5").exists()
    res = CliRunner().invoke(main, [command, "--help"])
    assert "--preprocess [auto|raw|processed]" in res.stdout and "--processed" in res.stdout

