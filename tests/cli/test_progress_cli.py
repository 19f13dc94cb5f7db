"""Progress bars of the long commands: shown on a terminal (stderr), gone with --quiet, and
without effect on the results.

Every command runs as a user runs it (``python -m ballistics``) with stderr on a
pseudo-terminal; the bars' delay is set to 0 (``BALLISTICS_PROGRESS_DELAY``) so that these
small inputs show them."""

from __future__ import annotations

import json

from tests.terminal import run_tty


def test_search_shows_the_re_ranking_bar_and_quiet_hides_it(synth_lab):
    lab = synth_lab
    args = ["search", str(lab / "s" / "F001-01.x3p"), "--collection", str(lab / "lab"),
            "--json", "--workers", "1"]
    rc, out, err = run_tty(*args)
    assert rc == 0, err
    assert "re-rank" in err and "3/3" in err and "casing" in err
    rc, out_quiet, err_quiet = run_tty(*args, "--quiet")
    assert rc == 0, err_quiet
    assert "re-rank" not in err_quiet and "3/3" not in err_quiet
    a, b = json.loads(out), json.loads(out_quiet)
    assert [(c["id"], c["score"], c["cmc_count"]) for c in a["candidates"]] == \
        [(c["id"], c["score"], c["cmc_count"]) for c in b["candidates"]]


def test_compare_shows_its_stages_and_quiet_hides_them(synth_lab):
    s = synth_lab / "s"
    args = ["compare", str(s / "F001-01.x3p"), str(s / "F001-02.x3p"), "--json"]
    rc, out, err = run_tty(*args)
    assert rc == 0, err
    assert "compare: 5/5" in err and "preparing the target" in err
    assert "compare: 5/5, done" in err and " , " not in err  # tqdm's postfix brings its ", "
    assert "cells, target -> reference" in err  # the comparison's own stages
    rc, out_quiet, err_quiet = run_tty(*args, "--quiet")
    assert rc == 0, err_quiet
    assert "compare:" not in err_quiet
    a, b = json.loads(out), json.loads(out_quiet)
    assert (a["cmc_count_combined"], a["score"]) == (b["cmc_count_combined"], b["score"])


def test_verify_shows_a_bar_over_the_shards(synth_lab):
    args = ["verify", "--collection", str(synth_lab / "lab"), "--json"]
    rc, out, err = run_tty(*args)
    assert rc == 0, err
    n = len(json.loads((synth_lab / "lab" / "manifest.json").read_text())["shards"])
    assert "verify" in err and f"{n}/{n}" in err and "shard" in err
    assert json.loads(out)["ok"] is True
    rc, _, err_quiet = run_tty(*args, "--quiet")
    assert rc == 0 and "verify" not in err_quiet


def test_compare_bullets_lands_bar_and_quiet(tmp_path):
    from ballistics.datasets.synthetic.striae import (
        fire_bullet,
        make_barrel,
        striae_params,
        write_bullet,
    )

    p = striae_params("easy", land_length_um=150.0, land_width_um=1000.0)
    barrel = make_barrel("B9", 9, p)
    write_bullet(fire_bullet(barrel, 1, p), tmp_path / "a")
    write_bullet(fire_bullet(barrel, 2, p), tmp_path / "b")
    n = len(list((tmp_path / "a").glob("*.x3p"))) * 2
    args = ["compare-bullets", str(tmp_path / "a"), str(tmp_path / "b"), "--json"]
    rc, out, err = run_tty(*args)
    assert rc == 0, err
    assert "lands" in err and f"{n}/{n}" in err
    rc, out_quiet, err_quiet = run_tty(*args, "--quiet")
    assert rc == 0 and f"{n}/{n}" not in err_quiet
    assert json.loads(out)["sam"] == json.loads(out_quiet)["sam"]


def test_compare_striae_shows_its_steps_and_quiet_hides_them(tmp_path):
    """compare-striae had no --quiet and no bar although it takes 2-4 s on a pair of real
    lands (Hamby 44, with a report); it now shows its steps as compare does."""
    from ballistics.datasets.synthetic.striae import make_mark, make_tool, striae_params
    from ballistics.io import write_x3p

    p = striae_params("realistic")
    tool = make_tool("F1", 1, p)
    for k, name in enumerate(("a", "b"), start=1):
        write_x3p(make_mark(tool, k, p, direction_deg=85.0, shape=(110, 260)).scan,
                  tmp_path / f"{name}.x3p")
    args = ["compare-striae", str(tmp_path / "a.x3p"), str(tmp_path / "b.x3p"), "--json",
            "--report", str(tmp_path / "r.html")]
    rc, out, err = run_tty(*args)
    assert rc == 0, err
    assert "compare-striae: 4/4, done" in err and "extracting its signature" in err
    assert "b.x3p and extracting" in err and "writing the report" in err
    rc, out_quiet, err_quiet = run_tty(*args, "--quiet")
    assert rc == 0, err_quiet
    assert "compare-striae:" not in err_quiet
    a, b = json.loads(out), json.loads(out_quiet)
    assert (a["ccf_max"], a["cms"], a["lag_um"]) == (b["ccf_max"], b["cms"], b["lag_um"])
    rc, _, err = run_tty(*args[:-2])  # no report: three steps
    assert rc == 0 and "compare-striae: 3/3, done" in err, err


def test_preprocess_shows_its_stages_and_quiet_hides_them(synth_lab, tmp_path):
    args = ["preprocess", str(synth_lab / "s" / "F002-01.x3p"), str(tmp_path / "p.x3p"),
            "--figure", str(tmp_path / "p.png")]
    rc, _, err = run_tty(*args)
    assert rc == 0, err
    assert "preprocess: 4/4" in err and "segmenting" in err and " , " not in err
    rc, _, err_quiet = run_tty(*args, "--quiet")
    assert rc == 0 and "preprocess:" not in err_quiet


def test_calibrate_bar_moves_with_each_batch(synth_lab, tmp_path):
    import re
    import shutil

    col = tmp_path / "lab"
    shutil.copytree(synth_lab / "lab", col)
    args = ["calibrate", "--collection", str(col), "--workers", "2", "--threads", "2",
            "--device", "cpu", "--json"]
    rc, out, err = run_tty(*args)
    assert rc == 0, err
    counts = {int(m) for m in re.findall(r"compare:[^\r\n]*?(\d+)/6", err)}
    # 6 pairs in batches of their shared reference (3 + 2 + 1): the bar shows the batches
    assert 6 in counts and counts & {1, 2, 3, 4, 5}, err
    assert json.loads(out)["sampling"]["same_source"]["chosen"] == 2
    rc, _, err_quiet = run_tty(*args, "--quiet")
    assert rc == 0 and "compare:" not in err_quiet
