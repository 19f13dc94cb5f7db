"""``ballistics calibrate`` end to end on a tiny collection: the calibration is stored and
used by search, and worker processes give the same numbers as one process."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from ballistics.cli import main
from tests.clirunner import CliRunner


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> tuple[Path, Path]:
    from ballistics.datasets.synthetic import generate

    study = tmp_path_factory.mktemp("synth")
    generate(study, 3, 2, spacing_um=25.0, quiet=True, field_um=(2400, 3000), seed=7)
    col = tmp_path_factory.mktemp("col") / "lab"
    r = _run("ingest", str(study), "--collection", str(col), "--labels",
             str(study / "manifest.csv"), "--model", "baseline", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    return col, study


def test_calibrate_with_workers_matches_one_process(lab, tmp_path):
    lab, study = lab
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(lab, a)
    shutil.copytree(lab, b)
    out = []
    for col, workers in ((a, "1"), (b, "2")):
        r = _run("calibrate", "--collection", str(col), "--workers", workers, "--device", "cpu",
                 "--json", "--quiet")
        assert r.exit_code == 0, r.output
        out.append(json.loads(r.stdout))
    m1, m2 = (o["calibration"]["metrics"] for o in out)
    assert m1["n_pairs"] == m2["n_pairs"] == 15  # 6 casings: 3 same-source, 12 different
    assert m1["n_same_source"] == 3
    assert m1 == m2
    assert out[0]["calibration"]["source"] == "collection"
    smp = out[0]["sampling"]
    assert smp["same_source"] == {"chosen": 3, "available": 3}
    assert smp["different_source"] == {"chosen": 12, "available": 12}
    assert (smp["pairs"], smp["seed"], smp["sources_in_pairs"]) == (500, 0, 3)
    assert out[0]["calibration"]["fitted"]["sampling"] == smp  # stored with the calibration
    # search now uses the collection's calibration
    q = sorted(study.glob("*.x3p"))[0]
    r = _run("search", str(q), "--collection", str(b), "--shortlist", "3", "--device", "cpu",
             "--json", "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["calibration"]["source"] == "collection"


def test_calibrate_pair_overrides(lab, tmp_path):
    col = tmp_path / "c"
    shutil.copytree(lab[0], col)
    r = _run("calibrate", "--collection", str(col), "--max-same", "2", "--max-different", "5",
             "--workers", "1", "--device", "cpu", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["calibration"]["metrics"]["n_pairs"] == 7
    assert doc["sampling"]["same_source"]["chosen"] == 2
    assert doc["sampling"]["max_different"] == 5


def test_calibrate_features_default_to_the_shipped_design(lab, tmp_path):
    """The score model of a collection's calibration uses the shipped calibrations'
    features unless told otherwise; ``all`` fits every feature the pairs have."""
    from ballistics.matching.lr import DEFAULT_SCORE_FEATURES, load_default

    assert tuple(load_default().score_model.names) == tuple(DEFAULT_SCORE_FEATURES)
    names = {}
    for setting in ("default", "all", "ncc_at_pose,cmc_count_combined"):
        col = tmp_path / setting.replace(",", "_")
        shutil.copytree(lab[0], col)
        args = [] if setting == "default" else ["--features", setting]
        r = _run("calibrate", "--collection", str(col), "--workers", "1", "--device", "cpu",
                 "--json", "--quiet", *args)
        assert r.exit_code == 0, r.output
        stored = json.loads(next((col / "calibration").glob("*.json")).read_text())
        names[setting] = stored["score_model"]["names"]
        assert stored["fitted"]["features"] == setting
        desc = json.loads(r.stdout)["calibration"]["score_model"]
        assert desc == "logistic regression over " + ", ".join(names[setting])
    assert names["default"] == list(DEFAULT_SCORE_FEATURES)
    assert set(names["all"]) > set(DEFAULT_SCORE_FEATURES) | {"cmc_count_combined"}
    assert names["ncc_at_pose,cmc_count_combined"] == ["ncc_at_pose", "cmc_count_combined"]


def test_calibrate_unknown_feature_is_refused_before_comparing(lab, tmp_path):
    col = tmp_path / "c"
    shutil.copytree(lab[0], col)
    r = CliRunner().invoke(main, ["calibrate", "--collection", str(col), "--features",
                                  "ncc_at_pose,cmc_cuont", "--workers", "1", "--quiet"])
    assert r.exit_code == 2
    assert "cmc_cuont is not a comparison feature" in r.stderr
    assert not (col / "calibration").exists() or not any((col / "calibration").iterdir())


@pytest.mark.parametrize("bad", [["--workers", "-1"], ["--max-different", "x"],
                                 ["--pairs", "-3"], ["--pairs", "1"]])
def test_calibrate_bad_arguments_exit_2(lab, bad):
    r = CliRunner().invoke(main, ["calibrate", "--collection", str(lab[0]), *bad])
    assert r.exit_code == 2


def test_calibrate_with_too_small_a_budget_says_raise_pairs(lab, monkeypatch):
    """``--pairs 2`` on a collection with 3 same-source and 12 different-source pairs: the
    budget is what is short (not the labels), and it is refused before any comparison."""
    import ballistics.workflows.calibrate as cal_mod

    def no_comparisons(*args, **kwargs):
        raise AssertionError("pairs compared before the sample was checked")

    monkeypatch.setattr(cal_mod, "compare_pairs", no_comparisons)
    r = CliRunner().invoke(main, ["calibrate", "--collection", str(lab[0]), "--pairs", "2",
                                  "--quiet"])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "raise --pairs" in lines[0], lines
    assert "1 of 3" in lines[0] and "1 of 12" in lines[0]
    r = CliRunner().invoke(main, ["calibrate", "--collection", str(lab[0]), "--max-same", "1",
                                  "--quiet"])
    assert r.exit_code == 2 and "--max-same" in r.stderr, r.output


# --- pair sampling (no comparisons: fast) -------------------------------------------------------
def _labels(n_sources: int, per_source: int) -> list[str | None]:
    return [f"S{s:02d}" for s in range(n_sources) for _ in range(per_source)]


def test_sampling_respects_the_budget_and_spreads_same_source_pairs_evenly():
    from ballistics.workflows.calibrate import PairSampling, sample_pairs

    sources = _labels(11, 9)  # Weller-sized: 396 same-source pairs, 4,455 different
    pairs = sample_pairs(sources, PairSampling(pairs=200))
    assert len(pairs) == 200 == len(set(pairs))
    assert all(i < j for i, j in pairs)
    same = [(i, j) for i, j in pairs if sources[i] == sources[j]]
    assert len(same) == 100  # half the budget
    per_source = Counter(sources[i] for i, _ in same)
    assert len(per_source) == 11 and max(per_source.values()) - min(per_source.values()) <= 1
    diff_sources = Counter(sources[k] for i, j in pairs if sources[i] != sources[j]
                           for k in (i, j))
    assert len(diff_sources) == 11  # every source in different-source pairs
    assert max(diff_sources.values()) <= 2 * min(diff_sources.values())


def test_sampling_gives_unused_same_source_share_to_different_pairs():
    from ballistics.workflows.calibrate import PairSampling, sample_pairs

    sources = [*_labels(2, 3), "lone", None, ""]  # 6 same-source pairs only
    pairs = sample_pairs(sources, PairSampling(pairs=20))
    same = [p for p in pairs if sources[p[0]] == sources[p[1]]]
    assert len(same) == 6 and len(pairs) == 20
    assert not any(sources[k] in (None, "") for p in pairs for k in p)
    # a small collection is taken whole
    n = sum(s not in (None, "") for s in sources)
    assert len(sample_pairs(sources, PairSampling(pairs=1000))) == n * (n - 1) // 2
    assert len(sample_pairs(sources, PairSampling(pairs=0))) == n * (n - 1) // 2


def test_sampling_is_deterministic_and_seeded():
    from ballistics.workflows.calibrate import PairSampling, sample_pairs

    sources = _labels(6, 5)
    a = sample_pairs(sources, PairSampling(pairs=60, seed=3))
    assert a == sample_pairs(sources, PairSampling(pairs=60, seed=3))
    assert a != sample_pairs(sources, PairSampling(pairs=60, seed=4))


def test_sampling_overrides():
    from ballistics.workflows.calibrate import PairSampling, sample_pairs, sampling_record

    sources = _labels(5, 4)  # 30 same-source pairs, 160 different
    sp = PairSampling(pairs=40, max_same=7, max_different=50)
    pairs = sample_pairs(sources, sp)
    same = sum(sources[i] == sources[j] for i, j in pairs)
    assert (same, len(pairs) - same) == (7, 50)
    # an override of one share: the other keeps its budget share
    pairs = sample_pairs(sources, PairSampling(pairs=40, max_same=30))
    assert sum(sources[i] == sources[j] for i, j in pairs) == 30 and len(pairs) == 40
    pairs = sample_pairs(sources, PairSampling(pairs=0, max_different=10))
    assert len(pairs) == 30 + 10
    rec = sampling_record(sources, pairs, PairSampling(pairs=0, max_different=10))
    assert rec["same_source"] == {"chosen": 30, "available": 30}
    assert rec["different_source"] == {"chosen": 10, "available": 160}
    assert rec["pairs"] == 0 and rec["max_different"] == 10 and rec["sources"] == 5


@pytest.mark.parametrize("bad", [{"pairs": -1}, {"pairs": 1}, {"max_same": -2},
                                 {"max_different": 1.5}, {"seed": None}])
def test_sampling_rejects_bad_settings(bad):
    from ballistics.errors import ParameterError
    from ballistics.workflows.calibrate import PairSampling

    with pytest.raises(ParameterError):
        PairSampling(**bad)


def test_batches_cover_every_pair_once_and_share_references():
    from ballistics.workflows.calibrate import PairSampling, plan_batches, sample_pairs

    sources = _labels(11, 9)
    pairs = sample_pairs(sources, PairSampling(pairs=500))
    batches = plan_batches(pairs)
    ks = sorted(k for _, b in batches for k in b)
    assert ks == list(range(len(pairs)))
    assert all(ref in pairs[k] for ref, b in batches for k in b)
    # one prepared reference serves several candidates: far fewer batches than pairs
    assert len(batches) < len(pairs) / 4
    split = plan_batches(pairs, 6)
    assert max(len(b) for _, b in split) <= 6
    assert sorted(k for _, b in split for k in b) == ks


def test_cli_budget_default_is_the_workflow_default():
    from ballistics.cli.calibrate import DEFAULT_PAIRS as CLI_DEFAULT
    from ballistics.workflows.calibrate import DEFAULT_PAIRS

    assert CLI_DEFAULT == DEFAULT_PAIRS
