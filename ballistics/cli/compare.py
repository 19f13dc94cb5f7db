"""``ballistics compare``: Congruent Matching Cells comparison of two casing scans."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import click

from ballistics.cli.common import (
    OUTPUT_FILE,
    F,
    case_options,
    check_csv_target,
    check_report_paths,
    csv_option,
    device_option,
    emit_json,
    handle_errors,
    json_option,
    named_warnings,
    pdf_option,
    preprocess_options,
    quiet_option,
    resolve_preprocess,
    scan_read_options,
    threads_option,
    write_csv,
    write_report_files,
)

#: columns of ``compare --csv``: cmcR's names where the concept is cmcR's (its
#: ``comparison_allTogether`` table and two-direction workflow), lengths in µm
#: (docs/compare.md, "CSV" has the mapping)
CELL_CSV_COLUMNS = (
    "direction", "cellIndex", "row", "col", "valid", "theta", "x", "y", "dx_um", "dy_um",
    "fft_ccf", "pairwiseCompCor", "refMissingProp", "refMissingCount", "targMissingCount",
    "jointlyMissing", "is_cmc", "is_high_cmc",
)

_CMCR_DIRECTION = {"forward": "refToTarget", "reverse": "targetToRef"}


def preprocessing_steps(scan: Any) -> list[dict[str, Any]]:
    """``[{name, params, producer, version}]``: the provenance steps of a compared scan
    (``reference.preprocessing`` / ``target.preprocessing`` of the JSON; empty for a scan
    used as given)."""
    from ballistics.scan import thaw

    return [{"name": st.get("name"), "params": thaw(st.get("params", {})),
             "producer": st.get("producer"), "version": st.get("version")}
            for st in scan.provenance]


def cell_csv_rows(comparison: Any) -> list[dict[str, Any]]:
    """The rows of ``compare --csv``: every cell of both directions (forward first), each at
    its best-correlation angle."""
    rows = []
    for direction, name in _CMCR_DIRECTION.items():
        for c in comparison.cell_table(direction):
            dx, dy = c["dx_um"], c["dy_um"]
            rows.append({
                "direction": name, "cellIndex": "{}, {}".format(*c["cmcr_index"]),
                "row": c["index"][0], "col": c["index"][1], "valid": c["valid"],
                "theta": c["theta_deg"],
                # cmcR's x, y: its transposed matrix, opposite sign (here in µm)
                "x": None if dy is None else -dy, "y": None if dx is None else -dx,
                "dx_um": dx, "dy_um": dy, "fft_ccf": c["ccf"], "pairwiseCompCor": c["corr"],
                "refMissingProp": c["missing_fraction"],
                "refMissingCount": c["ref_missing_count"],
                "targMissingCount": c["target_missing_count"],
                "jointlyMissing": c["joint_missing_count"],
                "is_cmc": c["is_cmc"], "is_high_cmc": c["is_high_cmc"],
            })
    return rows


def reproduce_command(reference: str, target: str, *, preset: str, rotation: str | None,
                      mode: str, collection: str | None, spacing_um: float | None,
                      modality: str | None, no_verify: bool, strict: bool) -> str:
    """The ``ballistics compare`` command line that gives the same numbers (counts, pose,
    cells, score, LR) from the same files: the inputs and the calibration's collection as
    absolute paths, and every option that changes a number; case fields, reports, device and
    threads change none. Quoted for a POSIX shell
    (:func:`ballistics.provenance.compare_argv`)."""
    import shlex

    from ballistics.provenance import compare_argv

    return shlex.join(compare_argv(reference, target, preset=preset, rotation=rotation,
                                   preprocess=mode, spacing_um=spacing_um, modality=modality,
                                   verify=not no_verify, strict=strict, collection=collection))


def compare_pair(reference: str, target: str, *, preset: str, rotation: str | None,
                 collection: str | None, device: str,
                 spacing_um: float | None, modality: str | None, no_verify: bool,
                 strict: bool, case: Any, quiet: bool = False, mode: str = "auto",
                 processed: bool = False) -> tuple[list[Any], Any, Any, dict[str, Any]]:
    """Read, prepare and compare two scan files as ``compare`` and ``view`` do (a progress
    bar of the steps on a TTY unless ``quiet``).

    ``mode`` is ``--preprocess``: ``auto`` (the steps each input still needs, as measured),
    ``raw`` or ``processed``; ``processed=True`` is ``mode="processed"``.

    Returns the two prepared scans, the :class:`~ballistics.matching.breechface.Comparison`,
    the evidence (score, LR) and the JSON object of ``compare --json`` (without warnings).
    """
    from ballistics.device import configured_threads
    from ballistics.io import read_scan, same_measurement
    from ballistics.matching import compare as run_compare
    from ballistics.matching.breechface.params import preset_key
    from ballistics.matching.evidence import LR_CAVEAT_MARK, evaluate, one_measurement_caveat
    from ballistics.preprocess import chain_mismatch, prepare_detected
    from ballistics.progress import progress

    preset = preset_key(preset)
    _check_rotation(rotation, preset)
    calibration = None
    stale: list[str] = []
    if collection is not None:
        from ballistics.collection import Collection
        from ballistics.workflows.manage import stale_calibration
        from ballistics.workflows.search import collection_calibration

        calibration = collection_calibration(collection, required=True)
        stale = stale_calibration(Collection.open(collection))

    mode = "processed" if processed else mode.lower()
    scans, detections = [], []

    def _read_prepared(path: str) -> tuple[Any, Any]:
        scan = read_scan(path, spacing_um=None if spacing_um is None else (spacing_um,) * 2,
                         verify=not no_verify, strict=strict, modality=modality)
        return prepare_detected(scan, preset, mode)

    from ballistics.matching.breechface.comparison import STAGES

    # one step per stage: reading and preparing each scan, then the comparison's stages
    with progress(total=2 + len(STAGES), desc="compare", unit="step", quiet=quiet, delay=2.0,
                  bar_format="{desc}: {n}/{total}{postfix} [{elapsed}]") as bar:
        for name, path in (("reference", reference), ("target", target)):
            bar.set_postfix_str(f"reading and preparing the {name}")
            # each input's warnings named by its file (two files: which one is meant)
            prepared, detection = named_warnings(partial(_read_prepared, path))
            scans.append(prepared)
            detections.append(detection)
            bar.update(1)

        def stage(name: str) -> None:
            if name != STAGES[0]:
                bar.update(1)
            bar.set_postfix_str(name)

        result = run_compare(scans[0], scans[1], preset, rotation=rotation, device=device,
                             stage=stage)
        bar.set_postfix_str("done")
        bar.update(1)
    evidence = evaluate(result, calibration, modality=scans[0].modality)
    if stale:  # the collection's calibration is out of date: a caveat of the LR
        evidence = dataclasses.replace(evidence, warnings=(*stale, *evidence.warnings))
    mismatch = chain_mismatch(*detections)
    if mismatch is not None:  # one input filtered elsewhere, the other here: an LR caveat
        evidence = dataclasses.replace(evidence, warnings=(
            f"{mismatch}; the score and LR are {LR_CAVEAT_MARK}", *evidence.warnings))
    one = same_measurement(scans[0], scans[1])
    if one is not None:  # one casing's surface twice: the LR is no evidence of a source
        evidence = dataclasses.replace(evidence, warnings=(
            one_measurement_caveat(one), *evidence.warnings))
    _show_evidence_warnings(evidence.warnings)
    out = result.to_dict()
    out.update(evidence.to_dict())
    out["threads"] = configured_threads()  # the CPU threads the comparison ran with
    for key, path, scan, det in (("reference", reference, scans[0], detections[0].to_dict()),
                                 ("target", target, scans[1], detections[1].to_dict())):
        out[key]["path"] = str(path)
        out[key]["sha256"] = scan.sha256
        out[key]["preprocessing"] = preprocessing_steps(scan)
        out[key]["preprocessing_detected"] = det
    out["case"] = case.to_dict()
    out["command"] = reproduce_command(
        reference, target, preset=preset, rotation=rotation, mode=mode, collection=collection,
        spacing_um=spacing_um, modality=modality, no_verify=no_verify, strict=strict)
    return scans, result, evidence, out


def _check_rotation(rotation: str | None, preset: str) -> None:
    """Check ``--rotation`` against the preset (``"default"`` or ``"cmcR"``) before any
    scan is read (an impossible range failed only after both scans were read and prepared),
    naming the option."""
    from ballistics.matching import get_params
    from ballistics.matching.breechface.params import parse_rotation

    if rotation is None:
        return
    parse_rotation(rotation, get_params(preset), name="--rotation")


def _show_evidence_warnings(messages: Any) -> None:
    """Issue the LR's caveats (the calibration's source, a preset other than the one it was
    fitted with, an LR at the calibration's bounds) as :class:`ScanWarning`, so that they
    reach stderr with the scans' warnings in text and JSON mode alike (``search`` and
    ``compare-bullets`` show theirs the same way); the JSON lists them in ``warnings``."""
    import warnings

    from ballistics.errors import ScanWarning

    for message in dict.fromkeys(messages):
        warnings.warn(message, ScanWarning, stacklevel=2)


def check_viewer_path(viewer: str | None, report: str | None, pdf_path: str | None) -> None:
    """The viewer page is HTML and a file of its own: a ``.pdf`` name or the name of the
    report is a usage error."""
    from pathlib import Path

    if viewer is None:
        return
    if viewer.lower().endswith(".pdf"):
        raise click.UsageError(f"the viewer is an HTML page; give a .html name, not {viewer}")
    for other, opt in ((report, "--report"), (pdf_path, "--pdf")):
        if other is not None and Path(other) == Path(viewer):
            raise click.UsageError(f"the viewer and {opt} name the same file")


def write_viewer_file(path: str, scans: list[Any], result: Any, evidence: Any, case: Any,
                      out: dict[str, Any], *, case_file: str | None = None) -> str:
    """Write the interactive viewer page (:func:`ballistics.report.viewer.write_viewer`) and
    record it in the JSON object ``out`` (``viewer``, ``viewer_sha256``)."""
    from pathlib import Path

    from ballistics.report.viewer import write_viewer

    names = (Path(out["reference"]["path"]).name, Path(out["target"]["path"]).name)
    sha = write_viewer(scans[0], scans[1], result, path, evidence=evidence, case=case,
                       names=names,
                       case_file_name=Path(case_file).name if case_file else "case.json")
    out["viewer"] = str(path)
    out["viewer_sha256"] = sha
    return sha


def comparison_options(func: F) -> F:
    """``--preset``, ``--rotation`` and ``--preprocess``/``--processed``: how ``compare``
    and ``view`` prepare and compare a pair."""
    func = preprocess_options("The inputs are")(func)
    func = click.option("--rotation", default=None, metavar="full|MIN,MAX,STEP",
                        help="Rotation search in degrees (default: full for --preset default, "
                             "-30,30,3 for cmcR).")(func)
    return click.option("--preset", type=click.Choice(["default", "cmcR"], case_sensitive=False),
                        default="default", show_default=True,
                        help="default: full rotation; cmcR: the cmcR README settings "
                             "(-30..30 by 3).")(func)


def calibration_option(func: F) -> F:
    """``--collection``: the calibration of the score and LR."""
    return click.option(
        "--collection", "collection", type=click.Path(file_okay=False), default=None,
        help="Use this collection's own calibration for the score and LR (default: the "
             "calibration shipped with the package).")(func)


@click.command("compare")
@click.argument("reference", type=click.Path())
@click.argument("target", type=click.Path())
@comparison_options
@click.option("--report", "report", type=OUTPUT_FILE, default=None,
              help="Write the examiner's HTML report here.")
@pdf_option
@click.option("--viewer", "viewer", type=OUTPUT_FILE, default=None, metavar="FILE",
              help="Write the interactive viewer page (self-contained HTML) here.")
@case_options
@calibration_option
@csv_option("the cells of both directions (cmcR's column names, µm)")
@device_option
@scan_read_options
@threads_option
@json_option
@quiet_option
@handle_errors
def compare(reference, target, preset, rotation, preprocess_mode, processed, report, pdf_path,
            viewer, case, collection, csv_path, device, spacing_um, modality, no_verify, strict,
            as_json, quiet) -> None:
    """Compare REFERENCE with TARGET (both directions) and print the CMC counts and pose.

    Each input gets the preset's preprocessing steps it still needs: a scan with this
    toolkit's provenance is used as it is, other scans are measured (cut to the breech face?
    levelled? band-pass filtered? at the preset's spacing?) unless --preprocess raw or
    --preprocess processed (--processed) forces the decision. --report writes the examiner's
    HTML report, --pdf the same as PDF; --case, --exhibit, --examiner, --notes (or
    --case-file) head both. --viewer writes the interactive viewer page (as ``ballistics
    view``).
    """
    check_csv_target(csv_path, stdout_taken=as_json)
    mode = resolve_preprocess(preprocess_mode, processed)
    check_report_paths(report, pdf_path)
    check_viewer_path(viewer, report, pdf_path)
    scans, result, evidence, out = compare_pair(
        reference, target, preset=preset, rotation=rotation, mode=mode,
        collection=collection, device=device, spacing_um=spacing_um, modality=modality,
        no_verify=no_verify, strict=strict, case=case, quiet=quiet)
    warns = [*scans[0].warnings, *scans[1].warnings, *result.warnings, *evidence.warnings]
    if viewer:  # first: the report names the viewer page and its hash
        write_viewer_file(viewer, scans, result, evidence, case, out,
                          case_file=click.get_current_context().params.get("case_file"))
    if report or pdf_path:
        from ballistics.report.compare import compare_document

        doc = compare_document(scans[0], scans[1], result, evidence=evidence, case=case,
                               paths=(str(reference), str(target)),
                               viewer=(viewer, out["viewer_sha256"]) if viewer else None,
                               command=out["command"],
                               detected=(out["reference"]["preprocessing_detected"],
                                         out["target"]["preprocessing_detected"]))
        write_report_files(doc, out, report, pdf_path)
    if csv_path:
        write_csv(csv_path, CELL_CSV_COLUMNS, cell_csv_rows(result))
        if csv_path == "-":
            return
    if as_json:
        out["warnings"] = list(dict.fromkeys(warns))
        emit_json(out)
        return
    from ballistics.matching.evidence import calibration_label

    click.echo(f"reference: {reference}")
    click.echo(f"target:    {target}")
    click.echo(f"CMC count (reference -> target): {result.cmc_count}")
    click.echo(f"CMC count (target -> reference): {result.cmc_count_reverse}")
    click.echo(f"High CMC count:                  {result.cmc_count_high}")
    click.echo(f"combined CMC count:              {result.cmc_count_combined}")
    click.echo(f"theta: {result.theta_deg:.1f} deg   dx: {result.dx_um:.1f} um   "
               f"dy: {result.dy_um:.1f} um   ccf_max: {result.ccf_max:.3f}")
    click.echo(f"score: {evidence.score:.2f}   log10 LR: {evidence.lr_text} "
               f"({evidence.qualified_verbal}; calibration: "
               f"{calibration_label(evidence.calibration)})")
    for caveat in evidence.lr_caveats:  # the LR's own caveats, not only among stderr's lines
        click.echo(f"LR caveat: {caveat}")
    for key, label in (("report", "report"), ("report_pdf", "pdf")):
        if key in out:
            fmt = "html" if key == "report" else "pdf"
            click.echo(f"{label}: {out[key]} (sha256 {out['report_sha256'][fmt]})")
    if viewer:
        click.echo(f"viewer: {out['viewer']} (sha256 {out['viewer_sha256']})")
    if csv_path:
        click.echo(f"cells: {csv_path}")
