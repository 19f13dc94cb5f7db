"""Comparison of 1D striation signatures (casing striae, bullet lands) and of whole bullets.

The method (CCF, consecutive matching striae, D, bullets by the sequence average maximum over
cyclic land phases) is described in :mod:`~ballistics.matching.striae_compare`.

The implementation lives in :mod:`~ballistics.matching.striae_compare` (parameters, one pair),
:mod:`~ballistics.matching.striae_ccf` (resampling, CCF), :mod:`~ballistics.matching.striae_cms`
(CMS) and :mod:`~ballistics.matching.striae_bullets` (bullets, SAM); this module re-exports them.
"""

from __future__ import annotations

from ballistics.matching.striae_bullets import BulletComparison, compare_bullets, phase_pairs
from ballistics.matching.striae_ccf import ccf_curve, resample_signature
from ballistics.matching.striae_cms import match_striae
from ballistics.matching.striae_compare import (
    StriaeCompareParams,
    StriaeComparison,
    compare_signatures,
    params_summary,
)

__all__ = [
    "BulletComparison",
    "StriaeCompareParams",
    "StriaeComparison",
    "ccf_curve",
    "compare_bullets",
    "compare_signatures",
    "match_striae",
    "params_summary",
    "phase_pairs",
    "resample_signature",
]
