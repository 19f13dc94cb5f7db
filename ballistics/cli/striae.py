"""``ballistics compare-striae`` and ``ballistics compare-bullets``: striation comparisons.

``compare-striae A B --kind aperture-shear|lea|mark [--region Y0,X0,Y1,X1] [--mask PNG]
[--json] [--report OUT.html] [--pdf OUT.pdf]`` prints ``ccf_max, lag_um, cms, direction_deg
[a, b], overlap_um`` and more scores, with ``version`` and ``warnings``.

``compare-bullets DIR_A DIR_B [--json] [--report OUT.html] [--pdf OUT.pdf]`` (one X3P per
land, lands in sorted file-name order) prints ``lands_a, lands_b, ccf, cms, phase_scores,
best_phase, sam,
margin, phase_margin, phase_z, score``; the lands are read and extracted in worker processes
when more than one thread is available.

Both take the case options (``--case``, ``--exhibit``, ``--examiner``, ``--notes``,
``--case-file``) and add ``case``, ``inputs`` (files and SHA-256) and, with a report,
``report``/``report_pdf``/``report_sha256`` to the JSON.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click

from ballistics.cli.common import (
    OUTPUT_FILE,
    case_options,
    check_report_paths,
    emit_json,
    handle_errors,
    json_option,
    pdf_option,
    quiet_option,
    scan_read_options,
    threads_option,
    write_report_files,
)
from ballistics.errors import InputError, NoSignatureError, ParameterError, ScanWarning


def _reemit(messages: list[str]) -> None:
    """Warnings collected while computing go to stderr once (through ``handle_errors``)."""
    for m in messages:
        warnings.warn(m, ScanWarning, stacklevel=2)


def _parse_region(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ParameterError(f"--region must be Y0,X0,Y1,X1 in µm, got {text!r}") from None
    if len(vals) != 4:
        raise ParameterError(f"--region must be four numbers Y0,X0,Y1,X1 in µm, got {text!r}")
    y0, x0, y1, x1 = vals
    return (y0, x0, y1, x1)


def _signature(path: str, kind: str, region: Any, mask_path: str | None, spacing_um: Any,
               verify: bool, strict: bool = False, modality: str | None = None) -> Any:
    from ballistics.io import read_mask_png, read_scan
    from ballistics.matching.striae.marks import mark_signature

    scan = read_scan(path, spacing_um=spacing_um, verify=verify, strict=strict,
                     modality=modality)
    mask = read_mask_png(mask_path, scan.shape) if mask_path else None
    try:
        return mark_signature(scan, kind, region=region, mask=mask), scan
    except InputError as exc:
        if exc.path is None:
            raise type(exc)(exc.message, path=path) from None
        raise


@click.command("compare-striae")
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
@click.option("--kind", type=click.Choice(["aperture-shear", "lea", "mark"]), default="mark",
              show_default=True, help="Kind of striated mark.")
@click.option("--region", default=None, help="Striated region Y0,X0,Y1,X1 in µm from the "
              "first point (applied to both scans).")
@click.option("--mask", "mask_path", default=None, type=click.Path(dir_okay=False),
              help="Mask PNG of the striated region (True/non-zero = inside), both scans.")
@click.option("--report", "report_path", default=None, type=OUTPUT_FILE,
              help="Write an HTML report here.")
@pdf_option
@case_options
@threads_option
@json_option
@scan_read_options
@handle_errors
def compare_striae(a: str, b: str, kind: str, region: str | None, mask_path: str | None,
                   report_path: str | None, pdf_path: str | None, case: Any, as_json: bool,
                   spacing_um: float | None, modality: str | None, no_verify: bool,
                   strict: bool) -> None:
    """Compare the striation signatures of two scans (casing marks or bullet lands)."""
    from ballistics.matching.striae import StriaeCompareParams, compare_signatures
    from ballistics.params import params_dict

    check_report_paths(report_path, pdf_path)
    reg = _parse_region(region)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScanWarning)
        sa, scan_a = _signature(a, kind, reg, mask_path, spacing_um, not no_verify, strict,
                                modality)
        sb, scan_b = _signature(b, kind, reg, mask_path, spacing_um, not no_verify, strict,
                                modality)
        params = StriaeCompareParams(try_reversed=kind != "lea")
        c = compare_signatures(sa, sb, params)
    warns = [str(w.message) for w in caught if issubclass(w.category, ScanWarning)]
    out = c.to_dict()
    out.update({
        "a": a, "b": b, "kind": kind,
        "direction_deg": [sa.direction_deg, sb.direction_deg],
        "roughness_um": [sa.roughness_um, sb.roughness_um],
        "proposed_region_um": [sa.meta.get("proposed_region_um"),
                               sb.meta.get("proposed_region_um")],
        "grooves_um": [sa.meta.get("grooves_um"), sb.meta.get("grooves_um")]
        if kind == "lea" else None,
        "warnings": list(dict.fromkeys([*sa.warnings, *sb.warnings, *c.warnings, *warns])),
        "inputs": [_input(a, scan_a), _input(b, scan_b)],
        "case": case.to_dict(),
    })
    _reemit(out["warnings"])
    if report_path or pdf_path:
        from ballistics.report.striae import striae_document

        parameters: dict[str, Any] = {
            "kind": kind, "region (µm, y0, x0, y1, x1)": "automatic" if reg is None else reg,
            "mask": mask_path or "none"}
        for name, proposed in zip((Path(a).name, Path(b).name), out["proposed_region_um"],
                                  strict=True):
            if proposed is not None:  # the band the command chose itself
                parameters[f"band used on {name} (µm, y0, x0, y1, x1; proposed)"] = proposed
        if mask_path:
            parameters["mask SHA-256"] = _sha256(mask_path)
        parameters.update({f"compare {k}": v for k, v in params_dict(params).items()})
        doc = striae_document(sa, sb, c, names=(Path(a).name, Path(b).name),
                              scans=(scan_a, scan_b), paths=(a, b), parameters=parameters,
                              case=case)
        write_report_files(doc, out, report_path, pdf_path)
    if as_json:
        emit_json(out)
    else:
        click.echo(f"{a} vs {b} ({kind}): CCF {c.ccf_max:.3f} at lag {c.lag_um:.1f} µm, "
                   f"CMS {c.cms}, overlap {c.overlap_um:.0f} µm, directions "
                   f"{sa.direction_deg:.2f}° / {sb.direction_deg:.2f}°")
        for name, proposed in zip((a, b), out["proposed_region_um"], strict=True):
            if proposed is not None:
                box = ", ".join(f"{v:.0f}" for v in proposed)
                click.echo(f"band used on {name} (proposed): {box} µm (y0, x0, y1, x1)")


def _sha256(path: str) -> str:
    from ballistics.io import sha256_file

    return sha256_file(path)


def _input(path: str, scan: Any) -> dict[str, Any]:
    """``{path, sha256, shape, spacing_um, modality}`` of one input file as read."""
    return {"path": str(path), "sha256": scan.sha256, "shape": list(scan.shape),
            "spacing_um": list(scan.spacing_um), "modality": scan.modality}


def _land_files(folder: str) -> list[Path]:
    d = Path(folder)
    if not d.is_dir():
        raise InputError("not a folder of land scans (one X3P per land)", path=folder)
    files = sorted(p for p in d.iterdir() if p.suffix.lower() == ".x3p" and p.is_file())
    if not files:
        raise InputError("no .x3p land scans in the folder", path=folder)
    return files


def _land_task(path: str, spacing_um: float | None, verify: bool, strict: bool,
               modality: str | None = None
               ) -> tuple[Any, Any, list[str], tuple[type, str, str | None] | None]:
    """Read one land scan and extract its signature.

    Returns ``(signature or None, scan or None, warnings, error)``; ``error`` is
    ``(class, message, path)`` of a :class:`BallisticsError` that must stop the command
    (a file that cannot be read), rebuilt by the caller (worker processes hand it back
    this way)."""
    from ballistics.errors import BallisticsError
    from ballistics.io import read_scan
    from ballistics.matching.striae.lea import lea_signature

    warns: list[str] = []
    sig = scan = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScanWarning)
        try:
            scan = read_scan(path, spacing_um=spacing_um, verify=verify, strict=strict,
                             modality=modality)
            sig = lea_signature(scan)
        except NoSignatureError as exc:
            warns.append(f"{path}: {exc.message}; the land is left out")
        except BallisticsError as exc:
            return None, None, [], (type(exc), exc.message, exc.path)
    warns += [str(w.message) for w in caught if issubclass(w.category, ScanWarning)]
    if sig is not None:
        warns += [f"{Path(path).name}: {w}" for w in sig.warnings]
    return sig, scan, warns, None


def _land_signatures(files: list[Path], spacing_um: float | None, verify: bool,
                     strict: bool, modality: str | None = None, quiet: bool = False
                     ) -> tuple[list[Any], list[Any], list[str]]:
    """Signatures and scans of every land file, in order, with the warnings met.

    The lands are independent, so with more than one thread
    (:func:`ballistics.device.configured_threads`, ``--threads``) they are read and
    extracted in forked worker processes, one thread each, as long as torch is not loaded
    (a process forked after torch started its threads can hang); a bar on stderr shows the
    lands done once it takes longer than a second (not with ``quiet``)."""
    import multiprocessing as mp
    import sys
    from concurrent.futures import ProcessPoolExecutor

    from ballistics.device import configured_threads, worker_initializer
    from ballistics.progress import progress

    args = [(str(f), spacing_um, verify, strict, modality) for f in files]
    workers = min(configured_threads(), len(files))
    bar = progress(total=len(files), desc="lands", unit="land", delay=1.0, quiet=quiet)
    try:
        if workers > 1 and "fork" in mp.get_all_start_methods() and "torch" not in sys.modules:
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"),
                                     initializer=worker_initializer,
                                     initargs=(1,)) as pool:
                futures = [pool.submit(_land_task, *a) for a in args]
                # the land comparisons need scipy.signal (about a second to import): load it
                # while the workers read and extract
                import scipy.signal  # noqa: F401
                results = []
                for fut in futures:
                    results.append(fut.result())
                    bar.update()
        else:
            results = []
            for a in args:
                results.append(_land_task(*a))
                bar.update()
    finally:
        bar.close()
    sigs, scans, warns = [], [], []
    for sig, scan, w, err in results:
        if err is not None:
            cls, message, path = err
            raise cls(message, path=path)
        sigs.append(sig)
        scans.append(scan)
        warns += w
    return sigs, scans, warns


@click.command("compare-bullets")
@click.argument("dir_a", type=click.Path(file_okay=False))
@click.argument("dir_b", type=click.Path(file_okay=False))
@click.option("--report", "report_path", default=None, type=OUTPUT_FILE,
              help="Write an HTML report here.")
@pdf_option
@case_options
@threads_option
@json_option
@quiet_option
@scan_read_options
@handle_errors
def compare_bullets_cmd(dir_a: str, dir_b: str, report_path: str | None, pdf_path: str | None,
                        case: Any, as_json: bool, quiet: bool, spacing_um: float | None,
                        modality: str | None, no_verify: bool,
                        strict: bool) -> None:
    """Compare two bullets land by land (one X3P per land, sorted by file name) and find the
    best land phase (SAM)."""
    from ballistics.matching.striae import compare_bullets

    check_report_paths(report_path, pdf_path)
    files_a, files_b = _land_files(dir_a), _land_files(dir_b)
    sigs, read, warns = _land_signatures([*files_a, *files_b], spacing_um, not no_verify,
                                         strict, modality, quiet)
    sigs_a, sigs_b = sigs[: len(files_a)], sigs[len(files_a):]
    scans = [read[: len(files_a)], read[len(files_a):]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScanWarning)
        r = compare_bullets(sigs_a, sigs_b)
    warns += [str(w.message) for w in caught if issubclass(w.category, ScanWarning)]
    out = r.to_dict()
    out.update({
        "lands_a": [f.name for f in files_a], "lands_b": [f.name for f in files_b],
        "warnings": list(dict.fromkeys([*r.warnings, *warns])),
        "inputs": {"a": [_input(str(f), s) for f, s in zip(files_a, scans[0], strict=True)],
                   "b": [_input(str(f), s) for f, s in zip(files_b, scans[1], strict=True)]},
        "case": case.to_dict(),
    })
    _reemit(out["warnings"])
    if report_path or pdf_path:
        from ballistics.matching.striae import LeaParams, StriaeCompareParams
        from ballistics.params import params_dict
        from ballistics.report.striae import bullets_document

        parameters: dict[str, Any] = {"bullet A": dir_a, "bullet B": dir_b}
        parameters.update({f"land signature {k}": v
                           for k, v in params_dict(LeaParams()).items()})
        parameters.update({f"compare {k}": v
                           for k, v in params_dict(StriaeCompareParams()).items()})
        doc = bullets_document(r, out["lands_a"], out["lands_b"], scans=(scans[0], scans[1]),
                               paths=([str(f) for f in files_a], [str(f) for f in files_b]),
                               signatures=(sigs_a, sigs_b), parameters=parameters,
                               case=case)
        write_report_files(doc, out, report_path, pdf_path)
    if as_json:
        emit_json(out)
    else:
        click.echo(f"best phase {r.best_phase} (land i of A with land i+{r.best_phase} of B): "
                   f"SAM {r.sam:.3f}, margin {r.margin:.3f}, phase margin "
                   f"{r.phase_margin:.3f}, phase z {r.phase_z:.1f}, score {r.score:.3f}")
