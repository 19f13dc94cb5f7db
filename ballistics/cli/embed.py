"""``ballistics embed FILES --out vectors.h5``: one embedding per casing, written to HDF5.

HDF5 datasets: ``embeddings`` (N x D float32, rows L2-normalised, one per input in the order
given) and ``paths`` (the inputs as given, UTF-8 strings); attributes ``model``,
``model_hash``, ``dim``, ``version``. Each input gets the ``default`` preset's preprocessing
steps it still needs, as measured (``--preprocess auto``, the default); ``--preprocess raw``
applies all of them, ``--preprocess processed`` (``--processed``) none (already processed
files, e.g. cmcR exports). When any
input cannot be embedded, nothing is written and the command exits 2 naming the file.
Stdout: with ``--json`` one object ``{out, n, dim, model, model_hash, device, seconds,
version, preprocessing_detected, warnings}`` (``preprocessing_detected``: one detection per
input, in order); otherwise a one-line summary.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
import numpy as np

from ballistics._version import __version__
from ballistics.cli.common import (
    OUTPUT_FILE,
    device_option,
    emit_json,
    handle_errors,
    json_option,
    preprocess_options,
    quiet_option,
    resolve_preprocess,
    scan_read_options,
    threads_option,
)
from ballistics.errors import InputError


def write_embeddings(path: str | os.PathLike[str], embeddings: np.ndarray, paths: list[str],
                     attrs: dict[str, object]) -> Path:
    """Write the ``embeddings``/``paths`` HDF5 file atomically (temp file + rename)."""
    import h5py

    out = Path(path)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("embeddings", data=np.asarray(embeddings, dtype=np.float32))
        f.create_dataset("paths", data=np.array(paths, dtype=object),
                         dtype=h5py.string_dtype("utf-8"))
        for k, v in attrs.items():
            f.attrs[k] = v
    os.replace(tmp, out)
    return out


@click.command("embed")
@click.argument("files", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=OUTPUT_FILE,
              help="HDF5 file to write (datasets 'embeddings' and 'paths').")
@click.option("--model", default="cnn", show_default=True,
              help="cnn (shipped weights), baseline (non-learned), or a weights file PATH.")
@preprocess_options("The inputs are")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 100000),
              help="Scans per forward pass.")
@device_option
@quiet_option
@threads_option
@json_option
@scan_read_options
@handle_errors
def embed(files: tuple[str, ...], out: str, model: str, preprocess_mode: str | None,
          processed: bool, batch_size: int,
          device: str, quiet: bool, as_json: bool, spacing_um: float | None,
          modality: str | None, no_verify: bool, strict: bool) -> None:
    """Embed the casings in FILES with a rotation-invariant model and write vectors to --out."""
    from ballistics.io import read_scan
    from ballistics.models import load_embedder
    from ballistics.progress import progress
    from ballistics.workflows.ingest import prepare_scan

    mode = resolve_preprocess(preprocess_mode, processed)
    t0 = time.perf_counter()
    emb = load_embedder(model, device=device)
    warns: list[str] = []
    detected: list[dict[str, object]] = []
    vecs = np.empty((len(files), emb.dim), dtype=np.float32)
    bar = progress(total=len(files), desc="embedding", unit="scan", quiet=quiet)
    for i in range(0, len(files), batch_size):  # read, prepare and embed batch by batch
        scans = []
        for path in files[i:i + batch_size]:
            scan = read_scan(path, spacing_um=spacing_um, verify=not no_verify, strict=strict,
                             modality=modality)
            try:
                scan, det = prepare_scan(scan, "default", mode)
            except InputError as exc:
                raise InputError(f"cannot embed: {exc.message}", path=path) from None
            for w in scan.warnings:  # named by its file once (some already start with it)
                w = w if w.startswith(f"{path}: ") else f"{path}: {w}"
                if w not in warns:
                    warns.append(w)
            detected.append(det)
            scans.append(scan)
        try:
            vecs[i:i + len(scans)] = emb.embed(scans, batch_size=batch_size)
        except InputError as exc:
            bad = exc.path or files[i]
            raise InputError(f"cannot embed: {exc.message}", path=bad) from None
        bar.update(len(scans))
    bar.close()
    dev = str(getattr(emb, "device", "cpu"))
    write_embeddings(out, vecs, list(files), {
        "model": emb.name, "model_hash": emb.model_hash, "dim": emb.dim,
        "version": __version__})
    seconds = time.perf_counter() - t0
    result = {"out": str(out), "n": len(files), "dim": emb.dim, "model": emb.name,
              "model_hash": emb.model_hash, "device": dev, "seconds": seconds,
              "preprocessing_detected": detected}
    if as_json:
        emit_json(result, warnings_=warns)
    else:
        click.echo(f"{out}: {len(files)} embeddings of dimension {emb.dim} "
                   f"({emb.name}, {emb.model_hash[:12]}) in {seconds:.1f} s")
