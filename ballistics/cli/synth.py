"""``ballistics synth OUTDIR --firearms N --casings M``: a synthetic study with ground truth.

Writes ``.x3p`` topographies and/or ``.png`` ring-light images, ground-truth breech-face
masks (``masks/*_mask.png``) and ``manifest.csv`` (see ``docs/synthetic.md``). With
``--json`` one object goes to stdout: ``outdir, manifest, n_firearms, n_casings,
n_files, modality, difficulty, spacing_um, seed, shape [rows, cols], seconds, version``.
"""

from __future__ import annotations

import time

import click

from ballistics.cli.common import (
    emit_json,
    handle_errors,
    json_option,
    quiet_option,
    threads_option,
)


@click.command("synth")
@click.argument("outdir", type=click.Path(file_okay=False, writable=True))
@click.option("--firearms", "n_firearms", type=click.IntRange(1, 100000), required=True,
              help="Number of firearms.")
@click.option("--casings", "n_casings", type=click.IntRange(1, 100000), required=True,
              help="Casings fired in each firearm.")
@click.option("--modality", type=click.Choice(["topography", "image", "both"]),
              default="topography", show_default=True,
              help="X3P topographies, PNG ring-light images, or both.")
@click.option("--spacing-um", type=float, default=3.125, show_default=True,
              help="Point spacing in µm.")
@click.option("--difficulty", type=click.Choice(["easy", "realistic", "hard"]),
              default="realistic", show_default=True,
              help="Per-shot variation: transfer, ammunition, drop-outs, noise.")
@click.option("--seed", type=click.IntRange(0, None), default=0, show_default=True,
              help="Root seed; the same arguments give byte-identical files.")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Worker threads (default: --threads for large jobs).")
@quiet_option
@threads_option
@json_option
@handle_errors
def synth(outdir: str, n_firearms: int, n_casings: int, modality: str, spacing_um: float,
          difficulty: str, seed: int, workers: int | None, quiet: bool, as_json: bool) -> None:
    """Generate synthetic fired cartridge cases with ground truth into OUTDIR.

    Each firearm has class marks (shared with its class), an individual texture and
    possibly aperture-shear striations; each casing is one firing in a random pose
    (rotation over 360°, small shift) recorded in manifest.csv.
    """
    from ballistics.datasets.manifest import read_manifest
    from ballistics.datasets.synthetic import generate, params_for

    t0 = time.perf_counter()
    manifest = generate(outdir, n_firearms, n_casings, modality=modality,
                        spacing_um=spacing_um, difficulty=difficulty, seed=seed,
                        quiet=quiet, workers=workers)
    seconds = round(time.perf_counter() - t0, 3)
    n_files = len(read_manifest(manifest))
    shape = list(params_for(difficulty, spacing_um=spacing_um).shape)
    if as_json:
        emit_json({
            "outdir": str(manifest.parent), "manifest": str(manifest),
            "n_firearms": n_firearms, "n_casings": n_firearms * n_casings,
            "casings_per_firearm": n_casings, "n_files": n_files, "modality": modality,
            "difficulty": difficulty, "spacing_um": spacing_um, "seed": seed,
            "shape": shape, "seconds": seconds,
        })
    else:
        click.echo(f"wrote {n_firearms * n_casings} casings ({n_files} scan files, "
                   f"{shape[0]} x {shape[1]} points at {spacing_um:g} µm) in {seconds:.1f} s "
                   f"to {manifest.parent}; manifest {manifest}")
