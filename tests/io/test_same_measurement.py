"""``same_measurement``: two scans of one measurement (the same file, or two exports of one
measurement) are named, so that their comparison is not read as one of two casings."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics.io import same_measurement
from ballistics.scan import Scan

CADRE = {"manufacturer": "Cadre", "model": "TopMatch-GS 3D", "serial": "1062"}
WHEN = "2021-08-25T14:54:04"


def _scan(source: str, sha: str, date: object = WHEN, instrument: object = None) -> Scan:
    md = {"date": date, "instrument": CADRE if instrument is None else instrument}
    return Scan(np.zeros((8, 8), np.float32), (7.4, 7.4), metadata=md, sha256=sha,
                source=source)


def test_raw_export_and_a_processed_copy_are_one_measurement():
    """The DFSC pair's raw export and the copy processed elsewhere carry the instrument's
    serial and the measurement's time: the same casing twice (trial 4: LR at the upper
    bound, "moderately strong support for same source")."""
    msg = same_measurement(_scan("Q1.x3p", "a" * 64), _scan("X1.x3p", "b" * 64))
    assert msg is not None
    assert msg.startswith("Q1.x3p and X1.x3p record one measurement (Cadre TopMatch-GS 3D "
                          "serial 1062, 2021-08-25T14:54:04)")
    assert "not two casings" in msg


def test_the_same_file_twice():
    msg = same_measurement(_scan("Q3.x3p", "c" * 64, date=None, instrument={}),
                           _scan("copy/Q3.x3p", "c" * 64, date=None, instrument={}))
    assert msg is not None and "are the same file (SHA-256 cccccccccccccccc...)" in msg


@pytest.mark.parametrize("other", [
    {"date": "2021-08-25T14:54:05"},                             # another second
    {"instrument": {**CADRE, "serial": "1063"}},                 # another instrument
    {"instrument": {**CADRE, "model": "TopMatch-HD"}},           # another model
])
def test_other_measurements(other):
    assert same_measurement(_scan("A.x3p", "a" * 64), _scan("B.x3p", "b" * 64, **other)) is None


@pytest.mark.parametrize("kwargs", [
    {"instrument": {**CADRE, "serial": "not available"}},  # the Fadul files: no serial
    {"instrument": {**CADRE, "serial": ""}},
    {"instrument": {"manufacturer": "Cadre", "model": "TopMatch-GS 3D"}},
    {"date": "2011-01-24"},                                # a date without a time of day
    {"date": "1970-01-01T00:00:00Z"},                      # a writer's unknown date
    {"date": None},
])
def test_no_serial_or_no_time_identifies_no_measurement(kwargs):
    """Files that cannot name their measurement are never called one: the raw Fadul scans
    of two casings record the same date and 'not available' as serial."""
    a, b = _scan("A.x3p", "a" * 64, **kwargs), _scan("B.x3p", "b" * 64, **kwargs)
    assert same_measurement(a, b) is None
