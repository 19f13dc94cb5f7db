"""Preprocessing: segmentation accuracy against synthetic ground truth, real-scan checks, speed.

1. Breech-face IoU of the automatic segmentation against the generator's ground-truth masks,
   over ``realistic`` synthetic topographies and 2D ring-light images (100 of each; 10 with
   ``quick``), plus 20 ``hard`` casings for context. Firearm classes vary (``class_seed``
   cycles 0-4) so round, elliptical and rectangular firing pins all occur. For topographies
   the IoU is counted over measured points (drop-outs are neither breech face nor not); for
   images over all points.
2. Real scans (``../shared/data/real``): circles on the three raw Fadul scans and the two
   NBIDE images (with a figure), and the ``"cmcR"`` preset on raw Fadul 1-1 against cmcR's
   processed copy (Pearson correlation on the common valid area after the best integer
   shift). Data: Fadul 2011 via the R package cmcR (GPL-3), NIST NBIDE images via the R
   package *cartridges* (GPL-3).
3. Speed: median wall time of ``preprocess(scan, "default")`` end to end (segmentation,
   levelling, resampling, cropping, band-pass, spikes, quality) on synthetic full-primer
   topographies at 3.125 µm (1434 x 1434 points), single-threaded (OpenCV and BLAS pools
   limited to one thread), and of the ``"cmcR"`` preset.
"""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def _iou(mask: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> float:
    if valid is None:
        valid = np.ones_like(truth)
    union = ((mask | truth) & valid).sum()
    return float((mask & truth & valid).sum() / union) if union else 0.0


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, float)
    return {"n": int(len(v)), "median": float(np.median(v)), "p5": float(np.percentile(v, 5)),
            "min": float(v.min()), "mean": float(v.mean()),
            "fraction_ge_0.90": float((v >= 0.90).mean()),
            "fraction_ge_0.95": float((v >= 0.95).mean())}


def _casing(i: int, spacing_um: float = 3.125, difficulty: str = "realistic"):
    from ballistics.datasets.synthetic import fire, make_firearm, params_for

    p = params_for(difficulty, spacing_um=spacing_um, class_seed=i % 5)
    fa = make_firearm(f"B{i:03d}", 7919 * i + 1, p)
    return fire(fa, 31 * i + 5, p, modality="both")


def hard_accuracy(n: int) -> dict[str, Any]:
    """IoU on ``hard`` synthetic casings (25 % drop-outs, weak transfer): context only."""
    from ballistics.preprocess import segment

    res: dict[str, list[float]] = {"topography": [], "image": []}
    for i in range(n):
        c = _casing(500 + i, difficulty="hard")
        for s in (c.scan, c.image):
            seg = segment(s)
            res[s.modality].append(
                _iou(seg.mask, c.mask, s.valid if s.modality == "topography" else None))
    return {"data": f"{n} synthetic hard casings at 3.125 µm",
            **{m: _stats(v) for m, v in res.items()}}


def segmentation_accuracy(n: int, out_dir: Path) -> dict[str, Any]:
    from ballistics.preprocess import segment
    from ballistics.report.segmentation import save_segmentation_figure

    rows: list[dict[str, Any]] = []
    examples: list[tuple] = []
    truths: list[np.ndarray] = []
    times = {"topography": [], "image": []}
    for i in range(n):
        c = _casing(i)
        for s in (c.scan, c.image):
            t0 = time.perf_counter()
            seg = segment(s)
            times[s.modality].append(time.perf_counter() - t0)
            iou = _iou(seg.mask, c.mask, s.valid if s.modality == "topography" else None)
            rows.append({"i": i, "modality": s.modality, "iou": iou,
                         "firing_pin_shape": c.truth["firing_pin_shape"],
                         "primer_center_error_um": None if seg.primer is None else float(
                             np.hypot(*np.subtract(seg.primer.center_um,
                                                   c.truth["primer_center_um"]))),
                         "primer_radius_error_um": None if seg.primer is None else float(
                             seg.primer.radius_um - c.truth["primer_radius_um"]),
                         "warnings": list(seg.warnings)})
            if len(examples) < 6:
                examples.append((f"{s.modality} #{i} ({c.truth['firing_pin_shape']}) "
                                 f"IoU {iou:.3f}", s, seg))
                truths.append(c.mask)
    out: dict[str, Any] = {"data": "synthetic realistic, 4480 x 4480 µm field at 3.125 µm "
                                   "(1434 x 1434 points), class_seed cycling 0-4"}
    for mod in ("topography", "image"):
        r = [x for x in rows if x["modality"] == mod]
        out[mod] = _stats([x["iou"] for x in r])
        out[mod]["by_firing_pin_shape"] = {
            shape: _stats([x["iou"] for x in r if x["firing_pin_shape"] == shape])
            for shape in sorted({x["firing_pin_shape"] for x in r})}
        errs = [x["primer_center_error_um"] for x in r if x["primer_center_error_um"] is not None]
        out[mod]["primer_center_error_um_median"] = float(np.median(errs)) if errs else None
        out[mod]["segment_s_median"] = float(np.median(times[mod]))
        out[mod]["with_warnings"] = int(sum(bool(x["warnings"]) for x in r))
    out["worst"] = sorted(rows, key=lambda x: x["iou"])[:5]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for mod in ("topography", "image"):
            ax.hist([x["iou"] for x in rows if x["modality"] == mod], bins=np.linspace(0.8, 1, 41),
                    alpha=0.6, label=mod)
        ax.axvline(0.95, color="k", ls="--", lw=0.8)
        ax.set_xlabel("breech-face IoU vs ground truth")
        ax.set_ylabel("casings")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "preprocess_iou_hist.png", dpi=100)
        plt.close(fig)
        save_segmentation_figure(examples, out_dir / "preprocess_synthetic_segmentation.png",
                                 truth_masks=truths, ncols=3)
        out["figures"] = ["preprocess_iou_hist.png", "preprocess_synthetic_segmentation.png"]
    except Exception as exc:  # figures are optional
        out["figure_error"] = str(exc)
    return out


def _best_shift_correlation(a: np.ndarray, b: np.ndarray, max_shift: int = 60
                            ) -> tuple[float, list[int], int]:
    va, vb = np.isfinite(a), np.isfinite(b)
    A, B = np.where(va, a, 0.0), np.where(vb, b, 0.0)
    H = max(a.shape[0], b.shape[0]) + 2 * max_shift
    W = max(a.shape[1], b.shape[1]) + 2 * max_shift

    def xc(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.fft.irfft2(np.fft.rfft2(p, (H, W)) * np.conj(np.fft.rfft2(q, (H, W))), (H, W))

    n = np.maximum(xc(va * 1.0, vb * 1.0), 1)
    sa, sb = xc(A, vb * 1.0), xc(va * 1.0, B)
    cov = xc(A, B) / n - sa * sb / n ** 2
    var = (np.maximum(xc(A * A, vb * 1.0) / n - (sa / n) ** 2, 1e-12)
           * np.maximum(xc(va * 1.0, B * B) / n - (sb / n) ** 2, 1e-12))
    r = cov / np.sqrt(var)
    r[n < 0.3 * min(va.sum(), vb.sum())] = -1
    k = np.unravel_index(int(np.argmax(r)), r.shape)
    shift = [int(k[0] if k[0] < H / 2 else k[0] - H), int(k[1] if k[1] < W / 2 else k[1] - W)]
    return float(r[k]), shift, int(n[k])


def real_scans(out_dir: Path) -> dict[str, Any]:
    from ballistics.io import read_scan
    from ballistics.preprocess import preprocess, segment
    from ballistics.report.segmentation import save_segmentation_figure

    if not DATA.is_dir():
        return {"skipped": f"no real data at {DATA}"}
    out: dict[str, Any] = {"fadul_raw": {}, "nbide_images": {}}
    items = []
    for path in sorted((DATA / "fadul_raw").glob("*.x3p")):
        s = read_scan(path)
        seg = segment(s)
        out["fadul_raw"][path.name] = seg.to_dict() | {"shape": list(s.shape)}
        items.append((path.name, s, seg))
    for path in sorted((DATA / "images").glob("*.png")):
        s = read_scan(path)
        seg = segment(s)
        out["nbide_images"][path.name] = seg.to_dict() | {"shape": list(s.shape),
                                                          "spacing_um": list(s.spacing_um)}
        items.append((path.name, s, seg))
    if items:
        save_segmentation_figure(items, out_dir / "preprocess_real_segmentation.png", ncols=3)
        out["figure"] = "preprocess_real_segmentation.png"
    raw = DATA / "fadul_raw" / "fadul1-1_raw.x3p"
    ref = DATA / "fadul1-1_processed.x3p"
    if raw.exists() and ref.exists():
        r_scan, ref_scan = read_scan(raw), read_scan(ref)
        parity = {}
        for preset in ("cmcR", "default"):
            res = preprocess(r_scan, preset)
            corr, shift, n = _best_shift_correlation(ref_scan.heights, res.scan.heights)
            parity[preset] = {"correlation": corr, "shift_points": shift,
                              "common_valid_points": n, "shape": list(res.scan.shape),
                              "valid_area_mm2": res.quality.valid_area_mm2}
        parity["reference"] = {"file": "fadul1-1_processed.x3p", "shape": list(ref_scan.shape),
                               "valid_area_mm2": float(ref_scan.valid.sum() * 6.25 ** 2 / 1e6)}
        out["cmcR_parity_fadul1-1"] = parity
    return out


def speed(n: int) -> dict[str, Any]:
    import cv2

    from ballistics.preprocess import preprocess

    cv2.setNumThreads(1)
    try:
        from threadpoolctl import threadpool_limits

        limiter: Any = threadpool_limits(1)
    except ImportError:  # pragma: no cover
        limiter = None
    try:
        scans = [_casing(100 + i).scan for i in range(n)]
        out: dict[str, Any] = {"data": f"{n} synthetic realistic topographies, "
                                       f"{scans[0].shape[0]} x {scans[0].shape[1]} points at "
                                       "3.125 µm", "threads": 1}
        for preset in ("default", "cmcR"):
            preprocess(scans[0], preset)  # warm-up (imports, caches)
            times = []
            for s in scans:
                t0 = time.perf_counter()
                preprocess(s, preset)
                times.append(time.perf_counter() - t0)
            out[preset] = {"median_s": statistics.median(times), "min_s": min(times),
                           "max_s": max(times)}
    finally:
        if limiter is not None:
            limiter.unregister()
        cv2.setNumThreads(-1)
    return out


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results")) -> dict:
    """Segmentation IoU, real-scan checks and preprocessing speed (JSON-able dict)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    n = 10 if quick else 100
    return {
        "quick": quick,
        "segmentation_iou": segmentation_accuracy(n, out_dir),
        "segmentation_iou_hard": hard_accuracy(4 if quick else 20),
        "real": real_scans(out_dir),
        "speed": speed(3 if quick else 7),
    }
