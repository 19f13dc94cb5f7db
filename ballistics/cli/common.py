"""The CLI contract shared by every command.

- ``--json`` output goes to stdout as one JSON object (JSON Lines for batch commands);
  progress bars, warnings and errors go to stderr.
- Keys are snake_case; lengths in µm; angles in degrees, counter-clockwise positive as the
  image is displayed (row 0 at the top); positions ``[y, x]`` from the scan's first point.
- Every object carries ``schema`` (:data:`ballistics.provenance.SCHEMA`), ``version``,
  ``versions`` (toolkit, Python and library versions) and ``warnings`` (``[]`` when nothing
  was off).
- Reports (``compare``, ``compare-striae``, ``compare-bullets``, ``search``): ``--report
  FILE`` writes HTML, ``--pdf FILE`` the same content as PDF; the case options
  (:func:`case_options`) go into the report's "Case" table and the JSON's ``case``; the
  JSON gives each report's SHA-256 (``report_sha256``).
- ``--csv FILE`` (``compare``, ``search``) writes a table with the csv module: a header row,
  empty fields for undefined values, ``true``/``false``; ``-`` is stdout.
- Errors: one line on stderr naming the file and the problem; exit code 2 for bad input,
  1 for other failures; never a traceback.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import io
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ballistics._version import __version__
from ballistics.errors import BallisticsError, ScanWarning
from ballistics.jsonutil import dumps, to_jsonable
from ballistics.provenance import SCHEMA, versions

F = TypeVar("F", bound=Callable[..., Any])


_ENVELOPE = ("schema", "version", "versions", "warnings")


def emit_json(obj: dict[str, Any], *, warnings_: list[str] | None = None) -> None:
    """Print one JSON object on one line to stdout, adding ``schema`` (first), ``version``,
    ``versions`` (:func:`ballistics.provenance.versions`) and ``warnings`` (last; ``[]`` when
    there are none: README's contract, every object carries the four keys)."""
    out: dict[str, Any] = {"schema": obj.get("schema", SCHEMA)}
    out.update((k, v) for k, v in obj.items() if k not in _ENVELOPE)
    out["version"] = obj.get("version", __version__)
    out["versions"] = obj.get("versions") or versions()
    merged = list(obj.get("warnings") or [])
    for w in warnings_ or []:
        if w not in merged:
            merged.append(w)
    out["warnings"] = merged
    click.echo(dumps(out))


def named_warnings(read: Callable[[], Any]) -> Any:
    """``read()`` (which reads, and may prepare, one file and returns its Scan, or a tuple
    whose first item is one) with the warnings it raises and records named by the file they
    concern (the Scan's ``source``): a two-file command's ``implausible height range ...``
    says which input it means. Messages that already start with the file are left as they
    are; other warnings pass through unchanged."""
    import warnings

    from ballistics.errors import ScanWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScanWarning)
        out = read()
    first = out[0] if isinstance(out, tuple) else out
    name = str(getattr(first, "source", None) or "")

    def named(m: str) -> str:
        return m if not name or m.startswith(f"{name}: ") else f"{name}: {m}"

    for w in caught:
        if issubclass(w.category, ScanWarning):
            warnings.warn(named(str(w.message)), ScanWarning, stacklevel=2)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    renamed = first.replace(warnings=tuple(named(m) for m in first.warnings))
    return (renamed, *out[1:]) if isinstance(out, tuple) else renamed


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


def _stdout_to_devnull() -> None:
    """Point the process's stdout at ``os.devnull`` (after its reader closed the pipe), so
    that the interpreter's final flush does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner's)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def handle_errors(func: F) -> F:
    """Turn exceptions into one stderr line and an exit code; show ScanWarnings on stderr.

    :class:`BallisticsError` exits with its ``exit_code`` (2 bad input, 1 otherwise); any
    other exception exits 1 with its type and message (still no traceback). Warnings from
    third-party libraries are silenced; ``ScanWarning`` is printed once as ``warning: ...``
    when the command succeeds (a failed command prints its one error line only). When the
    reader of stdout closes the pipe (``ballistics collection list | head``), the command
    exits 1 without an error line.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore")
            warnings.simplefilter("always", ScanWarning)
            ok = False
            try:
                result = func(*args, **kwargs)
                ok = True
                return result
            except (click.exceptions.Exit, SystemExit):
                ok = True  # the command's own exit: its warnings stand
                raise
            except BallisticsError as exc:
                echo_err(f"error: {exc}")
                sys.exit(exc.exit_code)
            except click.ClickException:
                raise
            except KeyboardInterrupt:
                echo_err("error: interrupted")
                sys.exit(130)
            except BrokenPipeError:
                # the reader of stdout stopped (``| head``): no error line, no traceback
                # when Python flushes stdout at exit; exit 1 (the output was cut short)
                _stdout_to_devnull()
                sys.exit(1)
            except MemoryError:
                echo_err("error: out of memory; try a smaller batch or fewer workers")
                sys.exit(1)
            except Exception as exc:
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    where = f" writing {exc.filename}" if exc.filename else ""
                    echo_err(f"error: no space left on the device{where}; free disk space "
                             "and run the command again")
                else:
                    echo_err(f"error: unexpected {type(exc).__name__}: {exc}")
                sys.exit(1)
            finally:
                seen: set[str] = set()
                for w in caught if ok else ():
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
    """``--spacing-um``, ``--modality``, ``--no-verify`` and ``--strict``, taken by every
    command that reads scans (passed to :func:`ballistics.io.read_scan`)."""
    func = click.option(
        "--modality", type=click.Choice(["topography", "image"]), default=None,
        help="What the files hold, for those that do not say: 'topography' reads a TIFF, PNG "
             "or BMP as a height map (values taken as µm; needs --spacing-um). Default: as "
             "the file says (X3P records it, images are images, instrument formats are "
             "topographies); a file that says otherwise is an error.",
    )(func)
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
        "--spacing-um", type=click.FloatRange(min=0, min_open=True), default=None,
        help="Pixel spacing in µm for images that carry none (and for every image read "
             "with --modality topography).",
    )(func)
    return func


def preprocess_options(what: str = "The inputs are") -> Callable[[F], F]:
    """``--preprocess auto|raw|processed`` and its older alias ``--processed``, taken by every
    command that prepares scans (``what`` starts the alias's help: "The inputs are",
    "The query is"); :func:`resolve_preprocess` turns the two into the mode."""

    def deco(func: F) -> F:
        func = click.option(
            "--processed", is_flag=True,
            help=f"{what} already processed: use as given (= --preprocess processed).",
        )(func)
        func = click.option(
            "--preprocess", "preprocess_mode",
            type=click.Choice(["auto", "raw", "processed"], case_sensitive=False),
            default=None,
            help="auto (default): apply the preset's steps each scan still needs, as "
                 "measured (levelled? filtered? cut to the breech face? resampled?); raw: "
                 "all of them; processed: none.",
        )(func)
        return func

    return deco


def resolve_preprocess(preprocess_mode: str | None, processed: bool) -> str:
    """The mode of ``--preprocess`` and ``--processed``: ``--processed`` with ``--preprocess
    auto`` or ``raw`` is a usage error (exit 2)."""
    mode = (preprocess_mode or ("processed" if processed else "auto")).lower()
    if processed and mode != "processed":
        raise click.UsageError(f"--processed contradicts --preprocess {mode}")
    return mode


def _configure_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """Apply ``--threads`` (or ``BALLISTICS_THREADS``, or the automatic count) as the options
    are parsed, before the command imports torch."""
    if ctx.resilient_parsing:
        return value
    from ballistics.device import configure_threads
    from ballistics.errors import ParameterError

    try:
        return configure_threads(value or None)
    except ParameterError as exc:
        raise click.UsageError(str(exc), ctx) from None


def threads_option(func: F) -> F:
    """``--threads N``: CPU threads of the command and its worker processes (0: automatic).

    Applied when the options are parsed (:func:`ballistics.device.configure_threads`); the
    command function does not receive it.
    """
    return click.option(
        "--threads", type=click.IntRange(0, 4096), default=None, metavar="N",
        callback=_configure_threads, expose_value=False,
        help="CPU threads, shared by the worker processes (default: BALLISTICS_THREADS, else "
             "the cores free now, within the affinity and cgroup quota).",
    )(func)


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


def csv_option(what: str) -> Callable[[F], F]:
    """``--csv FILE``: also write ``what`` as a CSV table (``-`` = stdout)."""

    def deco(func: F) -> F:
        return click.option(
            "--csv", "csv_path", type=OUTPUT_FILE, default=None, metavar="FILE",
            help=f"Also write {what} to this CSV file ('-': stdout, in place of the text "
                 "output; not with --json).",
        )(func)

    return deco


def check_csv_target(csv_path: str | None, *, stdout_taken: bool) -> None:
    """``--csv -`` shares stdout with nothing: a usage error (exit 2) when JSON goes there."""
    if csv_path == "-" and stdout_taken:
        raise click.UsageError("--csv - writes the table to stdout, where the JSON goes too; "
                               "give --csv a file name")


def _csv_field(v: Any) -> Any:
    v = to_jsonable(v)  # numpy scalars to Python; NaN to None
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return v


def write_csv(path: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` under the header ``columns`` with the csv module (excel dialect, UTF-8).

    Undefined values (``None``, NaN) are empty fields, booleans ``true``/``false``, floats
    as Python's shortest round-trip text (the same digits as the JSON); ``path`` ``-`` is
    stdout.
    """
    buf = io.StringIO() if path == "-" else open(path, "w", newline="", encoding="utf-8")
    try:
        w = csv.DictWriter(buf, fieldnames=list(columns))
        w.writeheader()
        for row in rows:
            w.writerow({k: _csv_field(row.get(k)) for k in columns})
        if isinstance(buf, io.StringIO):  # path "-"
            click.echo(buf.getvalue(), nl=False)
    finally:
        buf.close()


# --- case fields and reports ---------------------------------------------------------------
_CASE_OPTIONS = (("case", "case_id", "Case number or reference, shown in the report's Case "
                  "table and the JSON's 'case'."),
                 ("exhibit", "case_exhibit", "Exhibit(s) examined, e.g. 'Q1 vs K3'."),
                 ("examiner", "case_examiner", "The examiner's name."),
                 ("notes", "case_notes", "Free-text notes for the record."))


def case_options(func: F) -> F:
    """``--case``, ``--exhibit``, ``--examiner``, ``--notes`` and ``--case-file FILE``.

    The command receives one argument ``case`` (:class:`ballistics.report.case.CaseInfo`):
    the case file's fields (a JSON object with the keys ``case``, ``exhibit``,
    ``examiner``, ``notes``), each replaced by its option where given. A bad case file or
    field is a usage error (one line, exit 2).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ballistics.report.case import CaseInfo

        given = {key: kwargs.pop(dest) for key, dest, _ in _CASE_OPTIONS}
        case_file = kwargs.pop("case_file")
        try:
            base = CaseInfo.read(case_file) if case_file else CaseInfo()
            kwargs["case"] = base.updated(**given)
        except BallisticsError as exc:
            raise click.UsageError(str(exc)) from None
        return func(*args, **kwargs)

    deco = click.option("--case-file", "case_file", type=click.Path(dir_okay=False),
                        default=None, metavar="FILE",
                        help="A JSON object with the case fields (case, exhibit, examiner, "
                             "notes); the options override it.")
    for name, dest, help_ in reversed(_CASE_OPTIONS):
        wrapper = click.option(f"--{name}", dest, default=None, metavar="TEXT",
                               help=help_)(wrapper)
    return deco(wrapper)  # type: ignore[return-value]


def pdf_option(func: F) -> F:
    """``--pdf FILE``: also write the report as PDF."""
    return click.option(
        "--pdf", "pdf_path", type=OUTPUT_FILE, default=None, metavar="FILE",
        help="Write the report as PDF here (the same content as --report's HTML).",
    )(func)


def check_report_paths(report: str | None, pdf_path: str | None) -> None:
    """``--report`` writes HTML: a ``.pdf`` name there is a usage error pointing at ``--pdf``;
    one file cannot be both."""
    if report is not None and report.lower().endswith(".pdf"):
        raise click.UsageError(f"--report writes HTML; give --pdf {report} for a PDF report")
    if report is not None and pdf_path is not None and Path(report) == Path(pdf_path):
        raise click.UsageError("--report and --pdf name the same file")


def write_report_files(doc: Any, out: dict[str, Any], report: str | None,
                       pdf_path: str | None) -> dict[str, str]:
    """Write the report document as HTML (``report``) and/or PDF (``pdf_path``) and record
    them in the JSON object ``out``: ``report`` (HTML path), ``report_pdf`` (PDF path) and
    ``report_sha256`` (``{"html": ..., "pdf": ...}``, the files written). Returns the
    hashes."""
    from ballistics.report.document import write_reports

    hashes = write_reports(doc, html_path=report, pdf_path=pdf_path)
    if report is not None:
        out["report"] = str(report)
    if pdf_path is not None:
        out["report_pdf"] = str(pdf_path)
    if hashes:
        out["report_sha256"] = hashes
    return hashes
