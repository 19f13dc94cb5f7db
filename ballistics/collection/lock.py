"""The write lock of a collection: one writer at a time, readers never wait.

The lock is an ``fcntl.flock`` on ``DIR/write.lock``; the file also records the holder's
pid, host, command and start time so a refused writer can say who holds it. The kernel
drops a ``flock`` when its process dies (even by SIGKILL), so a lock left by a dead
process is never stale: the next writer simply takes it. On file systems without
``flock`` support we fall back to ``O_EXCL`` creation of ``DIR/write.lock.excl`` and break
it when the recorded pid is dead on this host.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from ballistics.errors import CollectionLockedError

LOCK_NAME = "write.lock"
EXCL_NAME = "write.lock.excl"


def _pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host."""
    if pid <= 0:
        return False
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
        self._fd: int | None = None
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
        for p in (self.path, self.directory / EXCL_NAME):
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
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise self._refuse(self.read_holder()) from None
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                return self._acquire_excl()
            raise
        data = json.dumps(self._info()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        self._fd = fd
        return self

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
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None
        if self._excl is not None:
            self._excl.unlink(missing_ok=True)
            self._excl = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None or self._excl is not None

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

