"""Input of the CNN embedder: a processed breech face on a fixed, centred Cartesian grid.

:func:`prepare_input` turns one *processed* scan into a ``(2, size, size)`` float32 array:

- channel 0: heights band-passed once more (NaN-aware Gaussians, ``smooth_sigma_um`` for
  anti-aliasing, ``form_sigma_um`` to remove residual form, so inputs from different
  preprocessing chains and scanners look alike), standardised over the valid points
  (zero mean, unit standard deviation, clipped to ±5) and 0 where missing;
- channel 1: the validity mask (fraction of valid support, 0..1).

The grid has ``spacing_um`` square pixels and is centred on the breech-face centre
(:func:`ballistics.models.descriptors.breech_face_centre`: the primer centre recorded by
preprocessing, else a robust circle fitted to the outer edge of the valid region). The network
then resamples it on a polar grid around the centre (see :mod:`ballistics.models.network`).
Only numpy/scipy here, so inputs can be prepared (and cached) without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ballistics.errors import EmptyScanError
from ballistics.models.descriptors import (
    block_mean_nan,
    breech_face_centre,
    nan_gaussian,
    smooth_form,
)
from ballistics.params import check_range
from ballistics.scan import Scan

__all__ = ["InputParams", "prepare_input", "prepare_inputs", "rotate_scan"]


@dataclass(frozen=True)
class InputParams:
    """Geometry of the CNN input (stored with the weights; a model is tied to its inputs).

    The defaults cover a 4.8 mm field (9 mm-class primers) at 30 µm, which keeps most of the
    breech-face wavelengths of the cmcR/Song (2013) band-pass (about 60-500 µm) while keeping
    the network cheap enough to train on a CPU.
    """

    spacing_um: float = 30.0
    size: int = 160
    smooth_sigma_um: float = 15.0
    form_sigma_um: float = 250.0
    min_valid_fraction: float = 0.01

    def __post_init__(self) -> None:
        check_range("spacing_um", self.spacing_um, 0.5, 500)
        check_range("size", self.size, 32, 2048)
        check_range("smooth_sigma_um", self.smooth_sigma_um, 0, 1000)
        check_range("form_sigma_um", self.form_sigma_um, self.smooth_sigma_um, 10000,
                    lo_open=True)
        check_range("min_valid_fraction", self.min_valid_fraction, 0, 1)

    @property
    def field_um(self) -> float:
        """Side of the square input field in µm."""
        return self.spacing_um * self.size


def prepare_input(
    scan: Scan,
    params: InputParams | None = None,
    *,
    centre_um: tuple[float, float] | None = None,
) -> np.ndarray:
    """One processed scan as a ``(2, size, size)`` float32 CNN input (heights, validity).

    Parameters
    ----------
    scan
        A processed breech face, ``(rows, cols) = (y, x)``, NaN = missing; any spacing.
    params
        :class:`InputParams`; defaults when ``None``.
    centre_um
        Grid centre ``[y, x]`` in µm; the breech-face centre when ``None``.

    Raises
    ------
    EmptyScanError
        When less than ``min_valid_fraction`` of the input field is valid.
    """
    p = params or InputParams()
    c = breech_face_centre(scan) if centre_um is None else centre_um
    # block-average fine scans first (speed): keep at least 1 point per anti-alias sigma
    k = max(1, int(max(p.smooth_sigma_um, 0.5 * p.spacing_um) // max(scan.spacing_um)))
    h = block_mean_nan(scan.heights, k)
    dy, dx = scan.spacing_um[0] * k, scan.spacing_um[1] * k
    off = ((k - 1) / 2.0 * scan.spacing_um[0], (k - 1) / 2.0 * scan.spacing_um[1])
    if p.smooth_sigma_um > 0:
        # anti-aliasing: at least half the target spacing
        s_um = max(p.smooth_sigma_um, 0.5 * p.spacing_um)
        smooth = nan_gaussian(h, (s_um / dy, s_um / dx))
    else:
        smooth = h
    form = smooth_form(h, (dy, dx), p.form_sigma_um)
    band = np.where(np.isfinite(h), smooth - form, np.nan)
    valid = np.isfinite(band)
    if valid.sum() < 16:
        raise EmptyScanError("the breech face has fewer than 16 valid points", path=scan.source)
    half = (p.size - 1) / 2.0
    offs = (np.arange(p.size) - half) * p.spacing_um
    ys = (c[0] - off[0] + offs) / dy
    xs = (c[1] - off[1] + offs) / dx
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    f = ndimage.map_coordinates(np.where(valid, band, 0.0), [yy, xx], order=1, cval=0.0)
    w = ndimage.map_coordinates(valid.astype(np.float64), [yy, xx], order=1, cval=0.0)
    ok = w > 0.5
    if ok.mean() < p.min_valid_fraction or ok.sum() < 16:
        raise EmptyScanError(
            f"only {ok.mean():.1%} of the {p.field_um / 1000:.1f} mm input field around the "
            "breech-face centre is valid; is this a processed breech face?", path=scan.source)
    vals = f[ok] / w[ok]
    mu, sd = float(vals.mean()), float(vals.std())
    out = np.zeros((2, p.size, p.size), dtype=np.float32)
    out[0][ok] = np.clip((vals - mu) / (sd if sd > 1e-12 else 1.0), -5.0, 5.0)
    out[1][ok] = 1.0
    return out


def prepare_inputs(scans: list[Scan], params: InputParams | None = None) -> np.ndarray:
    """:func:`prepare_input` for several scans: ``(N, 2, size, size)`` float32."""
    p = params or InputParams()
    out = np.empty((len(scans), 2, p.size, p.size), dtype=np.float32)
    for i, s in enumerate(scans):
        out[i] = prepare_input(s, p)
    return out


def rotate_scan(scan: Scan, angle_deg: float, centre_um: tuple[float, float] | None = None
                ) -> Scan:
    """The scan rotated counter-clockwise (as displayed) by ``angle_deg`` about ``centre_um``.

    Same grid and spacing as the input (points rotated out of it are lost, points rotated in
    from outside are NaN); bilinear interpolation of heights and validity (a point stays valid
    when at least half of its support is). Provenance is dropped: the result is a new surface
    (used to test and benchmark rotation invariance).

    Parameters
    ----------
    scan
        Any scan, ``(rows, cols) = (y, x)``.
    angle_deg
        Counter-clockwise rotation in degrees.
    centre_um
        ``[y, x]`` of the rotation centre in µm; the middle of the array when ``None``.
    """
    rows, cols = scan.shape
    dy, dx = scan.spacing_um
    if centre_um is None:
        cy, cx = (rows - 1) / 2.0, (cols - 1) / 2.0
    else:
        cy, cx = centre_um[0] / dy, centre_um[1] / dx
    a = np.deg2rad(angle_deg)
    yy, xx = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64),
                         indexing="ij")
    # output point (y, x) shows the input at the inverse rotation (y up is -row)
    ry, rx = (yy - cy) * dy, (xx - cx) * dx
    src_x = np.cos(a) * rx - np.sin(a) * ry
    src_y = np.sin(a) * rx + np.cos(a) * ry
    sy, sx = cy + src_y / dy, cx + src_x / dx
    valid = np.isfinite(scan.heights)
    f = ndimage.map_coordinates(np.where(valid, scan.heights, 0.0).astype(np.float64),
                                [sy, sx], order=1, cval=0.0)
    w = ndimage.map_coordinates(valid.astype(np.float64), [sy, sx], order=1, cval=0.0)
    out = np.full((rows, cols), np.nan, dtype=np.float32)
    ok = w >= 0.5
    out[ok] = (f[ok] / w[ok]).astype(np.float32)
    return Scan(out, scan.spacing_um, modality=scan.modality, metadata=scan.metadata,
                source=scan.source)
