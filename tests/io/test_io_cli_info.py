"""``ballistics info``: JSON Lines on stdout, one error line per bad file, exit code 2."""

from __future__ import annotations

import inspect
import json

import numpy as np
from PIL import Image
from x3p_builders import build_x3p, surface

from ballistics.cli import main
from tests.clirunner import CliRunner


def _runner() -> CliRunner:
    if "mix_stderr" in inspect.signature(CliRunner).parameters:  # click < 8.2
        return CliRunner(mix_stderr=False)
    return CliRunner()


KEYS = {"path", "sha256", "format", "modality", "shape", "spacing_um", "missing_fraction",
        "metadata", "warnings", "version", "versions", "schema"}


def test_info_json_lines_and_bad_file(tmp_path):
    good = build_x3p(tmp_path / "a.x3p", surface(23, 31))
    quirk = build_x3p(tmp_path / "b.x3p", surface(23, 31), revision="ISO5436-2000")
    Image.fromarray(np.full((12, 20), 7, np.uint16)).save(tmp_path / "c.png")
    res = _runner().invoke(
        main, ["info", "--json", "--spacing-um", "2.5", str(good), str(tmp_path / "nope.x3p"),
               str(quirk), str(tmp_path / "c.png")])
    assert res.exit_code == 2
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(lines) == 3
    a, b, c = lines
    assert KEYS <= set(a)
    assert a["shape"] == [23, 31] and a["spacing_um"] == [6.25, 6.25]
    assert a["format"] == "x3p" and a["modality"] == "topography"
    assert abs(a["missing_fraction"] - 19 / (23 * 31)) < 1e-9
    assert a["metadata"]["instrument"]["manufacturer"] == "Acme"
    assert a["warnings"] == []
    assert len(b["warnings"]) == 1 and "ISO5436-2000" in b["warnings"][0]
    assert c["modality"] == "image" and c["spacing_um"] == [2.5, 2.5] and c["shape"] == [12, 20]
    err = res.stderr.splitlines()
    assert any(line.startswith("error: ") and "nope.x3p" in line for line in err)
    assert any(line.startswith("warning: ") and "b.x3p" in line for line in err)
    assert "Traceback" not in res.stderr


def test_info_text_and_exit_zero(real_data):
    res = _runner().invoke(main, ["info", str(real_data / "fadul1-2_processed.x3p")])
    assert res.exit_code == 0, res.stderr
    assert "546 x 546" in res.stdout and "6.25" in res.stdout and "NanoFocus" in res.stdout


def test_info_no_verify(tmp_path):
    bad = build_x3p(tmp_path / "a.x3p", surface(), checksum="wrong")
    res = _runner().invoke(main, ["info", "--json", str(bad)])
    assert res.exit_code == 2 and "checksum" in res.stderr and res.stdout == ""
    res = _runner().invoke(main, ["info", "--json", "--no-verify", str(bad)])
    assert res.exit_code == 0
    assert any("checksum" in w for w in json.loads(res.stdout)["warnings"])
