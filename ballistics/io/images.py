"""2D images of casings (PNG, TIFF, JPEG) as grey-level scans, and PNG masks.

Grey levels keep their full depth (8 or 16 bit, or float) as float32. The pixel spacing comes
from the PNG ``pHYs`` chunk, the TIFF resolution tags or the JPEG JFIF density; otherwise from
the caller's ``spacing_um``; otherwise :class:`~ballistics.errors.MissingSpacingError`.
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path
from typing import Any, cast

import numpy as np

from ballistics.errors import (
    BallisticsError,
    CorruptFileError,
    EmptyScanError,
    InputError,
    MissingSpacingError,
    ParameterError,
    UnsafeFileError,
    UnsupportedFeatureError,
)
from ballistics.io._common import (
    WarningLog,
    check_claimed_size,
    check_file,
    check_points,
    quiet_library_warnings,
)

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
#: Resolutions (dots per inch) that software writes by default, not measured ones.
_DEFAULT_DPI = (72.0, 96.0)
_LUMA = np.asarray([0.299, 0.587, 0.114], dtype=np.float64)


def png_header(data: bytes) -> dict[str, Any]:
    """IHDR facts and the pHYs chunk of a PNG, without decoding pixels.

    Returns a dict with ``width``, ``height``, ``bit_depth``, ``colour_type`` and
    ``phys`` (``(ppu_x, ppu_y, unit)`` or None).
    """
    if not data.startswith(_PNG_SIG) or len(data) < 33:
        raise CorruptFileError("not a PNG file (bad signature)")
    pos = 8
    out: dict[str, Any] = {"phys": None}
    seen_ihdr = False
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos: pos + 8])
        body = data[pos + 8: pos + 8 + length]
        if len(body) != length:
            break
        if ctype == b"IHDR":
            if length != 13:
                raise CorruptFileError("PNG IHDR chunk has the wrong length")
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            out.update(width=w, height=h, bit_depth=depth, colour_type=colour)
            seen_ihdr = True
        elif ctype == b"pHYs" and length == 9:
            out["phys"] = struct.unpack(">IIB", body)
        elif ctype in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    if not seen_ihdr:
        raise CorruptFileError("PNG without an IHDR chunk")
    return out


def _spacing_from_density(
    px: float, py: float, unit_um: float, log: WarningLog, what: str, dpi: bool
) -> tuple[float, float] | None:
    if not (px > 0 and py > 0 and math.isfinite(px) and math.isfinite(py)):
        return None
    sp = (unit_um / py, unit_um / px)
    if dpi:
        dx_dpi, dy_dpi = 25400.0 / sp[1], 25400.0 / sp[0]
        if any(abs(dx_dpi - d) < 0.01 * d and abs(dy_dpi - d) < 0.01 * d for d in _DEFAULT_DPI):
            log.add(
                f"the {what} says {dx_dpi:.0f} dpi, a common software default: pixel spacing "
                f"{sp[1]:.4g} µm is probably not measured; pass spacing_um if it is wrong"
            )
    return sp


def _to_grey(arr: np.ndarray, log: WarningLog) -> np.ndarray:
    """(rows, cols[, channels]) -> float32 grey with NaN where alpha == 0."""
    if arr.ndim == 2:
        return arr.astype(np.float32)
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise UnsupportedFeatureError(f"unsupported image layout {arr.shape}")
    ch = arr.shape[2]
    alpha = None
    if ch in (2, 4):
        alpha = arr[..., -1]
        arr = arr[..., :-1]
        ch -= 1
    if ch == 1:
        grey = arr[..., 0].astype(np.float32)
    elif np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
        grey = arr[..., 0].astype(np.float32)
    else:
        log.add("colour image converted to grey levels (ITU-R BT.601 luma)")
        grey = (arr.astype(np.float64) @ _LUMA).astype(np.float32)
    if alpha is not None and (alpha == 0).any():
        grey[alpha == 0] = np.nan
    return grey


def _decode_pil(
    data: bytes, path: Path
) -> tuple[np.ndarray, dict[str | tuple[int, int], Any]]:
    from PIL import Image

    with quiet_library_warnings():
        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w == 0 or h == 0:
                    raise EmptyScanError(f"the image has zero size {h} x {w}", path=path)
                check_points(h, w, path)
                check_claimed_size(h * w, len(data), "the image header", path)
                info = dict(im.info)
                n_frames = getattr(im, "n_frames", 1)
                if n_frames > 1:
                    info["_frames"] = n_frames
                mode = im.mode
                pic: Image.Image = im
                if mode == "P":
                    pic = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "PA", "La", "RGBa"):
                    pic = im.convert("RGBA" if "A" in mode or "a" in mode else "RGB")
                arr = np.asarray(pic)
        except BallisticsError:
            raise
        except Image.DecompressionBombError as exc:
            raise UnsafeFileError(f"image refused as a decompression bomb: {exc}",
                                  path=path) from None
        except Exception as exc:
            raise CorruptFileError(
                f"cannot decode the image: {type(exc).__name__}: {exc}", path=path
            ) from None
    return arr, info


def _decode_png16_colour(data: bytes, path: Path) -> np.ndarray:
    """16-bit colour PNGs keep their depth through OpenCV (Pillow reduces them to 8 bit)."""
    import cv2

    with quiet_library_warnings():
        try:
            arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except Exception as exc:  # cv2.error and friends on damaged bytes
            raise CorruptFileError(
                f"cannot decode the 16-bit colour PNG: {type(exc).__name__}: {exc}", path=path
            ) from None
    if arr is None:
        raise CorruptFileError("cannot decode the 16-bit colour PNG", path=path)
    if arr.ndim == 3:
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]] if arr.shape[2] >= 3 else arr
    return arr


def _read_png(data: bytes, path: Path, log: WarningLog) -> tuple[np.ndarray, Any]:
    try:
        hdr = png_header(data)
    except CorruptFileError as exc:
        raise CorruptFileError(exc.message, path=path) from None
    if hdr["width"] == 0 or hdr["height"] == 0:
        raise EmptyScanError(f"the image has zero size {hdr['height']} x {hdr['width']}",
                             path=path)
    check_points(hdr["height"], hdr["width"], path)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(hdr["colour_type"], 4)
    bits = hdr["height"] * hdr["width"] * channels * max(1, hdr["bit_depth"])
    check_claimed_size(bits // 8, len(data), "the PNG header", path)
    if hdr["bit_depth"] == 16 and hdr["colour_type"] in (2, 6):
        arr = _decode_png16_colour(data, path)
    else:
        arr, info = _decode_pil(data, path)
        _note_frames(info, log)
    spacing = None
    if hdr["phys"] is not None:
        ppx, ppy, unit = hdr["phys"]
        if unit == 1:
            spacing = _spacing_from_density(ppx, ppy, 1e6, log, "PNG pHYs chunk", True)
    return arr, spacing


def _note_frames(info: dict[str | tuple[int, int], Any], log: WarningLog) -> None:
    frames = info.get("_frames")
    if frames:
        log.add(f"the image holds {frames} frames; the first is read")


def _read_jpeg(data: bytes, path: Path, log: WarningLog) -> tuple[np.ndarray, Any]:
    arr, info = _decode_pil(data, path)
    _note_frames(info, log)
    spacing = None
    unit = info.get("jfif_unit")
    density = info.get("jfif_density")
    if unit in (1, 2) and isinstance(density, tuple) and len(density) == 2:
        unit_um = 25400.0 if unit == 1 else 10000.0
        spacing = _spacing_from_density(float(density[0]), float(density[1]), unit_um, log,
                                        "JPEG JFIF density", unit == 1)
    return arr, spacing


def _read_tiff(data: bytes, path: Path, log: WarningLog) -> tuple[np.ndarray, Any]:
    import tifffile

    with quiet_library_warnings():
        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                if not tif.pages:
                    raise CorruptFileError("the TIFF holds no image", path=path)
                # (the first page is a TiffPage, never a TiffFrame)
                page = cast("tifffile.TiffPage", tif.pages.first if hasattr(tif.pages, "first")
                            else tif.pages[0])
                if len(tif.pages) > 1:
                    log.add(f"the TIFF holds {len(tif.pages)} pages; the first is read")
                shape = tuple(int(s) for s in page.shape)
                if not shape or 0 in shape:
                    raise EmptyScanError(f"the image has zero size {shape}", path=path)
                n = int(np.prod(shape, dtype=np.int64))
                if page.dtype is None:
                    raise CorruptFileError("the TIFF's sample format is not supported", path=path)
                check_claimed_size(n * page.dtype.itemsize, len(data), "the TIFF header", path)
                if n > 2**31:
                    raise UnsafeFileError(f"TIFF of {n:,} samples refused", path=path)
                axes = page.axes
                arr = page.asarray()
                tags = page.tags
                xr = tags.get("XResolution")
                yr = tags.get("YResolution")
                ru = tags.get("ResolutionUnit")
                res = None
                if xr is not None and yr is not None:
                    res = (_rational(xr.value), _rational(yr.value),
                           int(getattr(ru.value, "value", ru.value)) if ru is not None else 2)
        except BallisticsError:
            raise
        except Exception as exc:
            raise CorruptFileError(
                f"cannot decode the TIFF: {type(exc).__name__}: {exc}", path=path
            ) from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and axes.startswith("S"):
        arr = np.moveaxis(arr, 0, -1)
    while arr.ndim > 3 or (arr.ndim == 3 and arr.shape[-1] > 4 and arr.shape[0] <= 4):
        arr = arr[0]
    spacing = None
    if res is not None and res[2] in (2, 3):
        unit_um = 25400.0 if res[2] == 2 else 10000.0
        spacing = _spacing_from_density(res[0], res[1], unit_um, log,
                                        "TIFF resolution tag", res[2] == 2)
    return arr, spacing


def _rational(value: Any) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        return value[0] / value[1] if value[1] else float("nan")
    return float(value)


def read_image(
    path: Path, *, spacing_um: float | tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float], dict[str, Any], list[str]]:
    """Decode an image file: (grey float32 (rows, cols), spacing (dy, dx) µm, metadata, warnings).

    The spacing stored in the file wins; ``spacing_um`` is used only when the file has none.
    """
    log = WarningLog()
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".png":
        arr, spacing = _read_png(data, path, log)
        fmt = "png"
    elif suffix in (".tif", ".tiff"):
        arr, spacing = _read_tiff(data, path, log)
        fmt = "tiff"
    else:
        arr, spacing = _read_jpeg(data, path, log)
        fmt = "jpeg"
    if arr.size == 0 or arr.ndim < 2 or 0 in arr.shape[:2]:
        raise EmptyScanError(f"the image has zero size {arr.shape}", path=path)
    depth = arr.dtype.itemsize * 8 if arr.dtype.kind in "iu" else arr.dtype.itemsize * 8
    grey = _to_grey(arr, log)
    if spacing is None:
        if spacing_um is None:
            raise MissingSpacingError(
                "the image carries no pixel spacing; give it with spacing_um (--spacing-um)",
                path=path,
            )
        spacing = _user_spacing(spacing_um)
        source = "argument"
    else:
        source = "file"
    metadata = {
        "image": {
            "format": fmt,
            "dtype": str(arr.dtype),
            "bit_depth": int(depth),
            "channels": 1 if arr.ndim == 2 else int(arr.shape[2]),
            "spacing_source": source,
        }
    }
    return grey, spacing, metadata, log.messages


def _user_spacing(spacing_um: Any) -> tuple[float, float]:
    try:
        sp = np.broadcast_to(np.asarray(spacing_um, dtype=float), (2,))
    except (ValueError, TypeError):
        raise ParameterError(f"spacing_um must be one or two numbers, got {spacing_um!r}") from None
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise ParameterError(f"spacing_um must be positive and finite, got {spacing_um!r}")
    return (float(sp[0]), float(sp[1]))


def decode_mask_colours(data: bytes, shape: tuple[int, int], path: Path) -> np.ndarray:
    """RGBA uint8 pixels of a mask image (used for x3ptools' ``mask.png`` layers)."""
    from PIL import Image

    arr, _ = _decode_pil(data, path)
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) / max(1.0, float(np.nanmax(arr))) * 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr, arr, arr, np.full_like(arr, 255)], axis=-1)
    elif arr.shape[2] == 2:
        arr = np.concatenate([arr[..., :1]] * 3 + [arr[..., 1:]], axis=-1)
    elif arr.shape[2] == 3:
        arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    del Image
    return arr


def read_mask_png(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """Read a user mask image as a boolean array (True = valid / inside the region).

    Parameters
    ----------
    path
        A PNG (or TIFF/JPEG) image; any non-zero pixel (any channel, alpha excluded) is inside.
        Fully transparent pixels are outside.
    shape
        ``(rows, cols)`` of the scan the mask belongs to.

    Returns
    -------
    numpy.ndarray
        bool, ``(rows, cols)``.

    Raises
    ------
    InputError
        When the mask's size differs from ``shape``.
    """
    p = check_file(path)
    data = p.read_bytes()
    if p.suffix.lower() in (".tif", ".tiff"):
        arr, _ = _read_tiff(data, p, WarningLog())
    elif data.startswith(_PNG_SIG):
        arr, _ = _read_png(data, p, WarningLog())
    else:
        arr, _ = _decode_pil(data, p)
    if arr.ndim == 3:
        ch = arr.shape[2]
        colour = arr[..., : 3 if ch >= 3 else 1]
        inside = np.any(colour != 0, axis=-1)
        if ch in (2, 4):
            inside &= arr[..., -1] != 0
    else:
        inside = arr != 0
    want = (int(shape[0]), int(shape[1]))
    if inside.shape != want:
        raise InputError(
            f"the mask is {inside.shape[0]} x {inside.shape[1]} (rows x cols) but the scan is "
            f"{want[0]} x {want[1]}; masks must match the scan pixel for pixel",
            path=p,
        )
    return np.ascontiguousarray(inside, dtype=bool)
