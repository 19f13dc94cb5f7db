"""Other instrument formats (Alicona AL3D, Digital Surf SUR, Sensofar PLU, Keyence VK4).

They are read through surfalize, installed with the ``formats`` extra
(``pip install 'forensic-ballistics[formats]'``). surfalize returns heights and steps in µm.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.errors import BallisticsError, CorruptFileError, DependencyError, EmptyScanError
from ballistics.io._common import quiet_library_warnings


def read_other(path: Path) -> tuple[np.ndarray, tuple[float, float], dict[str, Any], list[str]]:
    """Decode an AL3D/SUR/PLU/VK4 file: (heights µm float32, (dy, dx) µm, metadata, warnings)."""
    try:
        from surfalize import Surface
    except ImportError:
        raise DependencyError(
            f"reading {path.suffix} files needs surfalize: "
            "pip install 'forensic-ballistics[formats]'",
            path=path,
        ) from None
    with quiet_library_warnings():
        try:
            surface = Surface.load(path)
            data = np.asarray(surface.data, dtype=np.float64)
            dx = float(surface.step_x)
            dy = float(surface.step_y)
        except BallisticsError:
            raise
        except Exception as exc:
            raise CorruptFileError(
                f"surfalize cannot read the file: {type(exc).__name__}: {exc}", path=path
            ) from None
    if data.ndim != 2 or 0 in data.shape:
        raise EmptyScanError(f"the file holds no 2D surface (shape {data.shape})", path=path)
    if not (math.isfinite(dx) and math.isfinite(dy) and dx > 0 and dy > 0):
        raise CorruptFileError(f"invalid point spacing ({dy}, {dx}) µm", path=path)
    heights = data.astype(np.float32)
    heights[~np.isfinite(heights)] = np.nan
    raw_md = getattr(surface, "metadata", None)
    metadata: dict[str, Any] = {"format": path.suffix.lower().lstrip(".")}
    if isinstance(raw_md, dict):
        metadata["instrument_metadata"] = {
            str(k): v for k, v in raw_md.items() if isinstance(v, str | int | float | bool)
        }
    return heights, (dy, dx), metadata, []
