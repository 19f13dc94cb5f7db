"""Leave-one-study-out evaluation of the learned score and its likelihood ratio.

For every study: the score model and LR calibration (``ballistics.matching.lr``:
logistic regression over comparison features, PAV calibration clipped to empirical bounds)
are fitted on the pairs of **all the other studies** and applied to the pairs of the one left
out; nothing is fitted or chosen on the study that is tested. Reported per study: AUC of the
score, the error rates at the calibrated threshold LR = 1 (same-source pairs with LR < 1,
different-source pairs with LR > 1), Cllr and Cllr-min of the LRs.

Studies (default preset, full rotation, every pair compared in both directions):

- ``weller``: the 95 processed Weller casings, all 4,465 pairs (the pair log of
  ``compare_bench``, when its rows are of the current comparison and hold every evaluated
  feature), else every pair of the first three casings of each of the 11 slides (528 pairs);
- ``fadul``: the three raw Fadul casings through the whole pipeline (1 same-slide pair, 2
  different-slide pairs: too few for an AUC of its own, its LRs are listed);
- ``synthetic-hard`` and ``synthetic-realistic``: generated sets with fixed seeds;
- ``dfsc``: the shared hard DFSC/Baldwin pair (one same-gun pair; its LR under the model
  that never saw it is listed).

``fadul`` and ``dfsc`` have (almost) no different-source pairs of their own, so each scan is
also compared with the mirror image of every scan of its study (itself included):
**mirror surrogates**, different-source pairs by construction (a mirror image is no rotation
of any casing) with the study's own texture, spacing, coverage and processing.

Self-mirrors (a scan against its own mirror image) are the hardest surrogates: a reflection
leaves its axis in place, so texture near the axis, and mirror-symmetric structure (the
aperture rim, residual form, lines across the axis), matches itself. They are kept, and the
``study_weighted`` design is also measured without them (``..._no_self_mirrors``).

Two designs are evaluated side by side, fixed in advance:

- ``study_weighted`` (the shipped design, :func:`ballistics.matching.lr.fit_across_studies`):
  logistic regression over :data:`ballistics.matching.lr.DEFAULT_SCORE_FEATURES` in which
  every training study weighs the same within each class, its log-odds taken as the LR (no
  second calibration stage), bounded by the training pair counts;
- ``pooled_pav`` (the design before 2026-12-07): logistic regression over
  ``cmc_count_combined`` and ``ncc_at_pose`` on the pooled pairs, then PAV.

The shipped default is fitted on all the studies (``benchmarks/default_calibration.py``):
its numbers here are in-sample, listed as a check of the package file only.

``run(preset="cmcR")`` (part ``loso_bench_cmcR``) evaluates the same design on the same
studies compared with the ``cmcR`` preset (prepared as ``compare --preset cmcR`` prepares
them; the synthetic casings generated within ±:data:`CMCR_MAX_ROTATION_DEG` so that every
pair's angle lies in cmcR's -30..30° grid), the data of the shipped ``cmcR`` calibration.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
CACHE = Path(__file__).resolve().parent / "results"

def _designs() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Design name -> (fit, feature names)."""
    from ballistics.matching.lr import DEFAULT_SCORE_FEATURES

    return {"study_weighted": ("study", tuple(DEFAULT_SCORE_FEATURES)),
            "pooled_pav": ("pav", ("cmc_count_combined", "ncc_at_pose"))}


def is_self_mirror(row: dict[str, Any]) -> bool:
    """A scan compared with its own mirror image."""
    return bool(row["b"] == f"mirror of {row['a']}")


def study_description(studies: dict[str, list[dict[str, Any]]]) -> str:
    """One line naming the studies and their pair counts."""
    return "; ".join(f"{k} {len(v)} pairs ({sum(r['same'] for r in v)} same source)"
                     for k, v in studies.items())

SYNTH = {"synthetic-hard": ("hard", 8, 3), "synthetic-realistic": ("realistic", 6, 3)}

#: The compare presets with a shipped calibration (``benchmarks/default_calibration.py``).
PRESETS = ("default", "cmcR")

#: cmcR's rotation grid spans -30..30 degrees: its synthetic studies are generated with every
#: casing turned by at most this angle, so that each pair's relative angle lies in the grid
#: (the preset's domain: scans taken in roughly the same orientation, as cmcR assumes).
CMCR_MAX_ROTATION_DEG = 15.0


def _cache_dir() -> Path:
    d = Path(os.environ.get("BALLISTICS_BENCH_CACHE", Path(tempfile.gettempdir()) /
                            "ballistics-bench"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _rows_key(preset: str = "default") -> str:
    """Cache key of a study's rows: the comparison's fingerprint and its feature names."""
    import hashlib

    from ballistics.matching.breechface.features import FEATURE_NAMES
    from benchmarks.compare_bench import comparison_fingerprint

    names = hashlib.sha256(",".join(FEATURE_NAMES).encode()).hexdigest()[:6]
    return f"{comparison_fingerprint(preset)}-{names}"


def _compare_all(scans: list[Any], sources: list[str], names: list[str], study: str,
                 preset: str = "default") -> list[dict[str, Any]]:
    """Every pair of a study: features, labels, sources."""
    from ballistics.matching import compare_many
    from ballistics.matching.lr import feature_dict

    rows = []
    for i in range(len(scans) - 1):
        comps = compare_many(scans[i], scans[i + 1:], preset, device="cpu")
        for j, c in zip(range(i + 1, len(scans)), comps, strict=True):
            rows.append({"study": study, "a": names[i], "b": names[j],
                         "source_a": f"{study}:{sources[i]}", "source_b": f"{study}:{sources[j]}",
                         "same": sources[i] == sources[j], "theta_deg": c.theta_deg,
                         "features": feature_dict(c)})
    return rows


def _mirror_pairs(scans: list[Any], names: list[str], study: str, preset: str = "default"
                  ) -> list[dict[str, Any]]:
    """Every scan against the mirror image of every scan of the study (itself included):
    different-source pairs by construction, with the study's own texture."""
    import dataclasses

    from ballistics.matching import compare_many
    from ballistics.matching.lr import feature_dict

    mirrored = [dataclasses.replace(s, heights=np.ascontiguousarray(s.heights[:, ::-1]))
                for s in scans]
    rows = []
    for i, s in enumerate(scans):
        for j, c in enumerate(compare_many(s, mirrored, preset, device="cpu")):
            rows.append({"study": study, "a": names[i], "b": f"mirror of {names[j]}",
                         "source_a": f"{study}:{names[i]}",
                         "source_b": f"{study}:mirror-{names[j]}", "same": False,
                         "theta_deg": c.theta_deg, "features": feature_dict(c)})
    return rows


def _load_folder(folder: Path, processed: bool, preset: str = "default"
                 ) -> tuple[list[Any], list[str], list[str]]:
    import csv

    from ballistics.io import read_scan
    from ballistics.preprocess import prepare_for_comparison

    with open(folder / "manifest.csv", newline="") as f:
        man = list(csv.DictReader(f))
    if preset == "default":
        scans = [prepare_for_comparison(read_scan(folder / r["path"]), "default",
                                        processed=True if processed else None) for r in man]
    else:
        scans = [_prepare_as_cli(read_scan(folder / r["path"]), preset) for r in man]
    return scans, [r["firearm_id"] for r in man], [Path(r["path"]).name for r in man]


def _prepare_as_cli(scan: Any, preset: str) -> Any:
    """``scan`` prepared as ``compare --preset PRESET`` prepares it (``--preprocess auto``:
    the steps the scan is measured to still need)."""
    import warnings

    from ballistics.preprocess.detect import prepare_detected

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_detected(scan, preset, "auto")[0]


def study_weller(preset: str = "default") -> list[dict[str, Any]]:
    """The Weller pairs from the compare_bench pair log (current comparison only); when its
    rows lack a feature of the evaluated sets, or for another preset than ``"default"``,
    every pair of the first three casings of each slide (33 casings, 528 pairs) compared here
    instead."""
    from benchmarks.compare_bench import comparison_fingerprint

    if preset != "default":
        return study_weller_subset(preset=preset)
    fp = comparison_fingerprint("default")
    log = CACHE / "compare_bench_weller_default.jsonl"
    man = {r["path"]: r["firearm_id"] for r in _manifest(DATA / "weller")}
    needed = {n for _, names in _designs().values() for n in names}
    rows = []
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if r.get("comparison") != fp:
            continue
        feats = dict(r["features"])
        if not needed <= set(feats):
            return study_weller_subset()
        rows.append({"study": "weller", "a": r["a"], "b": r["b"],
                     "source_a": f"weller:{man[r['a']]}", "source_b": f"weller:{man[r['b']]}",
                     "same": bool(r["same"]), "theta_deg": r["theta_deg"], "features": feats})
    return rows


def study_weller_subset(per_slide: int = 3, preset: str = "default") -> list[dict[str, Any]]:
    """Every pair of the first ``per_slide`` casings (by file name) of each Weller slide."""
    from ballistics.io import read_scan
    from ballistics.preprocess import prepare_for_comparison

    by: dict[str, list[str]] = {}
    for r in _manifest(DATA / "weller"):
        by.setdefault(r["firearm_id"], []).append(r["path"])
    cache = _cache_dir() / f"loso-weller-subset{per_slide}-{_rows_key(preset)}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    sel = [(g, p) for g in sorted(by) for p in sorted(by[g])[:per_slide]]
    if preset == "default":
        scans = [prepare_for_comparison(read_scan(DATA / "weller" / p), "default")
                 for _, p in sel]
    else:
        scans = [_prepare_as_cli(read_scan(DATA / "weller" / p), preset) for _, p in sel]
    rows = _compare_all(scans, [g for g, _ in sel], [p for _, p in sel], "weller", preset)
    cache.write_text(json.dumps(rows, default=float))
    return rows


def _manifest(folder: Path) -> list[dict[str, str]]:
    import csv

    with open(folder / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def study_fadul(preset: str = "default") -> list[dict[str, Any]]:
    """The raw Fadul casings through the whole pipeline (the preset's preprocessing)."""
    scans, sources, names = _load_folder(DATA / "fadul_raw", processed=False, preset=preset)
    return (_compare_all(scans, sources, names, "fadul", preset)
            + _mirror_pairs(scans, names, "fadul", preset))


def study_dfsc(preset: str = "default") -> list[dict[str, Any]]:
    """The shared DFSC pair as processed by the study (read as it is)."""
    from ballistics.io import read_scan

    folder = DATA / "dfsc_pair"
    rows = [r for r in _manifest(folder) if r.get("state", "processed") == "processed"]
    scans = [read_scan(folder / r["path"]) for r in rows]
    if preset != "default":
        scans = [_prepare_as_cli(s, preset) for s in scans]
    names = [r["path"] for r in rows]
    return (_compare_all(scans, [r["firearm_id"] for r in rows], names, "dfsc", preset)
            + _mirror_pairs(scans, names, "dfsc", preset))


def study_synthetic(name: str, quick: bool, preset: str = "default") -> list[dict[str, Any]]:
    from benchmarks.data_bench import synthetic_folder

    difficulty, n_f, n_c = SYNTH[name]
    if quick:
        n_f, n_c = 3, 2
    overrides = {} if preset == "default" else {"max_rotation_deg": CMCR_MAX_ROTATION_DEG}
    folder = synthetic_folder(difficulty, _cache_dir(), n_f, n_c, **overrides)
    scans, sources, names = _load_folder(folder, processed=False, preset=preset)
    return _compare_all(scans, sources, names, name, preset)


def _evaluate(train: list[dict[str, Any]], test: list[dict[str, Any]],
              features: tuple[str, ...], fit: str = "study") -> dict[str, Any]:
    """Fit on ``train`` (``fit="study"``: :func:`~ballistics.matching.lr.fit_across_studies`;
    ``"pav"``: pooled score model + PAV) over ``features``, measure on ``test``."""
    from ballistics.matching.lr import fit_across_studies, fit_calibration

    x, y = [r["features"] for r in train], [r["same"] for r in train]
    if fit == "study":
        cal, _ = fit_across_studies(x, y, [r["study"] for r in train], features=features,
                                    source="loso")
    else:
        cal, _ = fit_calibration(x, y, [(r["source_a"], r["source_b"]) for r in train],
                                 features=features, source="loso")
    return _metrics(test, *cal.apply([r["features"] for r in test]), list(cal.lr.bounds))


def load_studies(quick: bool = False, preset: str = "default"
                 ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float]]:
    """The pair rows of every study compared with ``preset``, cached per study and
    comparison fingerprint in the benchmark cache (``$BALLISTICS_BENCH_CACHE``); Weller's
    come from compare_bench's log (default preset)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, not {preset!r}")

    studies: dict[str, list[dict[str, Any]]] = {}
    timing: dict[str, float] = {}
    for name, make in (("weller", lambda: study_weller(preset)),
                       ("fadul", lambda: study_fadul(preset)),
                       ("dfsc", lambda: study_dfsc(preset)),
                       ("synthetic-hard",
                        lambda: study_synthetic("synthetic-hard", quick, preset)),
                       ("synthetic-realistic",
                        lambda: study_synthetic("synthetic-realistic", quick, preset))):
        t = time.perf_counter()
        cache = (_cache_dir()
                 / f"loso-{name}-{_rows_key(preset)}{'-quick' if quick else ''}.json")
        if name != "weller" and cache.is_file():
            studies[name] = json.loads(cache.read_text())
        else:
            studies[name] = make()
            if name != "weller":
                cache.write_text(json.dumps(studies[name], default=float))
        timing[name] = time.perf_counter() - t
    return studies, timing


def _apply_shipped(test: list[dict[str, Any]], preset: str = "default") -> dict[str, Any]:
    """The calibration shipped with the package for ``preset`` applied to a study
    (in-sample: it was fitted on all the studies; a check of the package file)."""
    from ballistics.matching.lr import load_default

    cal = load_default(preset)
    return _metrics(test, *cal.apply([r["features"] for r in test]), list(cal.lr.bounds))


def _metrics(test: list[dict[str, Any]], scores: np.ndarray, llr: np.ndarray,
             bounds: list[float]) -> dict[str, Any]:
    from ballistics.matching.lr import auc, cllr, cllr_min, misleading_rates

    y = np.array([r["same"] for r in test], bool)
    out: dict[str, Any] = {"pairs": len(test), "same_source": int(y.sum()),
                           "log10_lr_bounds": bounds}
    if y.any() and (~y).any():
        mis = misleading_rates(llr, y)
        out.update({"auc": auc(scores, y), "cllr": cllr(llr, y), "cllr_min": cllr_min(scores, y),
                    "fnr_at_lr1": mis["ss_below_1"], "fpr_at_lr1": mis["ds_above_1"],
                    "error_at_lr1": float(((llr < 0) == y).mean())})
    if len(test) <= 12:
        out["pairs_lr"] = [{"a": r["a"], "b": r["b"], "same": r["same"],
                            "theta_deg": r["theta_deg"], "score": float(sc),
                            "log10_lr": float(v)} for r, sc, v in zip(test, scores, llr,
                                                                      strict=True)]
    return out


REALISM_FEATURES = ("ncc_at_pose", "cmc_fraction", "cluster_fraction", "ccf_max")


def realism_figure(studies: dict[str, list[dict[str, Any]]], path: Path,
                   preset: str = "default") -> None:
    """Same- and different-source distributions of a few features, study by study: how the
    synthetic levels compare with the real studies (the DFSC pair is the hard real case)."""
    from matplotlib.figure import Figure

    names = [k for k, v in studies.items() if v]
    fig = Figure(figsize=(3.2 * len(REALISM_FEATURES), 3.6), layout="constrained")
    axes = fig.subplots(1, len(REALISM_FEATURES))
    for ax, feat in zip(axes, REALISM_FEATURES, strict=True):
        for k, name in enumerate(names):
            for same, colour, off in ((False, "tab:blue", -0.15), (True, "tab:red", 0.15)):
                v = np.array([r["features"].get(feat, np.nan) for r in studies[name]
                              if r["same"] == same], float)
                v = v[np.isfinite(v)]
                if v.size == 0:
                    continue
                jitter = np.random.default_rng(k).uniform(-0.08, 0.08, v.size)
                ax.scatter(k + off + jitter, v, s=6, color=colour, alpha=0.5,
                           label=("same source" if same else "different source") if k == 0
                           else None)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(feat, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Leave-one-study-out studies: features of same- and different-source pairs "
                 f"({preset} preset; DFSC and Fadul different sources: mirror surrogates)",
                 fontsize=9)
    fig.savefig(path, dpi=100)


def run(quick: bool = False, out_dir: Path = Path("benchmarks/results"),
        preset: str = "default") -> dict[str, Any]:
    """Leave each study out in turn; see the module docstring. ``preset``: the compare
    preset of every pair (results in ``loso_bench.json``, or ``loso_bench_<preset>.json``)."""
    t0 = time.perf_counter()
    studies, timing = load_studies(quick, preset)
    res: dict[str, Any] = {"preset": preset, "data": {k: {"pairs": len(v),
                                        "same_source": int(sum(r["same"] for r in v)),
                                        "seconds": round(timing[k], 1)}
                                    for k, v in studies.items()}}
    if not studies["weller"]:
        res["note"] = ("the Weller pair log holds no rows of the current comparison; run "
                       "`python -m benchmarks accuracy --only compare_bench --set "
                       "sections=weller` first")
    designs = {k: (fit, names, False) for k, (fit, names) in _designs().items()}
    fit, names = _designs()["study_weighted"]
    designs["study_weighted_no_self_mirrors"] = (fit, names, True)
    for design, (fit, names, drop) in designs.items():
        use = {k: [r for r in v if not (drop and is_self_mirror(r))] for k, v in studies.items()}
        block = {}
        for held in use:
            train = [r for k, v in use.items() if k != held for r in v]
            if not use[held] or not any(r["same"] for r in train):
                continue
            block[held] = _evaluate(train, use[held], names, fit)
        res[design] = {"fit": fit, "names": list(names), "held_out": block}
    res["shipped_default_in_sample"] = {k: _apply_shipped(v, preset)
                                        for k, v in studies.items() if v}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if preset == "default" else f"_{preset}"
    realism_figure(studies, out_dir / f"loso_realism{suffix}.png", preset)
    res["figure"] = f"loso_realism{suffix}.png"
    (out_dir / f"loso_bench{suffix}.json").write_text(
        json.dumps(res, indent=1, default=float) + "\n")
    return res


__all__ = ["run"]
