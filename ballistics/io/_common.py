"""Helpers shared by the readers: file checks, hashing, warning collection, size caps."""

from __future__ import annotations

import hashlib
import math
import os
import threading
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ballistics.errors import (
    CorruptFileError,
    ScanFileNotFoundError,
    ScanWarning,
    UnsafeFileError,
)

#: Largest ratio of uncompressed to compressed size that deflate can reach (about 1032:1),
#: with some slack. A file that declares more than this cannot be honest, so it is refused
#: before anything is allocated.
MAX_COMPRESSION_RATIO = 1100

#: Bytes every file may claim on top of the ratio cap (tiny files may hold small headers).
SIZE_SLACK_BYTES = 1 << 20

#: Hard cap on the number of points of one scan (about 2.1 G points, 8.6 GB as float32).
MAX_POINTS = 2**31 - 1
#: Default budget of points of one scan (400 MB as float32; a breech face at 1 µm is about
#: 25 M points). ``BALLISTICS_MAX_POINTS`` raises it, up to :data:`MAX_POINTS`.
DEFAULT_MAX_POINTS = 100_000_000
MAX_POINTS_ENV = "BALLISTICS_MAX_POINTS"

#: Default budget of decompressed bytes of one file (the zip members of an X3P, the decoded
#: pixels of an image). ``BALLISTICS_MAX_BYTES`` raises (or lowers) it.
DEFAULT_MAX_BYTES = 2 * 1024**3
MAX_BYTES_ENV = "BALLISTICS_MAX_BYTES"

#: Plausible lateral spacings (µm) of a scan of a fired cartridge case or bullet: from
#: 10 nm (the finest confocal and interferometric objectives) to 1 mm. A file whose spacing
#: lies outside is refused unless ``BALLISTICS_ALLOW_ODD_SPACING=1``.
MIN_SPACING_UM = 0.01
MAX_SPACING_UM = 1000.0
ODD_SPACING_ENV = "BALLISTICS_ALLOW_ODD_SPACING"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


def max_points() -> int:
    """The points budget: ``$BALLISTICS_MAX_POINTS`` when set to a positive integer (capped
    at :data:`MAX_POINTS`), else :data:`DEFAULT_MAX_POINTS`."""
    return min(max(_env_int(MAX_POINTS_ENV, DEFAULT_MAX_POINTS), 1), MAX_POINTS)


def max_bytes() -> int:
    """The budget of decompressed bytes: ``$BALLISTICS_MAX_BYTES`` when set to a positive
    integer, else :data:`DEFAULT_MAX_BYTES` (2 GiB)."""
    return max(_env_int(MAX_BYTES_ENV, DEFAULT_MAX_BYTES), 1)


def check_bytes(count: int, what: str, path: str | os.PathLike[str]) -> None:
    """Refuse ``count`` decompressed bytes over the budget (:func:`max_bytes`), before any
    of them is allocated."""
    limit = max_bytes()
    if count > limit:
        raise UnsafeFileError(
            f"{what} needs {count:,} bytes once decompressed, over the limit of {limit:,} "
            f"bytes; set {MAX_BYTES_ENV} to a larger number of bytes to read it",
            path=path,
        )


def odd_spacing_allowed() -> bool:
    """Whether ``$BALLISTICS_ALLOW_ODD_SPACING`` is set to ``1`` (or ``true``/``yes``)."""
    return os.environ.get(ODD_SPACING_ENV, "").strip().lower() in ("1", "true", "yes")


def check_spacing(
    spacing_um: tuple[float, float], what: str, path: str | os.PathLike[str], log: WarningLog
) -> None:
    """Refuse a spacing read from a file outside :data:`MIN_SPACING_UM` ..
    :data:`MAX_SPACING_UM` (a damaged or crafted header); with ``BALLISTICS_ALLOW_ODD_SPACING=1``
    it is read, with a warning. Non-finite or non-positive spacings are always refused."""
    for name, value in zip(("dy", "dx"), spacing_um, strict=True):
        if not (math.isfinite(value) and value > 0):
            raise CorruptFileError(f"{what} gives a {name} spacing of {value!r} µm", path=path)
        if MIN_SPACING_UM <= value <= MAX_SPACING_UM:
            continue
        msg = (f"{what} gives a {name} spacing of {value:g} µm, outside the plausible "
               f"{MIN_SPACING_UM:g} to {MAX_SPACING_UM:g} µm")
        if not odd_spacing_allowed():
            raise CorruptFileError(
                f"{msg}; the header is damaged or wrong (set {ODD_SPACING_ENV}=1 to read it "
                "anyway)", path=path,
            )
        log.add(f"{msg}; read anyway ({ODD_SPACING_ENV}=1)")

X3P_SUFFIXES = (".x3p",)
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")

#: The instrument formats read through surfalize (every format surfalize 0.19 reads, but
#: X3P, which :mod:`ballistics.io.x3p` reads): suffix -> (format name, what it is).
OTHER_FORMATS: dict[str, tuple[str, str]] = {
    ".al3d": ("al3d", "Alicona AL3D"),
    ".dat": ("dat", "Zygo MetroPro DAT"),
    ".fit": ("fits", "FITS image"),
    ".fits": ("fits", "FITS image"),
    ".fts": ("fits", "FITS image"),
    ".gwy": ("gwy", "Gwyddion GWY"),
    ".hdat": ("hdat", "Heliotis HDAT"),
    ".lext": ("lext", "Olympus LEXT"),
    ".nms": ("nms", "NanoFocus NMS"),
    ".oir": ("oir", "Olympus OIR"),
    ".opd": ("opd", "Wyko OPD"),
    ".os3d": ("os3d", "Digital Metrology OmniSurf3D"),
    ".plu": ("plu", "Sensofar / Leica PLU"),
    ".plux": ("plux", "Sensofar PLUX"),
    ".poir": ("poir", "Olympus POIR"),
    ".sdf": ("sdf", "ISO 25178-71 SDF"),
    ".sflz": ("sflz", "surfalize SFLZ"),
    ".sur": ("sur", "Digital Surf SUR"),
    ".tmd": ("tmd", "TrueMap TMD"),
    ".vk3": ("vk3", "Keyence VK3"),
    ".vk4": ("vk4", "Keyence VK4"),
    ".vk6": ("vk6", "Keyence VK6"),
    ".vk7": ("vk7", "Keyence VK7"),
    ".xyz": ("xyz", "x y z point list (ASCII, metres)"),
    ".zmg": ("zmg", "KLA Zeta ZMG"),
    ".zon": ("zon", "Keyence ZON"),
}
OTHER_SUFFIXES = tuple(OTHER_FORMATS)


def check_file(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a :class:`Path`; raise :class:`ScanFileNotFoundError` if unusable."""
    p = Path(path)
    if not p.exists():
        raise ScanFileNotFoundError("no such file", path=p)
    if not p.is_file():
        raise ScanFileNotFoundError("not a regular file (a folder or a device?)", path=p)
    if not os.access(p, os.R_OK):
        raise ScanFileNotFoundError("the file is not readable (permissions)", path=p)
    return p


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes as lower-case hex (the chain-of-custody identifier).

    Parameters
    ----------
    path
        The file.
    chunk_size
        Bytes read at a time (memory stays bounded for large files).

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    p = check_file(path)
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def check_claimed_size(
    claimed_bytes: int, file_bytes: int, what: str, path: str | os.PathLike[str]
) -> None:
    """Refuse a declared size that a file of ``file_bytes`` cannot honestly hold.

    Raises :class:`UnsafeFileError` before any allocation when ``claimed_bytes`` exceeds
    :data:`MAX_COMPRESSION_RATIO` times the file size (plus a small slack).
    """
    cap = MAX_COMPRESSION_RATIO * max(int(file_bytes), 0) + SIZE_SLACK_BYTES
    if claimed_bytes < 0 or claimed_bytes > cap:
        raise UnsafeFileError(
            f"{what} declares {claimed_bytes:,} bytes, more than a {file_bytes:,}-byte file "
            f"can hold (cap {cap:,}); the file is damaged or crafted",
            path=path,
        )


def check_points(rows: int, cols: int, path: str | os.PathLike[str]) -> None:
    """Refuse point counts over the budget (:func:`max_points`) before allocating."""
    if rows <= 0 or cols <= 0:
        return
    limit = max_points()
    if math.prod((rows, cols)) > limit:
        lift = (f"; set {MAX_POINTS_ENV} to a larger number of points to read it"
                if limit < MAX_POINTS else "")
        raise UnsafeFileError(
            f"declared size {rows} x {cols} exceeds the limit of {limit:,} points{lift}",
            path=path,
        )


def check_zip_members(archive: zipfile.ZipFile, file_size: int,
                      path: str | os.PathLike[str]) -> int:
    """Refuse a zip whose members claim more than deflate can produce from their compressed
    bytes (a zip bomb), or more in all than the file can hold or the bytes budget
    (:func:`max_bytes`) allows, before any member is decompressed.

    Returns
    -------
    int
        The uncompressed bytes of all members.
    """
    total = 0
    for info in archive.infolist():
        if not info.filename or info.filename.endswith("/"):
            continue
        if info.file_size > MAX_COMPRESSION_RATIO * info.compress_size + SIZE_SLACK_BYTES:
            raise UnsafeFileError(
                f"zip member {info.filename!r} claims {info.file_size:,} bytes from "
                f"{info.compress_size:,} compressed (a zip bomb?)",
                path=path,
            )
        total += info.file_size
    check_claimed_size(total, file_size, "the zip directory", path)
    check_bytes(total, "the zip archive", path)
    return total


class WarningLog:
    """Collects the deviations met while reading one file (each message once, in order)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        """Record one deviation (duplicates are ignored)."""
        if message not in self.messages:
            self.messages.append(message)

    def emit(self, *, stacklevel: int = 3) -> tuple[str, ...]:
        """Issue every message as a :class:`ScanWarning` and return them as a tuple."""
        for msg in self.messages:
            warnings.warn(msg, ScanWarning, stacklevel=stacklevel)
        return tuple(self.messages)


_WARNING_FILTER_LOCK = threading.RLock()


@contextmanager
def quiet_library_warnings() -> Iterator[None]:
    """Silence third-party warnings (Pillow, tifffile, numpy) while a decoder runs.

    ``warnings.catch_warnings`` swaps process-wide filters; two threads interleaving it can
    leave the filters stuck at "ignore". The lock makes each swap and its restore nest, so
    readers stay safe to call from threads (decoders inside it run one at a time). numpy's
    floating-point warnings are silenced with the thread-local ``np.errstate``.
    """
    with _WARNING_FILTER_LOCK, warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


@contextmanager
def captured_library_warnings() -> Iterator[list[str]]:
    r"""Like :func:`quiet_library_warnings`, but yields a list that receives, when the block
    ends, the messages of the ``UserWarning``\ s issued meanwhile (a third-party reader's
    remarks on the file, worth passing on as scan warnings); other categories are dropped."""
    out: list[str] = []
    with _WARNING_FILTER_LOCK, warnings.catch_warnings(record=True) as caught, \
            np.errstate(all="ignore"):
        warnings.simplefilter("always")
        try:
            yield out
        finally:
            for w in caught:
                if issubclass(w.category, UserWarning) and str(w.message) not in out:
                    out.append(str(w.message))
