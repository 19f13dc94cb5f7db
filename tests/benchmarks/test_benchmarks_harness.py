"""Smoke tests of the benchmark harness: a quick scale run through ``python -m benchmarks`` in a
temporary results directory (machine stamp, record, resume, table, plots), parts that are missing,
fail or return numbers to plot, and the metrics the accuracy protocol reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness import REPO, Part, RunOptions, load_records, machine_stamp, run_part
from benchmarks.metrics import equal_error_rate, hit_rates, separation
from benchmarks.report import BEGIN, END, build_table, flatten, write_table


def _bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)


def test_quick_scale_run_records_resumes_and_tables(tmp_path: Path) -> None:
    results = tmp_path / "results"
    readme = tmp_path / "README.md"
    readme.write_text(f"# Benchmarks\n\nintro\n\n{BEGIN}\nold\n{END}\n\ntail text\n")
    args = ("scale", "--quick", "--max-size", "2000", "--results", str(results),
            "--readme", str(readme))
    proc = _bench(*args)
    assert proc.returncode == 0, proc.stderr
    assert "scale@cpu-quick: ok" in proc.stderr

    (rec,) = load_records(results)
    assert rec["status"] == "ok" and rec["key"] == "scale@cpu-quick"
    m = rec["machine"]
    for key in ("machine_id", "cpu_model", "cpu_logical_cores", "date_utc", "git_commit",
                "versions", "threads", "gpus"):
        assert key in m
    assert len(m["machine_id"]) == 12 and m["cpu_logical_cores"] >= 1
    assert m["versions"]["numpy"] == np.__version__ and m["versions"]["faiss"]
    assert m["threads"]["torch_num_threads"] >= 1
    assert rec["peak_rss_mb"] > 10 and rec["wall_s"] > 0

    res = rec["result"]
    assert res["sizes"] == [2000]
    rows = {r["index"]: r for r in res["results"]}
    assert set(rows) == {"flat", "hnsw"}
    flat, hnsw = rows["flat"], rows["hnsw"]
    assert flat["n_casings"] == 2000 and flat["recall_at_k"] == 1.0
    assert flat["mate_in_top10"] >= 0.95  # 4 casings per source, mate cosine ~0.7
    assert 512 <= flat["index_bytes_per_casing"] < 520  # 128 float32 + header
    assert hnsw["index_bytes_per_casing"] > flat["index_bytes_per_casing"]
    assert 0.8 <= hnsw["recall_at_k"] <= 1.0
    assert 0 < flat["latency_ms_median"] <= flat["latency_ms_p95"]
    machine_dir = results / m["machine_id"]
    assert (machine_dir / "scale@cpu-quick" / "scale.png").stat().st_size > 1000
    assert len(list((results / "runs").glob("*-scale-*.json"))) == 1

    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\nintro") and text.rstrip().endswith("tail text")
    assert "old" not in text.split(BEGIN)[1].split(END)[0]
    assert "latency_ms_median" in text and "n_casings=2000" in text and m["machine_id"] in text
    assert "scale.png" in text and (results / "TABLE.md").is_file()

    again = _bench(*args)
    assert again.returncode == 0, again.stderr
    assert "finished earlier" in again.stderr
    (rec2,) = load_records(results)
    assert rec2["finished_utc"] == rec["finished_utc"]
    summaries = sorted((results / "runs").glob("*.json"))
    assert json.loads(summaries[-1].read_text())["parts"][0]["status_this_run"] in (
        "resumed", "ok")


def _module(tmp: Path, name: str, body: str) -> None:
    (tmp / f"{name}.py").write_text(textwrap.dedent(body))


def test_missing_failing_and_plotted_parts(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    mods = tmp_path / "mods"
    mods.mkdir()
    _module(mods, "toy_fail_bench", """
        def run(quick=False, out_dir=None):
            raise ValueError("boom: no data")
    """)
    _module(mods, "toy_notdict_bench", """
        def run(quick=False, out_dir=None):
            return [1, 2, 3]
    """)
    _module(mods, "toy_ok_bench", """
        import numpy as np
        def run(quick=False, out_dir=None):
            rng = np.random.default_rng(0)
            return {"data_set": "toy", "n_pairs": 300,
                    "pairwise": [{"score": "cmc", "same": (rng.normal(8, 2, 100)).tolist(),
                                  "different": (rng.normal(1, 1, 200)).tolist(), "auc": 0.99}],
                    "search": {"cmc_curve": [0.5, 0.7, 0.9, 1.0], "top_1": 0.5},
                    "quick": quick}
    """)
    monkeypatch.setenv("PYTHONPATH", str(mods))
    opts = RunOptions(quick=True, quiet=True, results_dir=tmp_path / "results")
    stamp = machine_stamp()
    recs = {}
    for name in ("toy_missing_bench_xyz", "toy_fail_bench", "toy_notdict_bench", "toy_ok_bench"):
        recs[name] = run_part(Part(name, name, ("accuracy",), "toy"), "cpu", opts, stamp)
    assert recs["toy_missing_bench_xyz"]["status"] == "missing"
    assert recs["toy_fail_bench"]["status"] == "failed"
    assert "boom: no data" in recs["toy_fail_bench"]["error"]
    assert "ValueError" in recs["toy_fail_bench"]["traceback_tail"]
    assert recs["toy_notdict_bench"]["status"] == "failed"
    assert "not a dict" in recs["toy_notdict_bench"]["error"]
    ok = recs["toy_ok_bench"]
    assert ok["status"] == "ok" and ok["result"]["quick"] is True
    plots = ok["plots"]
    assert any(p.endswith("-roc.png") for p in plots) and any(p.endswith("-cmc.png") for p in plots)
    machine_dir = opts.results_dir / stamp["machine_id"]
    for p in plots:
        assert (machine_dir / p).stat().st_size > 1000

    table = build_table(opts.results_dir, tmp_path)
    assert "toy_fail_bench" in table and "boom: no data" in table
    assert "missing" in table and "top_1 **0.5**" in table and "toy" in table
    write_table(opts.results_dir, tmp_path / "README.md")
    assert BEGIN in (tmp_path / "README.md").read_text()

    # a failed part is rerun next time, an ok one is kept
    again = run_part(Part("toy_ok_bench", "toy_ok_bench", ("accuracy",), "toy"), "cpu", opts,
                     stamp)
    assert again["status_this_run"] == "resumed"
    forced = run_part(Part("toy_ok_bench", "toy_ok_bench", ("accuracy",), "toy"), "cpu",
                      RunOptions(quick=True, quiet=True, force=True,
                                 results_dir=opts.results_dir), stamp)
    assert forced["status_this_run"] == "ok"


def test_cli_rejects_unknown_part(tmp_path: Path) -> None:
    env = dict(os.environ)
    proc = _bench("speed", "--only", "no_such_part", "--results", str(tmp_path), "--quiet",
                  env=env)
    assert proc.returncode == 2 and "unknown part" in proc.stderr


def test_separation_numbers() -> None:
    perfect = separation([3, 4, 5], [0, 1, 2], threshold=3)
    assert perfect["auc"] == 1.0 and perfect["eer"] == 0.0
    assert perfect["fpr"] == 0.0 and perfect["fnr"] == 0.0
    # 9 of the 16 (same, different) pairs are ordered correctly
    mixed = separation([1, 2, 3, 4], [0, 1.5, 2.5, 5], threshold=2)
    assert mixed["auc"] == pytest.approx(9 / 16)
    assert mixed["fpr"] == 0.5 and mixed["fnr"] == 0.25
    assert 0.25 <= mixed["eer"] <= 0.5
    assert mixed["n_same"] == 4 and mixed["n_different"] == 4
    assert separation([1.0], [])["auc"] is None


def test_equal_error_rate_interpolates() -> None:
    fpr = np.array([0.0, 0.1, 0.3, 1.0])
    tpr = np.array([0.0, 0.6, 0.9, 1.0])  # FNR 1, .4, .1, 0: crossing between .1 and .3
    eer = equal_error_rate(fpr, tpr)
    assert 0.1 < eer < 0.4


def test_hit_rates_ranks_and_curve() -> None:
    # 5 items, sources a a b b c; each query is ranked over the 4 others
    sources = ["a", "a", "b", "b", "c"]
    sim = np.array([
        [1.0, 0.9, 0.1, 0.2, 0.3],   # mate first
        [0.9, 1.0, 0.95, 0.1, 0.0],  # mate second
        [0.1, 0.95, 1.0, 0.2, 0.3],  # mate (3) third: after 1 and 4
        [0.2, 0.1, 0.2, 1.0, 0.9],   # mate (2) third: tied with 0, stable order puts 0 first
        [0.3, 0.0, 0.3, 0.9, 1.0],   # no mate: not a query
    ])
    out = hit_rates(sim, sources, ks=(1, 2, 3), max_rank=4)
    assert out["n_queries"] == 4 and out["n_items"] == 5
    assert out["top_1"] == 0.25 and out["top_2"] == 0.5 and out["top_3"] == 1.0
    assert out["cmc_curve"] == [0.25, 0.5, 1.0, 1.0]
    assert out["mates_within_4"] == 1.0


def test_flatten_labels_and_sizes() -> None:
    rows = list(flatten({"data_set": "weller", "n_pairs": 4465, "auc": 0.99,
                         "methods": [{"method": "cmc", "eer": 0.02, "curve": [0.1, 0.2]}],
                         "params": {"preset": "cmcR"}}))
    by = {r["metric"]: r for r in rows}
    assert set(by) == {"auc", "methods.eer"}
    assert by["auc"]["labels"]["data_set"] == "weller" and by["auc"]["sizes"] == {
        "n_pairs": "4465"}
    assert by["methods.eer"]["labels"]["method"] == "cmc"
    assert by["methods.eer"]["labels"]["params"] == "preset=cmcR"


def test_data_protocol_pairs_and_selection() -> None:
    from benchmarks.data_bench import _pairs, _select

    rows = [{"path": f"{s}-{i}", "firearm_id": s} for s in ("B", "A", "C") for i in range(4)]
    sel = _select(rows, "firearm_id", 2, 3)
    assert [r["path"] for r in sel] == ["A-0", "A-1", "A-2", "B-0", "B-1", "B-2"]
    sources = [r["firearm_id"] for r in sel]
    every = _pairs(sources, 1000, seed=0)
    assert len(every) == 15  # 6 choose 2
    assert sum(sources[i] == sources[j] for i, j in every) == 6
    capped = _pairs(sources, 8, seed=0)
    same = [(i, j) for i, j in capped if sources[i] == sources[j]]
    assert len(capped) == 8 and len(same) == 4  # same-source pairs get half the budget
    assert capped == _pairs(sources, 8, seed=0)  # fixed seed, same sample
    roomy = _pairs(sources, 14, seed=0)
    assert sum(sources[i] == sources[j] for i, j in roomy) == 6  # all fit: all kept
    assert len(roomy) == 14 and len(set(roomy)) == 14


def test_set_passes_keywords_to_the_named_part(tmp_path: Path) -> None:
    """``--set KEY=VALUE`` reaches run() of the part named by --only and joins its resume key."""
    from benchmarks.harness import parse_settings

    assert parse_settings(["a=600", "b=weller", "c=x,y", 'd=["z"]', "e=true"]) == {
        "a": 600, "b": "weller", "c": ["x", "y"], "d": ["z"], "e": True}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_settings(["no-equals"])
    results = tmp_path / "results"
    proc = _bench("scale", "--quick", "--only", "scale", "--set", "max_size=2000",
                  "--set", "dim=16", "--set", 'kinds=["flat"]', "--results", str(results),
                  "--no-table")
    assert proc.returncode == 0, proc.stderr
    (rec,) = load_records(results)
    assert rec["params"]["kwargs"] == {"max_size": 2000, "dim": 16, "kinds": ["flat"]}
    assert rec["result"]["dim"] == 16 and rec["result"]["sizes"] == [2000]
    assert {r["index"] for r in rec["result"]["results"]} == {"flat"}
    proc = _bench("scale", "--quick", "--set", "dim=16", "--results", str(results), "--quiet")
    assert proc.returncode == 2 and "--set needs --only" in proc.stderr
