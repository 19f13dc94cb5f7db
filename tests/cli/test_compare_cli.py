"""``ballistics compare``: JSON contract, report, errors (small synthetic X3P files)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ballistics.cli import main
from ballistics.scan import Scan
from tests.surfaces import ellipse_surface, turned


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from ballistics.io import write_x3p

    d = tmp_path_factory.mktemp("cmp")
    ref = ellipse_surface(1)
    tgt = turned(ref)
    paths = []
    for name, h in (("a.x3p", ref), ("b.x3p", tgt)):
        p = d / name
        write_x3p(Scan(h, (12.5, 12.5)), p)  # about 1.8 mm² measured: fit for comparison
        paths.append(str(p))
    return paths, d


def test_compare_json_and_report(files):
    (a, b), d = files
    report = d / "r.html"
    res = CliRunner().invoke(main, ["compare", a, b, "--preset", "cmcR", "--rotation", "-6,3,3",
                                    "--processed", "--json", "--report", str(report),
                                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["reference"]["path"] == a and len(out["reference"]["sha256"]) == 64
    assert out["target"]["path"] == b
    for key in ("cmc_count", "cmc_count_high", "cmc_count_combined", "theta_deg", "dx_um",
                "dy_um", "ccf_max", "cells", "features", "params", "version", "warnings"):
        assert key in out
    assert out["params"]["theta_min_deg"] == -6 and out["params"]["search"] == "exact"
    assert len(out["cells"]) == 64 and out["cells"][9]["index"] == [2, 2]
    assert out["cmc_count"] >= 5
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("<img") == 4
    assert "http://" not in text and "https://" not in text


def test_compare_text_output(files):
    (a, b), _ = files
    res = CliRunner().invoke(main, ["compare", a, b, "--preset", "cmcR", "--rotation", "-3,0,3",
                                    "--processed", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "CMC count (reference -> target)" in res.stdout


def test_compare_bad_input_exit_codes(files, tmp_path):
    (a, _), _ = files
    res = CliRunner().invoke(main, ["compare", a, str(tmp_path / "missing.x3p"), "--processed"])
    assert res.exit_code == 2
    assert "error:" in res.stderr and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["compare", a, a, "--processed", "--rotation", "1,2"])
    assert res.exit_code == 2
    assert "rotation" in res.stderr
    from ballistics.io import write_x3p

    tiny = tmp_path / "tiny.x3p"
    write_x3p(Scan(ellipse_surface(5, (40, 30)), (6.25, 6.25)), tiny)
    res = CliRunner().invoke(main, ["compare", a, str(tiny), "--processed"])
    assert res.exit_code == 2
    assert "unfit for comparison" in res.stderr and "tiny.x3p" in res.stderr
