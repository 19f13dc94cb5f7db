"""A small synthetic collection shared by the command-line tests that search one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.terminal import run_tty


@pytest.fixture(scope="session")
def synth_lab(tmp_path_factory) -> Path:
    """``s/``: four synthetic casings (2 firearms, 717 x 717 points at 6.25 µm) and their
    manifest; ``lab/``: a collection of them (baseline embedder). The synth runs on a
    terminal (its bar is checked), the ingest with --quiet (no bar)."""
    root = tmp_path_factory.mktemp("synth-lab")
    rc, _, err = run_tty("synth", str(root / "s"), "--firearms", "2", "--casings", "2",
                         "--spacing-um", "6.25")
    assert rc == 0, err
    assert "synth" in err and "4/4" in err  # the generator's bar
    rc, _, err = run_tty("ingest", str(root / "s"), "--collection", str(root / "lab"),
                         "--labels", str(root / "s" / "manifest.csv"), "--model", "baseline",
                         "--quiet")
    assert rc == 0, err
    assert "ingest" not in err  # --quiet: no bar
    return root
