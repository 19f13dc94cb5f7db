"""``ballistics calibrate``: fit a collection's score model and likelihood-ratio calibration."""

from __future__ import annotations

import click

from ballistics.cli.common import (
    device_option,
    echo_err,
    emit_json,
    handle_errors,
    json_option,
    quiet_option,
    threads_option,
)

#: ballistics.workflows.calibrate.DEFAULT_PAIRS (not imported: the CLI loads light)
DEFAULT_PAIRS = 500

@click.command("calibrate")
@click.option("--collection", "collection", required=True, type=click.Path(file_okay=False),
              help="Collection directory.")
@click.option("--source-column", default="firearm_id", show_default=True,
              help="Label column naming each casing's source (firearm, slide).")
@click.option("--pairs", type=click.IntRange(0, None), default=DEFAULT_PAIRS, show_default=True,
              help="Total pair budget: same-source pairs take up to half, spread evenly over "
                   "the sources, different-source pairs the rest, spread over the pairs of "
                   "sources (0 = every pair).")
@click.option("--max-same", type=click.IntRange(0, None), default=None,
              help="Same-source pairs (default: up to half of --pairs).")
@click.option("--max-different", type=click.IntRange(0, None), default=None,
              help="Different-source pairs (default: the rest of --pairs).")
@click.option("--method", "lr_method", type=click.Choice(["pav", "logistic"]), default="pav",
              show_default=True, help="Score to log10 LR calibration.")
@click.option("--folds", type=int, default=None,
              help="Cross-validation folds over sources (default: leave one source out up "
                   "to 20 sources, else 10).")
@click.option("--preset", default=None, help="Comparison preset (default: the collection's).")
@click.option("--features", default="default", show_default=True,
              help="Score model features: 'default' (those of the shipped calibrations, "
                   "ncc_at_pose and theta_sd_deg), 'all' (every comparison feature) or "
                   "comma-separated names.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the pair sampling and the cross-validation folds.")
@click.option("--workers", type=click.IntRange(0, 1024), default=0, show_default=True,
              help="CPU processes comparing the pairs, sharing --threads (0 = one per thread).")
@device_option
@threads_option
@json_option
@quiet_option
@handle_errors
def calibrate(collection, source_column, pairs, max_same, max_different, lr_method, folds, preset,
              features, seed, workers, device, as_json, quiet) -> None:
    """Fit, cross-validate (leaving whole sources out) and store the calibration."""
    from ballistics.workflows.calibrate import calibrate_collection

    summary = calibrate_collection(
        collection, source_column=source_column, pairs=pairs, max_same=max_same,
        max_different=max_different, lr_method=lr_method, n_folds=folds, preset=preset,
        features=features, device=device, workers=workers, seed=seed, quiet=quiet,
    )
    if as_json:
        emit_json(summary)
        return
    m = summary["calibration"]["metrics"]
    smp = summary["sampling"]
    click.echo(
        f"pairs sampled (seed {smp['seed']}): {smp['same_source']['chosen']} of "
        f"{smp['same_source']['available']} same-source, {smp['different_source']['chosen']} "
        f"of {smp['different_source']['available']} different-source; "
        f"{smp['sources_in_pairs']} of {smp['sources']} sources in them"
    )
    click.echo(
        f"{collection}: calibration fitted on {m.get('n_same_source')} same-source and "
        f"{m.get('n_different_source')} different-source pairs from {m.get('n_sources')} "
        f"sources ({summary['calibration']['score_model']}); cross-validated Cllr "
        f"{m.get('cllr', float('nan')):.3f}, Cllr-min "
        f"{m.get('cllr_min', float('nan')):.3f}, AUC {m.get('auc', float('nan')):.3f}"
    )
    mis = m.get("misleading") or {}
    if mis:
        click.echo(f"misleading evidence: same-source LR<1 {mis['ss_below_1']:.3f}, "
                   f"different-source LR>1 {mis['ds_above_1']:.3f}")
    for w in summary.get("warnings") or ():
        echo_err(f"warning: {w}")
