"""The CNN embedder: a trained :class:`~ballistics.models.network.PolarNet` behind the
:class:`~ballistics.models.Embedder` protocol, and its checkpoint format.

A checkpoint is a ``torch.save`` dict (loaded with ``weights_only=True``: no code runs at load):
``format`` (``"ballistics-embedder-1"``), ``name``, ``config`` (:class:`NetConfig` as a dict),
``state_dict``, ``meta`` (training data, command, validation numbers). The model hash is the
SHA-256 of the file's bytes, so vectors from different weights are never mixed unnoticed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ballistics.device import resolve_device
from ballistics.errors import ModelError, ScanFileNotFoundError
from ballistics.models.inputs import prepare_input
from ballistics.models.network import NetConfig, PolarNet
from ballistics.params import check_range
from ballistics.scan import Scan

__all__ = ["CHECKPOINT_FORMAT", "CNNEmbedder", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "ballistics-embedder-1"


def save_checkpoint(
    path: str | os.PathLike[str],
    net: PolarNet,
    *,
    name: str = "cnn",
    meta: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``net`` (weights as float32 on the CPU) and its config; atomic (temp + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.cpu()
             for k, v in net.state_dict().items()}
    obj: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "name": name,
        "config": net.cfg.to_dict(),
        "state_dict": state,
        "meta": meta or {},
    }
    if extra:
        obj.update(extra)
    tmp = p.with_name(p.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, p)
    return p


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``); raise :class:`ModelError` if unusable."""
    p = Path(path)
    if not p.is_file():
        raise ScanFileNotFoundError("model weights not found", path=p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"not a readable ballistics model file ({type(exc).__name__}: {exc})",
                         path=p) from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"not a ballistics embedder checkpoint (format {CHECKPOINT_FORMAT!r} "
                         "expected); train one with `ballistics train`", path=p)
    return obj


class CNNEmbedder:
    """Embeds processed scans with a trained :class:`PolarNet`.

    Parameters
    ----------
    path
        Checkpoint file (see :func:`save_checkpoint`).
    device
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda[:N]"``.

    Attributes
    ----------
    name, dim, model_hash
        The :class:`~ballistics.models.Embedder` protocol.
    meta : dict
        Training information stored with the weights.
    """

    def __init__(self, path: str | os.PathLike[str], device: str = "auto") -> None:
        self.path = Path(path)
        obj = load_checkpoint(self.path)
        try:
            self.config = NetConfig.from_dict(obj["config"])
            net = PolarNet(self.config)
            net.load_state_dict(obj["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"the weights do not fit the network ({exc})", path=path) from None
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.name = str(obj.get("name", "cnn"))
        self.dim = int(self.config.out_dim)
        self.meta = dict(obj.get("meta") or {})
        self.model_hash = hashlib.sha256(self.path.read_bytes()).hexdigest()

    @torch.inference_mode()
    def embed_inputs(self, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Embeddings of prepared inputs ``(N, 2, S, S)`` (see :func:`prepare_input`)."""
        check_range("batch_size", batch_size, 1, 1_000_000)
        out = np.empty((len(inputs), self.dim), dtype=np.float32)
        use_amp = self.device.type == "cuda"
        for i in range(0, len(inputs), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(inputs[i:i + batch_size])).to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                e = self.net(x)
            e = torch.nn.functional.normalize(e.float(), dim=1)
            out[i:i + len(x)] = e.cpu().numpy()
        return out

    def embed(self, scans: Sequence[Scan], batch_size: int = 32) -> np.ndarray:
        """Embeddings ``(N, dim)`` float32, L2-normalised, one row per processed scan."""
        check_range("batch_size", batch_size, 1, 1_000_000)
        scans = list(scans)
        out = np.empty((len(scans), self.dim), dtype=np.float32)
        for i in range(0, len(scans), batch_size):
            chunk = scans[i:i + batch_size]
            x = np.stack([prepare_input(s, self.config.input) for s in chunk])
            out[i:i + len(chunk)] = self.embed_inputs(x, batch_size)
        return out

    def __repr__(self) -> str:
        return (f"CNNEmbedder(name={self.name!r}, dim={self.dim}, device={self.device}, "
                f"hash={self.model_hash[:12]})")
