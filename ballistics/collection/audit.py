"""The collection's audit log: one JSON line per ingest, search, calibration and verify.

Each line holds the UTC time, the user and host, the command, its parameters, the
SHA-256 of its inputs, the toolkit version, the versions of Python and the libraries
(``versions``, :func:`ballistics.provenance.versions`) and a summary of the result. Lines are
appended with ``O_APPEND`` and fsync'd, so concurrent readers (searches) and the writer
never interleave partial lines.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ballistics._version import __version__
from ballistics.jsonutil import to_jsonable
from ballistics.provenance import versions

AUDIT_NAME = "audit.jsonl"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def audit_entry(
    command: str,
    parameters: Mapping[str, Any],
    *,
    inputs: Sequence[Mapping[str, Any]] = (),
    result: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one audit record (not yet written)."""
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "user": _user(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": command,
        "parameters": to_jsonable(dict(parameters)),
        "inputs": to_jsonable([dict(i) for i in inputs]),
        "version": __version__,
        "versions": versions(),
        "result": to_jsonable(dict(result or {})),
    }


def append_audit(directory: str | Path, entry: Mapping[str, Any]) -> None:
    """Append one JSON line to ``DIR/audit.jsonl`` (one ``write`` call, fsync'd)."""
    line = (json.dumps(to_jsonable(dict(entry)), allow_nan=False, ensure_ascii=False) + "\n")
    fd = os.open(Path(directory) / AUDIT_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def log_event(
    directory: str | Path,
    command: str,
    parameters: Mapping[str, Any],
    *,
    inputs: Sequence[Mapping[str, Any]] = (),
    result: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build and append one audit record; return it."""
    entry = audit_entry(command, parameters, inputs=inputs, result=result)
    append_audit(directory, entry)
    return entry


def read_audit(directory: str | Path) -> Iterator[dict[str, Any]]:
    """The audit records, oldest first (a torn last line from a crash is skipped)."""
    path = Path(directory) / AUDIT_NAME
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue
