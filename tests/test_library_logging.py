"""The library logs and never prints; the CLI shows chosen log records on stderr."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import ballistics
from ballistics.cli.common import log_to_stderr

PKG = Path(ballistics.__file__).resolve().parent
#: modules that are command-line programs themselves
PROGRAMS = {"cli", "_apidoc.py", "__main__.py"}


def test_library_code_has_no_print_call():
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.parts[0] in PROGRAMS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "print"):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_log_to_stderr_shows_records_only_meanwhile(capsys):
    log = logging.getLogger("ballistics.workflows.distributed")
    before = (logging.getLogger("ballistics.workflows").level,
              logging.getLogger("ballistics.workflows").propagate)
    with log_to_stderr("ballistics.workflows"):
        log.info("Dask dashboard: %s", "http://127.0.0.1:8787/status")
        log.debug("not shown")
    log.info("after: not shown")
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == "Dask dashboard: http://127.0.0.1:8787/status\n"
    after = logging.getLogger("ballistics.workflows")
    assert (after.level, after.propagate) == before
