"""Comparison of 1D striation signatures (casing striae, bullet lands) and of whole bullets.

Two signatures are compared after resampling to a common spacing (the coarser one):

- **CCF**: the NaN-aware (pairwise-complete) Pearson correlation at every lag whose overlap is
  at least ``min_overlap_fraction`` of the shorter signature; ``ccf_max`` is the largest, at
  ``lag_um`` (a feature at position ``p`` of A sits at ``p + lag_um`` in B; positions from each
  signature's first sample).
- **Striae** at the best lag (refined to a fraction of a sample by a parabola through the CCF
  peak): the clear peaks and valleys of A (prominence at least
  ``prominence_rq`` × its RMS roughness) each match when B has an extremum of the same type
  (prominence at least ``lenient_prominence_rq`` × RMS) within ``match_tolerance_um``, positions
  refined to a fraction of a sample by a parabola through each extremum; likewise
  from B to A. ``cms`` is the longest run of consecutive matching striae (Biasotti 1959; Chu et
  al. 2010), the smaller of the two directions; ``cnms`` the longest run of non-matching ones;
  ``matches`` / ``non_matches`` the counts.
- **D**: root-mean-square difference of the aligned signatures (µm), and ``d_normalised``
  (D divided by the RMS of both signatures; 0 for identical, about 1.4 for unrelated ones).

Bullets (one signature per land, lands in order around the bullet) are compared land by land;
for each cyclic phase ``k`` (land ``i`` of A against land ``(i + k) mod n_B`` of B) the
sequence average maximum ``SAM(k)`` is the mean ``ccf_max`` of its land pairs (Sta. Sta.
Sta. Sta.; Chu et al. 2013). The best phase is the one with the largest SAM.

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
