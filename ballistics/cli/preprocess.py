"""``ballistics preprocess IN OUT.x3p [--preset default|cmcR] [--mask PNG] [--json]``.

Segments the breech face, levels, resamples, crops and band-pass filters one scan (X3P or
2D image) and writes the processed scan with its provenance (every step, parameters, fitted
values, the package version) inside the X3P. With ``--json`` one object goes to stdout:
``primer {center_um [y, x], radius_um}``, ``firing_pin {...}`` or ``null``,
``quality {fit, valid_area_mm2, missing_fraction, noise_um, reason}``,
``steps [{name, params, fitted}]``, ``input``, ``output``, ``version``, ``warnings``.
Centres are µm from the input scan's first point (row 0, column 0).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import numpy as np

from ballistics.cli.common import (
    OUTPUT_FILE,
    emit_json,
    handle_errors,
    json_option,
    quiet_option,
    scan_read_options,
    threads_option,
)
from ballistics.errors import ParameterError


@click.command("preprocess")
@click.argument("input_path", metavar="IN")
@click.argument("output_path", metavar="OUT.x3p", type=OUTPUT_FILE)
@click.option("--preset", default="default", show_default=True,
              type=click.Choice(["default", "cmcR"]),
              help="Parameter set: the project's chain or cmcR's README chain.")
@click.option("--mask", "mask_path", default=None, metavar="PNG",
              help="Examiner mask (non-zero = breech face), same size as the scan; it "
                   "replaces the automatic region.")
@click.option("--target-um", type=float, default=None,
              help="Output spacing in µm (default: the preset's, 6.25; a coarser scan "
                   "keeps its own: resampling never goes finer than the scan).")
@click.option("--figure", "figure_path", default=None, metavar="PNG", type=OUTPUT_FILE,
              help="Also write a PNG of the segmentation: the scan, the breech-face region, "
                   "the primer and firing-pin circles, with a legend and colour bar.")
@threads_option
@json_option
@quiet_option
@scan_read_options
@handle_errors
def preprocess(input_path: str, output_path: str, preset: str, mask_path: str | None,
               target_um: float | None, figure_path: str | None, as_json: bool, quiet: bool,
               spacing_um: float | None, modality: str | None, no_verify: bool,
               strict: bool) -> None:
    """Preprocess scan IN for comparison and write OUT.x3p (with its provenance).

    Finds the primer and the firing-pin impression, keeps the breech face between them,
    removes the form, band-pass filters (ISO 16610-61) and resamples. Fallbacks (no primer
    edge, no firing pin, an already cropped scan) are reported as warnings.
    """
    from ballistics.io import read_mask_png, read_scan, write_x3p
    from ballistics.preprocess import get_preset
    from ballistics.preprocess import preprocess as run

    if not output_path.lower().endswith(".x3p"):
        raise ParameterError(f"the output must be an .x3p file, got {output_path!r}")
    params = get_preset(preset)
    if target_um is not None:
        params = params.replace(resample=dataclasses.replace(params.resample,
                                                             spacing_um=target_um))
    from ballistics.progress import progress

    # one step per stage: reading, preprocessing, writing (and the figure)
    with progress(total=4 if figure_path else 3, desc="preprocess", unit="step", quiet=quiet,
                  delay=2.0, bar_format="{desc}: {n}/{total}{postfix} [{elapsed}]") as bar:
        bar.set_postfix_str("reading")
        with np.errstate(all="ignore"):
            scan = read_scan(input_path, spacing_um=spacing_um, verify=not no_verify,
                             strict=strict, modality=modality)
            mask = read_mask_png(mask_path, scan.shape) if mask_path else None
            bar.update(1)
            bar.set_postfix_str("segmenting, levelling, filtering, resampling")
            res = run(scan, params, mask=mask)
        bar.update(1)
        bar.set_postfix_str("writing")
        out = write_x3p(res.scan, output_path)
        bar.update(1)
        if figure_path:
            from ballistics.report.segmentation import save_segmentation_figure

            bar.set_postfix_str("drawing the figure")
            # one panel 9 in wide at 120 dpi: about 1100 px with its colour bar and legend
            save_segmentation_figure([(Path(input_path).name, scan, res.segmentation)],
                                     figure_path, ncols=1, panel_in=9.0, dpi=120)
            bar.update(1)
        bar.set_postfix_str("done")
    if as_json:
        d = res.to_dict()
        d["input"] = {"path": str(input_path), "sha256": scan.sha256,
                      "shape": list(scan.shape), "spacing_um": list(scan.spacing_um),
                      "modality": scan.modality}
        d["output"] = {"path": str(out), "shape": list(res.scan.shape),
                       "spacing_um": list(res.scan.spacing_um)}
        d["warnings"] = list(dict.fromkeys([*scan.warnings, *res.warnings]))
        emit_json(d)
    else:
        q = res.quality
        click.echo(f"{out}: {res.scan.shape[0]} x {res.scan.shape[1]} points at "
                   f"{res.scan.spacing_um[1]:g} µm; breech face {q.valid_area_mm2:.2f} mm², "
                   f"{'fit' if q.fit else 'UNFIT: ' + str(q.reason)}")
