"""``ballistics view``: the interactive viewer page of a comparison of two casing scans."""

from __future__ import annotations

import click

from ballistics.cli.common import (
    OUTPUT_FILE,
    case_options,
    device_option,
    emit_json,
    handle_errors,
    json_option,
    quiet_option,
    resolve_preprocess,
    scan_read_options,
    threads_option,
)
from ballistics.cli.compare import (
    calibration_option,
    check_viewer_path,
    compare_pair,
    comparison_options,
    write_viewer_file,
)


@click.command("view")
@click.argument("reference", type=click.Path())
@click.argument("target", type=click.Path())
@click.option("--out", "out_path", type=OUTPUT_FILE, required=True, metavar="FILE",
              help="Write the viewer page (one self-contained HTML file) here.")
@comparison_options
@case_options
@calibration_option
@device_option
@scan_read_options
@threads_option
@json_option
@quiet_option
@handle_errors
def view(reference, target, out_path, preset, rotation, preprocess_mode, processed, case,
         collection, device, spacing_um, modality, no_verify, strict, as_json, quiet) -> None:
    """Compare REFERENCE with TARGET and write the interactive viewer page to --out.

    The page needs no server and no network: open it in any browser. It shows both
    surfaces at the found pose side by side and overlaid (opacity slider), the cells
    (click one for its numbers), synchronised zoom and pan, height profiles along a line,
    and the case fields with notes, which "Save case file" downloads as a --case-file
    JSON. The comparison is that of ``ballistics compare`` with the same options.
    """
    check_viewer_path(out_path, None, None)
    scans, result, evidence, out = compare_pair(
        reference, target, preset=preset, rotation=rotation,
        mode=resolve_preprocess(preprocess_mode, processed),
        collection=collection, device=device, spacing_um=spacing_um, modality=modality,
        no_verify=no_verify, strict=strict, case=case, quiet=quiet)
    write_viewer_file(out_path, scans, result, evidence, case, out,
                      case_file=click.get_current_context().params.get("case_file"))
    if as_json:
        warns = [*scans[0].warnings, *scans[1].warnings, *result.warnings,
                 *evidence.warnings]
        out["warnings"] = list(dict.fromkeys(warns))
        emit_json(out)
        return
    click.echo(f"CMC count (reference -> target): {result.cmc_count}   "
               f"theta: {result.theta_deg:.1f} deg   log10 LR: {evidence.lr_text} "
               f"({evidence.qualified_verbal})")
    for caveat in evidence.lr_caveats:  # the LR's own caveats, not only among stderr's lines
        click.echo(f"LR caveat: {caveat}")
    click.echo(f"viewer: {out['viewer']} (sha256 {out['viewer_sha256']})")
