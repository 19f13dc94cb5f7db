"""The wheel a lab installs: built from this checkout, it holds the licence, the typed marker,
the weights and the shipped calibration, and once installed (no network, no checkout on the
path) it runs the main job, a small ``ballistics demo``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(out), str(REPO)], capture_output=True, text=True,
                       timeout=600, cwd=out)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("forensic_ballistics-*.whl")
    return whl


def test_wheel_ships_licence_marker_weights_and_calibration(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names)
    for need in ("ballistics/py.typed", "ballistics/__main__.py",
                 "ballistics/models/weights/breechface_polarnet_v2.pt",
                 "ballistics/matching/lr/data/calibration_synthetic.json",
                 "ballistics/matching/lr/data/calibration_synthetic_cmcR.json",
                 "ballistics/matching/lr/data/bullets_synthetic.json"):
        assert need in names, need
    assert not any(n.startswith("tests/") or n.startswith("benchmarks/") for n in names)
    meta = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: forensic-ballistics" in meta and "Requires-Python: >=3.11" in meta


@pytest.mark.slow
def test_installed_wheel_runs_the_demo(wheel, tmp_path):
    venv = tmp_path / "venv"
    # the venv sees this machine's numpy, torch, ... (no network), but gets its own ballistics
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=300)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                        str(wheel)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import ballistics; print(ballistics.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert str(venv) in where.stdout, where.stdout + where.stderr  # the wheel, not the checkout
    r = subprocess.run([str(py), "-m", "ballistics", "demo", "--out", str(tmp_path / "demo"),
                        "--firearms", "3", "--casings", "2", "--queries", "1", "--shortlist",
                        "3", "--workers", "1", "--model", "baseline", "--quiet"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    reports = list((tmp_path / "demo").rglob("*.html"))
    assert reports, "the demo wrote no report"
    summary = list((tmp_path / "demo").rglob("*.json"))
    assert summary and all(json.loads(p.read_text()) is not None for p in summary[:3])
