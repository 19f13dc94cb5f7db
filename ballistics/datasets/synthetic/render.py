"""2D rendering of a synthetic casing surface under an oblique ring light.

A ring light at elevation ``e`` reflects specularly into a vertical camera from facets
tilted by ``(90° - e) / 2``; being rotationally symmetric, it lights every azimuth alike.
The grey level is a diffuse term (cosine of the facet tilt) plus a specular lobe around
that tilt, darkened inside the firing-pin crater (occluded from the low light) and in
the primer-pocket gap, with a slight vignette and camera noise, quantised to 8 bits.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def ring_light_image(
    z: np.ndarray,
    spacing_um: float,
    *,
    elevation_deg: float,
    shadow: np.ndarray,
    dark: np.ndarray,
    noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Grey levels (float32 integers in [0, 255]) of surface ``z`` (µm, no NaN).

    Parameters
    ----------
    z
        Heights ``(rows, cols)`` in µm, NaN-free.
    spacing_um
        Point spacing in µm.
    elevation_deg
        Elevation of the ring light above the surface plane.
    shadow
        float32 in [0, 1]: 1 where the ring light is occluded (crater interior).
    dark
        bool, True where nothing reflects (primer-pocket gap).
    noise
        Camera noise (grey levels).
    rng
        Randomness of the camera noise.
    """
    inv = np.float32(1.0 / (8.0 * spacing_um))
    gx = cv2.Sobel(z, cv2.CV_32F, 1, 0, ksize=3) * inv
    gy = cv2.Sobel(z, cv2.CV_32F, 0, 1, ksize=3) * inv
    g2 = gx * gx + gy * gy
    cos_t = 1.0 / np.sqrt(1.0 + g2)
    tilt = np.arccos(np.clip(cos_t, 0.0, 1.0))
    t0 = math.radians(0.5 * (90.0 - elevation_deg))
    width = math.radians(max(2.0, 0.25 * (90.0 - elevation_deg)))
    spec = np.exp(-(((tilt - np.float32(t0)) / np.float32(width)) ** 2))
    img = 60.0 * cos_t ** 4 + 150.0 * spec
    img *= 1.0 - 0.8 * shadow
    h, w = z.shape
    yy = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    img *= 1.0 - 0.15 * (yy * yy + xx * xx)
    img[dark] = 8.0
    if noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(np.rint(img), 0, 255).astype(np.float32)
