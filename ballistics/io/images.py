"""2D images of casings (PNG, TIFF, JPEG, BMP) as grey-level scans, and PNG masks.

Grey levels keep their full depth (8 or 16 bit, or float) as float32. The pixel spacing comes
from the PNG ``pHYs`` chunk, the TIFF resolution tags, the JPEG JFIF density or the BMP
pixels per metre; otherwise from the caller's ``spacing_um``; otherwise
:class:`~ballistics.errors.MissingSpacingError`.

An image file may also hold a height map (a float32 or 16-bit TIFF exported by an instrument's
software): read with ``topography=True``, its values are heights in µm and its spacing is the
caller's (required; resolution tags of such exports are rarely measured).
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
    check_bytes,
    check_claimed_size,
    check_file,
    check_points,
    check_spacing,
    quiet_library_warnings,
)

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
#: Resolutions (dots per inch) that software writes by default, not measured ones.
_DEFAULT_DPI = (72.0, 96.0)
_LUMA = np.asarray([0.299, 0.587, 0.114], dtype=np.float64)
#: Rows converted to grey at a time (bounds the float64 temporaries of a colour image).
_GREY_ROWS = 256
#: Bytes per band of Pillow's modes (others: 1).
_MODE_BYTES = {"I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}


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
        grey = np.empty(arr.shape[:2], np.float32)
        for r in range(0, arr.shape[0], _GREY_ROWS):  # float64 a few rows at a time
            grey[r: r + _GREY_ROWS] = arr[r: r + _GREY_ROWS].astype(np.float64) @ _LUMA
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
                bands = len(im.getbands())
                # the decoded pixels, plus an RGBA copy when the mode is converted below
                check_bytes(h * w * (bands * _MODE_BYTES.get(im.mode, 1) + 4),
                            "the image", path)
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
            raise UnsafeFileError(
                f"image refused by Pillow as a decompression bomb ({exc}); Pillow's own limit "
                "(twice PIL.Image.MAX_IMAGE_PIXELS) applies even when BALLISTICS_MAX_POINTS is "
                "raised", path=path) from None
        except Image.UnidentifiedImageError:
            raise CorruptFileError(
                "not an image that can be decoded (its content is no PNG, TIFF, JPEG or BMP "
                "whatever its name says)", path=path) from None
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
    check_bytes(hdr["height"] * hdr["width"] * channels * (2 if hdr["bit_depth"] == 16 else 1),
                "the PNG image", path)
    if hdr["bit_depth"] == 16 and hdr["colour_type"] in (2, 6):
        arr = _decode_png16_colour(data, path)
    else:
        arr, info = _decode_pil(data, path)
        _note_frames(info, log)
        if hdr["bit_depth"] == 16 and arr.ndim == 2 and arr.dtype == np.int32:
            # older Pillow (10.0, say) opens 16-bit grey as 32-bit mode "I"; the samples are
            # 0..65535, so keep the file's own depth (reported in the metadata)
            arr = arr.astype(np.uint16)
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


def bmp_pixels_per_metre(data: bytes) -> tuple[int, int] | None:
    """``(x, y)`` pixels per metre of a BMP's ``BITMAPINFOHEADER`` (None when it has none)."""
    if len(data) < 46 or not data.startswith(b"BM"):
        return None
    (size,) = struct.unpack("<I", data[14:18])
    if size < 40:  # BITMAPCOREHEADER: no resolution
        return None
    ppx, ppy = struct.unpack("<ii", data[38:46])
    return (ppx, ppy) if ppx > 0 and ppy > 0 else None


def _read_bmp(data: bytes, path: Path, log: WarningLog) -> tuple[np.ndarray, Any]:
    if not data.startswith(b"BM"):
        raise CorruptFileError("not a BMP file (bad signature)", path=path)
    arr, info = _decode_pil(data, path)
    _note_frames(info, log)
    ppm = bmp_pixels_per_metre(data)
    spacing = None
    if ppm is not None:
        spacing = _spacing_from_density(float(ppm[0]), float(ppm[1]), 1e6, log,
                                        "BMP resolution", True)
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
                axes = page.axes
                rows = shape[axes.index("Y")] if "Y" in axes else 1
                cols = shape[axes.index("X")] if "X" in axes else n // rows
                check_points(rows, cols, path)
                check_claimed_size(n * page.dtype.itemsize, len(data), "the TIFF header", path)
                check_bytes(n * page.dtype.itemsize, "the TIFF image", path)
                if n > 2**31:
                    raise UnsafeFileError(f"TIFF of {n:,} samples refused", path=path)
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


def _is_colour(arr: np.ndarray) -> bool:
    """Whether ``arr`` has several colour channels (alpha aside) that differ."""
    if arr.ndim != 3 or arr.shape[2] < 3:
        return False
    return not (np.array_equal(arr[..., 0], arr[..., 1])
                and np.array_equal(arr[..., 0], arr[..., 2]))


def read_image(
    path: Path, *, spacing_um: float | tuple[float, float] | None = None,
    topography: bool = False,
) -> tuple[np.ndarray, tuple[float, float], dict[str, Any], list[str]]:
    """Decode an image file: (float32 (rows, cols), spacing (dy, dx) µm, metadata, warnings).

    By default the values are grey levels; the spacing stored in the file wins and
    ``spacing_um`` is used only when the file has none. With ``topography=True`` the values
    are heights in µm (one channel; alpha 0 = missing) and ``spacing_um`` is required (it
    wins over the file's resolution, which a warning names when it differs).
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
    elif suffix == ".bmp":
        arr, spacing = _read_bmp(data, path, log)
        fmt = "bmp"
    else:
        arr, spacing = _read_jpeg(data, path, log)
        fmt = "jpeg"
    if arr.size == 0 or arr.ndim < 2 or 0 in arr.shape[:2]:
        raise EmptyScanError(f"the image has zero size {arr.shape}", path=path)
    depth = arr.dtype.itemsize * 8 if arr.dtype.kind in "iu" else arr.dtype.itemsize * 8
    if topography:
        return _as_topography(arr, spacing, spacing_um, fmt, int(depth), path, log)
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
        check_spacing(spacing, f"the {fmt.upper()} file's resolution", path, log)
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


def _as_topography(
    arr: np.ndarray, file_spacing: tuple[float, float] | None, spacing_um: Any, fmt: str,
    depth: int, path: Path, log: WarningLog,
) -> tuple[np.ndarray, tuple[float, float], dict[str, Any], list[str]]:
    """The values of an image as heights in µm, at the caller's spacing."""
    if spacing_um is None:
        raise MissingSpacingError(
            "reading an image as a topography needs its pixel spacing: give spacing_um "
            "(--spacing-um); the resolution stored in an image is not trusted for height maps",
            path=path,
        )
    if _is_colour(arr):
        raise UnsupportedFeatureError(
            f"a colour image ({arr.shape[2]} channels) cannot be read as a topography: a height "
            "map has one channel; read it as an image (modality='image')", path=path)
    spacing = _user_spacing(spacing_um)
    if file_spacing is not None and not np.allclose(file_spacing, spacing, rtol=1e-3):
        log.add(f"the {fmt.upper()} file's resolution says {file_spacing[0]:.4g} x "
                f"{file_spacing[1]:.4g} µm (dy x dx); spacing_um {spacing[0]:g} x "
                f"{spacing[1]:g} µm is used")
    if arr.dtype.kind in "iub" and depth <= 8:
        log.add(f"{depth}-bit values read as heights in µm (0 to 255 µm in 1 µm steps); a "
                "height map is normally stored as float or 16-bit samples")
    heights = _to_grey(arr, log)  # one channel (or equal channels): the values as they are
    metadata = {
        "image": {
            "format": fmt,
            "dtype": str(arr.dtype),
            "bit_depth": depth,
            "channels": 1 if arr.ndim == 2 else int(arr.shape[2]),
            "spacing_source": "argument",
            "read_as": "topography",
            "z_unit": "um (the stored values, as given by modality='topography')",
        }
    }
    return heights, spacing, metadata, log.messages


def _user_spacing(spacing_um: Any) -> tuple[float, float]:
    try:
        sp = np.broadcast_to(np.asarray(spacing_um, dtype=float), (2,))
    except (ValueError, TypeError):
        raise ParameterError(f"spacing_um must be one or two numbers, got {spacing_um!r}") from None
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise ParameterError(f"spacing_um must be positive and finite, got {spacing_um!r}")
    return (float(sp[0]), float(sp[1]))


def image_size(data: bytes, path: Path) -> tuple[int, int]:
    """``(rows, cols)`` of an image from its header, without decoding the pixels."""
    if data.startswith(_PNG_SIG):
        try:
            hdr = png_header(data)
        except CorruptFileError as exc:
            raise CorruptFileError(exc.message, path=path) from None
        return (int(hdr["height"]), int(hdr["width"]))
    from PIL import Image

    with quiet_library_warnings():
        try:
            with Image.open(io.BytesIO(data)) as im:  # lazy: reads the header only
                return (int(im.size[1]), int(im.size[0]))
        except Exception as exc:
            raise CorruptFileError(
                f"cannot read the image header: {type(exc).__name__}: {exc}", path=path
            ) from None


def decode_mask_colours(data: bytes, path: Path) -> np.ndarray:
    """RGBA uint8 pixels of a mask image (used for x3ptools' ``mask.png`` layers); the
    budgets of points and bytes are checked from the header before decoding."""
    arr, _ = _decode_pil(data, path)
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) / max(1.0, float(np.nanmax(arr))) * 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr, arr, arr, np.full_like(arr, 255)], axis=-1)
    elif arr.shape[2] == 2:
        arr = np.concatenate([arr[..., :1]] * 3 + [arr[..., 1:]], axis=-1)
    elif arr.shape[2] == 3:
        arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=-1)
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
