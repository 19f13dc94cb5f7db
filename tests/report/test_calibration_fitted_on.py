"""Reports say what a collection's own calibration was fitted on (trial 2: the search
report's "fitted on" read "–" and compare's calibration line "...(default preset): –")."""

from __future__ import annotations

from ballistics.report.document import calibration_data
from ballistics.report.search import _calibration_rows

# the ``fitted`` object of ``ballistics calibrate --collection lab_img`` (keys as written)
COLLECTION_FITTED = {
    "collection": "lab_img", "generation": 6, "source_column": "firearm_id",
    "compare_preset": "default", "pairs": 45, "seed": 0,
    "sampling": {"method": "stratified", "same_source": {"chosen": 8, "available": 8},
                 "different_source": {"chosen": 37, "available": 37}},
}


def test_collection_calibration_is_named_with_its_pairs() -> None:
    text = calibration_data(COLLECTION_FITTED)
    assert text == ("collection lab_img (generation 6), 45 pairs (8 same source), "
                    "sources by firearm_id")
    rows = dict(_calibration_rows({"source": "collection", "fitted": COLLECTION_FITTED,
                                   "metrics": {"cllr": 0.55},
                                   "log10_lr_bounds": [-0.95, 1.58]}))
    assert rows["fitted on"] == text


def test_shipped_calibration_keeps_its_data_text() -> None:
    assert calibration_data({"data": "weller 528 pairs"}) == "weller 528 pairs"
    assert calibration_data({}) == "–"
