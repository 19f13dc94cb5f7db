"""``ballistics compare``: JSON contract, report, errors (small synthetic X3P files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from ballistics.cli import main
from ballistics.scan import Scan


def _surface(seed: int, shape=(132, 116)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inside = ((yy - 65.5) / 64) ** 2 + ((xx - 57.5) / 56) ** 2 <= 1
    return np.where(inside, h / h.std(), np.nan).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from ballistics.io import write_x3p

    d = tmp_path_factory.mktemp("cmp")
    ref = _surface(1)
    z = np.nan_to_num(ref)
    m = np.isfinite(ref).astype(float)
    zt = ndimage.shift(ndimage.rotate(z, -3, reshape=False, order=1), (1, -2), order=1)
    mt = ndimage.shift(ndimage.rotate(m, -3, reshape=False, order=1), (1, -2), order=1)
    tgt = np.where(mt > 0.99, zt / np.maximum(mt, 1e-6), np.nan).astype(np.float32)
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
    write_x3p(Scan(_surface(5, (40, 30)), (6.25, 6.25)), tiny)
    res = CliRunner().invoke(main, ["compare", a, str(tiny), "--processed"])
    assert res.exit_code == 2
    assert "unfit for comparison" in res.stderr and "tiny.x3p" in res.stderr
