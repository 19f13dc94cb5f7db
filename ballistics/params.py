"""Validation helpers for the frozen parameter dataclasses used across the toolkit."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

from ballistics.errors import ParameterError


def check_range(
    name: str,
    value: float,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Raise :class:`ParameterError` unless ``value`` is finite and within ``[lo, hi]``.

    ``lo_open``/``hi_open`` make the bound exclusive. The message states the valid range.
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ParameterError(f"{name} must be in {left}{lo_s}, {hi_s}{right}, got {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise :class:`ParameterError` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        allowed = ", ".join(map(repr, choices))
        raise ParameterError(f"{name} must be one of {allowed}; got {value!r}")


def params_dict(params: Any) -> dict[str, Any]:
    """A frozen parameter dataclass as a plain JSON-compatible dict (tuples become lists)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return params_dict(v)
        if isinstance(v, tuple | list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        return v

    return {f.name: conv(getattr(params, f.name)) for f in dataclasses.fields(params)}
