"""Benchmark of striation comparison on synthetic aperture-shear marks and bullet lands, and on
the real Hamby 44 bullets (barrel 1, bullets 1 and 2; CSAFE bulletAnalyzr example data, GPL-3).

``run()`` returns JSON-able numbers: same- vs different-source AUC of CCF and CMS for marks and
lands at each difficulty, the best-phase accuracy of synthetic bullet pairs, and the real 6 × 6
land matrix with its margin. Timings are wall-clock on the machine it ran on.
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from ballistics.datasets.synthetic.striae import (
    fire_bullet,
    make_barrel,
    make_mark,
    make_tool,
    striae_params,
    true_phase,
)
from ballistics.errors import NoSignatureError, ScanWarning
from ballistics.matching.striae import StriaeCompareParams, compare_bullets, compare_signatures
from ballistics.matching.striae.lea import lea_signature
from ballistics.matching.striae.signatures import extract_signature

REAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def _auc(same: list[float], diff: list[float]) -> float:
    y = np.r_[np.ones(len(same)), np.zeros(len(diff))]
    return float(roc_auc_score(y, np.r_[same, diff]))


def _pairs_scores(sigs: list[tuple[str, Any]], params: StriaeCompareParams
                  ) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"ccf_same": [], "ccf_diff": [], "cms_same": [],
                                   "cms_diff": []}
    for (fa, sa), (fb, sb) in itertools.combinations(sigs, 2):
        if sa is None or sb is None:
            continue
        c = compare_signatures(sa, sb, params)
        tag = "same" if fa == fb else "diff"
        out[f"ccf_{tag}"].append(c.ccf_max)
        out[f"cms_{tag}"].append(float(c.cms))
    return out


def _summary(scores: dict[str, list[float]], n_items: int, failed: int, secs: float
             ) -> dict[str, Any]:
    return {
        "_scores": scores,
        "n_items": n_items, "n_no_signature": failed,
        "n_same_pairs": len(scores["ccf_same"]), "n_diff_pairs": len(scores["ccf_diff"]),
        "auc_ccf": _auc(scores["ccf_same"], scores["ccf_diff"]),
        "auc_cms": _auc(scores["cms_same"], scores["cms_diff"]),
        "ccf_same_median": float(np.median(scores["ccf_same"])),
        "ccf_diff_median": float(np.median(scores["ccf_diff"])),
        "ccf_diff_max": float(np.max(scores["ccf_diff"])),
        "cms_same_median": float(np.median(scores["cms_same"])),
        "cms_diff_median": float(np.median(scores["cms_diff"])),
        "seconds": secs,
    }


def bench_marks(difficulty: str, n_firearms: int, n_shots: int, seed: int = 0) -> dict[str, Any]:
    """Aperture-shear marks: ``n_firearms`` × ``n_shots``, random directions."""
    p = striae_params(difficulty)
    t0 = time.perf_counter()
    sigs: list[tuple[str, Any]] = []
    failed = 0
    for f in range(n_firearms):
        tool = make_tool(f"F{f}", seed * 1000 + f, p)
        for k in range(n_shots):
            m = make_mark(tool, seed * 100000 + f * 100 + k, p)
            try:
                sigs.append((tool.firearm_id, extract_signature(m.scan, kind="aperture-shear")))
            except NoSignatureError:
                sigs.append((tool.firearm_id, None))
                failed += 1
    scores = _pairs_scores(sigs, StriaeCompareParams(try_reversed=True))
    return _summary(scores, len(sigs), failed, time.perf_counter() - t0)


_BULLET_SCORES = ("sam", "phase_margin", "phase_z", "score")


def fired_bullets(n_barrels: int, n_bullets: int, p: Any, *, barrel_seed: int,
                  bullet_seed: int, name: str = "") -> tuple[list[Any], list[list[Any]], int]:
    """``n_bullets`` synthetic bullets fired from each of ``n_barrels`` barrels (barrel ``b``
    seeded ``barrel_seed + b``, its bullet ``k`` ``bullet_seed + 100 b + k``, named
    ``f"{name}B{b}"``) and every land's signature (None where none is found): ``(bullets,
    signatures per bullet, lands without a signature)``."""
    bullets, sigs = [], []
    failed = 0
    for b in range(n_barrels):
        barrel = make_barrel(f"{name}B{b}", barrel_seed + b, p)
        for k in range(n_bullets):
            bullet = fire_bullet(barrel, bullet_seed + b * 100 + k, p)
            lands = []
            for scan in bullet.lands:
                try:
                    lands.append(lea_signature(scan))
                except NoSignatureError:
                    lands.append(None)
                    failed += 1
            bullets.append(bullet)
            sigs.append(lands)
    return bullets, sigs, failed


def bench_bullets(difficulty: str, n_barrels: int, n_bullets: int, seed: int = 0,
                  **overrides: Any) -> dict[str, Any]:
    """Synthetic six-land bullets: land-pair AUC, best-phase accuracy, bullet-level AUC of
    SAM, phase margin, phase z and the combined score, and land-pair comparisons per second
    once the signatures exist (:func:`compare_bullets`, all 36 pairs of a bullet pair in one
    batch). ``overrides`` go to :func:`striae_params` (e.g. ``class_fraction``)."""
    p = striae_params(difficulty, **overrides)
    t0 = time.perf_counter()
    bullets, sigs, failed = fired_bullets(n_barrels, n_bullets, p, barrel_seed=seed * 1000,
                                          bullet_seed=seed * 100000)
    t_sig = time.perf_counter() - t0
    cparams = StriaeCompareParams()
    same: dict[str, list[float]] = {"ccf_same": [], "ccf_diff": [], "cms_same": [],
                                    "cms_diff": []}
    phase_ok, n_same_bullets, margins = 0, 0, []
    bullet_scores: dict[str, dict[str, list[float]]] = {
        k: {"same": [], "diff": []} for k in _BULLET_SCORES}
    t_cmp, n_land_pairs = 0.0, 0
    for i, j in itertools.combinations(range(len(bullets)), 2):
        tc = time.perf_counter()
        r = compare_bullets(sigs[i], sigs[j], cparams)
        t_cmp += time.perf_counter() - tc
        n_land_pairs += int(np.isfinite(r.ccf).sum())
        k_true = true_phase(bullets[i], bullets[j])
        n = len(bullets[i].lands)
        for a in range(n):
            for b in range(n):
                if not np.isfinite(r.ccf[a, b]):
                    continue
                tag = "same" if k_true is not None and b == (a + k_true) % n else "diff"
                same[f"ccf_{tag}"].append(float(r.ccf[a, b]))
                same[f"cms_{tag}"].append(float(r.cms[a, b]))
        tag = "same" if k_true is not None else "diff"
        for k in _BULLET_SCORES:
            bullet_scores[k][tag].append(float(getattr(r, k)))
        if k_true is not None:
            n_same_bullets += 1
            phase_ok += int(r.best_phase == k_true)
            margins.append(r.margin)
    out = _summary(same, len(bullets) * len(bullets[0].lands), failed, time.perf_counter() - t0)
    out.update({
        "n_bullets_total": len(bullets), "n_same_bullet_pairs": n_same_bullets,
        "n_diff_bullet_pairs": len(bullet_scores["sam"]["diff"]),
        "best_phase_accuracy": phase_ok / max(n_same_bullets, 1),
        "margin_median_same": float(np.median(margins)) if margins else float("nan"),
        "signature_seconds": t_sig,
        "land_pairs_per_second": n_land_pairs / t_cmp if t_cmp > 0 else float("nan"),
    })
    for k, v in bullet_scores.items():
        name = "sam" if k == "sam" else k
        out[f"bullet_auc_{name}"] = _auc(v["same"], v["diff"]) if v["diff"] else float("nan")
        if v["same"] and v["diff"]:
            out[f"bullet_{name}_same_min"] = float(np.min(v["same"]))
            out[f"bullet_{name}_diff_max"] = float(np.max(v["diff"]))
    return out


def bench_hamby(root: Path = REAL_ROOT) -> dict[str, Any]:
    """Real Hamby 44 barrel 1, bullets 1 vs 2: the 6 × 6 matrix, best phase and margin."""
    from ballistics.io import read_scan

    folder = root / "bullets" / "hamby44"
    if not folder.is_dir():
        return {"skipped": f"{folder} not found"}
    t0 = time.perf_counter()
    lands = {}
    for b in ("bullet1", "bullet2"):
        lands[b] = [lea_signature(read_scan(p)) for p in sorted((folder / b).glob("*.x3p"))]
    r = compare_bullets(lands["bullet1"], lands["bullet2"])
    # a different-source surrogate (no second barrel here): bullet 2 mirrored, i.e. every
    # land's signature reversed and the lands in reverse order; striae are not symmetric, so
    # its lands share no striae with bullet 1's
    mirrored = [replace(s, values=s.values[::-1].copy()) for s in lands["bullet2"][::-1]]
    m = compare_bullets(lands["bullet1"], mirrored)
    return {
        "data": "Hamby set 44 barrel 1, bullets 1 and 2 (CSAFE bulletAnalyzr, GPL-3), "
                "1.5625 µm, 6 lands each",
        "ccf": np.round(r.ccf, 3).tolist(), "cms": r.cms.tolist(),
        "phase_scores": [round(s, 3) for s in r.phase_scores], "best_phase": r.best_phase,
        "sam": r.sam, "margin": r.margin, "phase_margin": r.phase_margin,
        "phase_z": r.phase_z, "score": r.score,
        "mirrored_surrogate": {"sam": m.sam, "phase_margin": m.phase_margin,
                               "phase_z": m.phase_z, "score": m.score},
        "grooves_um": {b: [s.meta["grooves_um"] for s in v] for b, v in lands.items()},
        "seconds": time.perf_counter() - t0,
    }


def bench_proposal(difficulty: str = "realistic", n_casings: int = 30, n_null: int = 20,
                   seed: int = 0) -> dict[str, Any]:
    """Automatic aperture-shear band proposal on synthetic casings
    (:mod:`ballistics.datasets.synthetic`), end to end as the CLI runs it: the firing pin
    found by :func:`ballistics.preprocess.segment.segment`, then
    :func:`propose_aperture_shear` with its mask. On ``n_casings`` casings that all show
    aperture shear: the share found (the centroids' azimuths about the firing pin within 30°),
    IoU with the true band and the centroid distance; on ``n_null`` casings without it: the
    share wrongly given a band (false alarms)."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.matching.striae.signatures import propose_aperture_shear
    from ballistics.preprocess.segment import segment

    t0 = time.perf_counter()
    ious, errs, found, false_alarm, no_pin = [], [], [], [], 0
    for shear, n, base in ((True, n_casings, 0), (False, n_null, 500)):
        p = params_for(difficulty, aperture_shear_probability=1.0 if shear else 0.0,
                       aperture_shear_shot_probability=1.0)
        for f in range(base, base + n):
            casing = fire(make_firearm(f"F{f}", seed * 1000 + f, p), seed * 100000 + f, p)
            gt = casing.shear_mask
            seg = segment(casing.scan)
            if seg.firing_pin is None:
                no_pin += 1
                m = None
            else:
                try:
                    m = propose_aperture_shear(casing.scan, seg.firing_pin.center_um,
                                               seg.firing_pin.radius_um,
                                               firing_pin_mask=seg.firing_pin_region)
                except NoSignatureError:
                    m = None
            if not shear:
                false_alarm.append(m is not None)
                continue
            if m is None:
                ious.append(0.0)
                found.append(False)
                continue
            sp = np.asarray(casing.scan.spacing_um, float)
            fc = np.asarray(seg.firing_pin.center_um, float)
            cg, cm = np.argwhere(gt).mean(0) * sp - fc, np.argwhere(m).mean(0) * sp - fc
            az = [np.degrees(np.arctan2(-v[0], v[1])) for v in (cg, cm)]
            ious.append(float((m & gt).sum() / (m | gt).sum()))
            errs.append(float(np.hypot(*(cg - cm))))
            found.append(abs((az[0] - az[1] + 180.0) % 360.0 - 180.0) < 30.0)
    return {
        "data": f"ballistics.datasets.synthetic {difficulty} (seed {seed}): {n_casings} casings "
                f"with aperture shear, {n_null} without; firing pin from segment()",
        "n_casings": len(found), "found_fraction": float(np.mean(found)) if found else None,
        "iou_median": float(np.median(ious)) if ious else None,
        "iou_mean": float(np.mean(ious)) if ious else None,
        "centroid_error_um_median": float(np.median(errs)) if errs else None,
        "n_null": len(false_alarm),
        "false_alarm_fraction": float(np.mean(false_alarm)) if false_alarm else None,
        "no_firing_pin_found": no_pin,
        "seconds": time.perf_counter() - t0,
    }


def _plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k, v in res.items() if isinstance(v, dict) and "_scores" in v]
    fig, axes = plt.subplots(2, len(keys) + 1, figsize=(4 * (len(keys) + 1), 6.5))
    for col, k in enumerate(keys):
        sc = res[k]["_scores"]
        for row, m in enumerate(("ccf", "cms")):
            ax = axes[row, col]
            bins = np.linspace(-0.2, 1, 49) if m == "ccf" else np.arange(0, 31) - 0.5
            ax.hist(sc[f"{m}_diff"], bins=bins, density=True, alpha=0.6, label="different")
            ax.hist(sc[f"{m}_same"], bins=bins, density=True, alpha=0.6, label="same")
            ax.set_title(f"{k}: {m.upper()} (AUC {res[k][f'auc_{m}']:.3f})", fontsize=9)
            ax.legend(fontsize=7)
    h = res.get("hamby44", {})
    ax = axes[0, -1]
    if "ccf" in h:
        im = ax.imshow(np.array(h["ccf"], float), vmin=0, vmax=1)
        ax.set_title(f"Hamby 44 B1 vs B2 CCF (phase {h['best_phase']}, margin "
                     f"{h['margin']:.2f})", fontsize=9)
        ax.set_xlabel("land of bullet 2")
        ax.set_ylabel("land of bullet 1")
        fig.colorbar(im, ax=ax)
    axes[1, -1].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results")) -> dict[str, Any]:
    """Run the benchmark; ``quick`` uses fewer firearms (not enough for the AUC claims)."""
    warnings.simplefilter("ignore", ScanWarning)
    nf, ns = (4, 3) if quick else (12, 5)
    nb, nbul = (2, 2) if quick else (8, 4)
    res: dict[str, Any] = {"synthetic": "ballistics.datasets.synthetic.striae, seed 0"}
    for d in ("realistic", "hard"):
        res[f"marks_{d}"] = {"n_firearms": nf, "n_shots": ns, **bench_marks(d, nf, ns)}
    for d in ("easy", "realistic", "hard"):
        res[f"bullets_{d}"] = {"n_barrels": nb, "n_bullets": nbul,
                               **bench_bullets(d, nb, nbul)}
    # every land of every barrel also carries one class striation pattern as strong as its
    # own, and shots vary more: all land pairs correlate more (the case where SAM alone
    # confuses bullets of different barrels of one make)
    res["bullets_hard_class"] = {"n_barrels": nb, "n_bullets": nbul, "class_fraction": 1.0,
                                 "shot_variation": 1.6,
                                 **bench_bullets("hard", nb, nbul, class_fraction=1.0,
                                                 shot_variation=1.6)}
    res["hamby44"] = bench_hamby()
    res["aperture_shear_proposal"] = bench_proposal(n_casings=8 if quick else 30,
                                                     n_null=4 if quick else 20)
    out_dir.mkdir(parents=True, exist_ok=True)
    _plot(res, out_dir / "striae_bench.png")
    for v in res.values():
        if isinstance(v, dict):
            v.pop("_scores", None)
    (out_dir / "striae_bench.json").write_text(json.dumps(res, indent=1, default=float))
    return res
