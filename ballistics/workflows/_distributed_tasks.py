"""The work a Dask worker does for a cluster ingest: hash files, prepare + embed + write a shard.

Every function here is a pure, picklable task of plain arguments (paths, strings, dicts),
so it runs unchanged on any worker that has ``ballistics`` installed and sees the same
paths (shared storage). Nothing here imports ``dask``: the tasks also run in a plain
process, which is how the tests check them one by one.

A batch task is *idempotent*: its output is ``staging/batch-<key>.h5`` (the shard) and
``staging/batch-<key>.json`` (the marker: hashes, failures, model hash), both published by
an atomic rename, with ``<key>`` derived from the batch's content (:func:`batch_key`). A
retried attempt of the same batch either finds the marker and returns it, or redoes the work
and atomically replaces whatever a dead attempt left under the final names.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ballistics.collection import shards as shard_io
from ballistics.collection.fsio import atomic_write_json, fsync_dir
from ballistics.collection.records import Failure, modality_mismatch
from ballistics.errors import BallisticsError, CollectionCorruptError
from ballistics.workflows.ingest import (
    LabelTable,
    PreparedCasing,
    embed_prepared,
    embedder_info,
    load_model,
    make_records,
    prepare_casing,
)

STAGING = "staging"
SHARD_PREFIX = "batch-"

_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()
_THREADS_SET = False


def _limit_threads() -> None:
    """One compute thread per task thread (Dask's convention: ``OMP_NUM_THREADS=1`` in
    nanny-started workers); done once per worker process."""
    global _THREADS_SET
    if _THREADS_SET:
        return
    _THREADS_SET = True
    n = max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # pragma: no cover - OpenCV is a core dependency
        pass


def worker_model(model: str, device: str = "auto") -> Any:
    """The embedder ``model`` on ``device``, loaded once per worker process and cached.

    Parameters
    ----------
    model
        ``"cnn"``, ``"baseline"`` or a weights path (the same path on every worker).
    device
        ``"auto"`` uses the worker's GPU when it has one, else its CPU.
    """
    with _MODELS_LOCK:
        _limit_threads()
        key = (str(model), str(device))
        if key not in _MODELS:
            _MODELS[key] = load_model(model, device)
        return _MODELS[key]


def model_info_task(model: str, device: str = "auto") -> dict[str, Any]:
    """``{"model", "name", "model_hash", "dim", "host"}`` of the model as a worker loads it."""
    emb = worker_model(model, device)
    return {**embedder_info(emb, model), "host": socket.gethostname()}


def hash_task(paths: Sequence[str]) -> list[tuple[str, str | None, str]]:
    """SHA-256 of each file: ``(path, sha256 or None, error message)``; never raises."""
    from ballistics.io import sha256_file

    out: list[tuple[str, str | None, str]] = []
    for p in paths:
        try:
            out.append((p, sha256_file(p), ""))
        except (OSError, BallisticsError) as exc:
            out.append((p, None, str(getattr(exc, "message", exc))))
    return out


def batch_key(items: Sequence[tuple[str, str, Mapping[str, str]]],
              settings: Mapping[str, Any]) -> str:
    """Content key of a batch: SHA-256 over its files' hashes, paths and labels and the
    settings that shape its output (preprocessing, model hash), 24 hex digits.

    The same files with the same settings give the same key in any run, so a retried
    task, or a restarted driver, finds the output of an earlier attempt.
    """
    doc = {"settings": dict(sorted(settings.items())),
           "items": [[sha, path, dict(sorted(lab.items()))] for path, sha, lab in items]}
    text = json.dumps(doc, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def shard_name(key: str) -> str:
    """File name of the shard a batch writes into the staging folder."""
    return f"{SHARD_PREFIX}{key}.h5"


def marker_name(key: str) -> str:
    """File name of the batch's completion marker in the staging folder."""
    return f"{SHARD_PREFIX}{key}.json"


def read_marker(path: str | Path) -> dict[str, Any] | None:
    """A completion marker, or ``None`` when it is missing or unreadable."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "key" in doc else None


def _finished(staging: Path, key: str) -> dict[str, Any] | None:
    """The marker of an earlier attempt whose shard is still there (or that had none)."""
    doc = read_marker(staging / marker_name(key))
    if doc is None:
        return None
    if doc.get("shard"):
        p = staging / doc["shard"]
        try:
            table = shard_io.read_table(p)
        except CollectionCorruptError:
            return None
        if sorted(table.sha256) != sorted(doc.get("shas", [])):
            return None
    return {**doc, "reused": True}


def batch_task(
    key: str,
    items: Sequence[tuple[str, str, Mapping[str, str]]],
    staging: str,
    *,
    prepare: Mapping[str, Any],
    model: str,
    device: str = "auto",
    batch_size: int = 32,
    modality: str | None = None,
) -> dict[str, Any]:
    """Prepare, embed and write one batch of casings as a staged shard (idempotent).

    Parameters
    ----------
    key
        :func:`batch_key` of the batch.
    items
        ``(path, sha256, labels)`` per casing, as the driver hashed them.
    staging
        The collection's staging folder (shared storage).
    prepare
        Keyword arguments of :func:`~ballistics.workflows.ingest.prepare_casing`.
    model, device, batch_size
        The embedder (loaded once per worker process) and its batch size.
    modality
        The collection's modality: a casing of another modality is reported as failed.

    Returns
    -------
    dict
        The marker: ``key``, ``shard`` (file name in ``staging`` or ``None`` when every
        casing failed), ``shas`` (the committed-to-be hashes, in row order), ``failed``,
        ``model_hash``, ``host``, ``pid``, ``seconds`` and ``reused``.
    """
    t0 = time.perf_counter()
    folder = Path(staging)
    done = _finished(folder, key)
    if done is not None:
        return done
    emb = worker_model(model, device)
    prepared: list[PreparedCasing] = []
    failed: list[dict[str, str]] = []
    rows = []
    for path, _sha, lab in items:
        res = prepare_casing(path, **prepare)
        if isinstance(res, Failure):
            failed.append(res.to_dict())
        elif modality is not None and res.scan.modality != modality:
            failed.append(Failure(path, modality_mismatch(res.scan.modality, modality),
                                  "ModalityMismatchError").to_dict())
        else:
            prepared.append(res)
            rows.append({"path": path, **dict(lab)})
    shard: str | None = None
    if prepared:
        vecs = embed_prepared(prepared, emb, batch_size=batch_size)
        records = make_records(prepared, vecs, LabelTable(rows))
        shard = shard_name(key)
        part = folder / f".{SHARD_PREFIX}{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"
        try:
            shard_io.write_shard(part, records)
            os.replace(part, folder / shard)  # a retried attempt replaces its own output
            fsync_dir(folder)
        finally:
            part.unlink(missing_ok=True)
    marker = {
        "key": key, "shard": shard, "shas": [p.sha256 for p in prepared], "failed": failed,
        "paths": [p.path for p in prepared], "model_hash": str(emb.model_hash),
        "host": socket.gethostname(), "pid": os.getpid(),
        "seconds": time.perf_counter() - t0, "reused": False,
    }
    atomic_write_json(folder / marker_name(key), marker)
    return marker
