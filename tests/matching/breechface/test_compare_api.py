"""compare / compare_many on small synthetic pairs: scores, JSON, bad input, devices."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ballistics.errors import EmptyScanError, ModalityMismatchError, ParameterError
from ballistics.jsonutil import dumps
from ballistics.matching import CompareParams, compare, compare_many, get_params
from ballistics.matching.breechface.features import FEATURE_NAMES
from ballistics.matching.breechface.params import parse_rotation
from ballistics.scan import Scan

SMALL = CompareParams(grid=(4, 4), rotation="grid", theta_min_deg=-9, theta_max_deg=3,
                      theta_step_deg=3, search="exact", min_valid_cells=4)


@pytest.fixture(scope="module")
def same_and_other(small_pair):
    ref, same, other = small_pair
    return compare(ref, same, SMALL, device="cpu"), compare(ref, other, SMALL, device="cpu")


def test_same_source_scores_above_different_source(same_and_other):
    s, d = same_and_other
    assert s.cmc_count >= 8 and d.cmc_count <= 3
    assert s.cmc_count_combined > d.cmc_count_combined
    assert s.ccf_max > d.ccf_max + 0.3
    # the target is the reference turned by 4 degrees clockwise as displayed (scipy's -4):
    # cmcR's convention (clockwise positive) turns it back by about -4
    assert abs(s.theta_deg - (-4.0)) <= 3.0


def test_to_dict_is_json_with_the_documented_keys(same_and_other):
    d = same_and_other[0].to_dict()
    text = dumps(d)
    back = json.loads(text)
    for key in ("reference", "target", "cmc_count", "cmc_count_high", "cmc_count_combined",
                "theta_deg", "dx_um", "dy_um", "ccf_max", "cells", "features", "params",
                "version", "warnings"):
        assert key in back
    assert back["reference"]["path"] == "ref"
    assert len(back["cells"]) == 16
    cell = back["cells"][0]
    assert cell["index"] == [1, 1]
    for key in ("dx_um", "dy_um", "theta_deg", "corr", "is_cmc"):
        assert key in cell
    assert sum(c["is_cmc"] for c in back["cells"]) == back["cmc_count"]
    assert set(FEATURE_NAMES) == set(back["features"])


def test_compare_many_matches_compare(small_pair, same_and_other):
    ref, same, other = small_pair
    many = compare_many(ref, [same, other], SMALL, device="cpu")
    for a, b in zip(many, same_and_other, strict=True):
        assert a.cmc_count == b.cmc_count
        assert a.cmc_count_combined == b.cmc_count_combined
        assert a.features["cell_corr_mean"] == pytest.approx(b.features["cell_corr_mean"])


def test_compare_many_on_worker_processes_equals_the_serial_run(small_pair):
    """workers=2 forks two one-thread processes; same comparisons, same order, warnings kept."""
    ref, same, other = small_pair
    cands = [same, other, same, other, same]
    serial = compare_many(ref, cands, SMALL, device="cpu")
    seen = []
    par = compare_many(ref, cands, SMALL, device="cpu", workers=2,
                       callback=lambda i, c: seen.append(i))
    assert seen == list(range(len(cands)))
    assert [c.cmc_count for c in par] == [c.cmc_count for c in serial]
    assert [c.cmc_count_combined for c in par] == [c.cmc_count_combined for c in serial]
    assert par[0].cmc_count > par[1].cmc_count
    for a, b in zip(serial, par, strict=True):
        assert a.theta_deg == b.theta_deg
        assert a.ccf_max == pytest.approx(b.ccf_max, abs=1e-6)
    with pytest.raises(ParameterError):
        compare_many(ref, cands, SMALL, device="cpu", workers=-1)


def test_progress_callback_chunks_change_no_comparison(small_pair, monkeypatch):
    """With a callback the candidates go to the workers in smaller chunks (here one each,
    8 chunks instead of 6): the same comparisons, in the same order."""
    from ballistics.matching.breechface import _parallel

    ref, same, other = small_pair
    cands = [same, other] * 4
    plain = compare_many(ref, cands, SMALL, device="cpu", workers=2)
    monkeypatch.setattr(_parallel, "CALLBACK_CHUNK", 1)
    seen: list[int] = []
    fine = compare_many(ref, cands, SMALL, device="cpu", workers=2,
                        callback=lambda i, c: seen.append(i))
    assert seen == list(range(len(cands)))
    for a, b in zip(plain, fine, strict=True):
        assert (a.cmc_count, a.cmc_count_combined, a.theta_deg) == \
            (b.cmc_count, b.cmc_count_combined, b.theta_deg)
        np.testing.assert_equal(a.features, b.features)  # NaN == NaN here


def test_different_spacing_is_resampled_with_a_warning(small_pair):
    ref, same, _ = small_pair
    fine = Scan(np.repeat(np.repeat(same.heights, 2, 0), 2, 1), (3.125, 3.125))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        out = compare(ref, fine, SMALL, device="cpu")
    assert any("resampled" in w for w in out.warnings)
    assert out.cmc_count >= 6


def test_modality_mismatch_and_empty_scans(small_pair):
    ref, same, _ = small_pair
    img = Scan(same.heights, same.spacing_um, modality="image")
    with pytest.raises(ModalityMismatchError, match="cannot compare a topography .* with an "
                       "image"):
        compare(ref, img, SMALL, device="cpu")
    with pytest.raises(ModalityMismatchError, match="cannot compare an image .* with a "
                       "topography"):
        compare(img, ref, SMALL, device="cpu")
    with pytest.raises(EmptyScanError):
        compare(ref, Scan(np.full((40, 30), np.nan, np.float32), (6.25, 6.25)), SMALL,
                device="cpu")


def test_too_few_valid_cells_gives_a_warning_not_a_crash(small_pair):
    ref, same, _ = small_pair
    h = np.array(same.heights)
    h[:, 30:] = np.nan  # most of the target is missing
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        out = compare(ref, Scan(h, same.spacing_um), SMALL.replace(min_valid_cells=10),
                      device="cpu")
    assert any("cells could be compared" in w for w in out.warnings)
    assert out.cmc_count >= 0 and np.isfinite(out.theta_deg)


def test_params_validation_and_presets():
    assert get_params("cmcR").rotation == "grid" and get_params("cmcr").search == "exact"
    assert get_params("cmcR").grid_angles()[:3] == [-30.0, -27.0, -24.0]
    assert len(get_params("cmcR").grid_angles()) == 21
    assert get_params("default").rotation == "full"
    assert parse_rotation("-6,6,3", get_params("default")).grid_angles() == [-6, -3, 0, 3, 6]
    assert parse_rotation("full", get_params("cmcR")).rotation == "full"
    for bad in ({"tcorr": 2.0}, {"grid": (0, 8)}, {"max_missing": 1.0}, {"search": "x"},
                {"theta_step_deg": 0}):
        with pytest.raises(ParameterError):
            CompareParams(**bad)
    with pytest.raises(ParameterError):
        parse_rotation("1,2", get_params("default"))
    with pytest.raises(ParameterError):
        get_params("nope")


def test_devices_agree(small_pair, device):
    ref, same, _ = small_pair
    out = compare(ref, same, SMALL.replace(search="pyramid"), device=device)
    cpu = compare(ref, same, SMALL.replace(search="pyramid"), device="cpu")
    assert out.cmc_count == cpu.cmc_count
    assert out.theta_deg == cpu.theta_deg


def test_stage_callback_reports_the_stages_in_order_and_changes_nothing(small_pair,
                                                                       same_and_other):
    from ballistics.matching.breechface.comparison import STAGES

    ref, same, _ = small_pair
    seen: list[str] = []
    c = compare(ref, same, SMALL, device="cpu", stage=seen.append)
    assert seen == list(STAGES)
    base = same_and_other[0]
    assert (c.cmc_count, c.cmc_count_combined, c.theta_deg, c.dx_um, c.ccf_max) == \
        (base.cmc_count, base.cmc_count_combined, base.theta_deg, base.dx_um, base.ccf_max)
    np.testing.assert_equal(c.features, base.features)


@pytest.mark.parametrize(("spec", "says"), [
    ("30,-30,3", "rotation 30,-30,3: MIN (30) is above MAX (-30); give MIN,MAX,STEP in degrees"),
    ((30, -30, 3), "rotation (30, -30, 3): MIN (30) is above MAX (-30)"),
    ("0,30,0", "rotation 0,30,0: STEP (0) must be above 0 and at most 90 degrees"),
    ("-400,0,3", "rotation -400,0,3: MIN (-400) and MAX (0) must lie within -360..360"),
    ("1,2", "rotation 1,2: give 'full' or MIN,MAX,STEP in degrees"),
    ("nan,1,1", "MIN, MAX and STEP must be finite"),
])
def test_parse_rotation_says_what_is_wrong_in_the_values_own_terms(spec, says):
    """``30,-30,3`` said "theta_max_deg must be in [30, 360]": a field name the user never
    gave. The message names the value as given and which of MIN, MAX, STEP is wrong."""
    with pytest.raises(ParameterError) as err:
        parse_rotation(spec, get_params("default"))
    assert says in err.value.message and "theta_" not in err.value.message
    with pytest.raises(ParameterError) as err:
        parse_rotation(spec, get_params("default"), name="--rotation")
    assert err.value.message.startswith("--rotation ")
    # the limits themselves are accepted
    assert parse_rotation("-30,-30,90", get_params("default")).grid_angles() == [-30.0]
    assert parse_rotation("-360,360,90", get_params("default")).rotation == "grid"


def test_margins_of_missing_points_of_a_file_processed_elsewhere_are_trimmed(small_pair):
    """An export framed with wide margins of missing points (a field of view not centred on
    the primer, a scan turned by its exporter into a larger array) puts the breech faces'
    centres apart by more than the cells' search range; `prepare_for_comparison` trims them."""
    from ballistics.preprocess import crop_to_mask, prepare_for_comparison

    sp = (12.5, 12.5)                          # 1.65 x 1.45 mm: enough area to be fit
    ref, same = (Scan(s.heights, sp, source=s.source) for s in small_pair[:2])
    padded = np.full((same.shape[0] + 60, same.shape[1] + 40), np.nan, np.float32)
    padded[60:, 40:] = same.heights           # margins on two sides only: centre moved
    wide = Scan(padded, sp, source="wide")
    as_is = compare(ref, wide, SMALL, device="cpu")
    trimmed = prepare_for_comparison(wide, processed=True)
    assert [s["name"] for s in trimmed.provenance] == ["crop"]
    assert not np.isnan(trimmed.heights[[0, -1], :]).all(axis=1).any()
    out = compare(ref, trimmed, SMALL, device="cpu")
    base = compare(ref, crop_to_mask(same), SMALL, device="cpu")   # the same, unpadded
    assert as_is.cmc_count <= 3                # the cells search the wrong place
    assert out.cmc_count == base.cmc_count >= 8
    assert (out.theta_deg, out.dx_um, out.dy_um) == (base.theta_deg, base.dx_um, base.dy_um)
    # a scan that fills its bounding box, or nearly (a margin of one row and column, as
    # a decimated export has), is returned as it is; ours is never cropped again
    edge = np.pad(trimmed.heights, ((0, 1), (1, 0)), constant_values=np.nan)
    for h in (trimmed.heights, edge):
        kept = prepare_for_comparison(Scan(h, sp), processed=True)
        assert kept.provenance == () and np.array_equal(kept.heights, h, equal_nan=True)
    assert prepare_for_comparison(trimmed, processed=True) is trimmed


def test_heights_in_another_unit_give_a_warning(small_pair):
    """A target in nm (or mm) read as µm: the correlations do not see the scale, the
    preprocessing of a raw scan does; the comparison says so. A spread of a few times, as
    between breech faces, says nothing."""
    ref, same, _ = small_pair
    for factor, warned in ((1000.0, True), (1e-3, True), (3.0, False)):
        scaled = same.replace(heights=same.heights * np.float32(factor))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = compare(ref, scaled, SMALL, device="cpu")
        notes = [w for w in out.warnings if "differ in scale" in w]
        assert bool(notes) is warned, (factor, out.warnings)
        assert all("check both files' height units" in w for w in notes)
        assert out.cmc_count >= 8   # the counts themselves do not depend on the scale
