"""Signatures from whole scans: the kind of mark decides how the striated region is found.

- ``"lea"``: a bullet's land-engraved area (:func:`~ballistics.matching.striae.lea.lea_signature`:
  grooves, crosscut, signature);
- ``"aperture-shear"``: without a region or mask, the casing is segmented and the band of
  striae running across the firing-pin outline is proposed automatically
  (:func:`~ballistics.matching.striae.signatures.propose_aperture_shear`); the proposal's
  bounding box is kept in ``signature.meta["proposed_region_um"]`` and named in a warning;
- ``"mark"`` (and any kind given a region or mask): the striated region as given.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ballistics.errors import NoSignatureError, ScanWarning
from ballistics.matching.striae._types import Signature
from ballistics.matching.striae.bullets import BulletComparison, compare_bullets
from ballistics.matching.striae.compare import (
    StriaeCompareParams,
    StriaeComparison,
    compare_signatures,
)
from ballistics.matching.striae.lea import lea_signature
from ballistics.matching.striae.signatures import extract_signature, propose_aperture_shear
from ballistics.scan import Scan, check_same_modality

__all__ = ["bullet_signatures", "compare_bullet_scans", "compare_mark_scans", "mark_signature"]


def mark_signature(
    scan: Scan,
    kind: str = "mark",
    *,
    region: tuple[float, float, float, float] | None = None,
    mask: np.ndarray | None = None,
) -> Signature:
    """The 1D striation signature of a scan's striated mark.

    Parameters
    ----------
    scan
        A topography (heights in µm).
    kind
        ``"mark"``, ``"aperture-shear"`` or ``"lea"``.
    region
        ``(y0, x0, y1, x1)`` in µm from the first point: the striated region.
    mask
        Boolean mask of the striated region (True = inside), the scan's shape.

    Raises
    ------
    NoSignatureError
        When no striated region or signature can be found (e.g. no firing-pin impression to
        propose the aperture-shear band from).
    """
    if kind == "lea" and region is None and mask is None:
        return lea_signature(scan)
    if kind == "aperture-shear" and region is None and mask is None:
        from ballistics.preprocess.segment import segment

        seg = segment(scan)
        if seg.firing_pin is None:
            raise NoSignatureError(
                "no striation signature: no firing-pin impression was found to propose "
                "the aperture-shear band; give it with --region or --mask")
        band = propose_aperture_shear(scan, seg.firing_pin.center_um, seg.firing_pin.radius_um,
                                      firing_pin_mask=seg.firing_pin_region)
        rows, cols = np.nonzero(band)
        dy, dx = scan.spacing_um
        box = [float(rows.min() * dy), float(cols.min() * dx), float(rows.max() * dy),
               float(cols.max() * dx)]
        sig = extract_signature(scan, kind=kind, mask=band)
        name = Path(scan.source).name if scan.source else "scan"
        msg = (f"{name}: the aperture-shear band was proposed automatically "
               f"(bounding box Y0,X0,Y1,X1 = {', '.join(f'{v:.0f}' for v in box)} µm); "
               "check it, or give --region/--mask")
        warnings.warn(msg, ScanWarning, stacklevel=2)
        return replace(sig, meta={**sig.meta, "proposed_region_um": box},
                       warnings=(*sig.warnings, msg))
    return extract_signature(scan, kind=kind, region=region, mask=mask)


def compare_mark_scans(
    a: Scan,
    b: Scan,
    kind: str = "mark",
    *,
    region: tuple[float, float, float, float] | None = None,
    mask: np.ndarray | None = None,
    params: StriaeCompareParams | None = None,
) -> StriaeComparison:
    """Compare the striated marks of two scans (:func:`mark_signature` of each, then
    :func:`~ballistics.matching.striae.compare.compare_signatures`; marks other than lands
    are also tried reversed). A topography and an image are a
    :class:`~ballistics.errors.ModalityMismatchError`."""
    check_same_modality(a, b)
    sa = mark_signature(a, kind, region=region, mask=mask)
    sb = mark_signature(b, kind, region=region, mask=mask)
    params = params or StriaeCompareParams(try_reversed=kind != "lea")
    return compare_signatures(sa, sb, params)


def bullet_signatures(lands: Sequence[Scan | Signature | None]) -> list[Signature | None]:
    """Land signatures of one bullet: scans go through
    :func:`~ballistics.matching.striae.lea.lea_signature`; a land that yields none becomes
    ``None`` with a warning (the bullet is compared on its remaining lands)."""
    out: list[Signature | None] = []
    for k, land in enumerate(lands):
        if land is None or isinstance(land, Signature):
            out.append(land)
            continue
        try:
            out.append(lea_signature(land))
        except NoSignatureError as exc:
            msg = f"{land.source or f'land {k + 1}'}: {exc.message}; the land is left out"
            warnings.warn(msg, ScanWarning, stacklevel=2)
            out.append(None)
    return out


def compare_bullet_scans(
    bullet_a: Sequence[Scan | Signature | None],
    bullet_b: Sequence[Scan | Signature | None],
    params: StriaeCompareParams | None = None,
) -> BulletComparison:
    """Compare two bullets given as their land scans (or signatures) in land order."""
    return compare_bullets(bullet_signatures(bullet_a), bullet_signatures(bullet_b), params)
