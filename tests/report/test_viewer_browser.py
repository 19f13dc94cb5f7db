"""The viewer page in a real headless Chromium (Playwright): images load, the slider sets the
overlay's opacity, a clicked cell shows its numbers, zoom and pan stay in sync, the profile
tool plots both surfaces, and "Save case file" downloads the notes as a --case-file JSON.

Screenshots go to the test's folder and, when ``BALLISTICS_ARTEFACTS`` is set, are copied
there (CI keeps them). Skipped only where no Chromium binary is found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from ballistics.report.case import CASE_KEYS, CaseInfo


def chromium_binary() -> str | None:
    """The system Chromium (Debian's ``chromium`` package), None where there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


CHROMIUM = chromium_binary()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary found (apt-get "
                                "install chromium); the viewer's browser test needs one")


def small_pair():
    """Two firings of one synthetic firearm on a small primer (about 330 x 330 points
    after preprocessing), compared with cmcR's rules over three angles: a few seconds."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.matching import compare
    from ballistics.matching.evidence import evaluate
    from ballistics.preprocess import prepare_for_comparison

    p = params_for("easy", spacing_um=12.5, field_um=(2400.0, 2400.0), primer_radius_um=1150.0,
                   firing_pin_radius_um=(300.0, 400.0), max_rotation_deg=1.5,
                   max_shift_um=40.0)
    gun = make_firearm("F1", 7, p)
    a, b = (prepare_for_comparison(fire(gun, k, p, casing_id=f"F1-{k}").scan, "default")
            for k in (1, 2))
    c = compare(a, b, "cmcR", rotation=(-3, 3, 3), device="cpu")
    return a, b, c, evaluate(c)


@pytest.fixture(scope="module")
def compared():
    return small_pair()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def keep(path: Path) -> None:
    """Copy a screenshot to ``$BALLISTICS_ARTEFACTS`` when that is set."""
    dest = os.environ.get("BALLISTICS_ARTEFACTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(dest) / path.name)


def transforms(page) -> list[str]:
    return page.eval_on_selector_all(".stage", "els => els.map(e => e.style.transform)")


def scale_of(transform: str) -> float:
    return float(re.search(r"scale\(([-\d.e]+)\)", transform).group(1))


def centre(page, selector: str) -> tuple[float, float]:
    bb = page.locator(selector).bounding_box()
    assert bb is not None, selector
    return bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2


def test_viewer_in_chromium(compared, browser, tmp_path):
    from ballistics.report.viewer import write_viewer

    a, b, c, ev = compared
    case = CaseInfo(case="CASE-2026-0412", exhibit="Q1 vs K3", examiner="J. Doe",
                    notes="received sealed")
    page_file = tmp_path / "viewer.html"
    write_viewer(a, b, c, page_file, evidence=ev, case=case, names=("Q1.x3p", "K3.x3p"))
    page = browser.new_page(viewport={"width": 1320, "height": 1000}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_file.as_uri())

    # the images loaded (decoded, at the page's grid) and the cells are drawn on each panel
    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    sizes = page.eval_on_selector_all("img", "els => els.map(e => [e.naturalHeight, "
                                             "e.naturalWidth])")
    assert len(sizes) == 4 and all(s == list(a.shape) for s in sizes)
    assert page.locator("#panel-reference rect").count() == len(c.cells)
    assert page.locator("#panel-aligned rect").count() == len(c.cells)
    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
    shot = tmp_path / "viewer-loaded.png"
    page.screenshot(path=str(shot), full_page=True)
    keep(shot)

    # the slider sets the overlay's opacity (keyboard on the real range input)
    top = "#img-overlay-top"
    opacity = f"getComputedStyle(document.querySelector('{top}')).opacity"
    assert page.evaluate(opacity) == "0.5"
    page.focus("#opacity")
    page.keyboard.press("Home")
    assert page.evaluate(opacity) == "0"
    for _ in range(20):
        page.keyboard.press("ArrowRight")
    assert page.evaluate(opacity) == "0.2"
    assert page.inner_text("#opacity-value") == "0.20"

    # a click on a congruent cell shows that cell's numbers and highlights it everywhere
    k = next(i for i, x in enumerate(c.cells) if x["is_cmc"])
    cell = c.cells[k]
    page.mouse.click(*centre(page, f"#panel-reference rect[data-cell='{k}']"))
    text = page.inner_text("#cell-text")
    i, j = cell["index"]
    assert text.startswith(f"cell {i},{j} (row, column): CMC")
    # the numbers as the report rounds them
    assert (f"correlation {cell['corr']:.3f}, CCF {cell['ccf']:.3f}, dx {cell['dx_um']:.1f} µm, "
            f"dy {cell['dy_um']:.1f} µm, θ {cell['theta_deg']:.1f}°") in text
    for panel in ("reference", "aligned", "overlay"):
        cls = page.get_attribute(f"#panel-{panel} rect[data-cell='{k}']", "class")
        assert cls == "selected", panel
    shot = tmp_path / "viewer-cell.png"
    page.screenshot(path=str(shot), full_page=True)
    keep(shot)

    # the cells' checkbox hides them
    page.click("#show-cells")
    assert not page.locator("#panel-aligned svg.cells").is_visible()
    page.click("#show-cells")

    # zoom on one panel: every panel takes the same transform; so does a drag (pan)
    before = transforms(page)
    assert len(set(before)) == 1
    page.mouse.move(*centre(page, "#panel-reference"))
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"document.querySelector('.stage').style.transform != "
                           f"{json.dumps(before[0])}")
    zoomed = transforms(page)
    assert len(set(zoomed)) == 1 and scale_of(zoomed[0]) > 1.5 * scale_of(before[0])
    x, y = centre(page, "#panel-aligned")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y + 40, steps=5)
    page.mouse.up()
    panned = transforms(page)
    assert len(set(panned)) == 1 and panned[0] != zoomed[0]
    assert scale_of(panned[0]) == scale_of(zoomed[0])
    # a cell click still lands on the cell under the pointer when zoomed and panned
    page.mouse.click(*centre(page, f"#panel-overlay rect[data-cell='{k}']"))
    assert page.inner_text("#cell-text").startswith(f"cell {i},{j} ")
    page.click("#reset-view")

    # the profile tool: two clicks draw the line and both surfaces' profiles
    page.click("#profile-mode")
    x, y = centre(page, "#panel-reference")
    page.mouse.click(x - 120, y - 30)
    page.mouse.click(x + 120, y + 30)
    for name in ("reference", "aligned"):
        d = page.get_attribute(f"#profile-plot path.profile-{name}", "d")
        # one vertex per point along the line (about 35 at these scans' 12.5 µm)
        assert d is not None and d.count("L") > 20, name
    assert page.locator("#panel-aligned svg.line line").count() == 1
    assert "µm" in page.inner_text("#profile-text")
    shot = tmp_path / "viewer-profile.png"
    page.screenshot(path=str(shot), full_page=True)
    keep(shot)

    # notes typed on the page come back as a case file that --case-file reads
    assert page.input_value("#case-notes") == "received sealed"
    page.fill("#case-notes", "Compared 12 cells by eye.\nAgree with the CMC result.")
    with page.expect_download() as info:
        page.click("#save-case")
    saved = tmp_path / "case.json"
    info.value.save_as(saved)
    assert info.value.suggested_filename == "case.json"
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert tuple(data) == CASE_KEYS
    assert data["notes"] == "Compared 12 cells by eye.\nAgree with the CMC result."
    assert CaseInfo.read(saved) == case.updated(notes=data["notes"])
    assert errors == []
    page.close()


def test_report_screenshot_in_chromium(compared, browser, tmp_path):
    """The HTML report renders with its pictures (the docs' screenshot tool does the same on
    the real Fadul pair)."""
    from ballistics.report.compare import compare_report

    a, b, c, ev = compared
    report = tmp_path / "report.html"
    compare_report(a, b, c, out=report, evidence=ev, case=CaseInfo(case="CASE-1"))
    page = browser.new_page(viewport={"width": 1000, "height": 1400})
    page.goto(report.as_uri())
    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("img").count() == 4
    assert "CASE-1" in page.inner_text("body")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    keep(shot)
    assert shot.stat().st_size > 10_000
    page.close()
