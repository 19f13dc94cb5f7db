"""Writing synthetic studies to disk: X3P topographies, PNG images and masks, manifest.csv.

Seeds form a hierarchy (:class:`numpy.random.SeedSequence` keyed by ``(seed, kind,
firearm index, casing index)``), so firearm ``k`` and its casings are the same whatever
``n_firearms``/``n_casings`` and however many worker processes run. Files are
byte-identical for the same arguments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.datasets.manifest import write_manifest
from ballistics.datasets.synthetic.firearm import make_firearm
from ballistics.datasets.synthetic.firing import MODALITY_CHOICES, SyntheticCasing, fire
from ballistics.datasets.synthetic.params import params_for
from ballistics.device import configured_threads
from ballistics.errors import ParameterError
from ballistics.params import check_choice, check_range
from ballistics.progress import progress

MANIFEST_COLUMNS: tuple[str, ...] = (
    "path", "modality", "study", "firearm_id", "casing_id", "casing_index", "class_id",
    "tooling", "ammunition", "rotation_deg", "shift_y_um", "shift_x_um",
    "primer_center_y_um", "primer_center_x_um", "primer_radius_um",
    "firing_pin_center_y_um", "firing_pin_center_x_um", "firing_pin_radius_um",
    "firing_pin_shape", "firing_pin_angle_deg", "firing_pin_depth_um",
    "aperture_shear", "aperture_shear_direction_deg", "aperture_shear_center_y_um",
    "aperture_shear_center_x_um", "transfer_mean", "spacing_um", "rows", "cols",
    "difficulty", "seed", "mask_path", "shear_mask_path",
)


def firearm_seed(seed: int, k: int) -> int:
    """Seed of firearm ``k`` (0-based) of a study generated with ``seed``."""
    return _seed63([seed, 0, k])


def casing_seed(seed: int, k: int, j: int) -> int:
    """Seed of casing ``j`` of firearm ``k`` of a study generated with ``seed``."""
    return _seed63([seed, 1, k, j])


def _seed63(entropy: list[int]) -> int:
    # Shift a Python int: NumPy < 2 refuses ``np.uint64 >> int`` (it promotes the pair to
    # float64), NumPy 2 does not; the value is the same either way.
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]) >> 1


def pixels_per_metre(spacing_um: float) -> int:
    """The PNG ``pHYs`` density for ``spacing_um`` (3.125 µm -> 320000 px/m exactly)."""
    return round(1e6 / spacing_um)


def write_png(arr: np.ndarray, path: Path, spacing_um: float) -> None:
    """Write an 8-bit grey PNG with its pixel spacing in ``pHYs`` (deterministic bytes).

    Pillow converts ``dpi`` to px/m as ``int(dpi / 0.0254 + 0.5)``, so passing
    ``ppm * 0.0254`` stores ``ppm`` exactly.
    """
    from PIL import Image

    dpi = pixels_per_metre(spacing_um) * 0.0254
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="L").save(
        path, format="PNG", dpi=(dpi, dpi), compress_level=6)


def _row(rel: str, modality: str, casing: SyntheticCasing, k: int, j: int, seed: int,
         mask_rel: str, shear_rel: str | None, difficulty: str) -> dict[str, Any]:
    t = casing.truth
    shear = t["aperture_shear"]
    return {
        "path": rel, "modality": modality, "study": "synthetic",
        "firearm_id": t["firearm_id"], "casing_id": t["casing_id"], "casing_index": j + 1,
        "class_id": t["class_id"], "tooling": t["tooling"], "ammunition": t["ammunition"],
        "rotation_deg": t["rotation_deg"], "shift_y_um": t["shift_y_um"],
        "shift_x_um": t["shift_x_um"],
        "primer_center_y_um": t["primer_center_um"][0],
        "primer_center_x_um": t["primer_center_um"][1],
        "primer_radius_um": t["primer_radius_um"],
        "firing_pin_center_y_um": t["firing_pin_center_um"][0],
        "firing_pin_center_x_um": t["firing_pin_center_um"][1],
        "firing_pin_radius_um": t["firing_pin_radius_um"],
        "firing_pin_shape": t["firing_pin_shape"],
        "firing_pin_angle_deg": t["firing_pin_angle_deg"],
        "firing_pin_depth_um": t["firing_pin_depth_um"],
        "aperture_shear": shear is not None,
        "aperture_shear_direction_deg": shear["direction_deg"] if shear else None,
        "aperture_shear_center_y_um": shear["center_um"][0] if shear else None,
        "aperture_shear_center_x_um": shear["center_um"][1] if shear else None,
        "transfer_mean": t["transfer_mean"], "spacing_um": t["spacing_um"],
        "rows": t["shape"][0], "cols": t["shape"][1], "difficulty": difficulty,
        "seed": seed, "mask_path": mask_rel, "shear_mask_path": shear_rel,
    }


def _firearm_task(outdir: str, k: int, n_casings: int, params: Any, seed: int,
                  modality: str) -> list[dict[str, Any]]:
    """Make firearm ``k``, fire its casings and write their files; the manifest rows."""
    from ballistics.io import write_x3p

    out = Path(outdir)
    fid = f"F{k + 1:03d}"
    firearm = make_firearm(fid, firearm_seed(seed, k), params, class_id=k % params.n_classes)
    rows = []
    for j in range(n_casings):
        cs = casing_seed(seed, k, j)
        cid = f"{fid}-{j + 1:02d}"
        casing = fire(firearm, cs, params, modality=modality, casing_id=cid)
        mask_rel = f"masks/{cid}_mask.png"
        write_png(casing.mask.astype(np.uint8) * 255, out / mask_rel, params.spacing_um)
        shear_rel = None
        if casing.shear_mask is not None:
            shear_rel = f"masks/{cid}_shear.png"
            write_png(casing.shear_mask.astype(np.uint8) * 255, out / shear_rel,
                      params.spacing_um)
        if casing.scan is not None:
            write_x3p(casing.scan, out / f"{cid}.x3p")
            rows.append(_row(f"{cid}.x3p", "topography", casing, k, j, cs, mask_rel,
                             shear_rel, params.difficulty))
        if casing.image is not None:
            write_png(casing.image.heights, out / f"{cid}.png", params.spacing_um)
            rows.append(_row(f"{cid}.png", "image", casing, k, j, cs, mask_rel,
                             shear_rel, params.difficulty))
    return rows


def _default_workers(n_firearms: int, n_casings: int, points: int) -> int:
    if n_firearms < 2 or n_firearms * n_casings * points < 8 * 1400 * 1400:
        return 1
    return max(1, min(configured_threads(), n_firearms, 8))


def generate(
    outdir: str | os.PathLike[str],
    n_firearms: int,
    n_casings: int | Sequence[int],
    *,
    modality: str = "topography",
    spacing_um: float = 3.125,
    difficulty: str = "realistic",
    seed: int = 0,
    quiet: bool = False,
    workers: int | None = None,
    **overrides: Any,
) -> Path:
    """Generate a synthetic study: scans, images, masks and ``manifest.csv``.

    Parameters
    ----------
    outdir
        Output folder (created). Files: ``F001-01.x3p`` (topography), ``F001-01.png``
        (ring-light image), ``masks/F001-01_mask.png`` (breech-face ground truth, 255 inside),
        ``masks/F001-01_shear.png`` (aperture-shear band, when the shot shows one),
        ``manifest.csv``. Existing files of the same names are replaced.
    n_firearms, n_casings
        Number of firearms, and of casings fired in each (one count for all, or one per
        firearm: casing ``j`` of firearm ``k`` is the same file whatever the counts).
    modality
        ``"topography"``, ``"image"`` or ``"both"``.
    spacing_um
        Point spacing (µm); PNGs carry it in ``pHYs`` (3.125 µm = 320000 px/m).
    difficulty
        ``"easy"``, ``"realistic"`` or ``"hard"`` (see :func:`params_for`).
    seed
        Root seed; the same arguments give byte-identical files.
    quiet
        No progress bar.
    workers
        Worker threads (one firearm per task); default: 1 for small jobs, else the CPU
        count (at most 8). The output does not depend on it.
    **overrides
        Further :class:`SynthParams` fields (e.g. ``field_um=(4000, 4800)``).

    Returns
    -------
    pathlib.Path
        The manifest path.
    """
    def check_count(name: str, v: Any) -> None:
        if not isinstance(v, int) or isinstance(v, bool):
            raise ParameterError(f"{name} must be an integer, got {v!r}")
        check_range(name, v, 1, 100000)

    check_count("n_firearms", n_firearms)
    counts = [n_casings] * n_firearms if isinstance(n_casings, int) else list(n_casings)
    for c in counts:
        check_count("n_casings", c)
    if len(counts) != n_firearms:
        raise ParameterError(f"n_casings: {len(counts)} counts for {n_firearms} firearms; "
                             "give one count, or one per firearm")
    check_choice("modality", modality, MODALITY_CHOICES)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    overrides.setdefault("class_seed", seed)  # class marks follow the root seed
    params = params_for(difficulty, spacing_um=spacing_um, **overrides)
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"the output path exists and is not a folder: {out}")
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rows_h, cols_w = params.shape
    if workers is None:
        workers = _default_workers(n_firearms, max(counts), rows_h * cols_w)
    check_range("workers", workers, 1, 256)
    results: dict[int, list[dict[str, Any]]] = {}
    with progress(total=sum(counts), desc="synth", unit="casing", quiet=quiet) as bar:
        for k, rows in _run(str(out), counts, params, seed, modality, workers):
            results[k] = rows
            bar.update(counts[k])
    all_rows = [r for k in range(n_firearms) for r in results[k]]
    return write_manifest(out / "manifest.csv", all_rows, MANIFEST_COLUMNS)


def _run(outdir: str, counts: Sequence[int], params: Any, seed: int, modality: str,
         workers: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    if workers <= 1:
        for k, n in enumerate(counts):
            yield k, _firearm_task(outdir, k, n, params, seed, modality)
        return
    # numpy, OpenCV, scipy.fft and zlib release the GIL: threads parallelise the work
    # without the start-up cost and main-module pitfalls of processes.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_firearm_task, outdir, k, n, params, seed, modality): k
                   for k, n in enumerate(counts)}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        finally:  # an error or an interrupt: do not start the firearms still queued
            for fut in futures:
                fut.cancel()
