"""``ballistics calibrate`` end to end on a tiny collection: the calibration is stored and
used by search, and worker processes give the same numbers as one process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ballistics.cli import main
from tests.clirunner import CliRunner


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> tuple[Path, Path]:
    from ballistics.datasets.synthetic import generate

    study = tmp_path_factory.mktemp("synth")
    generate(study, 3, 2, spacing_um=25.0, quiet=True, field_um=(2400, 3000), seed=7)
    col = tmp_path_factory.mktemp("col") / "lab"
    r = _run("ingest", str(study), "--collection", str(col), "--labels",
             str(study / "manifest.csv"), "--model", "baseline", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    return col, study


def test_calibrate_with_workers_matches_one_process(lab, tmp_path):
    lab, study = lab
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(lab, a)
    shutil.copytree(lab, b)
    out = []
    for col, workers in ((a, "1"), (b, "2")):
        r = _run("calibrate", "--collection", str(col), "--workers", workers, "--device", "cpu",
                 "--json", "--quiet")
        assert r.exit_code == 0, r.output
        out.append(json.loads(r.stdout))
    m1, m2 = (o["calibration"]["metrics"] for o in out)
    assert m1["n_pairs"] == m2["n_pairs"] == 15  # 6 casings: 3 same-source, 12 different
    assert m1["n_same_source"] == 3
    assert m1 == m2
    assert out[0]["calibration"]["source"] == "collection"
    # search now uses the collection's calibration
    q = sorted(study.glob("*.x3p"))[0]
    r = _run("search", str(q), "--collection", str(b), "--shortlist", "3", "--device", "cpu",
             "--json", "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["calibration"]["source"] == "collection"


@pytest.mark.parametrize("bad", [["--workers", "-1"], ["--max-different", "x"]])
def test_calibrate_bad_arguments_exit_2(lab, bad):
    r = CliRunner().invoke(main, ["calibrate", "--collection", str(lab[0]), *bad])
    assert r.exit_code == 2
