"""``ballistics info FILE... [--json]``: what each scan file holds.

Per file: ``path, sha256, format, modality, shape [rows, cols], spacing_um [dy, dx],
missing_fraction, metadata, warnings, version`` (one JSON object per line with ``--json``).
A bad file gets one error line on stderr; the others are still reported; the exit code is
then 2 (1 when only non-input failures occurred, such as a missing optional dependency).
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click
import numpy as np

from ballistics._version import __version__
from ballistics.cli.common import echo_err, emit_json, handle_errors, json_option, scan_read_options
from ballistics.errors import BallisticsError, ScanWarning


def scan_facts(path: str, *, spacing_um: float | None, verify: bool, strict: bool = False,
               modality: str | None = None) -> dict[str, Any]:
    """Read one file and return the JSON object of ``ballistics info`` for it."""
    from ballistics.io import file_format, read_scan
    from ballistics.scan import thaw

    scan = read_scan(path, spacing_um=spacing_um, verify=verify, strict=strict,
                     modality=modality)
    valid = scan.heights[scan.valid]
    return {
        "path": str(path),
        "sha256": scan.sha256,
        "format": file_format(path),
        "modality": scan.modality,
        "shape": list(scan.shape),
        "spacing_um": list(scan.spacing_um),
        "missing_fraction": scan.missing_fraction,
        "height_range": [float(valid.min()), float(valid.max())] if valid.size else None,
        "processed": scan.is_processed,
        "metadata": thaw(scan.metadata),
        "warnings": list(scan.warnings),
        "version": __version__,
    }


def _text(facts: dict[str, Any]) -> str:
    md = facts["metadata"]
    dy, dx = facts["spacing_um"]
    rows, cols = facts["shape"]
    unit = "µm" if facts["modality"] == "topography" else "grey levels"
    lines = [
        facts["path"],
        f"  format      {facts['format']} ({facts['modality']})",
        f"  sha256      {facts['sha256']}",
        f"  shape       {rows} x {cols} (rows x cols)",
        f"  spacing     {dy:g} x {dx:g} µm (dy x dx); extent "
        f"{rows * dy / 1000:.3f} x {cols * dx / 1000:.3f} mm",
        f"  missing     {100 * facts['missing_fraction']:.1f} %",
    ]
    if facts["height_range"] is not None:
        lo, hi = facts["height_range"]
        lines.append(f"  heights     {lo:.4g} .. {hi:.4g} {unit}")
    inst = md.get("instrument") if isinstance(md, dict) else None
    if isinstance(inst, dict) and any(inst.values()):
        name = " ".join(str(inst.get(k, "")) for k in ("manufacturer", "model")).strip()
        lines.append(f"  instrument  {name}")
    for key in ("creator", "date"):
        if isinstance(md, dict) and md.get(key):
            lines.append(f"  {key:<11} {md[key]}")
    if facts["processed"]:
        lines.append("  processed   yes (carries ballistics preprocessing provenance)")
    for w in facts["warnings"]:
        lines.append(f"  warning     {w}")
    return "\n".join(lines)


@click.command("info")
@click.argument("files", nargs=-1, required=True)
@json_option
@scan_read_options
@handle_errors
def info(files: tuple[str, ...], as_json: bool, spacing_um: float | None,
         modality: str | None, no_verify: bool, strict: bool) -> None:
    """Show format, size, spacing, missing data and instrument metadata of scan FILES.

    X3P files are fully decoded (checksums verified unless --no-verify); images need
    --spacing-um when they carry no pixel spacing; --modality topography reads a TIFF,
    PNG or BMP height map (values in µm, --spacing-um required).
    """
    codes: list[int] = []
    for i, path in enumerate(files):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("ignore")
                warnings.simplefilter("always", ScanWarning)
                with np.errstate(all="ignore"):
                    facts = scan_facts(path, spacing_um=spacing_um, verify=not no_verify,
                                       strict=strict, modality=modality)
        except BallisticsError as exc:
            echo_err(f"error: {exc}")
            codes.append(exc.exit_code)
            continue
        seen: set[str] = set()
        for w in caught:
            msg = str(w.message)
            if issubclass(w.category, ScanWarning) and msg not in seen:
                seen.add(msg)
                echo_err(f"warning: {path}: {msg}")
        if as_json:
            emit_json(facts)
        else:
            if i:
                click.echo("")
            click.echo(_text(facts))
    if codes:
        sys.exit(2 if 2 in codes else max(codes))
