"""Build the shipped default calibration (``ballistics/matching/lr/data``).

Developer tool, not a harness part: ``python -m benchmarks.default_calibration [--write]``.
Fits :func:`ballistics.matching.lr.fit_across_studies` over
:data:`ballistics.matching.lr.DEFAULT_SCORE_FEATURES` on the pair rows of every
leave-one-study-out study (``benchmarks/loso_bench.py``: Weller, raw Fadul and the DFSC pair
with their mirror surrogates, synthetic hard and realistic; the default comparison), every
study weighing the same. Prints the leave-one-study-out metrics; ``--write`` replaces the
package file (the ``source`` stays ``synthetic-default``, the flag of the shipped default in
the CLI's JSON).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PACKAGE_FILE = (Path(__file__).resolve().parents[1] / "ballistics" / "matching" / "lr" / "data"
                / "calibration_synthetic.json")


def build() -> Any:
    """The default calibration fitted on the studies of ``loso_bench``."""
    from ballistics.matching.lr import DEFAULT_SCORE_FEATURES, fit_across_studies
    from benchmarks.loso_bench import load_studies, study_description

    studies, _ = load_studies()
    rows = [r for v in studies.values() for r in v]
    cal, _ = fit_across_studies(
        [r["features"] for r in rows], [r["same"] for r in rows], [r["study"] for r in rows],
        features=DEFAULT_SCORE_FEATURES, source="synthetic-default",
        fitted={"data": study_description(studies), "compare_preset": "default",
                "preprocess_preset": "default", "pairs": len(rows),
                "weights": "every study the same within each class",
                "built_by": "python -m benchmarks.default_calibration --write"})
    return cal


def main(argv: list[str]) -> None:
    cal = build()
    print(json.dumps(cal.metrics, indent=1, default=float))
    if "--write" in argv:
        cal.save(PACKAGE_FILE)
        print(f"written {PACKAGE_FILE}")


if __name__ == "__main__":
    main(sys.argv[1:])
