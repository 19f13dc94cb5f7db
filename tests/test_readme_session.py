"""README.md's "What a session looks like" block runs as written.

Each line runs in bash, in a temporary folder, with ``ballistics`` calling this checkout
(``python -m ballistics``); the placeholder inputs (``A.x3p``, ``B.x3p``, ``Q.x3p``,
``export.tif``, ``BULLET_A/``, ``BULLET_B/``) are synthetic files of those names: two
casings and a third of one firearm whose firing pin leaves aperture shear (6.25 µm), a
TIFF height map, and two bullets of one barrel. Every line must exit 0 and the files the
block names must exist afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def session_lines() -> list[str]:
    """The command lines of the README's session block, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"## What a session looks like\n.*?```bash\n(.*?)```", text, re.S)
    assert m, "README.md has no 'What a session looks like' bash block"
    return [ln for ln in m.group(1).splitlines() if ln.strip()]


def _placeholders(root: Path) -> None:
    """The files the block's placeholders name, synthetic."""
    import tifffile

    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.datasets.synthetic.striae import (
        fire_bullet,
        make_barrel,
        striae_params,
        write_bullet,
    )
    from ballistics.io import write_x3p

    p = params_for("realistic", spacing_um=6.25, aperture_shear_probability=1.0,
                   aperture_shear_shot_probability=1.0)
    gun = make_firearm("X1", 4242, p)
    for name, seed in (("A", 1), ("B", 2), ("Q", 3)):
        scan = fire(gun, seed, p).scan
        assert scan is not None
        write_x3p(scan, root / f"{name}.x3p")
    rng = np.random.default_rng(0)
    tifffile.imwrite(root / "export.tif", rng.normal(0.0, 1.0, (200, 240)).astype(np.float32))
    bp = striae_params("easy", land_length_um=150.0, land_width_um=1000.0)
    barrel = make_barrel("B9", 9, bp)
    write_bullet(fire_bullet(barrel, 1, bp), root / "BULLET_A")
    write_bullet(fire_bullet(barrel, 2, bp), root / "BULLET_B")


def test_session_lines_are_commands():
    lines = session_lines()
    assert len(lines) >= 10
    assert all(ln.startswith("ballistics ") for ln in lines)


@pytest.mark.slow
def test_readme_session_runs_as_written(tmp_path):
    _placeholders(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PY": sys.executable}
    env.pop("BALLISTICS_PROGRESS_DELAY", None)
    prelude = 'ballistics() { "$PY" -m ballistics "$@"; }\n'
    timings = []
    for line in session_lines():
        t0 = time.perf_counter()
        done = subprocess.run(["bash", "-c", prelude + line], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL)
        timings.append((time.perf_counter() - t0, line.split("#")[0].strip()))
        assert done.returncode == 0, f"{line}\nexit {done.returncode}\n{done.stderr[-2000:]}"
    for name in ("pair.html", "pair.pdf", "search.html", "hits.csv", "entries.csv",
                 "A-processed.x3p", "A-segmentation.png", "search_pairs/01-"):
        matches = list(tmp_path.glob(name + "*"))
        assert matches, f"{name} was not written"
    assert len(list((tmp_path / "search_pairs").glob("*.html"))) == 3
    print("\n".join(f"{t:6.1f} s  {cmd}" for t, cmd in timings))
