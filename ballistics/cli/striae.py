"""``ballistics compare-striae`` and ``ballistics compare-bullets``: striation comparisons.

``compare-striae A B --kind aperture-shear|lea|mark [--region Y0,X0,Y1,X1] [--mask PNG]
[--json] [--report OUT.html] [--pdf OUT.pdf]`` prints ``ccf_max, lag_um, cms, direction_deg
[a, b], overlap_um`` and more scores, with ``version`` and ``warnings``.

``compare-bullets DIR_A DIR_B [--json] [--report OUT.html] [--pdf OUT.pdf]`` (one X3P per
land, lands in sorted file-name order) prints ``lands_a, lands_b, ccf, cms, phase_scores,
best_phase, sam, margin, phase_margin, phase_z, score_sam_margin`` and the learned evidence
(:func:`ballistics.matching.bullet_evidence.evaluate_bullets`): ``score``, ``log10_lr``,
``lr_verbal``, ``calibration``, ``land_scores``, ``land_best_phase``, ``bullet_features``,
``gaps_a``, ``gaps_b`` (rows / columns without a land: a land with no signature, or one a
bullet lacks); the lands are read and extracted in worker processes
when more than one thread is available.

``compare-bullets DIR1 DIR2 DIR3 ...`` (more than two folders) compares every pair of bullets,
each distinct land file (by SHA-256) read once: ``--json`` prints one object per pair (JSON
Lines: ``a``, ``b``, ``score``, ``log10_lr``, ``lr_verbal``, ``best_phase`` ...), ``--csv
FILE`` a table (:data:`BULLET_CSV_COLUMNS`), otherwise a matrix of scores and LRs.

Both take the case options (``--case``, ``--exhibit``, ``--examiner``, ``--notes``,
``--case-file``) and add ``case``, ``inputs`` (files and SHA-256) and, with a report,
``report``/``report_pdf``/``report_sha256`` to the JSON.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path
from typing import Any

import click

from ballistics.cli.common import (
    OUTPUT_FILE,
    case_options,
    check_csv_target,
    check_report_paths,
    emit_json,
    handle_errors,
    json_option,
    named_warnings,
    pdf_option,
    quiet_option,
    scan_read_options,
    threads_option,
    write_csv,
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

    # the reader's warnings named by the file (two inputs: which one is meant)
    scan = named_warnings(partial(read_scan, path, spacing_um=spacing_um, verify=verify,
                                  strict=strict, modality=modality))
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
@quiet_option
@scan_read_options
@handle_errors
def compare_striae(a: str, b: str, kind: str, region: str | None, mask_path: str | None,
                   report_path: str | None, pdf_path: str | None, case: Any, as_json: bool,
                   quiet: bool, spacing_um: float | None, modality: str | None,
                   no_verify: bool, strict: bool) -> None:
    """Compare the striation signatures of two scans (casing marks or bullet lands).

    On a terminal a bar (stderr) shows the steps once the command has taken a second:
    reading each scan and extracting its signature, comparing, writing the report;
    --quiet hides it.
    """
    from ballistics.progress import progress

    check_report_paths(report_path, pdf_path)
    reg = _parse_region(region)
    # one step per scan (read, signature), the comparison, the report (about 2-4 s on a
    # pair of real lands)
    steps = 3 + bool(report_path or pdf_path)
    with progress(total=steps, desc="compare-striae", unit="step", quiet=quiet, delay=1.0,
                  bar_format="{desc}: {n}/{total}{postfix} [{elapsed}]") as bar:
        _compare_striae(a, b, kind, reg, mask_path, report_path, pdf_path, case, as_json,
                        spacing_um, modality, no_verify, strict, bar)


def _compare_striae(a: str, b: str, kind: str, reg: Any, mask_path: str | None,
                    report_path: str | None, pdf_path: str | None, case: Any, as_json: bool,
                    spacing_um: float | None, modality: str | None, no_verify: bool,
                    strict: bool, bar: Any) -> None:
    from ballistics.matching.striae import StriaeCompareParams, compare_signatures
    from ballistics.params import params_dict
    from ballistics.scan import check_same_modality

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScanWarning)
        bar.set_postfix_str(f"reading {Path(a).name} and extracting its signature")
        sa, scan_a = _signature(a, kind, reg, mask_path, spacing_um, not no_verify, strict,
                                modality)
        bar.update(1)
        bar.set_postfix_str(f"reading {Path(b).name} and extracting its signature")
        sb, scan_b = _signature(b, kind, reg, mask_path, spacing_um, not no_verify, strict,
                                modality)
        check_same_modality(scan_a, scan_b)
        bar.update(1)
        bar.set_postfix_str("comparing the signatures")
        params = StriaeCompareParams(try_reversed=kind != "lea")
        c = compare_signatures(sa, sb, params)
        bar.update(1)
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
        bar.set_postfix_str("writing the report")
        doc = striae_document(sa, sb, c, names=(Path(a).name, Path(b).name),
                              scans=(scan_a, scan_b), paths=(a, b), parameters=parameters,
                              case=case)
        write_report_files(doc, out, report_path, pdf_path)
        bar.update(1)
    bar.set_postfix_str("done")
    bar.close()  # before the result is printed
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
            # the reader's warnings named by the file, as compare-striae's
            scan = named_warnings(partial(read_scan, path, spacing_um=spacing_um,
                                          verify=verify, strict=strict, modality=modality))
            sig = lea_signature(scan)
        except NoSignatureError as exc:
            warns.append(f"{path}: {exc.message}; the land is left out")
        except BallisticsError as exc:
            return None, None, [], (type(exc), exc.message, exc.path)
    # the signature's own warnings are added below, named by the land's file as given (as
    # the reader's and a left-out land's: bullet folders often hold the same file names);
    # they were also added here without it, so one of them was printed without saying which
    # land it meant
    own = set(sig.warnings) if sig is not None else set()
    warns += [str(w.message) for w in caught
              if issubclass(w.category, ScanWarning) and str(w.message) not in own]
    if sig is not None:
        warns += [f"{path}: {w}" for w in sig.warnings]
    return sig, scan, warns, None


def _land_signatures(files: list[Path], spacing_um: float | None, verify: bool,
                     strict: bool, modality: str | None = None, *, quiet: bool = False
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
            # imported here, once, before the fork: each worker would otherwise import the
            # extraction (scipy.ndimage and the striae package, about 0.9 s of CPU) and the
            # X3P reader (about 0.07 s) itself
            import ballistics.io
            import ballistics.io.x3p
            import ballistics.matching.striae.lea  # noqa: F401

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


def _row_names(files: list[Path], slots: tuple[int, ...], n: int) -> list[str | None]:
    """The land file of each row (column) of the matrices; None at a position left free
    for a land the bullet lacks."""
    names: list[str | None] = [None] * n
    for f, k in zip(files, slots or range(len(files)), strict=True):
        names[k] = f.name
    return names


#: Columns of ``compare-bullets --csv`` (one row per pair of bullets).
BULLET_CSV_COLUMNS = ("a", "b", "score", "log10_lr", "lr_verbal", "best_phase", "sam",
                      "margin", "phase_margin", "phase_z", "score_sam_margin", "land_best_phase",
                      "n_lands_a", "n_lands_b", "gaps_a", "gaps_b")


def _unique_signatures(folders: list[list[Path]], spacing_um: float | None, verify: bool,
                       strict: bool, modality: str | None, quiet: bool
                       ) -> tuple[list[list[Any]], list[list[Any]], list[str]]:
    """Signatures and scans of every folder's lands, each distinct file (by SHA-256) read
    and extracted once. Only files of equal size can be equal, so only those are hashed here
    (serially, before the workers start: several ms per land file); a file whose size no other
    file has is its own key."""
    from collections import Counter

    from ballistics.io import sha256_file

    sizes = {f: f.stat().st_size for files in folders for f in files}
    shared = Counter(sizes.values())
    keys = [[sha256_file(f) if shared[sizes[f]] > 1 else f"size {sizes[f]}" for f in files]
            for files in folders]
    first: dict[str, Path] = {}
    for files, ks in zip(folders, keys, strict=True):
        for f, k in zip(files, ks, strict=True):
            first.setdefault(k, f)
    uniq = list(first)
    sigs, scans, warns = _land_signatures([first[k] for k in uniq], spacing_um, verify,
                                          strict, modality, quiet=quiet)
    by_key = {k: (sg, sc) for k, sg, sc in zip(uniq, sigs, scans, strict=True)}
    return ([[by_key[k][0] for k in ks] for ks in keys],
            [[by_key[k][1] for k in ks] for ks in keys], warns)


@click.command("compare-bullets")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--report", "report_path", default=None, type=OUTPUT_FILE,
              help="Write an HTML report here (two bullets only).")
@click.option("--csv", "csv_path", type=OUTPUT_FILE, default=None, metavar="FILE",
              help="Also write the bullet pairs as CSV (one row per pair; '-' = stdout).")
@pdf_option
@case_options
@threads_option
@json_option
@quiet_option
@scan_read_options
@handle_errors
def compare_bullets_cmd(dirs: tuple[str, ...], report_path: str | None, csv_path: str | None,
                        pdf_path: str | None, case: Any, as_json: bool, quiet: bool,
                        spacing_um: float | None, modality: str | None, no_verify: bool,
                        strict: bool) -> None:
    """Compare bullets land by land (one folder per bullet, one X3P per land, sorted by file
    name): the best land phase (SAM), the learned score and its likelihood ratio.

    With two folders, the full comparison (matrices, phases, --report/--pdf); with more,
    every pair of bullets: --json prints one JSON object per pair (JSON Lines), --csv FILE
    the same as a table, otherwise a score matrix."""
    check_report_paths(report_path, pdf_path)
    check_csv_target(csv_path, stdout_taken=as_json)
    if len(dirs) < 2:
        raise click.UsageError("give at least two bullet folders")
    if len(dirs) > 2 and (report_path or pdf_path):
        raise click.UsageError("--report and --pdf compare two bullets; give two folders")
    folders = [_land_files(d) for d in dirs]
    sigs, scans, warns = _unique_signatures(folders, spacing_um, not no_verify, strict,
                                            modality, quiet)
    if len(dirs) == 2:
        _two_bullets(dirs, folders, sigs, scans, warns, report_path, pdf_path, csv_path, case,
                     as_json)
    else:
        _many_bullets(dirs, folders, sigs, warns, csv_path, case, as_json, quiet)


def _compare_pair(sigs_a: list[Any], sigs_b: list[Any]) -> tuple[Any, Any, dict[str, Any],
                                                                 list[str]]:
    """Comparison, evidence, their JSON keys and the warnings of one pair of bullets."""
    from ballistics.matching.bullet_evidence import evaluate_bullets, orientation_warning
    from ballistics.matching.striae import compare_bullets

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScanWarning)
        r = compare_bullets(sigs_a, sigs_b)
    warns = [str(w.message) for w in caught if issubclass(w.category, ScanWarning)]
    evidence = evaluate_bullets(r)
    turned = orientation_warning(sigs_a, sigs_b, evidence)
    if turned:
        warns.append(turned)
    out = r.to_dict()
    out["score_sam_margin"] = out.pop("score")
    out.update(evidence.to_dict())
    return r, evidence, out, list(dict.fromkeys([*r.warnings, *warns, *evidence.warnings]))


def _two_bullets(dirs: tuple[str, ...], folders: list[list[Path]], sigs: list[list[Any]],
                 scans: list[list[Any]], warns: list[str], report_path: str | None,
                 pdf_path: str | None, csv_path: str | None, case: Any,
                 as_json: bool) -> None:
    dir_a, dir_b = dirs
    files_a, files_b = folders
    sigs_a, sigs_b = sigs
    r, evidence, out, pair_warns = _compare_pair(sigs_a, sigs_b)
    out.update({
        "lands_a": _row_names(files_a, r.slots_a, r.ccf.shape[0]),
        "lands_b": _row_names(files_b, r.slots_b, r.ccf.shape[1]),
        "warnings": list(dict.fromkeys([*pair_warns, *warns])),
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
        rows_a = [n or "(no land)" for n in out["lands_a"]]
        rows_b = [n or "(no land)" for n in out["lands_b"]]
        doc = bullets_document(r, rows_a, rows_b, scans=(scans[0], scans[1]),
                               paths=([str(f) for f in files_a], [str(f) for f in files_b]),
                               signatures=(sigs_a, sigs_b), parameters=parameters,
                               case=case, evidence=evidence, warnings=out["warnings"])
        write_report_files(doc, out, report_path, pdf_path)
    if csv_path:
        write_csv(csv_path, BULLET_CSV_COLUMNS, [_csv_row(dir_a, dir_b, out, r)])
    if as_json:
        emit_json(out)
    elif csv_path != "-":
        click.echo(f"best phase {r.best_phase} (land i of A with land i+{r.best_phase} of B): "
                   f"SAM {r.sam:.3f}, margin {r.margin:.3f}, phase margin "
                   f"{r.phase_margin:.3f}, phase z {r.phase_z:.1f}; learned score "
                   f"{evidence.score:.2f}, log10 LR {evidence.lr_text} "
                   f"({evidence.verbal})")


def _csv_row(a: str, b: str, out: dict[str, Any], r: Any) -> dict[str, Any]:
    row = {k: out.get(k) for k in BULLET_CSV_COLUMNS}
    row.update(a=a, b=b, n_lands_a=len(r.slots_a), n_lands_b=len(r.slots_b),
               gaps_a=" ".join(map(str, r.gaps_a)), gaps_b=" ".join(map(str, r.gaps_b)))
    return row


#: Keys of each JSON Lines object of ``compare-bullets`` with more than two folders.
PAIR_KEYS = ("score", "log10_lr", "lr_verbal", "best_phase", "sam", "margin", "phase_margin",
             "phase_z", "score_sam_margin", "land_best_phase", "phase_scores", "gaps_a",
             "gaps_b", "calibration")


def _many_bullets(dirs: tuple[str, ...], folders: list[list[Path]], sigs: list[list[Any]],
                  warns: list[str], csv_path: str | None, case: Any, as_json: bool,
                  quiet: bool) -> None:
    """Every pair of bullets: JSON Lines, CSV rows or a score matrix."""
    import itertools

    import numpy as np

    from ballistics.progress import progress

    n = len(dirs)
    todo = list(itertools.combinations(range(n), 2))
    scores = np.full((n, n), np.nan)
    lrs = np.full((n, n), np.nan)
    objs, rows = [], []
    _reemit(warns)
    with progress(total=len(todo), desc="bullet pairs", unit="pair", quiet=quiet,
                  delay=1.0) as bar:
        for i, j in todo:
            try:
                r, ev, full, pair_warns = _compare_pair(sigs[i], sigs[j])
            except NoSignatureError as exc:
                warnings.warn(f"{dirs[i]} vs {dirs[j]}: {exc.message}", ScanWarning,
                              stacklevel=2)
                bar.update()
                continue
            scores[i, j] = scores[j, i] = ev.score
            lrs[i, j] = lrs[j, i] = ev.log10_lr
            obj = {"a": dirs[i], "b": dirs[j], **{k: full[k] for k in PAIR_KEYS},
                   "lands_a": _row_names(folders[i], r.slots_a, r.ccf.shape[0]),
                   "lands_b": _row_names(folders[j], r.slots_b, r.ccf.shape[1]),
                   "case": case.to_dict(), "warnings": pair_warns}
            objs.append(obj)
            rows.append(_csv_row(dirs[i], dirs[j], full, r))
            bar.update()
    # each pair's warnings (the synthetic-default LR, its bounds) on stderr once, as for
    # two folders; they stay in each pair's JSON
    _reemit(list(dict.fromkeys(w for o in objs for w in o["warnings"] if w not in warns)))
    if csv_path:
        write_csv(csv_path, BULLET_CSV_COLUMNS, rows)
    if as_json:
        for obj in objs:
            emit_json(obj)
    elif csv_path != "-":
        width = max(len(d) for d in dirs)
        click.echo("learned bullet score (log10 LR) of every pair")
        for i, d in enumerate(dirs):
            cells = ["      –       " if i == j or not np.isfinite(scores[i, j]) else
                     f"{scores[i, j]:6.2f} ({lrs[i, j]:+.2f})" for j in range(n)]
            click.echo(f"{d:<{width}}  " + "  ".join(cells))
