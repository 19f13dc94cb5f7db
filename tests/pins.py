"""Pinned numbers: the same comparisons and searches give the same results across refactors.

``python tests/pins.py`` rewrites ``tests/data/pins.json`` from the current code; only do that
when a change of results is intended and explained in the commit. ``tests/test_pins.py`` checks
the current code against the file.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

PINS = Path(__file__).resolve().parent / "data" / "pins.json"
SEARCH_CASINGS = ["TW01-01", "TW01-02", "TW01-03", "TW02-01", "TW02-02", "TW03-01", "TW03-02",
                  "TW04-01", "TW04-02", "TW05-01"]


def weller_pairs(real: Path) -> list[tuple[str, str]]:
    """28 Weller pairs: 14 same-slide and 14 different-slide, fixed by manifest order."""
    rows = list(csv.DictReader(open(real / "weller" / "manifest.csv")))
    by = {r["path"]: r["firearm_id"] for r in rows}
    paths = sorted(by)
    pairs = list(itertools.combinations(paths, 2))
    same = [p for p in pairs if by[p[0]] == by[p[1]]][::26][:14]
    diff = [p for p in pairs if by[p[0]] != by[p[1]]][::290][:14]
    return same + diff


def _comparison(c: Any) -> dict[str, Any]:
    return {"cmc_count": c.cmc_count, "cmc_count_high": c.cmc_count_high,
            "cmc_count_combined": c.cmc_count_combined, "cmc_count_reverse": c.cmc_count_reverse,
            "theta_deg": c.theta_deg, "dx_um": c.dx_um, "dy_um": c.dy_um,
            "ccf_max": c.ccf_max}


def compute_comparisons(real: Path) -> dict[str, Any]:
    from ballistics.io import read_scan
    from ballistics.matching import compare

    out: dict[str, Any] = {}
    a = read_scan(real / "fadul1-1_processed.x3p")
    b = read_scan(real / "fadul1-2_processed.x3p")
    out["fadul/cmcR"] = _comparison(compare(a, b, "cmcR", device="cpu"))
    cache: dict[str, Any] = {}
    for p, q in weller_pairs(real):
        for name in (p, q):
            if name not in cache:
                cache[name] = read_scan(real / "weller" / name)
        for preset in ("default", "cmcR"):
            c = compare(cache[p], cache[q], preset, device="cpu")
            out[f"{p}|{q}/{preset}"] = _comparison(c)
    return out


def small_study(real: Path, out: Path) -> list[Path]:
    """The search casings decimated 4x (25 µm) as X3P files in ``out``."""
    from ballistics.io import read_scan, write_x3p

    files = []
    for name in SEARCH_CASINGS:
        s = read_scan(real / "weller" / f"{name}.x3p")
        small = s.with_heights(np.array(s.heights[::4, ::4]), (25.0, 25.0))
        f = out / f"{name}.x3p"
        write_x3p(small, f)
        files.append(f)
    return files


def compute_search(real: Path, work: Path) -> dict[str, Any]:
    from ballistics.cli import main
    from tests.clirunner import CliRunner

    files = small_study(real, work)
    col = work / "col"
    r = CliRunner().invoke(main, ["ingest", *map(str, files), "--collection", str(col),
                                  "--processed", "--model", "baseline", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    out: dict[str, Any] = {}
    for q in (files[0], files[3], files[-1]):
        r = CliRunner().invoke(main, ["search", str(q), "--collection", str(col),
                                      "--shortlist", "4", "--top", "4", "--processed",
                                      "--json", "--device", "cpu", "--quiet"])
        assert r.exit_code == 0, r.output
        res = json.loads(r.stdout)
        out[q.stem] = [{k: c[k] for k in ("id", "cmc_count", "score", "log10_lr",
                                          "embedding_similarity")}
                       for c in res["candidates"]]
    return out


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.clirunner
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    real = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    with tempfile.TemporaryDirectory() as tmp:
        pins = {"comparisons": compute_comparisons(real), "search": compute_search(real, Path(tmp))}
    PINS.parent.mkdir(exist_ok=True)
    PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINS}")
