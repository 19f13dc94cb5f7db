"""The CLI contract shared by every command.

- ``--json`` output goes to stdout as one JSON object (JSON Lines for batch commands);
  progress bars, warnings and errors go to stderr.
- Keys are snake_case; lengths in µm; angles in degrees, counter-clockwise positive as the
  image is displayed (row 0 at the top); positions ``[y, x]`` from the scan's first point.
- Every object carries ``version`` and, where something was off, ``warnings``.
- Errors: one line on stderr naming the file and the problem; exit code 2 for bad input,
  1 for other failures; never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from ballistics._version import __version__
from ballistics.errors import BallisticsError, ScanWarning
from ballistics.jsonutil import dumps

F = TypeVar("F", bound=Callable[..., Any])


def emit_json(obj: dict[str, Any], *, warnings_: list[str] | None = None) -> None:
    """Print one JSON object on one line to stdout, adding ``version`` and ``warnings``."""
    out = dict(obj)
    out.setdefault("version", __version__)
    merged = list(out.get("warnings") or [])
    for w in warnings_ or []:
        if w not in merged:
            merged.append(w)
    if merged or "warnings" in out:
        out["warnings"] = merged
    click.echo(dumps(out))


def echo_err(message: str) -> None:
    """One line on stderr."""
    click.echo(message, err=True)


class _EchoErrHandler(logging.Handler):
    """A logging handler that writes each record's message as one line on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            echo_err(self.format(record))
        except Exception:  # pragma: no cover - logging must never break a command
            self.handleError(record)


@contextlib.contextmanager
def log_to_stderr(name: str, level: int = logging.INFO) -> Iterator[None]:
    """Show the library logger ``name``'s records of ``level`` and above on stderr meanwhile.

    The library logs (it never prints); a command uses this for the records its user should
    see, e.g. the Dask dashboard link of a cluster ingest.
    """
    logger = logging.getLogger(name)
    handler = _EchoErrHandler(level)
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(min(level, old_level) if old_level else level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def handle_errors(func: F) -> F:
    """Turn exceptions into one stderr line and an exit code; show ScanWarnings on stderr.

    :class:`BallisticsError` exits with its ``exit_code`` (2 bad input, 1 otherwise); any
    other exception exits 1 with its type and message (still no traceback). Warnings from
    third-party libraries are silenced; ``ScanWarning`` is printed once as ``warning: ...``.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore")
            warnings.simplefilter("always", ScanWarning)
            try:
                return func(*args, **kwargs)
            except BallisticsError as exc:
                echo_err(f"error: {exc}")
                sys.exit(exc.exit_code)
            except click.exceptions.Exit:
                raise
            except click.ClickException:
                raise
            except KeyboardInterrupt:
                echo_err("error: interrupted")
                sys.exit(130)
            except MemoryError:
                echo_err("error: out of memory; try a smaller batch or fewer workers")
                sys.exit(1)
            except Exception as exc:
                echo_err(f"error: unexpected {type(exc).__name__}: {exc}")
                sys.exit(1)
            finally:
                seen: set[str] = set()
                for w in caught:
                    msg = str(w.message)
                    if issubclass(w.category, ScanWarning) and msg not in seen:
                        seen.add(msg)
                        echo_err(f"warning: {msg}")

    return wrapper  # type: ignore[return-value]


def json_option(func: F) -> F:
    """``--json``: print machine-readable output to stdout."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")(func)


def quiet_option(func: F) -> F:
    """``--quiet``: no progress bar."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(func)


def scan_read_options(func: F) -> F:
    """``--spacing-um``, ``--no-verify`` and ``--strict``, taken by every command that reads
    scans."""
    func = click.option(
        "--strict", is_flag=True,
        help="Refuse X3P files whose content no checksum covers (no checksum file, data "
             "without MD5, a mask layer) instead of reading them with a warning.",
    )(func)
    func = click.option(
        "--no-verify", is_flag=True,
        help="Read files despite a checksum mismatch (with a warning).",
    )(func)
    func = click.option(
        "--spacing-um", type=float, default=None,
        help="Pixel spacing in µm for images that carry none.",
    )(func)
    return func


def device_option(func: F) -> F:
    """``--device auto|cpu|cuda[:N]``."""
    return click.option(
        "--device", default="auto", show_default=True,
        help="Compute device: auto (CUDA when present), cpu or cuda[:N].",
    )(func)


class OutputFile(click.ParamType):
    """A file the command will write: checked when the options are parsed, before any work.
    It must not be a folder, and no folder on its way may be a file; missing folders are
    created. A bad one is a usage error (one line, exit 2)."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        p = Path(value)
        if p.is_dir():
            self.fail(f"{str(value)!r} is a folder; give a file name", param, ctx)
        for parent in p.parents:
            if parent.exists():
                if not parent.is_dir():
                    self.fail(f"{str(value)!r} cannot be written: {str(parent)!r} is a file",
                              param, ctx)
                break
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.fail(f"{str(value)!r} cannot be written: {exc.strerror}", param, ctx)
        return str(value)


#: the ``type=`` of every option or argument that names a file to write
OUTPUT_FILE = OutputFile()
