"""Random fields and tool marks of the synthetic generator (arrays ``(rows, cols) = (y, x)``).

Everything here is vectorised: FFT-filtered Gaussian noise (``scipy.fft`` on float32 at a
fast FFT length), 1D profiles interpolated onto rotated coordinates for striated tooling
marks, OpenCV for resizing and warping. Lengths are micrometres.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import scipy.fft as sfft

#: Threads for the FFTs (the generator is usually run one casing per process).
FFT_WORKERS = 2


def band_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    spacing_um: float,
    band_um: tuple[float, float],
    slope: float = 0.5,
    anisotropy: tuple[float, float] | None = None,
) -> np.ndarray:
    """Gaussian random field with unit RMS, band-limited to wavelengths ``band_um``.

    Parameters
    ----------
    rng
        Source of randomness.
    shape
        ``(rows, cols)`` of the result.
    spacing_um
        Point spacing in µm.
    band_um
        ``(shortest, longest)`` wavelength in µm; smooth (Gaussian) roll-offs outside.
        The shortest is clipped to the Nyquist limit of the grid.
    slope
        Amplitude spectrum ~ ``1/f**slope`` inside the band (0 = white in the band).
    anisotropy
        ``(angle_deg, ratio)``: stretch the field along ``angle_deg`` (CCW as displayed)
        by ``ratio`` (> 1 gives streaks along that direction).

    Returns
    -------
    numpy.ndarray
        float32 ``(rows, cols)``, mean ~ 0, RMS 1.
    """
    rows, cols = shape
    fr, fc = sfft.next_fast_len(rows, real=True), sfft.next_fast_len(cols, real=True)
    fy = sfft.fftfreq(fr, d=spacing_um).astype(np.float32)[:, None]
    fx = sfft.rfftfreq(fc, d=spacing_um).astype(np.float32)[None, :]
    if anisotropy is not None:
        ang, ratio = math.radians(anisotropy[0]), max(float(anisotropy[1]), 1e-3)
        # direction of the streaks in (x, y-down) coordinates: (cos a, -sin a)
        u = fx * math.cos(ang) - fy * math.sin(ang)
        v = fx * math.sin(ang) + fy * math.cos(ang)
        f = np.sqrt((u * ratio) ** 2 + v**2)
    else:
        f = np.sqrt(fy**2 + fx**2)
    f_lo = 1.0 / band_um[1]
    f_hi = min(1.0 / band_um[0], 0.5 / spacing_um)
    f_safe = np.maximum(f, 1e-12)
    h = (1.0 - np.exp(-((f_safe / f_lo) ** 2))) * np.exp(-((f_safe / f_hi) ** 2))
    if slope:
        h = h * (f_safe / f_lo) ** (-slope)
    h[0, 0] = 0.0
    spec = rng.standard_normal((fr, fc // 2 + 1, 2), dtype=np.float32)
    spec = (spec[..., 0] + 1j * spec[..., 1]).astype(np.complex64) * h.astype(np.float32)
    field = sfft.irfft2(spec, s=(fr, fc), workers=FFT_WORKERS)[:rows, :cols]
    field = np.asarray(field, dtype=np.float32)
    field -= np.float32(field.mean())
    rms = float(np.sqrt(np.mean(field * field, dtype=np.float64)))
    if rms > 0:
        field *= np.float32(1.0 / rms)
    return field


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], spacing_um: float, wavelength_um: float
) -> np.ndarray:
    """Unit-RMS low-frequency field (wavelengths around ``wavelength_um`` and longer).

    Made on a coarse grid and resized (bicubic) to ``shape``: cheap at any size.
    """
    step = max(1, int(wavelength_um / (8.0 * spacing_um)))
    coarse = (max(4, shape[0] // step + 2), max(4, shape[1] // step + 2))
    small = band_noise(rng, coarse, spacing_um * step, (wavelength_um, 8.0 * wavelength_um),
                       slope=0.0)
    big = cv2.resize(small, (coarse[1] * step, coarse[0] * step), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big[: shape[0], : shape[1]], dtype=np.float32)


def profile(
    rng: np.random.Generator, length_um: float, spacing_um: float, band_um: tuple[float, float],
    slope: float = 0.3,
) -> tuple[np.ndarray, float]:
    """A unit-RMS 1D band-limited profile sampled every ``spacing_um`` over ``length_um``.

    Returns the samples and their origin (the profile is centred on 0).
    """
    n = max(16, int(math.ceil(length_um / spacing_um)) + 4)
    p = band_noise(rng, (1, n), spacing_um, band_um, slope=slope)[0]
    return p, -0.5 * n * spacing_um


def sample_profile(
    p: np.ndarray, origin: float, spacing_um: float, coord: np.ndarray
) -> np.ndarray:
    """Linear interpolation of a profile at coordinates ``coord`` (µm), float32."""
    idx = (coord - np.float32(origin)) * np.float32(1.0 / spacing_um)
    return np.interp(idx.ravel(), np.arange(p.size, dtype=np.float32), p).astype(
        np.float32).reshape(coord.shape)


def grid(shape: tuple[int, int], spacing_um: float,
         center_um: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Broadcastable ``(y, x)`` coordinate vectors in µm relative to ``center_um`` ([y, x])."""
    y = (np.arange(shape[0], dtype=np.float32) * np.float32(spacing_um)
         - np.float32(center_um[0]))[:, None]
    x = (np.arange(shape[1], dtype=np.float32) * np.float32(spacing_um)
         - np.float32(center_um[1]))[None, :]
    return y, x


def along(y: np.ndarray, x: np.ndarray, angle_deg: float) -> np.ndarray:
    """Coordinate along the direction ``angle_deg`` (CCW from +x as displayed, y down)."""
    a = math.radians(angle_deg)
    return x * np.float32(math.cos(a)) - y * np.float32(math.sin(a))


def tooling_marks(
    rng: np.random.Generator,
    kind: str,
    shape: tuple[int, int],
    spacing_um: float,
    geometry: dict,
) -> np.ndarray:
    """Unit-RMS class (tooling) marks of one kind on a grid centred on the breech face.

    Parameters
    ----------
    rng
        Randomness of this realisation (the class seed for the shared part, the firearm
        seed for the firearm's own part).
    kind
        ``parallel`` (file marks: striae along ``angle_deg``), ``arched`` (arcs of a
        circle of radius ``arc_radius_um`` centred off the breech face), ``circular``
        (lathe marks concentric with the breech face), ``granular`` (isotropic grain of
        size ``grain_um``), ``crosshatch`` (two striae sets at ``angle_deg`` ± ``cross_deg``).
    shape, spacing_um
        The grid; its centre is the breech-face (primer) centre.
    geometry
        The class geometry (see :func:`ballistics.datasets.synthetic.make_class`).
    """
    h, w = shape
    y, x = grid(shape, spacing_um, ((h - 1) * spacing_um / 2, (w - 1) * spacing_um / 2))
    half_diag = 0.5 * spacing_um * math.hypot(h, w) + 10 * spacing_um
    band = tuple(geometry["band_um"])
    fine = min(spacing_um, band[0] / 4)
    if kind == "granular":
        g = geometry["grain_um"]
        return band_noise(rng, shape, spacing_um, (0.5 * g, 3.0 * g), slope=0.0)
    if kind in ("parallel", "crosshatch"):
        angles = [geometry["angle_deg"]]
        if kind == "crosshatch":
            angles = [geometry["angle_deg"] - geometry["cross_deg"],
                      geometry["angle_deg"] + geometry["cross_deg"]]
        out = np.zeros(shape, np.float32)
        wav_p, wav_o = profile(rng, 2 * half_diag, 4 * fine, (400.0, 4000.0), slope=1.0)
        for ang in angles:
            p, o = profile(rng, 2 * half_diag + 200, fine, band)
            u = along(y, x, ang + 90.0)  # across the striae
            v = along(y, x, ang)  # along the striae: gentle waviness
            wav = sample_profile(wav_p, wav_o, 4 * fine, v) * np.float32(geometry["wave_um"])
            out += sample_profile(p, o, fine, u + wav)
        return out / np.float32(math.sqrt(len(angles)))
    if kind == "circular":
        r = np.sqrt(y * y + x * x)
        p, o = profile(rng, 2 * half_diag, fine, band)
        return sample_profile(p, o, fine, r)
    if kind == "arched":
        a = math.radians(geometry["angle_deg"])
        rc = geometry["arc_radius_um"]
        cy, cx = rc * math.sin(a), -rc * math.cos(a)  # centre opposite the direction
        r = np.sqrt((y - np.float32(cy)) ** 2 + (x - np.float32(cx)) ** 2)
        p, o = profile(rng, 2 * (rc + half_diag), fine, band)
        return sample_profile(p, o, fine, r - np.float32(rc))
    raise ValueError(f"unknown tooling {kind!r}")


def shape_radius(
    y: np.ndarray, x: np.ndarray, shape: str, axes_um: tuple[float, float], angle_deg: float
) -> np.ndarray:
    """Normalised radius of a firing-pin outline (1 on the outline, <1 inside).

    ``round`` and ``elliptical`` are ellipses with semi-axes ``axes_um`` (along, across
    ``angle_deg``); ``rectangular`` is a superellipse (exponent 5), the Glock-type outline.
    """
    u = along(y, x, angle_deg) / np.float32(axes_um[0])
    v = along(y, x, angle_deg + 90.0) / np.float32(axes_um[1])
    if shape == "rectangular":
        return (np.abs(u) ** 5 + np.abs(v) ** 5) ** np.float32(0.2)
    return np.sqrt(u * u + v * v)


def warp_rotate_shift(
    src: np.ndarray,
    src_center_px: tuple[float, float],
    dst_shape: tuple[int, int],
    dst_center_px: tuple[float, float],
    rotation_deg: float,
    *,
    interpolation: int = cv2.INTER_CUBIC,
    border_value: float = 0.0,
    border_mode: int = cv2.BORDER_CONSTANT,
) -> np.ndarray:
    """Rotate ``src`` CCW (as displayed) by ``rotation_deg`` about ``src_center_px`` and
    place that centre at ``dst_center_px`` (both ``(row, col)``) in a ``dst_shape`` grid.

    One ``cv2.warpAffine`` call; multi-channel ``(rows, cols, c)`` inputs with c <= 4 are
    warped together.
    """
    t = math.radians(rotation_deg)
    c, s = math.cos(t), math.sin(t)
    sy, sx = src_center_px
    dy, dx = dst_center_px
    # destination (col, row) -> source: R^-1 (p - dst_center) + src_center with
    # R^-1 = [[c, -s], [s, c]] in (x, y-down) coordinates
    m = np.array([[c, -s, sx - c * dx + s * dy],
                  [s, c, sy - s * dx - c * dy]], dtype=np.float64)
    return cv2.warpAffine(
        src, m, (dst_shape[1], dst_shape[0]),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=border_mode, borderValue=border_value,
    )
