"""Applying a comparison's pose: the target seen on the reference's grid."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ballistics.matching.breechface._rotation import rotate_stack
from ballistics.scan import Scan

if TYPE_CHECKING:  # pragma: no cover
    from ballistics.matching.breechface.comparison import Comparison

__all__ = ["align_target"]


def align_target(reference: Scan, target: Scan, comparison: Comparison) -> np.ndarray:
    """The target rotated by the consensus angle and shifted by the consensus translation.

    Parameters
    ----------
    reference, target
        The two processed scans of ``comparison`` (same spacing).
    comparison
        The result of :func:`~ballistics.matching.breechface.compare` for them.

    Returns
    -------
    numpy.ndarray
        float32 heights of the target on the reference's grid ``(rows, cols)``, NaN where the
        aligned target has no data.
    """
    t = torch.from_numpy(np.array(target.heights, dtype=np.float32))
    rot = rotate_stack(t, [comparison.theta_deg])[0].numpy()
    dy = int(round(comparison.dy_um / reference.spacing_um[0]))
    dx = int(round(comparison.dx_um / reference.spacing_um[1]))
    out = np.full(reference.shape, np.nan, np.float32)
    h, w = reference.shape
    r0, r1 = max(0, -dy), min(h, rot.shape[0] - dy)
    c0, c1 = max(0, -dx), min(w, rot.shape[1] - dx)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = rot[r0 + dy:r1 + dy, c0 + dx:c1 + dx]
    return out
