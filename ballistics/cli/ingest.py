"""``ballistics ingest``: add scans to a reference collection."""

from __future__ import annotations

import shlex
import sys
from typing import NoReturn

import click

from ballistics.cli.common import (
    device_option,
    echo_err,
    emit_json,
    handle_errors,
    json_option,
    log_to_stderr,
    preprocess_options,
    quiet_option,
    resolve_preprocess,
    scan_read_options,
    threads_option,
)


@click.command("ingest")
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("--collection", "collection", required=True, type=click.Path(file_okay=False),
              help="Collection directory (created when missing).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV with a 'path' column (path or file name) and label columns.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes reading and preprocessing in parallel (they share --threads).")
@preprocess_options("The inputs are")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted ingest (its inputs when none are given).")
@click.option("--model", default=None,
              help="Embedder: cnn, baseline or a weights file (default: the collection's, "
                   "else cnn).")
@click.option("--preset", default=None,
              help="Preprocessing preset: default or cmcR (default: the collection's, else "
                   "default; another than the collection's is refused).")
@click.option("--batch-size", type=int, default=32, show_default=True,
              help="Embedding batch size.")
@click.option("--commit-every", type=int, default=64, show_default=True,
              help="Casings per committed shard (work lost on a crash is at most this).")
@click.option("--update-labels", is_flag=True,
              help="A file already in the collection whose --labels differ from its stored "
                   "labels gets the CSV's values (default: keep them and warn).")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run on this dask.distributed cluster (see docs/cluster.md) instead of "
                   "local processes; needs the 'dask' extra.")
@device_option
@scan_read_options
@threads_option
@json_option
@quiet_option
@handle_errors
def ingest(inputs, collection, labels, workers, preprocess_mode, processed, resume, model,
           preset, batch_size, commit_every, update_labels, scheduler, device, spacing_um,
           modality, no_verify, strict, as_json, quiet) -> None:
    """Ingest SCANS_OR_DIRS into the collection: preprocess, embed, commit, index.

    Files already in the collection (same SHA-256) are skipped (with a warning when the
    labels CSV gives them other labels; --update-labels applies them); mask images of the
    scans in a folder (STEM_mask.png, STEM_shear.png, as `ballistics synth` writes them)
    are not scans and are skipped. A file that cannot be read or is unfit is reported and
    the others go on. Exit code 2 when any file failed.

    Each file gets the preset's preprocessing steps it still needs, as measured (or all of
    them with --preprocess raw, none with --preprocess processed / --processed); the
    decision is stored with the casing (its metadata's preprocessing_detected) and the
    mode in the collection's manifest.
    """
    from ballistics.errors import InputError
    from ballistics.workflows.ingest import IngestOptions, discover_inputs
    from ballistics.workflows.ingest import ingest as run_ingest

    if inputs and not resume:
        missing: list[str] = []
        if not discover_inputs(inputs, missing) and not missing:
            raise InputError("no scan files found (" + ", ".join(inputs) + "); give X3P or "
                             "image files, or folders that hold them")

    mode = resolve_preprocess(preprocess_mode, processed)
    opts = IngestOptions(
        preprocess=mode, preset=preset, spacing_um=spacing_um,
        modality=modality,
        verify=not no_verify, strict=strict, model=model, device=device, workers=workers,
        batch_size=batch_size, commit_every=commit_every, update_labels=update_labels,
    )
    try:
        if scheduler:
            from ballistics.workflows.distributed import ingest as run_cluster

            with log_to_stderr("ballistics.workflows"):  # the dashboard link, staging notes
                summary = run_cluster(list(inputs), collection, scheduler=scheduler,
                                      labels=labels, options=opts, resume=resume, quiet=quiet)
        else:
            summary = run_ingest(list(inputs), collection, labels=labels, options=opts,
                                 resume=resume, quiet=quiet)
    except KeyboardInterrupt:
        _interrupted(collection, scheduler)
    out = summary.to_dict()
    if as_json:
        emit_json(out)
    else:
        extra = (f", skipped {summary.skipped_companions} mask file(s) of the scans"
                 if summary.skipped_companions else "")
        extra += (f", updated the labels of {summary.relabelled} casing(s)"
                  if summary.relabelled else "")
        click.echo(
            f"{summary.collection}: ingested {summary.ingested}, skipped "
            f"{summary.skipped_duplicates} duplicate(s){extra}, failed {len(summary.failed)}; "
            f"the collection holds {summary.count} casings ({summary.rate_per_s:.2f} casings/s)"
        )
        for w in summary.warnings:
            echo_err(f"warning: {w}")
        for f in summary.failed:
            echo_err(f"failed: {f['path']}: {f['reason']}")
    if summary.failed:
        sys.exit(2)


def _interrupted(collection: str, scheduler: str | None) -> NoReturn:
    """Ctrl-C: one line saying what is kept and, when the job was recorded, the command
    that finishes it; exit 130 (as for every interrupted command)."""
    from pathlib import Path

    from ballistics.workflows.ingest import JOB_NAME

    msg = "error: interrupted"
    if (Path(collection) / JOB_NAME).is_file():
        cmd = f"ballistics ingest --collection {shlex.quote(collection)} --resume"
        if scheduler:
            cmd += f" --scheduler {scheduler}"
        msg += (f"; the casings committed so far are kept: `{cmd}` finishes the job "
                "(the committed casings are skipped)")
    echo_err(msg)
    sys.exit(130)
