"""Areal breech-face comparison: registration, Congruent Matching Cells, ACES-style features.

Public names (loaded lazily: torch is imported at the first comparison):

- :func:`compare`, :func:`compare_many`, :class:`Comparison`, :class:`Direction`
  (``comparison``): both directions of a pair, the CMC counts, the pose, the features;
- :class:`CompareParams`, :data:`PRESETS`, :func:`get_params`, :func:`parse_rotation`
  (``params``): the presets ``"default"`` and ``"cmcR"``;
- :data:`FEATURE_NAMES` (``features``): the ACES-style feature vector of a comparison;
- :func:`align_target` (``pose``): the target on the reference's grid at the found pose.

The engine (``_engine``, ``_exact``, ``_exact_reference``, ``_pyramid``, ``_blocks``,
``_cells``, ``_registration``, ``_rotation``, ``_decision``, ``_parallel``, ``_tuning``) is
private; ``docs/compare.md`` describes it.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "compare": "comparison",
    "compare_many": "comparison",
    "Comparison": "comparison",
    "Direction": "comparison",
    "CompareParams": "params",
    "PRESETS": "params",
    "get_params": "params",
    "parse_rotation": "params",
    "FEATURE_NAMES": "features",
    "align_target": "pose",
}


def __getattr__(name: str) -> Any:
    """Import the public names lazily (torch loads only when a comparison is made)."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
