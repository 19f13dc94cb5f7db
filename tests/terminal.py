"""Run the command line with stderr on a pseudo-terminal, as a user at a terminal sees it."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_tty(*args: str, cwd: str | Path | None = None, timeout: float = 300.0,
            delay: str = "0") -> tuple[int, str, str]:
    """``python -m ballistics ARGS`` with stderr on a pseudo-terminal (stdout a pipe).

    Returns ``(exit code, stdout, stderr as the terminal received it)``. The bars' delay is
    ``delay`` seconds (``BALLISTICS_PROGRESS_DELAY``) so that short test runs show them.
    """
    master, slave = pty.openpty()
    # a 40 x 120 terminal (a new pseudo-terminal is 0 x 0: bars would be drawn empty)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "BALLISTICS_PROGRESS_DELAY": delay}
    proc = subprocess.Popen([sys.executable, "-m", "ballistics", *args], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, out.decode("utf-8", "replace"), \
        b"".join(chunks).decode("utf-8", "replace")
