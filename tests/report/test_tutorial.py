"""docs/tutorial.md runs as written: its ``ballistics`` and ``sha256sum`` commands, in
order, on two synthetic raw scans named as in the tutorial (``Q1.x3p``, ``K3.x3p``), with
its case files; the final report carries the notes and the hashes on record match."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from ballistics.cli import main
from tests.clirunner import CliRunner
from tests.conftest import REPO

TUTORIAL = REPO / "docs" / "tutorial.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), re.S)


def raw_pair(folder) -> None:
    """Two raw firings of one synthetic firearm (small primer, 12.5 µm) as Q1.x3p, K3.x3p."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.io import write_x3p

    p = params_for("easy", spacing_um=12.5, field_um=(2400.0, 2400.0), primer_radius_um=1150.0,
                   firing_pin_radius_um=(300.0, 400.0), max_rotation_deg=1.5,
                   max_shift_um=40.0)
    gun = make_firearm("F1", 7, p)
    for k, name in ((1, "Q1.x3p"), (2, "K3.x3p")):
        write_x3p(fire(gun, k, p, casing_id=name[:2]).scan, folder / name)


def test_tutorial_commands_and_case_files_are_current():
    commands = [ln for b in blocks("bash") for ln in b.splitlines() if ln.strip()]
    assert commands and all(ln.split()[0] in ("ballistics", "sha256sum") for ln in commands)
    assert any(" view " in ln for ln in commands) and any("--viewer" in ln for ln in commands)
    from ballistics.report.case import CaseInfo

    for text in blocks("json"):  # every case file shown is one --case-file accepts
        CaseInfo.from_mapping(json.loads(text))
    for name in ("tutorial-report.png", "tutorial-pdf.png", "tutorial-viewer.png"):
        png = REPO / "docs" / "img" / name
        assert f"(img/{name})" in TUTORIAL.read_text(encoding="utf-8")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 300_000


@pytest.mark.slow
def test_tutorial_runs_as_written(tmp_path, monkeypatch):
    raw_pair(tmp_path)
    monkeypatch.chdir(tmp_path)
    case_files = blocks("json")
    (tmp_path / "case.json").write_text(case_files[0], encoding="utf-8")
    for n, block in enumerate(blocks("bash")):
        if "--case-file case.json --report" in block and n > 0 and "--viewer" not in block:
            # step 7: the notes saved from the viewer replace the case file
            (tmp_path / "case.json").write_text(case_files[1], encoding="utf-8")
        for line in block.strip().splitlines():
            argv = shlex.split(line)
            target = None
            if ">" in argv:
                i = argv.index(">")
                argv, target = argv[:i], argv[i + 1]
            if argv[0] == "sha256sum":
                res = subprocess.run(argv, capture_output=True, text=True, check=True)
                record = json.loads((tmp_path / "result.json").read_text())
                got = dict(reversed(ln.split()) for ln in res.stdout.splitlines())
                assert got == {"report.pdf": record["report_sha256"]["pdf"],
                               "report.html": record["report_sha256"]["html"]}
                continue
            res = CliRunner().invoke(main, argv[1:])
            assert res.exit_code == 0, (line, res.output)
            if target:
                (tmp_path / target).write_text(res.stdout, encoding="utf-8")
    record = json.loads((tmp_path / "result.json").read_text())
    notes = json.loads(case_files[1])["notes"]
    assert record["schema"] == 1 and record["case"]["notes"] == notes
    assert record["cmc_count"] > 5 and record["lr_verbal"].endswith("for same source")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "2026-0412" in html and "firing-pin aperture marks" in html
    assert (tmp_path / "Q1_segmentation.png").stat().st_size > 1000
    page = (tmp_path / "viewer.html").read_text(encoding="utf-8")
    assert '"case":"2026-0412"' in page and '"notes":null' in page  # step 6: before notes


@pytest.mark.slow
def test_tutorial_screenshots_on_the_real_pair(real_data, tmp_path):
    """docs/screenshots/make.py takes the tutorial's three screenshots on the raw Fadul pair
    in headless Chromium (here into the test's folder; kept in ``BALLISTICS_ARTEFACTS``)."""
    import os
    import shutil
    import sys

    from tests.report.test_viewer_browser import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("no chromium binary found (apt-get install chromium)")
    subprocess.run([sys.executable, str(REPO / "docs" / "screenshots" / "make.py"),
                    "--data", str(real_data.parent), "--chromium", CHROMIUM,
                    "--out", str(tmp_path)], check=True, timeout=900,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    from PIL import Image

    for name in ("tutorial-report.png", "tutorial-pdf.png", "tutorial-viewer.png"):
        png = tmp_path / name
        assert 10_000 < png.stat().st_size < 300_000, name
        assert min(Image.open(png).size) > 300, name
        if os.environ.get("BALLISTICS_ARTEFACTS"):
            dest = Path(os.environ["BALLISTICS_ARTEFACTS"])
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(png, dest / name)
