"""Speed of scan I/O: ``read_scan`` on the real scans, ``write_x3p`` and the round trip.

Numbers are wall-clock seconds on the machine that runs it (median of repeats), labelled with the
data set and sizes. Data: ``../shared/data/real`` (Weller 2012 / cartridgeCaseScans CC-BY 4.0,
Fadul 2011 via cmcR GPL-3, NIST NBIDE images via the R package *cartridges*), skipped where absent.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def _time(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _synthetic(rows: int, cols: int) -> Any:
    from ballistics.scan import Scan

    rng = np.random.default_rng(0)
    h = rng.normal(size=(rows, cols)).astype(np.float32)
    yy, xx = np.mgrid[:rows, :cols]
    h[(yy - rows / 2) ** 2 + (xx - cols / 2) ** 2 > (min(rows, cols) / 2) ** 2] = np.nan
    return Scan(h, 3.125)


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results")) -> dict:
    """Measure read/write speed; returns a JSON-able dict (also used by the harness)."""
    from ballistics.io import read_scan, scan_info, write_x3p

    repeats = 1 if quick else 3
    out: dict[str, Any] = {"quick": quick, "repeats": repeats, "read": {}, "write": {}}
    warnings.simplefilter("ignore")
    if DATA.is_dir():
        sets = {
            "fadul_processed (545x545 and 546x546, float64)": sorted(DATA.glob("fadul1-*.x3p")),
            "fadul_raw (~1220x1230, float64)": sorted((DATA / "fadul_raw").glob("*.x3p")),
            "weller (95 processed casings, ~560x560, float64)": sorted(
                (DATA / "weller").glob("*.x3p"))[: 10 if quick else None],
            "quirks (tolerant path)": sorted((DATA / "quirks").glob("*.x3p")),
            "nbide_png (2592x1944, 8-bit)": sorted((DATA / "images").glob("*.png")),
        }
        for label, files in sets.items():
            if not files:
                continue
            per_file = _time(lambda fs=files: [read_scan(f) for f in fs], repeats) / len(files)
            info = _time(lambda fs=files: [scan_info(f) for f in fs], repeats) / len(files)
            out["read"][label] = {"files": len(files), "read_scan_s_per_file": per_file,
                                  "scan_info_s_per_file": info}
    with tempfile.TemporaryDirectory() as tmp:
        for rows, cols in ([(545, 545), (1400, 1400)] if not quick else [(545, 545)]):
            scan = _synthetic(rows, cols)
            for dtype in ("float32", "float64"):
                for vf in (False, True):
                    path = Path(tmp) / f"s_{dtype}_{vf}.x3p"
                    w = _time(lambda s=scan, p=path, d=dtype, v=vf: write_x3p(s, p, dtype=d,
                                                                          validity_file=v), repeats)
                    r = _time(lambda p=path: read_scan(p), repeats)
                    out["write"][f"{rows}x{cols} {dtype} valid.bin={vf}"] = {
                        "write_s": w, "read_back_s": r, "bytes": path.stat().st_size}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "io_bench.json").write_text(json.dumps(out, indent=2))
    return out
