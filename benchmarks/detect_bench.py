"""Detection of the preprocessing a scan already had (``ballistics.preprocess.detect``).

1. Synthetic: ``realistic`` raw casings (3.125 µm, 4480 µm field; 4 firearms, 1 with
   ``quick``) and the same surfaces after each kind of processing: this toolkit's ``default``
   and ``cmcR`` presets (provenance stripped), a cmcR-like chain written here with SciPy
   (ground-truth mask, least-squares plane, Gaussian band-pass 16-500 µm, with and without
   decimation to 6.25 µm), levelled only (plane; robust sphere), masked only, masked and
   levelled. Each row: the expected state, the detected decisions and the facts. The
   thresholds of :class:`~ballistics.preprocess.DetectParams` were set on these files.
2. Real files (``../shared/data/real``; every X3P of Fadul, DFSC and Weller, and the
   revision-variant quirk): the detection under the ``default`` and ``cmcR`` presets against
   the state the data README gives. Data: Fadul 2011 via cmcR (GPL-3); Weller 2012 via
   *cartridgeCaseScans* (CC-BY 4.0); DFSC/Baldwin via *cartridgeInvestigatR*.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
FACTS = ("center_valid_fraction", "relief_um", "tilt_ratio", "form_ratio", "long_share",
         "short_share", "spacing_um", "height_range_um")


def _gauss_nan(z: np.ndarray, sigma_px: float) -> np.ndarray:
    v = np.isfinite(z)
    a = ndi.gaussian_filter(np.where(v, z, 0.0), sigma_px)
    w = ndi.gaussian_filter(v.astype(float), sigma_px)
    return np.where(v, a / np.maximum(w, 1e-6), np.nan)


def _variants(casing: Any) -> dict[str, tuple[str, Any]]:
    from ballistics.preprocess import level, preprocess
    from ballistics.scan import Scan

    raw = casing.scan
    sp = raw.spacing_um
    masked = np.where(casing.mask, raw.heights, np.nan)
    plane = level(masked, sp, "plane")[0].astype(np.float64)
    hp = plane - _gauss_nan(plane, 0.1874 * 500 / sp[0])
    bp = _gauss_nan(hp, 0.1874 * 16 / sp[0]).astype(np.float32)
    return {
        "raw": ("raw", raw),
        "ballistics default": ("processed",
                               preprocess(raw, "default").scan.replace(provenance=())),
        "ballistics cmcR": ("processed", preprocess(raw, "cmcR").scan.replace(provenance=())),
        "cmcR-like, 3.125 µm": ("partial", Scan(bp, sp)),
        "cmcR-like, decimated": ("processed", Scan(bp[::2, ::2], (sp[0] * 2, sp[1] * 2))),
        "levelled only (plane)": ("raw", Scan(level(raw.heights, sp, "plane")[0], sp)),
        "levelled only (sphere)": ("raw", Scan(level(raw.heights, sp, "sphere_robust")[0], sp)),
        "masked only": ("partial", Scan(masked.astype(np.float32), sp)),
        "masked, levelled": ("partial", Scan(level(masked, sp, "sphere_robust")[0], sp)),
    }


def _row(name: str, det: Any, seconds: float) -> dict[str, Any]:
    return {"name": name, "state": det.state,
            "steps": "".join(d.step[0].upper() if d.needed else d.step[0]
                             for d in det.decisions),
            **{k: det.facts.get(k) for k in FACTS}, "seconds": round(seconds, 3)}


def synthetic(quick: bool) -> list[dict[str, Any]]:
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.preprocess import detect_preprocessing

    rows = []
    p = params_for("realistic")
    for k in range(1 if quick else 4):
        casing = fire(make_firearm(f"F{k + 1}", 101 + k, p), 1 + 4 * k, p,
                      modality="topography")
        for name, (expected, scan) in _variants(casing).items():
            t = time.perf_counter()
            det = detect_preprocessing(scan)
            rows.append({"casing": k + 1, "expected": expected,
                         **_row(name, det, time.perf_counter() - t)})
    return rows


def _expected(rel: str) -> str:
    return "raw" if "_raw" in rel else "processed"


def real() -> list[dict[str, Any]]:
    from ballistics.io import read_scan
    from ballistics.preprocess import detect_preprocessing

    rows: list[dict[str, Any]] = []
    if not DATA.is_dir():
        return rows
    files = [*sorted(DATA.glob("fadul*.x3p")), *sorted((DATA / "fadul_raw").glob("*.x3p")),
             *sorted((DATA / "dfsc_pair").glob("*.x3p")), *sorted((DATA / "weller").glob("*.x3p")),
             DATA / "quirks" / "TW01-01_revision-variant.x3p"]
    for path in files:
        if not path.is_file():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scan = read_scan(path)
        rel = path.relative_to(DATA).as_posix()
        for preset in ("default", "cmcR"):
            t = time.perf_counter()
            det = detect_preprocessing(scan, preset)
            rows.append({"file": rel, "preset": preset, "expected": _expected(rel),
                         **_row(rel, det, time.perf_counter() - t)})
    return rows


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results")) -> dict:
    """Detection on the synthetic variants and on every real file; accuracy per group."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        syn = synthetic(quick)
        rea = real()
    out: dict[str, Any] = {"synthetic": syn, "real": rea}
    for key, rows in (("synthetic", syn), ("real", rea)):
        ok = [r["state"] == r["expected"] for r in rows]
        out[f"{key}_correct"] = f"{sum(ok)}/{len(ok)}"
        out[f"{key}_wrong"] = [r["name"] + (f" ({r['preset']})" if "preset" in r else "")
                               for r, good in zip(rows, ok, strict=True) if not good]
    return out


if __name__ == "__main__":  # pragma: no cover
    import json

    res = run(quick=True)
    print(json.dumps({k: v for k, v in res.items() if k.endswith(("correct", "wrong"))}))
