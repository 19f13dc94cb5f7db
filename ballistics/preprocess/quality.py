"""Quality verdict: is a processed breech face fit for comparison, and if not, why.

Three measured facts decide: the valid breech-face area (mm²), the fraction of the
segmented region that is missing, and (topographies) the point-to-point noise. Later parts
refuse unfit scans with the verdict's reason instead of producing a score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ballistics.preprocess.params import QualityParams
from ballistics.scan import Scan


@dataclass(frozen=True)
class Quality:
    """Fitness of a processed scan for comparison.

    Attributes
    ----------
    fit
        True when the scan can be compared.
    valid_area_mm2
        Measured area of the processed breech face (mm²).
    missing_fraction
        Fraction of the segmented breech-face region that is not measured.
    noise_um
        Point-to-point measurement noise (µm, robust); ``None`` for 2D images.
    reason
        Why the scan is unfit (``None`` when fit).
    """

    fit: bool
    valid_area_mm2: float
    missing_fraction: float
    noise_um: float | None
    reason: str | None = None

    def to_dict(self) -> dict:
        """JSON-compatible dict (the CLI's ``quality`` object)."""
        return {"fit": self.fit, "valid_area_mm2": self.valid_area_mm2,
                "missing_fraction": self.missing_fraction, "noise_um": self.noise_um,
                "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> Quality:
        """Inverse of :meth:`to_dict`."""
        noise = d.get("noise_um")
        return cls(bool(d["fit"]), float(d["valid_area_mm2"]), float(d["missing_fraction"]),
                   None if noise is None else float(noise), d.get("reason"))


def noise_level(heights: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Robust point-to-point noise (same units as ``heights``).

    The second difference along rows and columns, ``z[i-1] - 2 z[i] + z[i+1]``, has standard
    deviation ``sqrt(6) sigma`` for white noise ``sigma`` and is blind to form and to
    wavelengths much longer than the spacing; its median absolute deviation (x 1.4826) is
    divided by ``sqrt(6)``. Returns NaN when fewer than 10 triples are measured.
    """
    z = np.asarray(heights, dtype=np.float64)
    if mask is not None:
        z = np.where(mask, z, np.nan)
    d = [z[:, :-2] - 2 * z[:, 1:-1] + z[:, 2:], z[:-2, :] - 2 * z[1:-1, :] + z[2:, :]]
    v = np.concatenate([x[np.isfinite(x)] for x in d])
    if len(v) > 400_000:  # a regular subsample is plenty for a median
        v = v[:: len(v) // 200_000]
    if len(v) < 10:
        return float("nan")
    mad = float(np.median(np.abs(v - np.median(v))))
    return 1.4826 * mad / np.sqrt(6.0)


def assess(scan: Scan, *, missing_fraction: float, noise_um: float | None,
           params: QualityParams | None = None) -> Quality:
    """The verdict for a processed ``scan``.

    Parameters
    ----------
    scan
        The processed scan (its valid points are the breech face).
    missing_fraction
        Missing fraction of the segmented region (measured before processing).
    noise_um
        Point-to-point noise of the raw heights in the region (``None`` for images).
    params
        Thresholds (:class:`QualityParams`).
    """
    params = params or QualityParams()
    area = float(scan.valid.sum() * scan.spacing_um[0] * scan.spacing_um[1] / 1e6)
    reasons = []
    if area < params.min_area_mm2:
        reasons.append(f"valid breech-face area {area:.2f} mm² is below the "
                       f"{params.min_area_mm2:g} mm² a comparison needs")
    if missing_fraction > params.max_missing:
        reasons.append(f"{100 * missing_fraction:.0f} % of the breech-face region is missing "
                       f"(more than {100 * params.max_missing:.0f} %)")
    if noise_um is not None and np.isfinite(noise_um) and noise_um > params.max_noise_um:
        reasons.append(f"measurement noise {noise_um:.2f} µm exceeds {params.max_noise_um:g} µm")
    noise = None if noise_um is None or not np.isfinite(noise_um) else float(noise_um)
    return Quality(fit=not reasons, valid_area_mm2=area,
                   missing_fraction=float(missing_fraction), noise_um=noise,
                   reason="; ".join(reasons) if reasons else None)


__all__ = ["Quality", "assess", "noise_level"]
