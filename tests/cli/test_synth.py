"""``ballistics synth``: JSON summary, files, errors."""

from __future__ import annotations

import json
from pathlib import Path

from ballistics.cli import main
from tests.clirunner import CliRunner


def test_synth_json_and_files(tmp_path):
    out = tmp_path / "study"
    res = CliRunner().invoke(main, [
        "synth", str(out), "--firearms", "2", "--casings", "2", "--spacing-um", "25",
        "--modality", "both", "--seed", "7", "--difficulty", "hard", "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout.strip().splitlines()[-1])
    assert obj["n_firearms"] == 2 and obj["n_casings"] == 4 and obj["n_files"] == 8
    assert obj["casings_per_firearm"] == 2
    assert obj["modality"] == "both" and obj["difficulty"] == "hard" and obj["seed"] == 7
    assert obj["shape"] == [179, 179] and obj["spacing_um"] == 25
    assert obj["seconds"] >= 0 and "version" in obj
    assert obj["schema"] == 1 and obj["versions"]["numpy"]
    assert Path(obj["manifest"]).is_file() and (out / "F002-02.x3p").is_file()
    assert (out / "F002-02.png").is_file() and (out / "masks" / "F002-02_mask.png").is_file()
    text = CliRunner().invoke(main, ["synth", str(tmp_path / "t"), "--firearms", "1",
                                     "--casings", "1", "--spacing-um", "25", "--quiet"])
    assert text.exit_code == 0 and "wrote 1 casings" in text.stdout


def test_synth_bad_input_is_one_line_exit_2(tmp_path):
    res = CliRunner().invoke(main, ["synth", str(tmp_path / "x"), "--firearms", "1",
                                    "--casings", "1", "--spacing-um", "0.001"])
    assert res.exit_code == 2
    assert res.stderr.strip().startswith("error:") and "spacing_um" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["synth", str(tmp_path / "x"), "--casings", "1"])
    assert res.exit_code == 2  # click usage error: --firearms is required
