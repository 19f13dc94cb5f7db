"""Train and evaluate the shipped bullet model (land-pair score, bullet score, calibrated LR;
:mod:`ballistics.matching.bullet_evidence`) on synthetic barrels of every difficulty.

``python -m benchmarks.bullet_model [--quick] [--write]``: generates the synthetic barrels
(deterministic seeds, none shared with ``striae_bench``), compares every pair of bullets
within each difficulty, measures the model leave-one-difficulty-out (fit on the other
difficulties, test on the held-out one; AUC, Cllr, Cllr-min, misleading rates), fits the
final model on all of them and, with ``--write``, stores it as
``ballistics/matching/lr/data/bullets_synthetic.json``. Results go to
``benchmarks/results/bullet_model.json``. Real bullets are never used for fitting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.datasets.synthetic.striae import striae_params, true_phase
from ballistics.errors import ScanWarning
from ballistics.matching.bullet_evidence import (
    BULLET_FEATURES,
    BULLET_FILE,
    LAND_FEATURES,
    BulletModel,
    land_features,
    phase_features,
)
from ballistics.matching.lr import Calibration, LRCalibration, ScoreModel
from ballistics.matching.lr.metrics import auc, cllr, cllr_min, misleading_rates
from ballistics.matching.striae import StriaeCompareParams, compare_bullets
from ballistics.matching.striae.lea import lea_signature
from benchmarks.striae_bench import fired_bullets

log = logging.getLogger(__name__)

#: The synthetic variants, each a held-out group of the evaluation: name -> (difficulty,
#: striae_params overrides). ``hard_class`` adds class striae shared by every barrel of the
#: make and more shot-to-shot variation.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "easy": ("easy", {}),
    "realistic": ("realistic", {}),
    "hard": ("hard", {}),
    "hard_class": ("hard", {"class_fraction": 1.0, "shot_variation": 1.6}),
}
SEED = 2024  # striae_bench uses seed 0
OUT_FILE = Path(__file__).resolve().parents[1] / "ballistics" / "matching" / "lr" / "data" / \
    BULLET_FILE


def collect(variant: str, n_barrels: int, n_bullets: int, seed: int = SEED
            ) -> list[dict[str, Any]]:
    """Every bullet pair of one variant: land-feature matrix (dicts or None), the true
    phase's land pairs, ``phase_margin``, ``phase_z``, same barrel or not, barrels."""
    difficulty, over = VARIANTS[variant]
    p = striae_params(difficulty, **over)
    v = list(VARIANTS).index(variant)
    bullets, sigs, _ = fired_bullets(n_barrels, n_bullets, p, barrel_seed=seed * 1000 + v * 100,
                                     bullet_seed=seed * 100000 + v * 10000, name=f"{variant}-")
    cparams = StriaeCompareParams()
    out = []
    for i, j in itertools.combinations(range(len(bullets)), 2):
        r = compare_bullets(sigs[i], sigs[j], cparams)
        n = r.ccf.shape[1]
        k_true = true_phase(bullets[i], bullets[j])
        feats = [[None if c is None else land_features(c) for c in row] for row in r.pairs]
        same_land = np.zeros(r.ccf.shape, bool)
        if k_true is not None:
            for a in range(r.ccf.shape[0]):
                same_land[a, (a + k_true) % n] = True
        out.append({"variant": variant, "feats": feats, "same_land": same_land,
                    "phase_margin": r.phase_margin, "phase_z": r.phase_z,
                    "same": k_true is not None, "k_true": k_true,
                    "barrels": (bullets[i].truth["barrel_id"], bullets[j].truth["barrel_id"])})
    return out


def _land_rows(pairs: list[dict[str, Any]]) -> tuple[list[dict[str, float]], np.ndarray]:
    rows, y = [], []
    for p in pairs:
        for a, row in enumerate(p["feats"]):
            for b, f in enumerate(row):
                if f is not None:
                    rows.append(f)
                    y.append(bool(p["same_land"][a, b]))
    return rows, np.asarray(y, bool)


def _bullet_rows(pairs: list[dict[str, Any]], land_model: ScoreModel
                 ) -> list[dict[str, float]]:
    out = []
    for p in pairs:
        feats = p["feats"]
        m = np.full((len(feats), len(feats[0])), np.nan)
        idx = [(a, b) for a in range(m.shape[0]) for b in range(m.shape[1])
               if feats[a][b] is not None]
        if idx:
            m[tuple(np.array(idx).T)] = land_model.score([feats[a][b] for a, b in idx])
        out.append(phase_features(m, p["phase_margin"], p["phase_z"]))
    return out


def fit(pairs: list[dict[str, Any]]) -> tuple[ScoreModel, ScoreModel, LRCalibration]:
    """Land model, bullet model and PAV calibration fitted on ``pairs``."""
    rows, y = _land_rows(pairs)
    land = ScoreModel.fit(rows, y, names=LAND_FEATURES)
    brows = _bullet_rows(pairs, land)
    yb = np.array([p["same"] for p in pairs])
    bullet = ScoreModel.fit(brows, yb, names=BULLET_FEATURES)
    lr = LRCalibration.fit(bullet.score(brows), yb, "pav")
    return land, bullet, lr


def _metrics(scores: np.ndarray, llr: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return {"n_same_source": int(y.sum()), "n_different_source": int((~y).sum()),
            "auc": auc(scores, y), "cllr": cllr(llr, y), "cllr_min": cllr_min(scores, y),
            "misleading": misleading_rates(llr, y)}


def evaluate(data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Leave one variant (difficulty) out: fit on the others, test on it."""
    per: dict[str, Any] = {}
    all_s, all_l, all_y = [], [], []
    for held in data:
        train = [p for v, ps in data.items() if v != held for p in ps]
        land, bullet, lr = fit(train)
        test = data[held]
        s = bullet.score(_bullet_rows(test, land))
        llr = lr.log10_lr(s)
        y = np.array([p["same"] for p in test])
        lrows, ly = _land_rows(test)
        per[held] = {**_metrics(s, llr, y), "land_pair_auc": auc(land.score(lrows), ly),
                     "land_pair_auc_ccf": auc(np.array([r["ccf_max"] for r in lrows]), ly)}
        all_s.append(s)
        all_l.append(llr)
        all_y.append(y)
    s, llr, y = np.concatenate(all_s), np.concatenate(all_l), np.concatenate(all_y)
    return {"pooled": _metrics(s, llr, y), "per_variant": per}


def run(quick: bool = False, write: bool = False,
        out_dir: Path = Path("benchmarks/results")) -> dict[str, Any]:
    """Collect, evaluate leave-one-difficulty-out, fit the final model (``write``: ship it)."""
    warnings.simplefilter("ignore", ScanWarning)
    nb, nbul = (3, 2) if quick else (8, 3)
    t0 = time.perf_counter()
    data = {}
    for v in VARIANTS:
        data[v] = collect(v, nb, nbul)
        log.info("%s: %d bullet pairs (%.0f s)", v, len(data[v]), time.perf_counter() - t0)
    ev = evaluate(data)
    allp = [p for ps in data.values() for p in ps]
    land, bullet, lr = fit(allp)
    pooled = ev["pooled"]
    metrics = {
        "n_pairs": len(allp), "n_same_source": int(sum(p["same"] for p in allp)),
        "n_different_source": int(sum(not p["same"] for p in allp)),
        "n_sources": len({b for p in allp for b in p["barrels"]}),
        "cv": "leave one difficulty out", "folds": len(data),
        "evaluated_pairs": len(allp), "cllr": pooled["cllr"], "cllr_min": pooled["cllr_min"],
        "auc": pooled["auc"], "misleading": pooled["misleading"],
    }
    fitted = {"data": f"synthetic bullets ({', '.join(VARIANTS)}), {nb} barrels x {nbul} "
                      f"bullets x 6 lands each, seed {SEED}",
              "compare_preset": "default", "land_features": list(LAND_FEATURES),
              "bullet_features": list(BULLET_FEATURES), "pairs": len(allp),
              "trained_by": "python -m benchmarks.bullet_model --write"}
    model = BulletModel(land, Calibration(score_model=bullet, lr=lr, source="synthetic-default",
                                          metrics=metrics, fitted=fitted))
    res = {"quick": quick, "n_barrels": nb, "n_bullets": nbul, "seed": SEED,
           "leave_one_difficulty_out": ev, "model": model.to_dict(),
           "seconds": time.perf_counter() - t0}
    if write and not quick:
        model.save(OUT_FILE)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "bullet_model_quick.json" if quick else "bullet_model.json"
    (out_dir / name).write_text(json.dumps(res, indent=1, default=float) + "\n")
    return res


REAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def hamby(root: Path = REAL_ROOT) -> dict[str, Any]:
    """The shipped model (never fitted on real data) on Hamby 44 barrel 1: land-pair score
    AUC within bullet 1 vs 2 (6 true-phase pairs against 30 others), and the bullet score and
    LR of bullets 1 vs 2 (same barrel) and of four mirrored surrogates (a bullet against the
    mirror image of 1 or 2: every land reversed, the lands in reverse order; different
    source, as only one barrel is in the data)."""
    from dataclasses import replace

    from ballistics.io import read_scan
    from ballistics.matching.bullet_evidence import evaluate_bullets, load_bullet_default

    folder = root / "bullets" / "hamby44"
    if not folder.is_dir():
        return {"skipped": f"{folder} not found"}
    model = load_bullet_default()
    lands = {b: [lea_signature(read_scan(p)) for p in sorted((folder / b).glob("*.x3p"))]
             for b in ("bullet1", "bullet2")}
    mirror = {b: [replace(s, values=s.values[::-1].copy()) for s in v[::-1]]
              for b, v in lands.items()}
    t0 = time.perf_counter()
    r = compare_bullets(lands["bullet1"], lands["bullet2"])
    ev = evaluate_bullets(r, model)
    seconds = time.perf_counter() - t0
    inside = np.zeros((6, 6), bool)
    for i in range(6):
        inside[i, (i + r.best_phase) % 6] = True
    ls = ev.land_scores
    out: dict[str, Any] = {
        "data": "Hamby set 44 barrel 1, bullets 1 and 2 (CSAFE bulletAnalyzr, GPL-3)",
        "best_phase": r.best_phase, "land_best_phase": int(ev.features["land_best_phase"]),
        "land_pair_auc": auc(ls.ravel(), inside.ravel()),
        "land_pair_auc_ccf": auc(r.ccf.ravel(), inside.ravel()),
        "land_score_true_min": float(ls[inside].min()),
        "land_score_other_max": float(ls[~inside].max()),
        "same": {"score": ev.score, "log10_lr": ev.log10_lr, "verbal": ev.verbal,
                 "features": ev.features},
        "evaluate_seconds": seconds,
    }
    scores, llrs, y = [ev.score], [ev.log10_lr], [True]
    sur = {}
    for a, b in (("bullet1", "bullet2"), ("bullet2", "bullet1"), ("bullet1", "bullet1"),
                 ("bullet2", "bullet2")):
        e = evaluate_bullets(compare_bullets(lands[a], mirror[b]), model)
        sur[f"{a}_vs_mirrored_{b}"] = {"score": e.score, "log10_lr": e.log10_lr}
        scores.append(e.score)
        llrs.append(e.log10_lr)
        y.append(False)
    out["mirrored_surrogates"] = sur
    ya = np.array(y)
    out["bullet_auc"] = auc(np.array(scores), ya)
    out["bullet_cllr"] = cllr(np.array(llrs), ya)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bullet_model", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="3 barrels x 2 bullets per variant")
    ap.add_argument("--write", action="store_true", help="ship the fitted model")
    ap.add_argument("--hamby", action="store_true",
                    help="only evaluate the shipped model on Hamby 44 (no training)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.hamby:
        warnings.simplefilter("ignore", ScanWarning)
        res = hamby()
        Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
        Path("benchmarks/results/bullet_model_hamby.json").write_text(
            json.dumps(res, indent=1, default=float) + "\n")
        print(json.dumps(res, indent=1, default=float))
        return
    res = run(a.quick, a.write)
    print(json.dumps({k: res["leave_one_difficulty_out"][k] for k in ("pooled",)},
                     indent=1, default=float))
    for v, m in res["leave_one_difficulty_out"]["per_variant"].items():
        print(v, {k: round(x, 3) for k, x in m.items() if isinstance(x, float)})


if __name__ == "__main__":
    main()
