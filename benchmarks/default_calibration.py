"""Build the shipped default calibration (``ballistics/matching/lr/data``).

Developer tool, not a harness part:
``python -m benchmarks.default_calibration [--preset default|cmcR] [--write]``.
Fits :func:`ballistics.matching.lr.fit_across_studies` over
:data:`ballistics.matching.lr.DEFAULT_SCORE_FEATURES` on the pair rows of every
leave-one-study-out study (``benchmarks/loso_bench.py``: Weller, raw Fadul and the DFSC pair
with their mirror surrogates, synthetic hard and realistic) compared with the preset, every
study weighing the same. Prints the leave-one-study-out metrics; ``--write`` replaces the
preset's package file (:data:`ballistics.matching.lr.DEFAULT_FILES`; the ``source`` stays
``synthetic-default``, the flag of the shipped calibrations in the CLI's JSON).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parents[1] / "ballistics" / "matching" / "lr" / "data"


def package_file(preset: str = "default") -> Path:
    """The package file of the shipped calibration of ``preset``."""
    from ballistics.matching.lr import DEFAULT_FILES

    return DATA_DIR / DEFAULT_FILES[preset]


def build(preset: str = "default") -> Any:
    """The shipped calibration of ``preset`` fitted on the studies of ``loso_bench``."""
    from ballistics.matching.lr import DEFAULT_SCORE_FEATURES, fit_across_studies
    from benchmarks.loso_bench import CMCR_MAX_ROTATION_DEG, load_studies, study_description

    studies, _ = load_studies(preset=preset)
    rows = [r for v in studies.values() for r in v]
    fitted = {"data": study_description(studies), "compare_preset": preset,
              "preprocess_preset": preset, "pairs": len(rows),
              "weights": "every study the same within each class",
              "built_by": "python -m benchmarks.default_calibration"
                          + ("" if preset == "default" else f" --preset {preset}")
                          + " --write"}
    if preset != "default":
        fitted["synthetic_max_rotation_deg"] = CMCR_MAX_ROTATION_DEG
    cal, _ = fit_across_studies(
        [r["features"] for r in rows], [r["same"] for r in rows], [r["study"] for r in rows],
        features=DEFAULT_SCORE_FEATURES, source="synthetic-default", fitted=fitted)
    return cal


def main(argv: list[str]) -> None:
    preset = argv[argv.index("--preset") + 1] if "--preset" in argv else "default"
    cal = build(preset)
    print(json.dumps(cal.metrics, indent=1, default=float))
    if "--write" in argv:
        cal.save(package_file(preset))
        print(f"written {package_file(preset)}")


if __name__ == "__main__":
    main(sys.argv[1:])
