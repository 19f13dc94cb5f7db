"""``ballistics preprocess``: JSON contract, X3P output with provenance, mask, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ballistics.cli import COMMANDS, main
from tests.clirunner import CliRunner


@pytest.fixture(scope="module")
def casing(tmp_path_factory):
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.io import write_x3p

    # a coarse, non-square synthetic casing keeps the command quick
    p = params_for("realistic", spacing_um=6.25, field_um=(4480.0, 4700.0))
    c = fire(make_firearm("C1", 11, p), 3, p)
    d = tmp_path_factory.mktemp("pp")
    path = d / "casing.x3p"
    write_x3p(c.scan, path)
    return path, c


def _run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_registered():
    assert COMMANDS["preprocess"][0] == "ballistics.cli.preprocess"


def test_json_contract_and_written_scan(casing, tmp_path):
    from ballistics.io import read_scan

    src, c = casing
    out = tmp_path / "out.x3p"
    r = _run(["preprocess", str(src), str(out), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("primer", "firing_pin", "quality", "steps", "version", "versions", "schema",
                "warnings"):
        assert key in d
    assert len(d["primer"]["center_um"]) == 2
    assert d["primer"]["center_um"] == pytest.approx(c.truth["primer_center_um"], abs=25)
    assert d["primer"]["radius_um"] == pytest.approx(c.truth["primer_radius_um"], abs=40)
    assert d["firing_pin"]["center_um"] == pytest.approx(c.truth["firing_pin_center_um"],
                                                         abs=60)
    q = d["quality"]
    assert q["fit"] is True and q["reason"] is None
    assert q["valid_area_mm2"] > 5 and 0 <= q["missing_fraction"] < 0.5
    names = [s["name"] for s in d["steps"]]
    assert names[0] == "segment" and names[-1] == "preprocess" and "bandpass" in names
    assert all("params" in s for s in d["steps"])
    s = read_scan(out)
    assert s.is_processed
    last = s.provenance[-1]
    assert last["name"] == "preprocess" and last["params"]["name"] == "default"
    assert last["fitted"]["quality"]["fit"] is True
    assert last["version"] == d["version"]
    assert s.spacing_um == pytest.approx((6.25, 6.25))


def test_cmcr_preset_and_text_output(casing, tmp_path):
    src, _ = casing
    out = tmp_path / "o.x3p"
    r = _run(["preprocess", str(src), str(out), "--preset", "cmcR"])
    assert r.exit_code == 0, r.output
    assert "fit" in r.stdout and out.exists()


def test_mask_png_replaces_region(casing, tmp_path):
    from ballistics.io import read_scan

    src, c = casing
    rows, cols = c.scan.shape
    m = np.zeros((rows, cols), np.uint8)
    m[rows // 8: rows // 2, cols // 8: cols // 2] = 255
    png = tmp_path / "mask.png"
    Image.fromarray(m).save(png)
    out = tmp_path / "m.x3p"
    r = _run(["preprocess", str(src), str(out), "--mask", str(png), "--json"])
    assert r.exit_code == 0, r.output
    s = read_scan(out)
    # the output holds only the examiner's rectangle (plus resampling at its edge)
    area = s.valid.sum() * s.spacing_um[0] * s.spacing_um[1]
    rect = (rows * 3 // 8) * (cols * 3 // 8) * 6.25 ** 2
    assert area <= 1.05 * rect


def test_errors_are_one_line_with_exit_code(casing, tmp_path):
    src, _ = casing
    r = _run(["preprocess", str(tmp_path / "missing.x3p"), str(tmp_path / "o.x3p")])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "error:" in r.stderr
    r = _run(["preprocess", str(src), str(tmp_path / "o.txt")])
    assert r.exit_code == 2 and ".x3p" in r.stderr
    r = _run(["preprocess", str(src), str(tmp_path / "o.x3p"), "--target-um", "-1"])
    assert r.exit_code == 2 and "spacing_um" in r.stderr
    allnan = tmp_path / "nan.x3p"
    from ballistics.io import write_x3p
    from ballistics.scan import Scan

    write_x3p(Scan(np.full((40, 50), np.nan, np.float32), (6.25, 6.25)), allnan)
    r = _run(["preprocess", str(allnan), str(tmp_path / "o.x3p")])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_figure_is_readable(casing, tmp_path):
    src, _ = casing
    fig = tmp_path / "seg.png"
    r = _run(["preprocess", str(src), str(tmp_path / "out.x3p"), "--figure", str(fig)])
    assert r.exit_code == 0, r.output
    with Image.open(fig) as im:
        assert im.format == "PNG" and im.size[0] >= 1000
