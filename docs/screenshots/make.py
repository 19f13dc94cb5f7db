"""Screenshots of the tutorial (docs/tutorial.md), taken in headless Chromium on the real raw
Fadul pair: the HTML report, the PDF's first page and the viewer.

Runs the commands of the tutorial (``ballistics compare ... --report --pdf --viewer``) on
``../shared/data/real/fadul_raw/fadul1-1_raw.x3p`` and ``fadul1-2_raw.x3p`` (a known
same-source pair) in a temporary folder, then writes ``docs/img/tutorial-report.png``,
``tutorial-pdf.png`` and ``tutorial-viewer.png`` (each kept under 300 KB by reducing it to
256 colours). Needs the system ``chromium``, the ``playwright`` package and ``pdftoppm``
(poppler-utils)::

    PYTHONPATH=. python docs/screenshots/make.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "img"
MAX_BYTES = 300_000


def _small_png(src: Path, dest: Path, width: int | None = None) -> int:
    """Save ``src`` as a 256-colour PNG (optionally scaled to ``width``); return its size."""
    from PIL import Image

    im = Image.open(src).convert("RGB")
    if width is not None and im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    im.quantize(256, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)
    size = dest.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{dest} is {size} bytes (over {MAX_BYTES}); crop or scale it")
    return size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"),
                    help="the shared data folder (default: ../shared/data)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--out", default=str(OUT), help="folder of the PNGs (default: docs/img)")
    args = ap.parse_args(argv)
    out_dir = Path(args.out)
    raw = Path(args.data) / "real" / "fadul_raw"
    a, b = raw / "fadul1-1_raw.x3p", raw / "fadul1-2_raw.x3p"
    if not a.exists() or not b.exists():
        raise SystemExit(f"the raw Fadul pair is not in {raw}")
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        case = t / "case.json"
        case.write_text(json.dumps({"case": "2026-0412", "exhibit": "Q1 vs K3",
                                    "examiner": "J. Doe",
                                    "notes": "Fadul 1-1 (Q1) and 1-2 (K3), raw scans."}))
        cmd = [sys.executable, "-m", "ballistics", "compare", str(a), str(b),
               "--case-file", str(case), "--report", str(t / "report.html"),
               "--pdf", str(t / "report.pdf"), "--viewer", str(t / "viewer.html"),
               "--json", "--quiet"]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"compare: {out['cmc_count']} CMCs at {out['theta_deg']} deg, log10 LR "
              f"{out['log10_lr']:+.2f} ({out['lr_verbal']})")
        print(f"viewer page: {(t / 'viewer.html').stat().st_size} bytes")
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1",
                        str(t / "report.pdf"), str(t / "pdf")], check=True)
        pdf_png = next(t.glob("pdf*.png"))
        print("pdf page 1:", _small_png(pdf_png, out_dir / "tutorial-pdf.png"), "bytes")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport={"width": 1000, "height": 1500})
            page.goto((t / "report.html").as_uri())
            page.wait_for_function("[...document.images].every(i => i.complete)")
            page.screenshot(path=str(t / "report.png"))
            print("report:", _small_png(t / "report.png", out_dir / "tutorial-report.png", 800),
                  "bytes")
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto((t / "viewer.html").as_uri())
            page.wait_for_function("[...document.images].every(i => i.complete)")
            cells = json.loads(page.inner_text("#viewer-data"))["cells"]
            k = next(c["k"] for c in cells if c["is_cmc"])
            bb = page.locator(f"#panel-reference rect[data-cell='{k}']").bounding_box()
            page.mouse.click(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
            # a profile through that cell, across it and its two neighbours
            page.click("#profile-mode")
            xc, yc = bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2
            page.mouse.click(xc - 1.5 * bb["width"], yc)
            page.mouse.click(xc + 1.5 * bb["width"], yc)
            page.fill("#case-notes", "Example: agreement of the marks in cells 1,3 and 1,4; "
                                     "see the profile.")
            page.screenshot(path=str(t / "viewer.png"), full_page=True)
            print("viewer:", _small_png(t / "viewer.png", out_dir / "tutorial-viewer.png", 1000),
                  "bytes")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
