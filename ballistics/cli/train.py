"""``ballistics train MANIFEST... --out DIR``: train the breech-face embedder.

Writes ``DIR/best.pt`` (use it with ``--model DIR/best.pt``), ``DIR/last.pt`` (for
``--resume``), ``DIR/train_log.json`` and the prepared-input cache ``DIR/cache`` (or
``--cache``). Stdout: with ``--json`` the training summary ``{out, best_path, best_epoch,
val, n_casings, n_sources, n_train_sources, n_val_sources, epochs, seconds, device, version,
warnings}``; otherwise a short text summary.
"""

from __future__ import annotations

import shlex
import sys
import time

import click

from ballistics.cli.common import (
    device_option,
    emit_json,
    handle_errors,
    json_option,
    quiet_option,
    threads_option,
)


@click.command("train")
@click.argument("manifests", nargs=-1)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output folder for checkpoints and the training log.")
@click.option("--source-column", default="firearm_id", show_default=True,
              help="Manifest column naming the source (same value = same firearm).")
@click.option("--exclude-sources", default=None,
              help="Regular expression of sources to leave out (e.g. 'W0[89]|W1[01]').")
@click.option("--processed", is_flag=True,
              help="The MANIFEST scans are already processed breech faces (a manifest "
                   "column 'processed' overrides this per row).")
@click.option("--processed-manifest", "processed_manifests", multiple=True,
              help="A further manifest of already processed scans (repeatable), e.g. the "
                   "cmcR-processed Weller files next to raw synthetic scans.")
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(1, 100000))
@click.option("--steps-per-epoch", default=None, type=click.IntRange(1, 10_000_000),
              help="Batches per epoch [default: one pass over the training casings].")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(4, 4096))
@click.option("--lr", default=2e-3, show_default=True, type=float, help="Peak learning rate.")
@click.option("--val-fraction", default=0.2, show_default=True, type=float,
              help="Fraction of sources held out (whole firearms) for validation.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1))
@click.option("--cache", "cache_dir", default=None, type=click.Path(file_okay=False),
              help="Cache folder for prepared inputs [default: OUT/cache].")
@click.option("--pooling", type=click.Choice(["gem", "phase"]), default="gem",
              show_default=True,
              help="Angle pooling of the network: generalised mean (gem) or cross-ring "
                   "phase invariants (phase, larger head).")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@device_option
@quiet_option
@threads_option
@json_option
@handle_errors
def train(manifests: tuple[str, ...], out: str, source_column: str,
          exclude_sources: str | None, processed: bool,
          processed_manifests: tuple[str, ...], epochs: int,
          steps_per_epoch: int | None, batch_size: int, lr: float, val_fraction: float,
          seed: int, cache_dir: str | None, pooling: str, resume: bool, device: str,
          quiet: bool,
          as_json: bool) -> None:
    """Train the rotation-invariant breech-face embedder on casings of known source.

    MANIFEST files list raw scans (column 'path', relative to the manifest; preprocessed with
    the default preset) and their source (--source-column). Validation uses whole firearms
    never seen in training.
    """
    from ballistics.errors import InputError
    from ballistics.models.network import NetConfig
    from ballistics.models.train import TrainParams
    from ballistics.models.train import train as run_train

    if not manifests and not processed_manifests:
        raise InputError("give at least one MANIFEST (or --processed-manifest)")
    params = TrainParams(epochs=epochs, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                         lr=lr, val_fraction=val_fraction, seed=seed)
    command = "ballistics train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    t0 = time.perf_counter()
    summary = run_train(list(manifests), out, params=params,
                        processed_manifests=list(processed_manifests),
                        source_column=source_column,
                        exclude_sources=exclude_sources, processed=True if processed else None,
                        config=NetConfig(pooling=pooling),
                        cache_dir=cache_dir, device=device, resume=resume, quiet=quiet,
                        command=command)
    best = summary.get("best") or {}
    result = {
        "out": out,
        "best_path": summary["best_path"],
        "best_epoch": best.get("epoch"),
        "val": best.get("val"),
        "n_casings": summary["n_casings"],
        "n_sources": summary["n_sources"],
        "n_train_sources": summary["n_train_sources"],
        "n_val_sources": summary["n_val_sources"],
        "epochs": len(summary["history"]),
        "seconds": time.perf_counter() - t0,
        "device": summary["device"],
    }
    warns = [f"{s['path']}: skipped: {s['reason']}" for s in summary.get("skipped", [])]
    if as_json:
        emit_json(result, warnings_=warns)
    else:
        val = best.get("val") or {}
        vtxt = (f"; validation top-1 {val['top1']:.3f}, top-10 {val['top10']:.3f}, "
                f"mAP {val['map']:.3f}" if val else "")
        click.echo(f"{summary['best_path']}: best epoch {best.get('epoch')} of "
                   f"{len(summary['history'])}{vtxt}")
