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
