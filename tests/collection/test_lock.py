"""The write lock within one process: holder record, refusal, release, no POSIX-only imports."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

import ballistics.collection.lock as lock_mod
from ballistics.collection.lock import HOLDER_NAME, CollectionLock
from ballistics.errors import CollectionLockedError


def test_holder_is_recorded_and_a_second_lock_is_refused(tmp_path):
    with CollectionLock(tmp_path, "ingest test") as first:
        assert first.held
        info = json.loads((tmp_path / HOLDER_NAME).read_text())
        assert info["pid"] == os.getpid() and info["command"] == "ingest test"
        assert first.read_holder() == info
        with pytest.raises(CollectionLockedError, match=f"process {os.getpid()}.*ingest test"):
            CollectionLock(tmp_path, "second").acquire()
        assert first.acquire() is first  # taking a held lock again is a no-op
    assert not first.held
    with CollectionLock(tmp_path, "third") as again:
        assert again.held
        assert again.read_holder()["command"] == "third"
    again.release()  # idempotent


def test_lock_module_imports_no_posix_only_module():
    tree = ast.parse(Path(lock_mod.__file__).read_text(encoding="utf-8"))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom)}
    assert "filelock" in names
    assert not names & {"fcntl", "msvcrt", "termios"}
