"""Training data for the embedder: manifests -> prepared CNN inputs, cached on disk.

Each manifest row (``path`` + a source column, ``firearm_id`` by default) is read with
:func:`ballistics.io.read_scan`, preprocessed with the ``default`` preset unless it is already
processed (:func:`ballistics.preprocess.prepare_for_comparison`), and turned into a
``(2, S, S)`` input (:func:`ballistics.models.inputs.prepare_input`). Inputs are cached as
float16 ``.npy`` files keyed by the file's SHA-256 and the input parameters, so a second run
(or ``--resume``) does not preprocess again. Scans the quality verdict rejects are skipped
with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ballistics._version import __version__
from ballistics.errors import InputError, ParameterError, ScanWarning
from ballistics.models.inputs import InputParams, prepare_input
from ballistics.params import params_dict
from ballistics.progress import progress

__all__ = ["TrainingSet", "load_training_set", "split_sources"]


@dataclass
class TrainingSet:
    """Prepared inputs and their sources."""

    inputs: np.ndarray  # (N, 2, S, S) float16
    sources: list[str]
    paths: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        """Integer label per row (sources numbered in sorted order)."""
        names = sorted(set(self.sources))
        idx = {s: i for i, s in enumerate(names)}
        return np.array([idx[s] for s in self.sources], dtype=np.int64)

    def subset(self, rows: Sequence[int]) -> TrainingSet:
        """The rows ``rows`` as a new set."""
        r = list(rows)
        return TrainingSet(self.inputs[r], [self.sources[i] for i in r],
                           [self.paths[i] for i in r])


def _cache_key(file_hash: str, params: InputParams, processed: bool | None) -> str:
    blob = json.dumps({"file": file_hash, "input": params_dict(params), "processed": processed,
                       "preset": "default", "version": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def load_training_set(
    manifests: Sequence[str | os.PathLike[str]],
    *,
    processed_manifests: Sequence[str | os.PathLike[str]] = (),
    source_column: str = "firearm_id",
    exclude_sources: str | None = None,
    processed: bool | None = None,
    input_params: InputParams | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    quiet: bool = False,
) -> TrainingSet:
    """Read, preprocess and prepare every row of the manifests.

    Parameters
    ----------
    manifests
        ``manifest.csv`` files (or folders holding one) of raw scans (preprocessed here).
    processed_manifests
        Manifests of already processed scans (e.g. the cmcR-processed Weller files).
    source_column
        Column naming the source (same value = same firearm).
    exclude_sources
        Regular expression; rows whose source matches it (``re.fullmatch``) are left out
        (e.g. ``"W0[89]|W1[01]"`` keeps Weller W08-W11 out of training).
    processed
        ``True``: inputs are already processed (e.g. cmcR exports); ``None``: preprocess raw
        inputs with the default preset, keep scans with our provenance as they are. A
        ``processed`` column in a manifest (true/false) overrides it per row.
    input_params
        Geometry of the inputs (:class:`InputParams`).
    cache_dir
        Where prepared inputs are cached (none when ``None``).
    quiet
        No progress bar.
    """
    from ballistics.datasets.manifest import read_manifest
    from ballistics.io import read_scan, sha256_file
    from ballistics.preprocess import prepare_for_comparison

    ip = input_params or InputParams()
    try:
        excl = re.compile(exclude_sources) if exclude_sources else None
    except re.error as exc:
        raise ParameterError(f"exclude_sources is not a valid regular expression: {exc}"
                             ) from None
    rows: list[tuple[str, str, bool | None]] = []
    listed = [(m, processed) for m in manifests] + [(m, True) for m in processed_manifests]
    for man, man_processed in listed:
        for row in read_manifest(man):
            if source_column not in row:
                raise InputError(f"the manifest has no column {source_column!r} "
                                 "(choose it with --source-column)", path=man)
            src = row.get(source_column)
            if src is None or str(src) == "":
                continue
            src = str(src)
            if excl is not None and excl.fullmatch(src):
                continue
            proc = row.get("processed")
            if isinstance(proc, str):
                proc = proc.strip().lower() in ("1", "true", "yes")
            rows.append((row["path"], src, man_processed if proc is None else bool(proc)))
    if not rows:
        raise InputError("the manifests list no usable rows (check --source-column and "
                         "--exclude-sources)")
    cdir = Path(cache_dir) if cache_dir is not None else None
    if cdir is not None:
        cdir.mkdir(parents=True, exist_ok=True)
    inputs: list[np.ndarray] = []
    sources: list[str] = []
    paths: list[str] = []
    skipped: list[dict[str, str]] = []
    for path, src, proc in progress(rows, desc="preparing", unit="scan", quiet=quiet):
        cached = None
        if cdir is not None:
            cached = cdir / f"{_cache_key(sha256_file(path), ip, proc)}.npy"
            if cached.is_file():
                inputs.append(np.load(cached))
                sources.append(src)
                paths.append(path)
                continue
        try:
            scan = read_scan(path)
            scan = prepare_for_comparison(scan, "default", processed=proc)
            x = prepare_input(scan, ip).astype(np.float16)
        except InputError as exc:
            msg = f"{path}: skipped for training: {exc.message}"
            warnings.warn(msg, ScanWarning, stacklevel=2)
            skipped.append({"path": path, "reason": exc.message})
            continue
        if cached is not None:
            tmp = cached.with_name(cached.stem + ".tmp.npy")
            np.save(tmp, x)
            os.replace(tmp, cached)
        inputs.append(x)
        sources.append(src)
        paths.append(path)
    if not inputs:
        raise InputError("no scan of the manifests could be prepared for training")
    return TrainingSet(np.stack(inputs), sources, paths, skipped)


def split_sources(sources: Sequence[str], val_fraction: float, seed: int
                  ) -> tuple[list[int], list[int]]:
    """Rows for training and validation, split by *source* (validation firearms are unseen).

    Only sources with at least two casings can be validation sources; at least two sources
    (when available) go to validation when ``val_fraction > 0``, and at least two stay in
    training.
    """
    names = sorted(set(sources))
    counts = {s: 0 for s in names}
    for s in sources:
        counts[s] += 1
    eligible = [s for s in names if counts[s] >= 2]
    if len(eligible) < 2:
        raise InputError("training needs at least two sources with two or more casings each")
    rng = np.random.default_rng(seed)
    n_val = 0
    if val_fraction > 0:
        n_val = max(2, round(val_fraction * len(names)))
        n_val = min(n_val, len(eligible) - 2)
    val = set(rng.permutation(eligible)[:n_val].tolist()) if n_val > 0 else set()
    tr = [i for i, s in enumerate(sources) if s not in val]
    va = [i for i, s in enumerate(sources) if s in val]
    return tr, va
