"""One preprocessing pipeline for 3D topographies and 2D images, with named presets.

``preprocess(scan, "default")`` segments the breech face, levels, resamples, crops, band-pass
filters, removes spikes and gives a quality verdict; every step, its parameters and fitted
values land in the result's provenance, ending with a step named ``"preprocess"`` that holds
the preset, the circles, the quality and the position of the output grid in the input's
frame. ``prepare_for_comparison`` is what comparison, embedding and collection code calls.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ballistics._version import __version__
from ballistics.errors import ScanWarning, UnfitScanError
from ballistics.params import params_dict
from ballistics.preprocess.filters import bandpass
from ballistics.preprocess.geometry import Circle
from ballistics.preprocess.image2d import flatten_illumination, normalize_contrast
from ballistics.preprocess.level import level
from ballistics.preprocess.params import PreprocessParams, get_preset
from ballistics.preprocess.quality import Quality, assess, noise_level
from ballistics.preprocess.resample import bbox, crop_to_mask, resample_array
from ballistics.preprocess.segment import Segmentation, segment
from ballistics.scan import Scan, thaw


@dataclass(frozen=True)
class Preprocessed:
    """Result of :func:`preprocess`.

    Attributes
    ----------
    scan
        The processed scan; its provenance ends with the ``"preprocess"`` step.
    primer, firing_pin
        Fitted circles in µm from the *input* scan's first point, ``[y, x]`` (or ``None``).
    quality
        The verdict (:class:`Quality`).
    steps
        The provenance steps added by this call (dicts with ``name``, ``params``,
        ``fitted``, ``version``).
    segmentation
        The segmentation on the input grid (``.mask``, ``.region``).
    first_point_um
        Position of the output's first point in the input's frame (µm, ``[y, x]``).
    warnings
        Fallbacks and deviations, in words.
    preset
        Name of the parameter set.
    """

    scan: Scan
    primer: Circle | None
    firing_pin: Circle | None
    quality: Quality
    steps: tuple[dict, ...]
    segmentation: Segmentation = field(repr=False)
    first_point_um: tuple[float, float] = (0.0, 0.0)
    warnings: tuple[str, ...] = ()
    preset: str = "default"

    def to_dict(self) -> dict:
        """The CLI's JSON object: primer, firing_pin, quality, steps, geometry, warnings."""
        return {
            "preset": self.preset,
            "primer": None if self.primer is None else self.primer.to_dict(),
            "firing_pin": None if self.firing_pin is None else self.firing_pin.to_dict(),
            "quality": self.quality.to_dict(),
            "cropped_input": self.segmentation.cropped,
            "shape": list(self.scan.shape),
            "spacing_um": list(self.scan.spacing_um),
            "first_point_um": list(self.first_point_um),
            "steps": [{"name": s["name"], "params": s["params"], "fitted": s["fitted"]}
                      for s in self.steps],
            "version": __version__,
            "warnings": list(self.warnings),
        }


def _center_crop(h: np.ndarray, spacing: tuple[float, float], center_um: tuple[float, float]
                 ) -> tuple[np.ndarray, tuple[int, int]]:
    """Square-ish window centred on ``center_um`` holding every valid point (NaN padding)."""
    valid = np.isfinite(h)
    iy, ix = np.nonzero(valid)
    cy, cx = center_um[0] / spacing[0], center_um[1] / spacing[1]
    half_y = int(math.ceil(max(abs(iy.min() - cy), abs(iy.max() - cy)))) + 1
    half_x = int(math.ceil(max(abs(ix.min() - cx), abs(ix.max() - cx)))) + 1
    r0, c0 = int(round(cy)) - half_y, int(round(cx)) - half_x
    ny, nx = 2 * half_y + 1, 2 * half_x + 1
    out = np.full((ny, nx), np.nan, np.float32)
    sy0, sx0 = max(r0, 0), max(c0, 0)
    sy1, sx1 = min(r0 + ny, h.shape[0]), min(c0 + nx, h.shape[1])
    out[sy0 - r0: sy1 - r0, sx0 - c0: sx1 - c0] = h[sy0:sy1, sx0:sx1]
    return out, (r0, c0)


def _despike(h: np.ndarray, k: float) -> tuple[np.ndarray, int]:
    v = h[np.isfinite(h)]
    if k <= 0 or len(v) < 100:
        return h, 0
    med = float(np.median(v))
    sd = 1.4826 * float(np.median(np.abs(v - med)))
    if sd <= 0:
        return h, 0
    bad = np.isfinite(h) & (np.abs(h - med) > k * sd)
    out = h.copy()
    out[bad] = np.nan
    return out, int(bad.sum())


def preprocess(scan: Scan, params: str | PreprocessParams = "default", *,
               mask: np.ndarray | None = None) -> Preprocessed:
    """Preprocess a casing scan (topography or 2D image) for comparison.

    Parameters
    ----------
    scan
        Raw (or already cropped) scan, ``(rows, cols) = (y, x)``.
    params
        A preset name (``"default"``, ``"cmcR"``) or a :class:`PreprocessParams`.
    mask
        Optional examiner mask, boolean ``(rows, cols)`` on the scan's grid (True = breech
        face); it replaces the automatic region.

    Returns
    -------
    Preprocessed

    Raises
    ------
    EmptyScanError
        All points are missing.
    SegmentationError
        No breech-face region can be found.
    ParameterError
        Unknown preset or invalid parameters.
    """
    p = get_preset(params)
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        warnings.warn(msg, ScanWarning, stacklevel=3)

    if scan.is_processed:
        note("the scan was already preprocessed by ballistics; it is preprocessed again")
    start = len(scan.provenance)
    seg = segment(scan, p.segment, mask=mask)
    notes.extend(seg.warnings)
    region_missing = float(1.0 - seg.mask.sum() / max(int(seg.region.sum()), 1))
    cur = scan.with_step(
        "segment", params_dict(p.segment) | {"examiner_mask": mask is not None},
        {"primer": None if seg.primer is None else seg.primer.to_dict(),
         "firing_pin": None if seg.firing_pin is None else seg.firing_pin.to_dict(),
         "cropped_input": seg.cropped, "region_missing_fraction": region_missing,
         **seg.fitted},
        heights=np.where(seg.mask, scan.heights, np.nan))
    noise = None if scan.modality == "image" else noise_level(scan.heights, seg.mask)
    first = (0.0, 0.0)  # output first point in the input frame (µm)

    def crop(cur: Scan, first: tuple[float, float], centred: bool) -> tuple[Scan, tuple]:
        h = cur.heights
        sp = cur.spacing_um
        if centred and seg.primer is not None:
            c = seg.primer.shifted(*first).center_um
            out, (r0, c0) = _center_crop(h, sp, c)
            mode = "centred on the primer"
        else:
            ys, xs = bbox(np.isfinite(h))
            out, (r0, c0) = h[ys, xs], (ys.start, xs.start)
            mode = "bounding box"
        new_first = (first[0] + r0 * sp[0], first[1] + c0 * sp[1])
        return cur.with_step("crop", {"mode": mode},
                             {"first_point_um": list(new_first), "shape": list(out.shape)},
                             heights=out), new_first

    def form(cur: Scan) -> Scan:
        if cur.modality == "image":
            flat, f1 = flatten_illumination(cur.heights, cur.spacing_um, p.image_flatten_um)
            cur = cur.with_step("flatten_illumination", {"cutoff_um": p.image_flatten_um}, f1,
                                heights=flat)
            norm, f2 = normalize_contrast(cur.heights)
            return cur.with_step("normalize_contrast", {}, f2, heights=norm)
        lev, fit = level(cur.heights, cur.spacing_um, p.level.method)
        return cur.with_step("level", {"method": p.level.method}, fit, heights=lev)

    def sample(cur: Scan, first: tuple[float, float]) -> tuple[Scan, tuple]:
        r = p.resample
        if r.method == "area":
            # never finer than the scan's finer axis: resampling up adds no detail and blurs
            # (a scan coarser than the preset's spacing keeps its own; square points need the
            # coarser axis of an anisotropic scan brought to the finer one's)
            target = max(r.spacing_um, min(cur.spacing_um))
            h, sp, f0 = resample_array(cur.heights, cur.spacing_um, target,
                                       min_valid=r.min_valid)
            new_first = (first[0] + f0[0], first[1] + f0[1])
            fitted: dict[str, Any] = {"first_point_um": list(new_first), "shape": list(h.shape)}
            if target != r.spacing_um:
                fitted["kept_coarser_um"] = target
            return cur.with_step("resample", {"method": "area", "spacing_um": r.spacing_um,
                                              "min_valid": r.min_valid},
                                 fitted, heights=h, spacing_um=sp), new_first
        if r.method == "decimate":
            k = max(1, int(round(r.spacing_um / min(cur.spacing_um))))
            sp = (cur.spacing_um[0] * k, cur.spacing_um[1] * k)
            return cur.with_step("decimate", {"factor": k},
                                 {"first_point_um": list(first)},
                                 heights=cur.heights[::k, ::k], spacing_um=sp), first
        return cur, first

    def filt(cur: Scan) -> Scan:
        f = p.filter
        if not f.enabled:
            return cur
        return bandpass(cur, f.short_um, f.long_um, convention=f.convention,
                        nan_mode=f.nan_mode, truncate=f.truncate, long_method=f.long_method)

    if p.order == "cmcR":
        cur, first = crop(cur, first, False)
        cur = form(cur)
        cur, first = sample(cur, first)
        cur = filt(cur)
    else:
        # resampling first: the form is smooth, so levelling on the coarser grid is the same
        # and cheaper (2D images are large)
        cur, first = sample(cur, first)
        cur, first = crop(cur, first, p.center)
        cur = form(cur)
        cur = filt(cur)
    if p.despike_sigma > 0:
        h, n = _despike(cur.heights, p.despike_sigma)
        cur = cur.with_step("despike", {"sigma": p.despike_sigma}, {"removed": n}, heights=h)
    if not np.isfinite(cur.heights).any():
        from ballistics.errors import SegmentationError

        raise SegmentationError("no valid point is left after preprocessing", path=scan.source)
    cur, first = crop(cur, first, p.center and p.order != "cmcR")
    quality = assess(cur, missing_fraction=region_missing, noise_um=noise, params=p.quality)
    if not quality.fit:
        note(f"unfit for comparison: {quality.reason}")
    summary = {
        "preset": p.name,
        "primer": None if seg.primer is None else seg.primer.to_dict(),
        "firing_pin": None if seg.firing_pin is None else seg.firing_pin.to_dict(),
        "quality": quality.to_dict(),
        "first_point_um": list(first),
        "cropped_input": seg.cropped,
        "input_shape": list(scan.shape),
        "input_spacing_um": list(scan.spacing_um),
        "input_sha256": scan.sha256,
    }
    cur = cur.with_step("preprocess", params_dict(p), summary).with_warnings(*notes)
    steps = tuple(thaw(s) for s in cur.provenance[start:])
    return Preprocessed(scan=cur, primer=seg.primer, firing_pin=seg.firing_pin, quality=quality,
                        steps=steps, segmentation=seg, first_point_um=first,
                        warnings=tuple(dict.fromkeys(notes)), preset=p.name)


#: Share of a processed file's rows (or columns) that its margins of missing points must
#: exceed to be trimmed: a one-sided margin of 5 % moves the breech face's centre by 2.5 % of
#: the array, a fifth of a cell side of the 8 x 8 grid; wider margins are a framing
#: difference (a processed DFSC scan turned by 37° into a larger array: 27 % of its rows).
MARGIN_SHARE = 0.05


def _last_quality(scan: Scan) -> Quality | None:
    for step in reversed(scan.provenance):
        if step.get("name") == "preprocess":
            q = step.get("fitted", {}).get("quality")
            return None if q is None else Quality.from_dict(thaw(q))
    return None


def prepare_for_comparison(scan: Scan, preset: str | PreprocessParams = "default", *,
                           processed: bool | None = None) -> Scan:
    """The scan ready for comparison or embedding, or :class:`UnfitScanError`.

    Parameters
    ----------
    scan
        Raw or processed scan.
    preset
        Preset used when the scan needs preprocessing.
    processed
        ``None``: preprocess unless the scan carries this toolkit's ``"preprocess"`` step;
        ``True``: the scan is processed already (e.g. a cmcR-processed file): it is
        returned as it is after a quality check, except that a file processed elsewhere
        (no ``"preprocess"`` step of this toolkit) whose margins of missing points take more
        than :data:`MARGIN_SHARE` of its rows or columns loses them (a ``"crop"`` step to the
        bounding box of its measured points, as cmcR's ``preProcess_crop``); ``False``:
        always preprocess.

    Raises
    ------
    UnfitScanError
        The quality verdict rejects the scan (the message gives the reason).

    Notes
    -----
    The comparison searches each cell in the other scan near the same position relative to
    the array's centre, so both arrays must be framed alike: around the breech face, as the
    ``crop`` step of both presets leaves them. A file exported with wide margins of missing
    points (a field of view not centred on the primer, a scan turned by its exporter into
    a larger array) would put the breech faces' centres apart by more than the cells'
    search range; trimming the margins removes no measured point. A margin of a few points
    (the edge of a decimated or filtered export) moves the centre by a point or two, far
    within the cells' translation tolerance, and is left as it is.
    """
    if processed is None:
        processed = scan.is_processed
    if processed:
        q = _last_quality(scan)
        if q is None:
            p = get_preset(preset)
            q = assess(scan, missing_fraction=0.0,
                       noise_um=None, params=p.quality)
        if not q.fit:
            raise UnfitScanError(f"unfit for comparison: {q.reason}", path=scan.source)
        if not scan.is_processed and scan.valid.any():
            ys, xs = bbox(scan.valid)
            rows, cols = scan.shape
            if (rows - (ys.stop - ys.start) > MARGIN_SHARE * rows
                    or cols - (xs.stop - xs.start) > MARGIN_SHARE * cols):
                scan = crop_to_mask(scan)
        return scan
    res = preprocess(scan, preset)
    if not res.quality.fit:
        raise UnfitScanError(f"unfit for comparison: {res.quality.reason}", path=scan.source)
    return res.scan


__all__ = ["Preprocessed", "prepare_for_comparison", "preprocess"]
