"""Score and likelihood ratio of a comparison (``ballistics.matching.evidence``) and their
place in ``ballistics compare --json``."""

from __future__ import annotations

import json
import math

import pytest

from ballistics.matching.evidence import evaluate, preset_name, verbal_scale
from ballistics.matching.lr import load_default
from tests.clirunner import CliRunner


@pytest.mark.parametrize(("llr", "words"), [
    (0.0, "no support for either proposition"),
    (0.5, "weak support for same source"),
    (1.0, "weak support for same source"),
    (1.5, "moderate support for same source"),
    (-1.5, "moderate support for different sources"),
    (2.5, "moderately strong support for same source"),
    (3.5, "strong support for same source"),
    (-5.0, "very strong support for different sources"),
    (6.5, "extremely strong support for same source"),
    (math.nan, "no likelihood ratio"),
])
def test_verbal_scale_follows_enfsi(llr, words):
    assert verbal_scale(llr) == words


def test_evaluate_from_features_and_preset_names():
    from ballistics.matching import PRESETS

    cal = load_default()
    lo, hi = cal.lr.bounds
    strong = {"cmc_count": 25, "cmc_count_reverse": 24, "cmc_count_combined": 30,
              "cmc_count_high": 25, "ccf_max": 0.6, "ncc_at_pose": 0.6, "theta_sd_deg": 1.0}
    weak = {"cmc_count": 0, "cmc_count_reverse": 0, "cmc_count_combined": 0,
            "cmc_count_high": 0, "ccf_max": 0.05, "ncc_at_pose": 0.05, "theta_sd_deg": 3.3}
    es, ew = evaluate(strong), evaluate(weak)
    assert es.score > ew.score and lo <= ew.log10_lr < 0 < es.log10_lr <= hi
    assert "same source" in es.verbal and "different sources" in ew.verbal
    assert es.calibration["source"] == "synthetic-default"
    assert any("synthetic" in w for w in es.warnings)
    partial = evaluate({"cmc_count_combined": 3})
    assert any("imputed" in w and "ncc_at_pose" in w for w in partial.warnings)
    assert preset_name(PRESETS["cmcR"]) == "cmcR" and preset_name(None) is None
    assert preset_name(PRESETS["default"].replace(grid=(6, 6))) == "custom"


def test_images_scored_with_the_shipped_calibration_are_flagged():
    """The shipped calibration was fitted on topographies: two 2D images get a caveat that
    their LR is indicative only; topographies (or an unknown modality) do not."""
    from ballistics.matching.evidence import IMAGE_CAVEAT, evaluate_rows

    feats = {"cmc_count_combined": 5, "ncc_at_pose": 0.3, "theta_sd_deg": 2.5}
    img = evaluate(feats, modality="image")
    assert IMAGE_CAVEAT in img.warnings and "2D images" in IMAGE_CAVEAT
    for other in ("topography", None):
        e = evaluate(feats, modality=other)
        assert IMAGE_CAVEAT not in e.warnings
        assert (e.score, e.log10_lr) == (img.score, img.log10_lr)  # the numbers do not change
    assert IMAGE_CAVEAT in evaluate_rows([feats, feats], modality="image")[2]


@pytest.fixture(scope="module")
def fadul(real_data):
    return str(real_data / "fadul1-1_processed.x3p"), str(real_data / "fadul1-2_processed.x3p")


def test_compare_json_has_score_lr_and_calibration(fadul):
    from ballistics.cli import main

    r = CliRunner().invoke(main, ["compare", *fadul, "--processed", "--json", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    cal = out["calibration"]
    lo, hi = cal["log10_lr_bounds"]
    assert cal["source"] == "synthetic-default" and "cllr" in cal["metrics"]
    assert out["cmc_count"] >= 15 and out["score"] > 0 and 0 < out["log10_lr"] <= hi
    assert "same source" in out["lr_verbal"]
    assert any("synthetic" in w for w in out["warnings"])
    assert cal["fitted"]["compare_preset"] == "default"
    # cmcR comparisons get the calibration fitted on cmcR comparisons: no preset caveat, and
    # the same-slide pair supports the same source (the default preset's calibration gave it
    # log10 LR -1.89: theta_sd_deg depends on the rotation search)
    r = CliRunner().invoke(main, ["compare", *fadul, "--processed", "--json", "--preset",
                                  "cmcR", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    cal = out["calibration"]
    assert cal["source"] == "synthetic-default" and cal["fitted"]["compare_preset"] == "cmcR"
    assert not any("preset" in w for w in out["warnings"]), out["warnings"]
    lo, hi = cal["log10_lr_bounds"]
    assert out["cmc_count"] >= 15 and 0 < out["log10_lr"] <= hi
    r = CliRunner().invoke(main, ["compare", *fadul, "--processed", "--preset", "cmcR",
                                  "--device", "cpu", "--quiet"])
    assert "calibration: synthetic-default (cmcR preset))" in r.stdout
    # cmcR's cells over another grid (no preset): cmcR's calibration, with the caveat
    r = CliRunner().invoke(main, ["compare", *fadul, "--processed", "--json", "--preset",
                                  "cmcr", "--rotation=-30,30,2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["calibration"]["fitted"]["compare_preset"] == "cmcR"
    assert any("indicative only" in w for w in out["warnings"])
    assert out["cmc_count"] >= 15 and out["log10_lr"] > 0


def test_compare_collection_without_calibration_is_an_error(fadul, tmp_path):
    from ballistics.cli import main

    r = CliRunner().invoke(main, ["compare", *fadul, "--processed", "--collection",
                                  str(tmp_path)])
    assert r.exit_code == 2 and "not a collection" in r.output
    assert "Traceback" not in r.output


def test_lrs_at_the_calibration_bounds_are_explained():
    from ballistics.matching.evidence import bound_note, evaluate_rows

    cal = load_default()
    lo, hi = cal.lr.attainable
    assert cal.lr.bounds[0] <= lo < hi <= cal.lr.bounds[1]
    strong = {"cmc_count_combined": 40, "ncc_at_pose": 0.8}
    middling = {"cmc_count_combined": 3, "ncc_at_pose": 0.2}
    scores, llr, warns = evaluate_rows([strong, strong, middling], cal, preset="default")
    assert llr[0] == llr[1] == pytest.approx(hi) and lo < llr[2] < hi
    note = [w for w in warns if "upper bound" in w]
    assert len(note) == 1 and "2 at its upper bound" in note[0]
    assert str(cal.metrics["n_same_source"]) in note[0]
    assert bound_note([0.5 * (lo + hi)], cal) is None
    assert "lower bound" in bound_note([lo], cal)
    # parameters of no preset: the default preset's calibration, flagged
    _, _, w2 = evaluate_rows([middling], cal, preset="custom")
    assert any("indicative only" in w and "'custom'" in w for w in w2)


def test_each_preset_gets_its_own_shipped_calibration():
    """``load_default(preset)``, :func:`calibration_preset` and :func:`shipped_for`: the
    shipped calibration follows the comparison's preset (any spelling); parameters of no
    preset get the one of the preset with the same rotation search, and a caveat; a lab's
    own calibration is used whatever the preset."""
    import dataclasses

    from ballistics.errors import ParameterError
    from ballistics.matching import PRESETS
    from ballistics.matching.breechface import parse_rotation
    from ballistics.matching.evidence import calibration_preset, evaluate_rows, shipped_for
    from ballistics.matching.lr import DEFAULT_FILES

    assert set(DEFAULT_FILES) == {"default", "cmcR"}
    default, cmcr = load_default(), load_default("cmcR")
    assert default.fitted["compare_preset"] == "default"
    assert cmcr.fitted["compare_preset"] == "cmcR" and cmcr.source == "synthetic-default"
    assert load_default(None).to_dict() == load_default("custom").to_dict() == default.to_dict()
    assert load_default("CMCR").to_dict() == cmcr.to_dict() != default.to_dict()
    with pytest.raises(ParameterError, match="no calibration ships"):
        load_default("song2013")
    # which preset's calibration suits which parameters
    grid_default = parse_rotation("-30,30,2", PRESETS["default"])
    full_cmcr = parse_rotation("full", PRESETS["cmcR"])
    assert calibration_preset(PRESETS["cmcR"]) == calibration_preset("cmcr") == "cmcR"
    assert calibration_preset(None) == calibration_preset("custom") == "default"
    assert calibration_preset(grid_default) == "cmcR"  # the cells' angles over a grid
    assert calibration_preset(full_cmcr) == "default"  # the full circle's fine grid
    # shipped calibrations are swapped for the preset's; a lab's is kept
    assert shipped_for(None, "cmcR").fitted["compare_preset"] == "cmcR"
    assert shipped_for(default, "cmcR").fitted["compare_preset"] == "cmcR"
    assert shipped_for(cmcr, "default").fitted["compare_preset"] == "default"
    assert shipped_for(default, "custom") is default
    assert shipped_for(cmcr, None) is cmcr  # preset not known: as given
    lab = dataclasses.replace(cmcr, source="collection")
    assert shipped_for(lab, "default") is lab
    row = {"cmc_count_combined": 12, "ncc_at_pose": 0.35, "theta_sd_deg": 6.0}
    sc, llr, warns = evaluate_rows([row], None, preset="cmcr")
    assert (sc[0], llr[0]) == tuple(x[0] for x in cmcr.apply([row]))
    assert not any("indicative only" in w for w in warns)
    # cmcR's settings over another range: cmcR's calibration, with the caveat
    sc, llr, warns = evaluate_rows([row], None, params=PRESETS["cmcR"].replace(theta_step_deg=2))
    assert (sc[0], llr[0]) == tuple(x[0] for x in cmcr.apply([row]))
    caveat = [w for w in warns if "indicative only" in w]
    assert len(caveat) == 1 and "no preset ('custom')" in caveat[0]
    assert "no --rotation" in caveat[0] and "--collection" not in caveat[0]
    # a lab's calibration fitted with cmcR used on default-preset comparisons
    _, _, warns = evaluate_rows([row], lab, preset="default")
    caveat = [w for w in warns if "indicative only" in w]
    assert len(caveat) == 1 and "--preset default" in caveat[0]


def test_an_lr_at_the_calibration_bound_is_marked_beside_it():
    """Q3 against K1 (raw Fadul 1-1 / 1-2) gives +2.95, the shipped calibration's ceiling;
    the report's LR row and the text output read "+2.95" and the bound was a line under
    Warnings at the end (trial 4). The value now carries its bound where it is printed."""
    from ballistics.matching.bullet_evidence import BulletEvidence
    from ballistics.matching.evidence import lr_with_bound

    cal = load_default()
    lo, hi = cal.lr.attainable
    top = evaluate({"cmc_count_combined": 40, "ncc_at_pose": 0.8, "theta_sd_deg": 0.5})
    mid = evaluate({"cmc_count_combined": 3, "ncc_at_pose": 0.2, "theta_sd_deg": 2.5})
    bottom = evaluate({"cmc_count_combined": 0, "ncc_at_pose": 0.0, "theta_sd_deg": 3.5})
    assert top.log10_lr == pytest.approx(hi) and top.at_bound == "upper"
    assert top.lr_text == f"{hi:+.2f}, at the calibration's upper bound"
    assert lo < mid.log10_lr < hi and mid.at_bound is None
    assert mid.lr_text == f"{mid.log10_lr:+.2f}"
    assert bottom.log10_lr == pytest.approx(lo) and bottom.at_bound == "lower"
    assert lr_with_bound(-1.5, "lower") == "-1.50, at the calibration's lower bound"
    assert BulletEvidence(1.0, 3.0, "x", {}, at_bound="upper").lr_text.endswith("upper bound")
