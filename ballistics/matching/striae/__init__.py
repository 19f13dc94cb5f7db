"""Comparison of 1D striation signatures (casing striae, bullet lands) and of whole bullets.

The method (CCF, consecutive matching striae, D, bullets by the sequence average maximum over
cyclic land phases) is described in :mod:`~ballistics.matching.striae.compare`.

Modules: :mod:`~ballistics.matching.striae.signatures` (direction, striated region and 1D
signature of a mark), :mod:`~ballistics.matching.striae.lea` (bullet lands: grooves, crosscut),
:mod:`~ballistics.matching.striae.marks` (a signature from a whole scan by kind of mark, scans
to comparisons), :mod:`~ballistics.matching.striae.compare` (parameters, one pair),
:mod:`~ballistics.matching.striae.bullets` (bullets, SAM); private: ``_ccf`` (resampling, CCF),
``_cms`` (CMS), ``_direction``, ``_filters``, ``_region``, ``_types``. This package re-exports
the public names.
"""

from __future__ import annotations

from ballistics.matching.striae._ccf import ccf_curve, ccf_curves, resample_signature
from ballistics.matching.striae._cms import match_striae
from ballistics.matching.striae.bullets import (
    BulletComparison,
    compare_bullets,
    phase_consistency,
    phase_pairs,
)
from ballistics.matching.striae.compare import (
    StriaeCompareParams,
    StriaeComparison,
    compare_signatures,
    params_summary,
)
from ballistics.matching.striae.lea import LeaParams, lea_signature
from ballistics.matching.striae.marks import (
    bullet_signatures,
    compare_bullet_scans,
    compare_mark_scans,
    mark_signature,
)
from ballistics.matching.striae.signatures import (
    Signature,
    StriationParams,
    estimate_direction,
    extract_signature,
    propose_aperture_shear,
)

__all__ = [
    "BulletComparison",
    "LeaParams",
    "Signature",
    "StriaeCompareParams",
    "StriaeComparison",
    "StriationParams",
    "bullet_signatures",
    "ccf_curve",
    "ccf_curves",
    "compare_bullet_scans",
    "compare_bullets",
    "compare_mark_scans",
    "compare_signatures",
    "estimate_direction",
    "extract_signature",
    "lea_signature",
    "mark_signature",
    "match_striae",
    "params_summary",
    "phase_consistency",
    "phase_pairs",
    "propose_aperture_shear",
    "resample_signature",
]
