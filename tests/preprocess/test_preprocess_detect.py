"""Detection of the preprocessing a scan already had (segment, level, filter, resample), on
synthetic casings run through each kind of processing, and on the real files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage as ndi

from ballistics.errors import ParameterError
from ballistics.preprocess import (
    DetectParams,
    ResampleParams,
    detect_preprocessing,
    get_preset,
    level,
    prepare_detected,
    prepare_for_comparison,
)
from ballistics.scan import Scan


def _gauss_nan(z: np.ndarray, sigma_px: float) -> np.ndarray:
    """Normalised-convolution Gaussian (scipy), written independently of the toolkit."""
    v = np.isfinite(z)
    a = ndi.gaussian_filter(np.where(v, z, 0.0), sigma_px)
    w = ndi.gaussian_filter(v.astype(float), sigma_px)
    return np.where(v, a / np.maximum(w, 1e-6), np.nan)


@pytest.fixture(scope="module")
def variants():
    """A raw synthetic casing (6.25 µm) and the same surface after each kind of processing
    (the masked ones with waviness, as real unfiltered breech faces have)."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for

    p = params_for("realistic", spacing_um=6.25)
    c = fire(make_firearm("D1", 31, p), 2, p, modality="topography")
    raw = c.scan
    sp = raw.spacing_um
    # an unfiltered breech face carries waviness beyond the 400 µm cut-off (primer
    # deformation); the synthetic texture lies inside the band, so add some (sd 3 µm)
    wave = ndi.gaussian_filter(np.random.default_rng(5).standard_normal(raw.shape), 200 / sp[0])
    wave *= 3.0 / wave[c.mask].std()
    masked = np.where(c.mask, raw.heights + wave, np.nan)
    lev = level(masked, sp, "sphere_robust")[0]
    # cmcR-like: plane removed, Gaussian band-pass 16-500 µm (ISO sigma = 0.1874 x cut-off)
    plane = level(masked, sp, "plane")[0].astype(np.float64)
    hp = plane - _gauss_nan(plane, 0.1874 * 500 / sp[0])
    bp = _gauss_nan(hp, 0.1874 * 16 / sp[0]).astype(np.float32)
    return {
        "raw": raw,
        "levelled_only": Scan(level(raw.heights, sp, "sphere_robust")[0], sp),
        "masked_only": Scan(masked.astype(np.float32), sp),
        "masked_levelled": Scan(lev, sp),
        "cmcR_like": Scan(bp, sp),
    }


def _needed(det) -> dict[str, bool]:
    return {d.step: d.needed for d in det.decisions}


def test_raw_casing_needs_every_step(variants):
    det = detect_preprocessing(variants["raw"])
    assert det.state == "raw" and det.source == "measured"
    assert det.facts["relief_um"] > 20  # firing-pin crater and primer roll-off
    # a scan levelled but not cut to the breech face still gets the whole chain
    assert detect_preprocessing(variants["levelled_only"]).state == "raw"


def test_masked_scans_need_level_and_filter(variants):
    only = detect_preprocessing(variants["masked_only"])
    assert _needed(only) == {"segment": False, "level": True, "filter": True,
                             "resample": False}
    both = detect_preprocessing(variants["masked_levelled"])
    assert _needed(both) == {"segment": False, "level": False, "filter": True,
                             "resample": False}
    assert both.state == "partial"
    assert both.facts["long_share"] > DetectParams().max_long_share


def test_band_passed_scan_is_processed(variants):
    det = detect_preprocessing(variants["cmcR_like"])
    assert det.state == "processed", det.to_dict()
    assert det.facts["long_share"] < 0.3 and det.facts["center_valid_fraction"] < 0.1


def test_resample_decision_follows_the_target_spacing(variants):
    s = variants["cmcR_like"]
    coarse = get_preset("default").replace(resample=ResampleParams(spacing_um=12.5))
    fine = get_preset("default").replace(resample=ResampleParams(spacing_um=3.125))
    assert _needed(detect_preprocessing(s, coarse))["resample"] is True
    kept = detect_preprocessing(s, fine)
    assert _needed(kept)["resample"] is False
    assert "coarser" in kept.decisions[-1].evidence


def test_implausible_units_warn(variants):
    s = variants["cmcR_like"]
    det = detect_preprocessing(s.replace(heights=s.heights * 1e-6))  # metres read as µm
    assert det.warnings and "units" in det.warnings[0]
    assert not detect_preprocessing(s).warnings


def test_provenance_and_images(variants):
    processed = prepare_for_comparison(variants["raw"])
    det = detect_preprocessing(processed)
    assert det.source == "provenance" and det.state == "processed"
    img = Scan(np.ones((50, 50), np.float32), (5.0, 5.0), modality="image")
    assert detect_preprocessing(img).state == "raw"


def test_prepare_detected_modes(variants):
    s = variants["cmcR_like"]
    with pytest.warns(UserWarning, match="preprocessing detected"):
        out, det = prepare_detected(s, "default", "auto")
    assert det.state == "processed"
    # used as it is but for its margins of missing points (the bounding-box crop)
    from ballistics.preprocess import crop_to_mask

    assert np.array_equal(out.heights, crop_to_mask(s).heights, equal_nan=True)
    assert [st["name"] for st in out.provenance] == ["crop"] and out.warnings
    forced, fdet = prepare_detected(variants["raw"], "default", "processed")
    assert fdet.source == "forced" and fdet.state == "processed"
    assert any("forced" in w for w in fdet.warnings)  # the measurement disagrees
    assert np.array_equal(forced.heights, variants["raw"].heights, equal_nan=True)
    with pytest.raises(ParameterError):
        prepare_detected(s, "default", "fancy")


def test_partial_chain_runs_only_missing_steps(variants):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, det = prepare_detected(variants["masked_levelled"], "default", "auto")
    assert det.state == "partial"
    steps = {st["name"]: st for st in out.provenance}
    assert steps["segment"]["params"]["method"] == "none"
    assert steps["level"]["params"]["method"] == "none"
    assert "bandpass" in steps and "resample" not in steps
    # the band-passed result no longer needs filtering
    assert detect_preprocessing(out.replace(provenance=())).state == "processed"


def test_auto_raw_equals_explicit_raw(variants):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, det = prepare_detected(variants["raw"], "default", "auto")
        ref = prepare_for_comparison(variants["raw"], "default", processed=False)
    assert det.state == "raw" and not det.warnings
    assert np.array_equal(out.heights, ref.heights, equal_nan=True)


# --- the real files: classified correctly, auto = the correct explicit mode ----------------
REAL = {
    "fadul1-1_processed.x3p": "processed",
    "fadul1-2_processed.x3p": "processed",
    "fadul_raw/fadul1-1_raw.x3p": "raw",
    "fadul_raw/fadul1-2_raw.x3p": "raw",
    "fadul_raw/fadul2-1_raw.x3p": "raw",
    "dfsc_pair/K013sA1.x3p": "processed",
    "dfsc_pair/K013sA2.x3p": "processed",
    "dfsc_pair/K013sA1_raw.x3p": "raw",
    "dfsc_pair/K013sA2_raw.x3p": "raw",
    **{f"weller/TW{k:02d}-01.x3p": "processed" for k in range(1, 12)},
}


def _read(path):
    from ballistics.io import read_scan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_scan(path)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files_classified(real_data, name):
    path = real_data / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    for preset in ("default", "cmcR"):
        det = detect_preprocessing(_read(path), preset)
        assert det.state == REAL[name], (preset, det.to_dict())


@pytest.mark.parametrize(("name", "preset"), [("fadul1-1_processed.x3p", "cmcR"),
                                              ("dfsc_pair/K013sA2_raw.x3p", "default")])
def test_real_auto_equals_correct_mode(real_data, name, preset):
    path = real_data / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    scan = _read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto, _ = prepare_detected(scan, preset, "auto")
        explicit = prepare_for_comparison(scan, preset, processed=REAL[name] == "processed")
    assert auto.spacing_um == explicit.spacing_um
    assert np.array_equal(auto.heights, explicit.heights, equal_nan=True)


def test_unfit_scan_with_implausible_units_says_so(variants):
    """Heights in nm written as µm fail the noise verdict: the error names the units, which
    the CLI's one-line error would otherwise hide behind a noise figure."""
    from ballistics.errors import UnfitScanError

    s = variants["masked_only"]
    nm = s.replace(heights=s.heights * 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UnfitScanError, match="exceeds 2 µm; the heights span .* units"):
            prepare_detected(nm, "default", "auto")
        # forced "processed": no noise verdict, so no error, but the warning stays on it
        forced, _ = prepare_detected(nm, "default", "processed")
    assert any("check the file's units" in w for w in forced.warnings)


def test_chain_mismatch_names_the_input_filtered_elsewhere(variants):
    """One input band-passed elsewhere, the other here from a raw scan: a caveat naming
    which is which; two inputs of the same kind (or this toolkit's own output): none."""
    from ballistics.preprocess import chain_mismatch

    raw = detect_preprocessing(variants["raw"])
    elsewhere = detect_preprocessing(variants["cmcR_like"])
    partial = detect_preprocessing(variants["masked_levelled"])     # filter still needed
    ours = detect_preprocessing(prepare_for_comparison(variants["raw"]))
    note = chain_mismatch(elsewhere, raw)
    assert note is not None and note.startswith("the reference was filtered elsewhere")
    assert "the target by this toolkit" in note
    assert chain_mismatch(raw, elsewhere).startswith("the target was filtered elsewhere")
    assert chain_mismatch(ours, elsewhere) is not None
    for a, b in ((raw, raw), (elsewhere, elsewhere), (raw, partial), (ours, raw)):
        assert chain_mismatch(a, b) is None


def test_compare_shows_the_chain_mismatch_beside_the_lr(variants, tmp_path):
    """compare of a scan band-passed elsewhere against a raw one: the caveat qualifies the
    score and LR, so it is among the LR caveats the report shows in red beside the LR."""
    import json

    from ballistics.cli import main
    from ballistics.io import write_x3p
    from tests.clirunner import CliRunner

    a, b = tmp_path / "elsewhere.x3p", tmp_path / "raw.x3p"
    write_x3p(variants["cmcR_like"], a)
    write_x3p(variants["raw"], b)
    report = tmp_path / "r.html"
    r = CliRunner().invoke(main, ["compare", str(a), str(b), "--json", "--quiet",
                                  "--report", str(report)])
    assert r.exit_code == 0, r.output
    [w] = [m for m in json.loads(r.stdout)["warnings"] if "processing chains" in m]
    assert w.startswith("the reference was filtered elsewhere")
    assert w.endswith("the score and LR are indicative only")
    assert "the score and LR are indicative only." in report.read_text()  # the red line


def test_report_rows_of_a_raw_scan_name_the_verb_once(variants):
    """The report's Inputs read "applied: applied with segmentation: ..." for level, filter
    and resample of every raw scan (trial 4): the evidence repeated the verb that the table
    writes before it."""
    from ballistics.report.document import inputs_table

    det = detect_preprocessing(variants["raw"])
    assert all(d.needed for d in det.decisions)
    rows = inputs_table([("Q1", "Q1.x3p", variants["raw"])], detected=[det.to_dict()]).rows
    steps = {item.strip(): value for _, item, value in rows
             if item.strip() in ("segment", "level", "filter", "resample")}
    assert set(steps) == {"segment", "level", "filter", "resample"}
    for step, value in steps.items():
        assert value.startswith("applied: ") and "applied" not in value[len("applied: "):], \
            (step, value)
    assert "not cut to the breech face" in steps["level"]
