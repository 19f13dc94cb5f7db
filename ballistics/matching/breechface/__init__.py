"""Areal breech-face comparison: registration, Congruent Matching Cells, ACES-style features.

Public names (loaded lazily: torch is imported at the first comparison):

- :func:`compare`, :func:`compare_many`, :class:`Comparison`, :class:`Direction`
  (``comparison``): both directions of a pair, the CMC counts, the pose, the features;
- :func:`compare_forward`, :class:`ForwardStage`, :func:`finish_comparisons`
  (``comparison``), :func:`worker_pool` (``_parallel``): :func:`compare_many` in two
  stages (pose and forward direction with bounds on the features, then the rest), for
  re-ranking that completes only the comparisons that can change a ranking;
- :class:`CompareParams`, :data:`PRESETS`, :func:`get_params`, :func:`preset_key`,
  :func:`parse_rotation` (``params``): the presets ``"default"`` and ``"cmcR"``;
- :data:`FEATURE_NAMES` (``features``): the ACES-style feature vector of a comparison;
- :func:`align_target` (``pose``): the target on the reference's grid at the found pose.

The engine (``_engine``, ``_exact``, ``_exact_reference``, ``_pyramid``, ``_blocks``,
``_cells``, ``_registration``, ``_rotation``, ``_decision``, ``_parallel``, ``_tuning``) is
private; ``docs/compare.md`` describes it.
"""

from __future__ import annotations

from ballistics._lazy import lazy_names

_LAZY = {
    "compare": "comparison",
    "compare_many": "comparison",
    "Comparison": "comparison",
    "Direction": "comparison",
    "ForwardStage": "comparison",
    "compare_forward": "comparison",
    "finish_comparisons": "comparison",
    "worker_pool": "_parallel",
    "CompareParams": "params",
    "PRESETS": "params",
    "get_params": "params",
    "parse_rotation": "params",
    "preset_key": "params",
    "FEATURE_NAMES": "features",
    "align_target": "pose",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())

__all__ = sorted(_LAZY)
