"""The small immutable type every layer passes around: one measured casing surface."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from ballistics._version import __version__
from ballistics.errors import EmptyScanError, ModalityMismatchError, ParameterError

Modality = Literal["topography", "image"]
MODALITIES: tuple[str, ...] = ("topography", "image")

#: Name recorded in every provenance step written by this toolkit.
PRODUCER = "ballistics"


def _freeze(value: Any) -> Any:
    """Return a read-only view of nested mappings/lists (for metadata and provenance)."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _shares_writable_memory(a: np.ndarray) -> bool:
    """True when a read-only array is a view of memory someone else can still write."""
    base = a.base
    while base is not None:
        if isinstance(base, np.ndarray):
            if base.flags.writeable:
                return True
            base = base.base
        else:
            return not isinstance(base, bytes)
    return False


def thaw(value: Any) -> Any:
    """Turn the read-only structures of a :class:`Scan` back into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, eq=False)
class Scan:
    """A measured casing (or bullet land) surface.

    Parameters
    ----------
    heights
        2D array ``(rows, cols) = (y, x)``, converted to read-only C-contiguous float32.
        Micrometres for topographies, grey levels (full depth, as float32) for 2D images.
        Missing points are NaN.
    spacing_um
        Point spacing ``(dy, dx)`` in micrometres, both > 0.
    modality
        ``"topography"`` or ``"image"``.
    metadata
        Instrument and file metadata (free-form, JSON-compatible), read-only.
    sha256
        SHA-256 of the source file's bytes (chain of custody), ``None`` for computed scans.
    provenance
        Processing steps applied since the raw file, oldest first; each a mapping with
        ``name``, ``params``, ``fitted`` and ``version``. Empty for raw scans.
    warnings
        Deviations tolerated while reading or processing (human-readable strings).
    source
        Path of the file the scan was read from, if any.
    """

    heights: np.ndarray
    spacing_um: tuple[float, float]
    modality: Modality = "topography"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    sha256: str | None = None
    provenance: tuple[Mapping[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    source: str | None = None

    def __post_init__(self) -> None:
        h = np.asarray(self.heights)
        if h.ndim != 2:
            raise EmptyScanError(f"a scan needs a 2D height array, got shape {h.shape}")
        if h.shape[0] == 0 or h.shape[1] == 0:
            raise EmptyScanError(f"the scan has zero size {h.shape}")
        h = np.ascontiguousarray(h, dtype=np.float32)
        if h.flags.writeable or _shares_writable_memory(h):
            if h is self.heights or not h.flags.writeable:
                h = h.copy()
            h.flags.writeable = False
        object.__setattr__(self, "heights", h)
        try:
            sp = tuple(float(s) for s in np.broadcast_to(np.asarray(self.spacing_um, float), (2,)))
        except (ValueError, TypeError):
            raise ParameterError(
                f"spacing_um must be one or two positive numbers (dy, dx), got {self.spacing_um!r}"
            ) from None
        if not all(math.isfinite(s) and s > 0 for s in sp):
            raise ParameterError(f"spacing_um must be two positive finite numbers, got {sp}")
        object.__setattr__(self, "spacing_um", sp)
        if self.modality not in MODALITIES:
            raise ParameterError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        object.__setattr__(self, "metadata", _freeze(dict(self.metadata or {})))
        object.__setattr__(self, "provenance", tuple(_freeze(dict(p)) for p in self.provenance))
        object.__setattr__(self, "warnings", tuple(str(w) for w in self.warnings))

    # --- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the height array."""
        return (int(self.heights.shape[0]), int(self.heights.shape[1]))

    @property
    def extent_um(self) -> tuple[float, float]:
        """Size ``(height, width)`` of the scanned area in micrometres."""
        return (self.shape[0] * self.spacing_um[0], self.shape[1] * self.spacing_um[1])

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask of measured (non-NaN) points, ``(rows, cols)``."""
        return ~np.isnan(self.heights)

    @property
    def missing_fraction(self) -> float:
        """Fraction of points that are NaN."""
        return float(np.isnan(self.heights).mean())

    @property
    def is_processed(self) -> bool:
        """True when the scan carries this toolkit's preprocessing provenance."""
        return any(step.get("name") == "preprocess" for step in self.provenance)

    # --- derivation -----------------------------------------------------------------------
    def replace(self, **changes: Any) -> Scan:
        """Return a copy with some fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def with_heights(
        self, heights: np.ndarray, spacing_um: tuple[float, float] | None = None
    ) -> Scan:
        """Return a copy with new heights (and optionally a new spacing)."""
        return self.replace(
            heights=heights, spacing_um=self.spacing_um if spacing_um is None else spacing_um
        )

    def with_step(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        fitted: Mapping[str, Any] | None = None,
        heights: np.ndarray | None = None,
        spacing_um: tuple[float, float] | None = None,
    ) -> Scan:
        """Return a copy with one provenance step appended (and optionally new heights).

        Parameters
        ----------
        name
            Step name, e.g. ``"level"`` or ``"bandpass"``.
        params
            The step's parameters (JSON-compatible).
        fitted
            Values the step estimated (JSON-compatible), e.g. a fitted plane.
        heights, spacing_um
            New surface produced by the step, if any.
        """
        step = {
            "name": name,
            "params": dict(params or {}),
            "fitted": dict(fitted or {}),
            "version": __version__,
            "producer": PRODUCER,
        }
        return self.replace(
            heights=self.heights if heights is None else heights,
            spacing_um=self.spacing_um if spacing_um is None else spacing_um,
            provenance=(*self.provenance, step),
        )

    def with_warnings(self, *messages: str) -> Scan:
        """Return a copy with warnings appended (duplicates are dropped)."""
        new = tuple(dict.fromkeys(m for m in messages if m not in self.warnings))
        return self.replace(warnings=(*self.warnings, *new)) if new else self

    # --- pickling -------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as the constructor's arguments (the read-only mappings thawed), so a scan
        crosses process pools and ``copy.deepcopy`` and is validated again on arrival."""
        return (_rebuild_scan, (np.asarray(self.heights), self.spacing_um, self.modality,
                                thaw(self.metadata), self.sha256, thaw(self.provenance),
                                self.warnings, self.source))

    def __repr__(self) -> str:
        return (
            f"Scan(shape={self.shape}, spacing_um={self.spacing_um}, modality={self.modality!r}, "
            f"missing={self.missing_fraction:.3f}, source={self.source!r}, "
            f"steps={len(self.provenance)})"
        )


def _rebuild_scan(*args: Any) -> Scan:
    """Unpickle a :class:`Scan` (see :meth:`Scan.__reduce__`)."""
    return Scan(*args)


def with_article(modality: str) -> str:
    """``"a topography"``, ``"an image"``: a modality with its article, for messages."""
    return f"{'an' if modality[:1] in 'aeiou' else 'a'} {modality}"


def check_same_modality(a: Scan, b: Scan, names: tuple[str, str] = ("A", "B")) -> None:
    """Refuse to compare a topography with an image (every comparison's rule).

    Parameters
    ----------
    a, b
        The two scans.
    names
        What the message calls a scan without a ``source`` (e.g. reference, target).

    Raises
    ------
    ModalityMismatchError
        When the two scans' modalities differ.
    """
    if a.modality != b.modality:
        raise ModalityMismatchError(
            f"cannot compare {with_article(a.modality)} ({a.source or names[0]}) with "
            f"{with_article(b.modality)} ({b.source or names[1]}); compare topographies with "
            "topographies and images with images")
