"""Embeddings of breech faces: one vector per casing, so FAISS can shortlist candidates.

- :class:`Embedder`: the protocol every embedder follows (``name``, ``dim``, ``model_hash``,
  ``embed(scans, batch_size) -> float32 (N, dim)``, rows L2-normalised, cosine = inner product).
- :func:`load_embedder`: ``"cnn"`` (the shipped weights, loaded offline from package data),
  ``"baseline"`` (the non-learned polar descriptor of :mod:`ballistics.models.descriptors`)
  or the path of weights written by ``ballistics train``.
- :func:`embed`: one call from processed scans to vectors.

Inputs are *processed* scans (``ballistics.preprocess.preprocess(...).scan`` or already
processed files). torch is imported only when a CNN is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ballistics.errors import ModelError, ParameterError
from ballistics.scan import Scan

__all__ = ["SHIPPED_WEIGHTS", "Embedder", "embed", "load_embedder", "shipped_weights_path"]

#: File name of the shipped CNN weights inside ``ballistics/models/weights/``.
SHIPPED_WEIGHTS = "breechface_polarnet_v2.pt"


@runtime_checkable
class Embedder(Protocol):
    """What the collection, search and benchmarks use to turn scans into vectors."""

    name: str
    dim: int
    model_hash: str

    def embed(self, scans: Sequence[Scan], batch_size: int = 32) -> np.ndarray:
        """``(N, dim)`` float32, L2-normalised, one row per processed scan in order."""
        ...


def shipped_weights_path() -> Path:
    """Path of the shipped CNN weights (package data); :class:`ModelError` if missing."""
    p = Path(__file__).resolve().parent / "weights" / SHIPPED_WEIGHTS
    if not p.is_file():
        raise ModelError(
            f"the shipped CNN weights ({SHIPPED_WEIGHTS}) are missing from this installation; "
            "reinstall ballistics, pass --model PATH to weights from `ballistics train`, or "
            "use --model baseline")
    return p


def load_embedder(model: str | os.PathLike[str] = "cnn", device: str = "auto") -> Embedder:
    """An embedder by name or weights path.

    Parameters
    ----------
    model
        ``"cnn"`` (shipped weights), ``"baseline"`` (non-learned descriptor), or the path of a
        checkpoint written by ``ballistics train`` (``best.pt``/``last.pt``).
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda[:N]"``; ignored by the baseline.

    Raises
    ------
    ParameterError
        For an unknown name that is not an existing file.
    ModelError
        When weights cannot be read or do not fit the network.
    """
    if isinstance(model, str) and model.strip().lower() == "baseline":
        from ballistics.models.descriptors import BaselineEmbedder

        return BaselineEmbedder()
    from ballistics.device import resolve_device

    resolve_device(device)  # validate early, also for the baseline-free paths
    if isinstance(model, str) and model.strip().lower() == "cnn":
        from ballistics.models.cnn import CNNEmbedder

        return CNNEmbedder(shipped_weights_path(), device=device)
    p = Path(model)
    if p.is_file():
        from ballistics.models.cnn import CNNEmbedder

        return CNNEmbedder(p, device=device)
    raise ParameterError(
        f"model must be 'cnn', 'baseline' or the path of a weights file; got {str(model)!r} "
        "(no such file)")


def embed(
    scans: Sequence[Scan] | Scan,
    model: str | os.PathLike[str] | Embedder = "cnn",
    device: str = "auto",
    batch_size: int = 32,
) -> np.ndarray:
    """Embed processed scans: ``(N, dim)`` float32, rows L2-normalised, in input order.

    Parameters
    ----------
    scans
        Processed scans (or one scan), e.g. ``preprocess(scan, "default").scan``.
    model
        ``"cnn"``, ``"baseline"``, a weights path, or an already loaded :class:`Embedder`.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    batch_size
        Scans per forward pass.
    """
    if isinstance(scans, Scan):
        scans = [scans]
    emb = model if isinstance(model, Embedder) else load_embedder(model, device=device)
    scans = list(scans)
    if not scans:
        return np.empty((0, emb.dim), dtype=np.float32)
    return emb.embed(scans, batch_size=batch_size)
