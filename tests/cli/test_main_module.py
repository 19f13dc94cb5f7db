"""``python -m ballistics`` is the ``ballistics`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ballistics._version import __version__

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ballistics", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)


def test_python_m_ballistics_version():
    proc = _run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"ballistics, version {__version__}\n"


def test_python_m_ballistics_help_names_the_command_and_a_bad_command_exits_2():
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: ballistics [OPTIONS] COMMAND")
    assert "ingest" in proc.stdout
    bad = _run("no-such-command")
    assert bad.returncode == 2 and "No such command" in bad.stderr


def test_usage_errors_are_one_line_and_exit_2():
    from ballistics.cli import main
    from tests.clirunner import CliRunner

    for args, words in ((["compare"], "Missing argument 'REFERENCE'"),
                        (["compare", "a", "b", "--preset", "nope"], "Invalid value for '--preset'"),
                        (["search", "q.x3p", "--no-such-option"], "No such option"),
                        (["no-such-command"], "No such command")):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, (args, r.output)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
        assert "Traceback" not in r.output and "Usage:" not in r.output
    bare = CliRunner().invoke(main, [])
    assert bare.exit_code == 0 and bare.stdout.startswith("Usage: ") and "compare" in bare.stdout


def test_output_paths_are_checked_before_any_work(tmp_path):
    from ballistics.cli import main
    from tests.clirunner import CliRunner

    a_file = tmp_path / "f"
    a_file.write_text("x")
    for args in (["compare", "a.x3p", "b.x3p", "--report", str(a_file / "r.html")],
                 ["compare", "a.x3p", "b.x3p", "--report", str(tmp_path)],
                 ["preprocess", "a.x3p", str(a_file / "deeper" / "out.x3p")],
                 ["embed", "a.x3p", "--out", str(tmp_path)]):
        r = CliRunner().invoke(main, args)  # the inputs do not exist: the output fails first
        assert r.exit_code == 2, r.output
        assert "cannot be written" in r.stderr or "is a folder" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_closed_stdout_pipe_exits_without_an_error_line(tmp_path):
    """``ballistics info F --json | head -0``: the reader closed the pipe before the command
    wrote; no "unexpected BrokenPipeError" line, no traceback, exit 1."""
    import numpy as np

    from ballistics.io import write_x3p
    from ballistics.scan import Scan

    f = tmp_path / "a.x3p"
    write_x3p(Scan(np.zeros((20, 30), np.float32), (6.25, 6.25)), f)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["info", str(f), "--json"], ["info", str(f)]):
        proc = subprocess.Popen([sys.executable, "-m", "ballistics", *args], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # before the interpreter has even started: every write fails
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 1
        assert err == "", err
