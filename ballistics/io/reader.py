"""``read_scan`` and ``scan_info``: one entry point for every supported scan file."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from ballistics._version import __version__
from ballistics.errors import (
    BallisticsError,
    CorruptFileError,
    EmptyScanError,
    ModalityMismatchError,
    ParameterError,
    ScanWarning,
    UnsupportedFormatError,
)
from ballistics.io._common import (
    IMAGE_SUFFIXES,
    OTHER_FORMATS,
    OTHER_SUFFIXES,
    X3P_SUFFIXES,
    check_file,
    quiet_library_warnings,
    sha256_file,
)
from ballistics.scan import Modality, Scan

SUPPORTED_SUFFIXES = X3P_SUFFIXES + IMAGE_SUFFIXES + OTHER_SUFFIXES
#: The values of ``modality``: None (as the file says), or what the file must hold.
MODALITIES = ("topography", "image")
_IMAGE_FORMATS = ("png", "tiff", "jpeg", "bmp")


def file_format(path: str | os.PathLike[str]) -> str:
    """The format name of a scan file from its extension (``x3p``, ``png``, ``tiff``...)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in X3P_SUFFIXES:
        return "x3p"
    if suffix == ".png":
        return "png"
    if suffix in (".tif", ".tiff"):
        return "tiff"
    if suffix in (".jpg", ".jpeg"):
        return "jpeg"
    if suffix == ".bmp":
        return "bmp"
    if suffix in OTHER_SUFFIXES:
        return OTHER_FORMATS[suffix][0]
    raise UnsupportedFormatError(
        f"unknown file type {suffix or '(no extension)'!r}; supported: "
        f"{' '.join(SUPPORTED_SUFFIXES)}",
        path=path,
    )


def _emit(messages: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for m in messages:
        if m not in out:
            out.append(m)
            warnings.warn(m, ScanWarning, stacklevel=3)
    return tuple(out)


def read_scan(
    path: str | os.PathLike[str],
    *,
    spacing_um: float | tuple[float, float] | None = None,
    verify: bool = True,
    strict: bool = False,
    modality: str | None = None,
) -> Scan:
    """Read a scan file into a :class:`~ballistics.scan.Scan`.

    Parameters
    ----------
    path
        ``.x3p`` (ISO 25178-72, through x3pio with a tolerant fallback for the variants real
        instruments and tools write); ``.png .tif .tiff .jpg .jpeg .bmp`` 2D images (grey
        levels at full depth); through surfalize (extra ``formats``) every instrument format
        it reads: ``.al3d .dat .fit .fits .fts .gwy .hdat .lext .nms .oir .opd .os3d .plu
        .plux .poir .sdf .sflz .sur .tmd .vk3 .vk4 .vk6 .vk7 .xyz .zmg .zon``.
    spacing_um
        Pixel spacing ``dy`` (or ``(dy, dx)``) in µm for images whose file carries none.
        A spacing stored in the file takes precedence (except with
        ``modality="topography"``); X3P and surfalize files always carry theirs.
    modality
        ``None``: as the file says (X3P records it; images are ``"image"``, surfalize
        formats ``"topography"``). ``"topography"`` reads an image file (a float32 or 16-bit
        TIFF height map, a PNG, a BMP) as heights: its values taken as µm, one channel,
        ``spacing_um`` required. ``"image"`` insists on a 2D image. A file whose modality is
        known and differs raises :class:`~ballistics.errors.ModalityMismatchError`.
    verify
        Check the MD5 checksums of X3P files. With ``False`` a mismatch (or a malformed
        checksum) is reported as a warning instead of raising
        :class:`~ballistics.errors.ChecksumError`.
    strict
        Refuse X3P content that no checksum covers (``main.xml`` without a usable checksum
        file, data without an MD5, an x3ptools mask layer) with
        :class:`~ballistics.errors.ChecksumError`; by default it is read with a warning.
        Needs ``verify=True``. Images and other formats carry no checksum: not affected.

    Returns
    -------
    Scan
        Heights ``(rows, cols) = (y, x)`` float32 in µm (grey levels for images), NaN for
        missing points; ``spacing_um = (dy, dx)``; ``metadata`` (JSON-compatible);
        ``sha256`` of the file's bytes; ``source`` = the path; ``warnings`` lists every
        deviation tolerated (each also issued as a :class:`~ballistics.errors.ScanWarning`).

    Raises
    ------
    BallisticsError
        A specific subclass for each kind of bad input (missing file, unknown format, not a
        zip, no main.xml, malformed or unsafe XML, checksum mismatch, size mismatch, absurd
        sizes, profiles and point clouds, zero-size images, missing spacing, missing extra);
        :class:`~ballistics.errors.UnsafeFileError` names the budget (points, decompressed
        bytes, ``main.xml`` size) a file exceeds and the variable that lifts it;
        :class:`~ballistics.errors.CorruptFileError` for a spacing outside 0.01-1000 µm, a
        zero or non-finite increment, a z increment that overflows every height;
        :class:`~ballistics.errors.ParameterError` for ``strict`` without ``verify`` or an
        unknown ``modality``; :class:`~ballistics.errors.ModalityMismatchError` for a file
        whose modality contradicts ``modality``.
    """
    _check_strict(strict, verify)
    _check_modality(modality)
    p = check_file(path)
    fmt = file_format(p)
    if fmt == "x3p":
        from ballistics.io.x3p import read_x3p

        r = read_x3p(p, verify=verify, strict=strict)
        _check_file_modality(r.modality, modality, "the X3P file records it", p)
        heights, spacing, found = r.heights, r.spacing_um, r.modality
        metadata, provenance, msgs = r.metadata, r.provenance, r.warnings
        prior = tuple(r.prior_warnings)
    elif fmt in _IMAGE_FORMATS:
        from ballistics.io.images import read_image

        topo = modality == "topography"
        heights, spacing, metadata, msgs = read_image(p, spacing_um=spacing_um,
                                                      topography=topo)
        found, provenance, prior = "topography" if topo else "image", [], ()
    else:
        _check_file_modality("topography", modality,
                             f"a {OTHER_FORMATS[p.suffix.lower()][1]} file holds heights", p)
        from ballistics.io.other import read_other

        heights, spacing, metadata, msgs = read_other(p)
        found, provenance, prior = "topography", [], ()
    if heights.size == 0:
        raise EmptyScanError("the scan has no points", path=p)
    if found not in MODALITIES:
        raise CorruptFileError(f"unknown modality {found!r} recorded in the file", path=p)
    heights = np.ascontiguousarray(heights, dtype=np.float32)
    if heights.base is None:
        heights.flags.writeable = False  # a fresh array: the Scan need not copy it again
    try:
        scan = Scan(
            heights=heights,
            spacing_um=spacing,
            modality=cast(Modality, found),
            metadata=metadata,
            sha256=sha256_file(p),
            provenance=tuple(s for s in provenance if isinstance(s, dict)),
            warnings=prior,
            source=str(p),
        )
    except BallisticsError as exc:
        raise type(exc)(exc.message, path=p) from None
    return scan.with_warnings(*_emit(msgs))


@dataclass(frozen=True)
class ScanInfo:
    """Header facts of a scan file, read without decoding the height matrix.

    Attributes
    ----------
    path, sha256, format, modality
        The file, the SHA-256 of its bytes, ``x3p``/``png``/``tiff``/``jpeg``/..., and
        ``topography`` or ``image``.
    shape
        ``(rows, cols)``.
    spacing_um
        ``(dy, dx)`` in µm, or None for an image that carries no spacing.
    metadata
        Instrument metadata (JSON-compatible).
    warnings
        Deviations found in the header.
    """

    path: str
    sha256: str
    format: str
    modality: str
    shape: tuple[int, int]
    spacing_um: tuple[float, float] | None
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the CLI contract (``missing_fraction`` is unknown here: None)."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "format": self.format,
            "modality": self.modality,
            "shape": list(self.shape),
            "spacing_um": None if self.spacing_um is None else list(self.spacing_um),
            "missing_fraction": None,
            "metadata": self.metadata,
            "warnings": list(self.warnings),
            "version": __version__,
        }


def scan_info(
    path: str | os.PathLike[str],
    *,
    spacing_um: float | tuple[float, float] | None = None,
    verify: bool = True,
    strict: bool = False,
    modality: str | None = None,
) -> ScanInfo:
    """Read the header of a scan file (no height decoding for X3P and images).

    Parameters
    ----------
    path
        Any file :func:`read_scan` reads.
    spacing_um
        Spacing for images that carry none (otherwise ``spacing_um`` is None, with a warning).
    verify
        Check the MD5 of X3P ``main.xml`` (the data checksums need the data: not checked).
    strict
        Refuse an X3P ``main.xml`` that no checksum covers (as :func:`read_scan`).
    modality
        As :func:`read_scan`: ``"topography"`` takes an image file for a height map (its
        spacing is then ``spacing_um``); a contradiction with the file is an error.

    Returns
    -------
    ScanInfo
    """
    _check_strict(strict, verify)
    _check_modality(modality)
    p = check_file(path)
    fmt = file_format(p)
    msgs: list[str]
    spacing: tuple[float, float] | None
    if fmt == "x3p":
        from ballistics.io.x3p import x3p_header

        header, metadata, msgs, prior, spacing, found = x3p_header(p, verify=verify,
                                                                   strict=strict)
        _check_file_modality(found, modality, "the X3P file records it", p)
        shape = header.shape
        sha = sha256_file(p)
    elif fmt in _IMAGE_FORMATS:
        data = p.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        topo = modality == "topography"
        shape, spacing, metadata, msgs = _image_header(p, data, fmt, spacing_um, topo)
        found, prior = "topography" if topo else "image", []
    else:
        scan = read_scan(p, spacing_um=spacing_um, verify=verify, strict=strict,
                         modality=modality)
        return ScanInfo(str(p), scan.sha256 or "", fmt, scan.modality, scan.shape,
                        scan.spacing_um, dict(_thaw(scan.metadata)), scan.warnings)
    new = tuple(m for m in _emit(msgs) if m not in prior)
    return ScanInfo(str(p), sha, fmt, found, (int(shape[0]), int(shape[1])), spacing,
                    metadata, (*prior, *new))


def _check_modality(modality: str | None) -> None:
    if modality is not None and modality not in MODALITIES:
        raise ParameterError(f"modality must be 'topography', 'image' or None (as the file "
                             f"says), got {modality!r}")


def _check_file_modality(found: str, asked: str | None, why: str, path: Path) -> None:
    if asked is not None and asked != found:
        raise ModalityMismatchError(
            f"the file holds a {found} ({why}) but modality {asked!r} was asked; drop "
            f"--modality (modality=None) to read it as the file says", path=path)


def _check_strict(strict: bool, verify: bool) -> None:
    if strict and not verify:
        raise ParameterError("strict=True needs verify=True (--strict and --no-verify "
                             "contradict each other)")


def _thaw(value: Any) -> Any:
    from ballistics.scan import thaw

    return thaw(value)


def _image_header(
    p: Path, data: bytes, fmt: str, spacing_um: Any, topography: bool = False
) -> tuple[tuple[int, int], tuple[float, float] | None, dict[str, Any], list[str]]:
    from ballistics.io import images
    from ballistics.io._common import WarningLog, check_spacing

    log = WarningLog()
    spacing = None
    if fmt == "png":
        try:
            hdr = images.png_header(data)
        except CorruptFileError as exc:
            raise CorruptFileError(exc.message, path=p) from None
        shape = (hdr["height"], hdr["width"])
        if hdr["phys"] is not None and hdr["phys"][2] == 1:
            spacing = images._spacing_from_density(hdr["phys"][0], hdr["phys"][1], 1e6, log,
                                                   "PNG pHYs chunk", True)
    elif fmt == "tiff":
        import tifffile

        with quiet_library_warnings():
            try:
                with tifffile.TiffFile(io.BytesIO(data)) as tif:
                    page = cast("tifffile.TiffPage", tif.pages[0])  # the first: never a frame
                    axes = page.axes
                    shp = page.shape
                    shape = (int(shp[axes.index("Y")]), int(shp[axes.index("X")]))
                    xr, yr = page.tags.get("XResolution"), page.tags.get("YResolution")
                    ru = page.tags.get("ResolutionUnit")
                    unit = int(getattr(ru.value, "value", ru.value)) if ru is not None else 2
                    if xr is not None and yr is not None and unit in (2, 3):
                        spacing = images._spacing_from_density(
                            images._rational(xr.value), images._rational(yr.value),
                            25400.0 if unit == 2 else 10000.0, log, "TIFF resolution tag",
                            unit == 2)
            except Exception as exc:
                raise CorruptFileError(f"cannot read the TIFF header: {exc}", path=p) from None
    else:
        from PIL import Image

        with quiet_library_warnings():
            try:
                with Image.open(io.BytesIO(data)) as im:
                    shape = (im.size[1], im.size[0])
                    info = dict(im.info)
            except Exception as exc:
                raise CorruptFileError(f"cannot read the image header: {exc}", path=p) from None
        jfif_unit, density = info.get("jfif_unit"), info.get("jfif_density")
        ppm = images.bmp_pixels_per_metre(data) if fmt == "bmp" else None
        if ppm is not None:
            spacing = images._spacing_from_density(float(ppm[0]), float(ppm[1]), 1e6, log,
                                                   "BMP resolution", True)
        elif jfif_unit in (1, 2) and isinstance(density, tuple) and len(density) == 2:
            spacing = images._spacing_from_density(
                float(density[0]), float(density[1]), 25400.0 if jfif_unit == 1 else 10000.0,
                log, "JPEG JFIF density", jfif_unit == 1)
    if 0 in shape:
        raise EmptyScanError(f"the image has zero size {shape}", path=p)
    if topography:
        if spacing_um is None:
            log = WarningLog()
            log.add("reading an image as a topography needs its pixel spacing; give it with "
                    "spacing_um (--spacing-um)")
            spacing = None
        else:
            spacing = images._user_spacing(spacing_um)
        return shape, spacing, {"image": {"format": fmt, "read_as": "topography"}}, log.messages
    if spacing is not None:
        check_spacing(spacing, f"the {fmt.upper()} file's resolution", p, log)
    elif spacing_um is not None:
        spacing = images._user_spacing(spacing_um)
    else:
        log.add("the image carries no pixel spacing; give it with spacing_um (--spacing-um)")
    return shape, spacing, {"image": {"format": fmt}}, log.messages


__all__ = ["ScanInfo", "file_format", "read_scan", "scan_info", "sha256_file"]
