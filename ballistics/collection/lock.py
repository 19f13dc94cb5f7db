"""The write lock of a collection: one writer at a time, readers never wait.

The lock is a :class:`filelock.FileLock` on ``DIR/write.lock`` (``flock`` on POSIX,
``LockFileEx`` on Windows); ``DIR/write.lock.json`` records the holder's pid, host, command
and start time so a refused writer can say who holds it (a separate file: filelock may
truncate or remove its lock file, and Windows locks are mandatory, so the lock file itself
cannot be read by the refused writer). The operating system drops the lock when its process
dies (even by SIGKILL), so a lock left by a dead process is never stale: the next writer
simply takes it. Where the installed filelock reports that the file system has no native
lock (older filelock raises ``NotImplementedError``) we fall back to ``O_EXCL`` creation of
``DIR/write.lock.excl`` and break it when the recorded pid is dead on this host.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

import filelock

from ballistics.errors import CollectionLockedError

LOCK_NAME = "write.lock"
HOLDER_NAME = "write.lock.json"
EXCL_NAME = "write.lock.excl"


def _pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there: assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_text(info: dict) -> str:
    if not info:
        return "another process"
    parts = [f"process {info.get('pid', '?')}"]
    if info.get("host"):
        parts.append(f"on {info['host']}")
    if info.get("command"):
        parts.append(f"running {info['command']!r}")
    if info.get("started"):
        parts.append(f"since {info['started']}")
    return " ".join(parts)


class CollectionLock:
    """An exclusive, non-blocking write lock on a collection directory.

    Parameters
    ----------
    directory
        The collection directory (it must exist).
    command
        A short description of the writer (recorded for the refusal message).

    Raises
    ------
    CollectionLockedError
        From :meth:`acquire` when another live process holds the lock.
    """

    def __init__(self, directory: str | Path, command: str = "") -> None:
        self.directory = Path(directory)
        self.command = command or " ".join(os.path.basename(a) for a in sys.argv[:2])
        self._lock: filelock.BaseFileLock | None = None
        self._excl: Path | None = None

    @property
    def path(self) -> Path:
        """The lock file."""
        return self.directory / LOCK_NAME

    def _info(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def read_holder(self) -> dict:
        """What the lock file says about its current (or last) holder."""
        for p in (self.directory / HOLDER_NAME, self.directory / EXCL_NAME):
            try:
                text = p.read_text()
            except OSError:
                continue
            try:
                info = json.loads(text)
                if isinstance(info, dict):
                    return info
            except ValueError:
                continue
        return {}

    def _refuse(self, info: dict) -> CollectionLockedError:
        return CollectionLockedError(
            f"collection is being written by {_holder_text(info)}; two writers at once are "
            "refused so that nothing is interleaved. Wait for it to finish (searches can run "
            "meanwhile), then retry (use --resume to continue an interrupted ingest).",
            path=self.directory,
        )

    def acquire(self) -> CollectionLock:
        """Take the lock or raise :class:`CollectionLockedError` at once."""
        if self.held:
            return self
        lock = filelock.FileLock(str(self.path))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise self._refuse(self.read_holder()) from None
        except NotImplementedError:  # no native lock on this file system (filelock < 4)
            return self._acquire_excl()
        self._lock = lock
        self._write_holder()
        return self

    def _write_holder(self) -> None:
        """Record who holds the lock (best effort: the lock itself is already held)."""
        try:
            with open(self.directory / HOLDER_NAME, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(self._info()))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            pass

    def _acquire_excl(self) -> CollectionLock:
        """Fallback: ``O_EXCL`` lock file, broken when its pid is dead on this host."""
        path = self.directory / EXCL_NAME
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    info = json.loads(path.read_text())
                except (OSError, ValueError):
                    info = {}
                same_host = info.get("host") == socket.gethostname()
                if same_host and not _pid_alive(int(info.get("pid", 0))):
                    path.unlink(missing_ok=True)
                    continue
                raise self._refuse(info) from None
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(self._info()))
                fh.flush()
                os.fsync(fh.fileno())
            self._excl = path
            return self
        raise self._refuse(self.read_holder())

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._lock is not None:
            try:
                self._lock.release()
            finally:
                self._lock = None
        if self._excl is not None:
            self._excl.unlink(missing_ok=True)
            self._excl = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._lock is not None or self._excl is not None

    def __enter__(self) -> CollectionLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.release()
        except Exception:
            pass

