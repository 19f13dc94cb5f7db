"""The pipeline: presets, provenance, geometry bookkeeping, quality verdict, cmcR parity,
processed real scans, prepare_for_comparison."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ballistics.errors import ParameterError, UnfitScanError
from ballistics.preprocess import (
    PRESETS,
    FilterParams,
    PreprocessParams,
    QualityParams,
    get_preset,
    noise_level,
    prepare_for_comparison,
    preprocess,
)
from ballistics.scan import Scan


@pytest.fixture(scope="module")
def casing():
    from ballistics.datasets.synthetic import fire, make_firearm, params_for

    p = params_for("realistic", spacing_um=6.25, field_um=(4480.0, 4800.0))  # non-square
    return fire(make_firearm("P1", 21, p), 4, p, modality="both")


def test_presets():
    assert set(PRESETS) >= {"default", "cmcR"}
    assert get_preset("cmcR").filter.convention == "cmcR"
    assert get_preset("cmcR").filter.long_um == 500 and get_preset("cmcR").filter.short_um == 16
    assert get_preset("default").resample.spacing_um == 6.25
    with pytest.raises(ParameterError, match="unknown preset"):
        get_preset("fancy")
    with pytest.raises(ParameterError, match="short_um"):
        FilterParams(short_um=600.0, long_um=500.0)
    with pytest.raises(ParameterError, match="despike"):
        PreprocessParams(despike_sigma=1.0)


def test_default_pipeline_provenance_and_geometry(casing):
    res = preprocess(casing.scan)
    s = res.scan
    assert s.is_processed and s.spacing_um == (6.25, 6.25)
    last = s.provenance[-1]
    assert last["name"] == "preprocess" and last["fitted"]["preset"] == "default"
    assert last["fitted"]["primer"]["radius_um"] == pytest.approx(2200, abs=40)
    assert all(step["version"] for step in s.provenance)
    names = [st["name"] for st in res.steps]
    assert names[0] == "segment" and names[-1] == "preprocess"
    assert {"level", "resample", "bandpass", "crop"} <= set(names)
    # centred: the primer centre (input frame) maps onto the output's centre
    cy = (res.primer.center_um[0] - res.first_point_um[0]) / s.spacing_um[0]
    cx = (res.primer.center_um[1] - res.first_point_um[1]) / s.spacing_um[1]
    assert cy == pytest.approx((s.shape[0] - 1) / 2, abs=1.0)
    assert cx == pytest.approx((s.shape[1] - 1) / 2, abs=1.0)
    # band-passed: zero mean, no form; breech-face area as the truth mask
    v = s.heights[s.valid]
    assert abs(float(np.median(v))) < 0.1 and float(np.std(v)) < 3.0
    truth_mm2 = casing.mask.sum() * 6.25 ** 2 / 1e6
    assert res.quality.valid_area_mm2 == pytest.approx(truth_mm2, rel=0.15)
    assert res.quality.fit and res.quality.noise_um is not None
    d = res.to_dict()
    assert d["primer"]["center_um"] == list(res.primer.center_um)
    assert [x["name"] for x in d["steps"]] == names


def test_image_pipeline(casing):
    res = preprocess(casing.image)
    assert res.scan.modality == "image"
    assert res.quality.noise_um is None and res.quality.fit
    names = [st["name"] for st in res.steps]
    assert "flatten_illumination" in names and "normalize_contrast" in names
    v = res.scan.heights[res.scan.valid]
    assert 0.2 < float(np.std(v)) < 5


def test_regression_long_filter_option(casing):
    p = get_preset("default")
    p = p.replace(name="regression",
                  filter=dataclasses.replace(p.filter, short_um=30.0, long_method="regression"),
                  resample=dataclasses.replace(p.resample, spacing_um=12.5))  # quicker
    res = preprocess(casing.scan, p)
    assert res.scan.provenance[-1]["params"]["filter"]["long_method"] == "regression"
    assert res.quality.fit


def test_unfit_scan_refused_with_reason(casing):
    small = np.zeros(casing.scan.shape, bool)
    small[300:330, 300:330] = True  # 0.04 mm² examiner region
    res = preprocess(casing.scan, mask=small)
    assert not res.quality.fit and "area" in res.quality.reason
    with pytest.raises(UnfitScanError, match="area"):
        prepare_for_comparison(res.scan)
    strict = get_preset("default").replace(quality=QualityParams(min_area_mm2=500.0))
    with pytest.raises(UnfitScanError, match="below"):
        prepare_for_comparison(casing.scan, strict)


def test_prepare_for_comparison_passes_processed_scans_through(casing):
    ready = prepare_for_comparison(casing.scan)
    assert ready.is_processed
    again = prepare_for_comparison(ready)
    assert again is ready


def test_noise_level_estimates_white_noise():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:200, :300]
    z = 0.01 * x + 2 * np.sin(y / 30) + rng.normal(0, 0.3, y.shape)
    assert noise_level(z) == pytest.approx(0.3, rel=0.1)


def test_all_nan_refused():
    from ballistics.errors import EmptyScanError

    with pytest.raises(EmptyScanError):
        preprocess(Scan(np.full((50, 70), np.nan), (3.125, 3.125)))


# --- real data ----------------------------------------------------------------------------


def _best_shift_correlation(a, b, max_shift=60):
    """Largest Pearson correlation of ``a`` and ``b`` over integer shifts (common valid area)."""
    va, vb = np.isfinite(a), np.isfinite(b)
    A, B = np.where(va, a, 0.0), np.where(vb, b, 0.0)
    H = max(a.shape[0], b.shape[0]) + 2 * max_shift
    W = max(a.shape[1], b.shape[1]) + 2 * max_shift
    f = np.fft.rfft2

    def xc(p, q):
        return np.fft.irfft2(f(p, (H, W)) * np.conj(f(q, (H, W))), (H, W))

    n = np.maximum(xc(va * 1.0, vb * 1.0), 1)
    sa, sb = xc(A, vb * 1.0), xc(va * 1.0, B)
    saa, sbb = xc(A * A, vb * 1.0), xc(va * 1.0, B * B)
    cov = xc(A, B) / n - sa * sb / n ** 2
    var = np.maximum(saa / n - (sa / n) ** 2, 1e-12) * np.maximum(sbb / n - (sb / n) ** 2, 1e-12)
    r = cov / np.sqrt(var)
    r[n < 0.3 * min(va.sum(), vb.sum())] = -1
    return float(r.max())


@pytest.mark.slow
def test_cmcr_preset_reproduces_processed_fadul(real_data):
    from ballistics.io import read_scan

    raw = read_scan(real_data / "fadul_raw" / "fadul1-1_raw.x3p")
    ref = read_scan(real_data / "fadul1-1_processed.x3p")
    res = preprocess(raw, "cmcR")
    assert res.scan.spacing_um == pytest.approx(ref.spacing_um)
    assert res.scan.valid.sum() == pytest.approx(ref.valid.sum(), rel=0.2)
    r = _best_shift_correlation(ref.heights, res.scan.heights)
    assert r >= 0.8, r


@pytest.mark.slow
def test_default_keeps_processed_real_scans_usable(real_data):
    from ballistics.io import read_scan

    paths = [real_data / "fadul1-1_processed.x3p", real_data / "fadul1-2_processed.x3p",
             *(real_data / "weller" / f"TW0{i}-0{j}.x3p" for i, j in ((1, 1), (4, 5), (9, 2)))]
    for path in paths:
        s = read_scan(path)
        res = preprocess(s)
        assert res.segmentation.cropped, path.name
        assert res.quality.fit, (path.name, res.quality.reason)
        area_in = s.valid.sum() * s.spacing_um[0] * s.spacing_um[1] / 1e6
        assert res.quality.valid_area_mm2 >= 0.9 * area_in, path.name
        assert res.quality.valid_area_mm2 > 2.0
        ready = prepare_for_comparison(s, processed=True)
        assert ready is s


def test_anisotropic_spacing(casing):
    """Every other column dropped: (6.25, 12.5) µm points; circles stay in µm."""
    for s0 in (casing.scan, casing.image):
        s = Scan(s0.heights[:, ::2], (6.25, 12.5), s0.modality)
        res = preprocess(s)
        assert res.primer.center_um == pytest.approx(casing.truth["primer_center_um"], abs=20)
        assert res.firing_pin.center_um == pytest.approx(casing.truth["firing_pin_center_um"],
                                                         abs=40)
        assert res.scan.spacing_um == (6.25, 6.25) and res.quality.fit


def test_a_scan_coarser_than_the_preset_keeps_its_spacing(casing):
    """Resampling never goes finer than the scan (it would add no detail and blur): a 7.5 µm
    casing stays at 7.5 µm, one at the preset's 6.25 µm is left there."""
    from ballistics.preprocess import resample

    s0 = casing.scan
    assert s0.spacing_um == (6.25, 6.25)
    coarse = resample(s0, 7.5)
    res = preprocess(coarse)
    assert res.scan.spacing_um == (7.5, 7.5) and res.quality.fit
    step = [st for st in res.scan.provenance if st["name"] == "resample"][-1]  # the preset's
    assert step["params"]["spacing_um"] == 6.25
    assert step["fitted"]["kept_coarser_um"] == 7.5
    assert res.primer.center_um == pytest.approx(casing.truth["primer_center_um"], abs=20)
    fine = preprocess(s0)
    assert fine.scan.spacing_um == (6.25, 6.25)
    assert "kept_coarser_um" not in [
        st for st in fine.scan.provenance if st["name"] == "resample"][-1]["fitted"]
