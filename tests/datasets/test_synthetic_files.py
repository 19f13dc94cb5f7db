"""Synthetic studies on disk: determinism, seed hierarchy, manifest, file formats."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ballistics.datasets.manifest import read_manifest
from ballistics.datasets.synthetic import (
    MANIFEST_COLUMNS,
    casing_seed,
    fire,
    firearm_seed,
    generate,
    make_firearm,
    params_for,
)
from ballistics.errors import CorruptFileError, ParameterError, ScanFileNotFoundError
from ballistics.io import read_mask_png, read_scan

SMALL = dict(spacing_um=12.5, field_um=(3000.0, 3400.0))  # 240 x 272 points


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path):
    a = generate(tmp_path / "a", 2, 2, modality="both", seed=3, quiet=True, **SMALL)
    b = generate(tmp_path / "b", 2, 2, modality="both", seed=3, quiet=True, workers=2, **SMALL)
    fa, fb = _files(a.parent), _files(b.parent)
    assert sorted(fa) == sorted(fb)
    n_shear = sum(1 for n in fa if n.endswith("_shear.png"))
    # x3p + png per casing, a mask each (+ a shear band where shown), the manifest
    assert len(fa) == 4 * 2 + 4 + n_shear + 1
    for name in fa:
        assert fa[name] == fb[name], name
    # nothing in the files depends on the clock (same bytes tomorrow, not only this second)
    import datetime
    import zipfile

    with zipfile.ZipFile(a.parent / "F001-01.x3p") as z:
        for info in z.infolist():
            stamp = datetime.datetime(*info.date_time)
            assert stamp < datetime.datetime.now() - datetime.timedelta(days=1), info.filename
    assert b"tIME" not in fa["F001-01.png"] and b"tIME" not in fa["masks/F001-01_mask.png"]
    c = generate(tmp_path / "c", 2, 2, modality="both", seed=4, quiet=True, **SMALL)
    fc = _files(c.parent)
    assert fc["F001-01.x3p"] != fa["F001-01.x3p"]


def test_firearm_k_does_not_depend_on_the_study_size(tmp_path):
    one = generate(tmp_path / "one", 1, 1, seed=5, quiet=True, **SMALL)
    two = generate(tmp_path / "two", 3, 2, seed=5, quiet=True, **SMALL)
    assert (one.parent / "F001-01.x3p").read_bytes() == (two.parent / "F001-01.x3p").read_bytes()
    assert firearm_seed(5, 0) != firearm_seed(5, 1) != firearm_seed(6, 1)
    assert casing_seed(5, 0, 1) != casing_seed(5, 1, 0)


def test_manifest_files_and_truth(tmp_path):
    man = generate(tmp_path / "s", 2, 2, modality="both", seed=1, quiet=True, **SMALL)
    with man.open(newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == MANIFEST_COLUMNS
    rows = read_manifest(man)
    assert read_manifest(man.parent) == rows
    assert len(rows) == 8
    assert [r["modality"] for r in rows[:2]] == ["topography", "image"]
    assert {r["firearm_id"] for r in rows} == {"F001", "F002"}
    assert {r["casing_id"] for r in rows} == {"F001-01", "F001-02", "F002-01", "F002-02"}
    r = rows[0]
    for key in ("path", "mask_path"):
        assert Path(r[key]).is_absolute() and Path(r[key]).is_file()
    assert isinstance(r["rotation_deg"], float) and -180 <= r["rotation_deg"] <= 180
    assert isinstance(r["class_id"], int) and isinstance(r["aperture_shear"], bool)
    assert r["difficulty"] == "realistic" and r["spacing_um"] == 12.5
    # the file holds exactly the in-memory casing, with its truth in the metadata
    p = params_for("realistic", class_seed=1, **SMALL)
    f = make_firearm("F001", firearm_seed(1, 0), p, class_id=0)
    c = fire(f, casing_seed(1, 0, 0), p, modality="both", casing_id="F001-01")
    scan = read_scan(r["path"])
    assert scan.shape == (240, 272) and scan.spacing_um == (12.5, 12.5)
    np.testing.assert_array_equal(scan.heights, c.scan.heights)
    assert scan.metadata["truth"]["rotation_deg"] == pytest.approx(r["rotation_deg"], abs=1e-6)
    assert r["rotation_deg"] == pytest.approx(c.truth["rotation_deg"], abs=1e-6)
    assert r["firing_pin_center_y_um"] == pytest.approx(c.truth["firing_pin_center_um"][0],
                                                        abs=1e-6)
    mask = read_mask_png(r["mask_path"], scan.shape)
    np.testing.assert_array_equal(mask, c.mask)
    # manifest rows carry the pose: undo_pose works on them directly
    from ballistics.datasets.synthetic import undo_pose
    np.testing.assert_allclose(undo_pose(scan, r), undo_pose(c.scan, c.truth), atol=1e-3)
    shear_rows = [x for x in rows if x["aperture_shear"]]
    assert all(Path(x["shear_mask_path"]).is_file() for x in shear_rows)
    assert all(x["shear_mask_path"] is None for x in rows if not x["aperture_shear"])
    img = read_scan(rows[1]["path"])
    assert img.modality == "image" and img.spacing_um == (12.5, 12.5)
    np.testing.assert_array_equal(img.heights, c.image.heights)


def test_png_spacing_is_exact_at_3125(tmp_path):
    man = generate(tmp_path / "p", 1, 1, modality="image", quiet=True,
                   field_um=(600.0, 800.0), primer_radius_um=280.0, gap_um=10.0,
                   firing_pin_radius_um=(60.0, 80.0), firing_pin_offset_um=10.0,
                   firing_pin_jitter_um=5.0, max_shift_um=20.0, primer_edge_um=20.0)
    (row,) = read_manifest(man)
    data = Path(row["path"]).read_bytes()
    i = data.index(b"pHYs")
    assert int.from_bytes(data[i + 4:i + 8], "big") == 320000
    assert data[i + 12] == 1  # unit: metre
    img = read_scan(row["path"])
    assert img.shape == (192, 256) and img.spacing_um == (3.125, 3.125)


def test_read_manifest_real_and_errors(tmp_path, real_data):
    rows = read_manifest(real_data / "weller" / "manifest.csv")
    assert len(rows) == 95
    assert {r["firearm_id"] for r in rows} == {f"W{k:02d}" for k in range(1, 12)}
    assert all(Path(r["path"]).is_file() for r in rows)
    fadul = read_manifest(real_data / "fadul_raw")
    assert [r["firearm_id"] for r in fadul] == ["F1", "F1", "F2"]
    with pytest.raises(ScanFileNotFoundError):
        read_manifest(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,firearm_id\na.x3p,F1\n")
    with pytest.raises(CorruptFileError, match="path"):
        read_manifest(bad)


def test_generate_rejects_bad_arguments(tmp_path):
    for kwargs in (dict(n_firearms=0, n_casings=1), dict(n_firearms=1, n_casings=-2),
                   dict(n_firearms=1.5, n_casings=1)):
        with pytest.raises(ParameterError):
            generate(tmp_path / "x", quiet=True, **kwargs)
    with pytest.raises(ParameterError):
        generate(tmp_path / "x", 1, 1, modality="video", quiet=True)
    with pytest.raises(ParameterError):
        generate(tmp_path / "x", 1, 1, difficulty="brutal", quiet=True)
    with pytest.raises(ParameterError):
        generate(tmp_path / "x", 1, 1, seed=-1, quiet=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError):
        generate(tmp_path / "file", 1, 1, quiet=True, **SMALL)


def test_per_firearm_casing_counts_give_the_same_files(tmp_path):
    full = generate(tmp_path / "full", 2, 2, seed=5, quiet=True, **SMALL)
    part = generate(tmp_path / "part", 2, [2, 1], seed=5, quiet=True, **SMALL)
    fa, fp = _files(full.parent), _files(part.parent)
    assert "F002-02.x3p" in fa and "F002-02.x3p" not in fp
    assert {n for n in fp if n.endswith(".x3p")} == {"F001-01.x3p", "F001-02.x3p",
                                                     "F002-01.x3p"}
    for name in fp:
        if name != "manifest.csv":
            assert fp[name] == fa[name], name
    assert len(read_manifest(part)) == 3
    with pytest.raises(ParameterError, match="one per firearm"):
        generate(tmp_path / "x", 2, [1, 1, 1], quiet=True, **SMALL)
    with pytest.raises(ParameterError):
        generate(tmp_path / "x", 2, [1, 0], quiet=True, **SMALL)
