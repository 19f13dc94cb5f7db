"""The viewer page without a browser: self-contained, bounded, faithful data; ``ballistics
view`` and ``compare --viewer`` (JSON keys, SHA-256, one-line errors)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re

import numpy as np
import pytest

from ballistics.cli import main
from ballistics.errors import ParameterError
from ballistics.report.case import CaseInfo
from ballistics.report.viewer import downsample, viewer_data, viewer_html
from ballistics.scan import Scan
from tests.clirunner import CliRunner
from tests.surfaces import ellipse_surface, turned


@pytest.fixture(scope="module")
def compared():
    from ballistics.matching.breechface import compare

    a = Scan(ellipse_surface(1), (12.5, 12.5), source="/cases/Q1.x3p")
    b = Scan(turned(ellipse_surface(1)), (12.5, 12.5), source="/cases/K3.x3p")
    return a, b, compare(a, b, "cmcR", rotation=(-6, 3, 3), device="cpu")


def _png(uri: str) -> np.ndarray:
    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def _heights(q: dict, shape: tuple[int, int]) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(q["data"]), "<i2").reshape(shape)
    out = q["offset"] + (raw.astype(np.float64) + 30000) * q["step"]
    return np.where(raw == -32768, np.nan, out)


def test_downsample_is_a_nan_aware_block_mean():
    h = np.arange(35, dtype=np.float32).reshape(5, 7)
    h[0, 0] = np.nan
    h[3:5, 6] = np.nan  # the last partial block of the last rows: all missing
    d = downsample(h, 2)
    assert d.shape == (3, 4) and d.dtype == np.float32
    assert d[0, 0] == pytest.approx(np.mean([1, 7, 8]))
    assert d[1, 3] == pytest.approx(np.mean([20]))  # rows 2-3 of column 6: one is finite
    assert np.isnan(d[2, 3]) and d[2, 0] == pytest.approx(np.mean([28, 29]))
    assert np.array_equal(downsample(h, 1), h, equal_nan=True)
    with pytest.raises(ParameterError):
        downsample(h, 0)


def test_viewer_page_is_self_contained_and_faithful(compared):
    a, b, c = compared
    case = CaseInfo(case="C-1", notes="</script><b>x</b>")
    text = viewer_html(a, b, c, case=case)
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", text)  # nothing fetched
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and "<script src" not in text
    assert text.count("</script>") == 2  # the notes cannot close the data element
    assert viewer_html(a, b, c, case=case) == text  # deterministic: no time stamp
    d = viewer_data(a, b, c, case=case)
    assert json.loads(re.search(r'<script id="viewer-data" type="application/json">(.*?)'
                                r"</script>", text, re.S).group(1)) == d
    assert d["schema"] == 1 and d["factor"] == 1 and d["shape"] == list(a.shape)
    assert d["names"] == ["Q1.x3p", "K3.x3p"] and d["case"]["notes"] == case.notes
    ref_png = _png(d["images"]["reference"])
    assert ref_png.shape == (*a.shape, 4)
    assert np.array_equal(ref_png[..., 3] == 0, ~np.isfinite(a.heights))  # missing: clear
    ref = _heights(d["heights"]["reference"], a.shape)
    ok = np.isfinite(a.heights)
    assert np.array_equal(np.isfinite(ref), ok)
    assert np.max(np.abs(ref[ok] - a.heights[ok])) <= d["heights"]["reference"]["step"]
    assert len(d["cells"]) == len(c.cells)
    for cell, src in zip(d["cells"], c.cells, strict=True):
        assert cell["index"] == src["index"] and cell["is_cmc"] == src["is_cmc"]
        if src["valid"]:  # numbers formatted as the report formats them
            assert cell["shown"]["dx"] == f"{src['dx_um']:.1f}"
            assert cell["shown"]["corr"] == f"{src['corr']:.3f}"
        assert cell["verdict"] == ("cmc" if src["is_cmc"] else "high" if src["is_high_cmc"]
                                   else "no" if src["valid"] else "invalid")
    assert sum(x["is_cmc"] for x in d["cells"]) == c.cmc_count
    g = c.forward.result.geometry
    assert d["cells"][9]["x"] == g.cell_start[9][1] and d["cells"][9]["h"] == g.cell_size[9][0]


def test_viewer_downsamples_large_maps(compared):
    a, b, c = compared
    d = viewer_data(a, b, c, max_side=50)
    factor = -(-max(a.shape) // 50)
    assert d["factor"] == factor and max(d["shape"]) <= 50
    assert d["um_per_px"] == [12.5 * factor, 12.5 * factor]
    assert _png(d["images"]["aligned"]).shape[:2] == tuple(d["shape"])
    assert d["cells"][9]["x"] == pytest.approx(c.forward.result.geometry.cell_start[9][1] / factor)
    with pytest.raises(ParameterError):
        viewer_data(a, b, c, max_side=8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from ballistics.io import write_x3p

    d = tmp_path_factory.mktemp("view")
    paths = []
    for name, h in (("a.x3p", ellipse_surface(1)), ("b.x3p", turned(ellipse_surface(1)))):
        write_x3p(Scan(h, (12.5, 12.5)), d / name)
        paths.append(str(d / name))
    return paths, d


def test_view_command_writes_the_page(files):
    (a, b), d = files
    case_file = d / "Q1-case.json"
    case_file.write_text(json.dumps({"case": "C-7", "notes": "first look"}))
    page = d / "v.html"
    res = CliRunner().invoke(main, ["view", a, b, "--out", str(page), "--preset", "cmcR",
                                    "--rotation", "-6,3,3", "--processed", "--device", "cpu",
                                    "--case-file", str(case_file), "--examiner", "J. Doe",
                                    "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["schema"] == 1 and out["viewer"] == str(page)
    assert out["viewer_sha256"] == hashlib.sha256(page.read_bytes()).hexdigest()
    assert out["case"] == {"case": "C-7", "exhibit": None, "examiner": "J. Doe",
                           "notes": "first look"}
    text = page.read_text(encoding="utf-8")
    data = json.loads(re.search(r'type="application/json">(.*?)</script>', text, re.S)
                      .group(1))
    assert data["case"] == out["case"] and data["case_file_name"] == "Q1-case.json"
    assert sum(x["is_cmc"] for x in data["cells"]) == out["cmc_count"]


def test_compare_viewer_option_and_errors(files):
    (a, b), d = files
    page = d / "cv.html"
    base = ["compare", a, b, "--preset", "cmcR", "--rotation", "-3,0,3", "--processed",
            "--device", "cpu"]
    res = CliRunner().invoke(main, [*base, "--viewer", str(page), "--report",
                                    str(d / "r.html")])
    assert res.exit_code == 0, res.output
    sha = hashlib.sha256(page.read_bytes()).hexdigest()
    assert f"viewer: {page} (sha256 {sha})" in res.stdout
    # the report names the viewer page with its hash
    assert f"viewer of this comparison: cv.html (SHA-256 {sha})" in (d / "r.html").read_text()
    for args in (["--viewer", str(d / "v.pdf")],
                 ["--viewer", str(d / "same.html"), "--report", str(d / "same.html")]):
        res = CliRunner().invoke(main, [*base, *args])
        assert res.exit_code == 2 and res.stderr.count("\n") == 1, res.output
        assert res.stderr.startswith("error: ") and "viewer" in res.stderr
    res = CliRunner().invoke(main, ["view", a, str(d / "missing.x3p"), "--out", str(page),
                                    "--processed"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "missing.x3p" in res.stderr
    res = CliRunner().invoke(main, ["view", a, b])
    assert res.exit_code == 2 and "--out" in res.stderr


def test_viewer_of_2d_images_says_grey_levels(compared):
    a, b, c = compared
    ai, bi = a.replace(modality="image"), b.replace(modality="image")
    d = viewer_data(ai, bi, c)
    assert d["modality"] == "image" and d["unit"] == "grey level"
    assert viewer_data(a, b, c)["unit"] == "µm"


def test_viewer_result_names_the_caveats_that_qualify_the_lr(compared):
    """cmcR's settings at another rotation range than the calibration's default preset, on
    2D images: both caveats stand in the viewer's result next to the LR."""
    from ballistics.matching.evidence import IMAGE_CAVEAT, evaluate

    a, b, c = compared
    ev = evaluate(c, modality="image")
    rows = dict((k, v) for k, v in viewer_data(a, b, c, evidence=ev)["summary"]
                if k != "LR caveat")
    caveats = [v for k, v in viewer_data(a, b, c, evidence=ev)["summary"] if k == "LR caveat"]
    assert "log10 LR" in rows and IMAGE_CAVEAT in caveats
    assert any("'custom'" in v and "indicative only" in v for v in caveats)
    plain = viewer_data(a, b, c, evidence=evaluate(c.to_dict()["features"]))["summary"]
    assert not [v for k, v in plain if k == "LR caveat"]  # no preset known, no image


def test_viewer_result_names_the_calibrations_preset(compared):
    """The viewer's calibration row names the preset the calibration was fitted for, as
    the compare report does (trial 2: it read only 'synthetic-default')."""
    from ballistics.matching.evidence import evaluate

    a, b, c = compared
    ev = evaluate(c)
    preset = ev.calibration["fitted"]["compare_preset"]
    rows = dict(viewer_data(a, b, c, evidence=ev)["summary"])
    assert preset in ("default", "cmcR")
    assert rows["calibration"] == f"synthetic-default ({preset} preset)"


def test_cells_table_shows_the_cmc_row_of_tied_best_angles():
    """Cells whose correlation ties at several angles (nearest-neighbour turns of a small
    cell can give the same patch) count as a CMC when one of the tied rows is; the cells
    table (JSON ``cells``, CSV, viewer) shows that row, so its ``is_cmc`` add up to
    ``cmc_count`` as docs/compare.md states. This pair (cropped to its measured points)
    has two such cells in the forward direction."""
    from ballistics.matching import compare

    a = Scan(ellipse_surface(1)[2:-2, 2:-2], (12.5, 12.5))
    b = Scan(turned(ellipse_surface(1))[2:-2, 2:-2], (12.5, 12.5))
    c = compare(a, b, "cmcR", rotation="-6,3,3", device="cpu")
    r = c.forward.rows
    best = {}
    for k in np.unique(r.cell):
        sel = (r.cell == k) & ~np.isnan(r.corr)
        best[k] = np.flatnonzero(sel & (r.corr == r.corr[sel].max()))
    assert any(len(v) > 1 and c.forward.original[v].any() and not c.forward.original[v[0]]
               for v in best.values())          # the case is there
    assert sum(x["is_cmc"] for x in c.cells) == c.cmc_count
    for direction, count in (("forward", c.cmc_count), ("reverse", c.cmc_count_reverse)):
        assert sum(x["is_cmc"] for x in c.cell_table(direction)) == count


def test_view_text_marks_the_lr_bound_and_its_caveats(files):
    """view's text line printed the LR plain: "+2.95" at the calibration's ceiling, and
    the words of the verbal scale though a caveat (here: parameters of no preset) makes the
    LR indicative only (trial 4). It now reads as compare's."""
    from ballistics.matching.evidence import lr_with_bound

    (a, b), d = files
    base = ["view", a, b, "--preset", "cmcR", "--rotation", "-6,3,3", "--processed",
            "--device", "cpu"]
    res = CliRunner().invoke(main, [*base, "--out", str(d / "t.html"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    lo, hi = out["calibration"]["log10_lr_bounds"]
    at = ("upper" if math.isclose(out["log10_lr"], hi, abs_tol=1e-9) else
          "lower" if math.isclose(out["log10_lr"], lo, abs_tol=1e-9) else None)
    res = CliRunner().invoke(main, [*base, "--out", str(d / "t2.html")])
    assert res.exit_code == 0, res.output
    [line] = [ln for ln in res.stdout.splitlines() if "log10 LR: " in ln]
    assert f"log10 LR: {lr_with_bound(out['log10_lr'], at)} (" in line
    assert line.endswith("; indicative only, see the LR caveats)")
    assert any(ln.startswith("LR caveat: ") for ln in res.stdout.splitlines())
