"""``ballistics ingest`` of 2D images into a new collection (trial 2): the collection takes
the modality of its inputs, as docs/synthetic.md's ``ingest OUTDIR/F*.png`` needs.

Casings: a tiny synthetic study (2 firearms x 2 casings, 25 µm) of ring-light PNGs and
X3Ps written by ``ballistics synth``'s generator; the ``baseline`` embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ballistics.cli import main
from tests.clirunner import CliRunner


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    from ballistics.datasets.synthetic import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, 2, 2, modality="both", spacing_um=25.0, quiet=True,
             field_um=(2400, 3000), seed=7)
    return out


def test_ingest_of_images_makes_an_image_collection(study, tmp_path):
    col = tmp_path / "lab_img"
    pngs = sorted(str(p) for p in study.glob("F*.png"))
    r = _run("ingest", *pngs, "--collection", str(col), "--labels",
             str(study / "manifest.csv"), "--model", "baseline", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["ingested"] == 4 and out["failed"] == []
    assert json.loads((col / "manifest.json").read_text())["modality"] == "image"
    # the collection keeps its one modality: an X3P topography is a recorded failure
    r = _run("ingest", str(study / "F001-01.x3p"), "--collection", str(col), "--model",
             "baseline", "--json", "--quiet")
    assert r.exit_code == 2
    failed = json.loads(r.stdout)["failed"]
    assert [f["error"] for f in failed] == ["ModalityMismatchError"]
    assert "a topography cannot join an image collection" in failed[0]["reason"]


def test_ingest_of_x3p_still_makes_a_topography_collection(study, tmp_path):
    col = tmp_path / "lab"
    r = _run("ingest", str(study / "F001-01.x3p"), str(study / "F002-01.x3p"),
             "--collection", str(col), "--model", "baseline", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((col / "manifest.json").read_text())["modality"] == "topography"
    # a folder of both kinds makes a topography collection, as before: the PNGs fail
    mixed = tmp_path / "mixed"
    r = _run("ingest", str(study / "F001-01.png"), str(study / "F001-02.x3p"),
             "--collection", str(mixed), "--model", "baseline", "--json", "--quiet")
    assert r.exit_code == 2
    out = json.loads(r.stdout)
    assert out["ingested"] == 1 and [f["error"] for f in out["failed"]] == [
        "ModalityMismatchError"]
    assert json.loads((mixed / "manifest.json").read_text())["modality"] == "topography"
