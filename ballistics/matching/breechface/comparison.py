"""Pairwise comparison of two processed casing scans: CMC counts, pose, scores, features.

:func:`compare` runs both directions (reference cells -> target and target cells ->
reference), applies the original CMC rule and the High CMC rule to each and combines the two
directions as cmcR does. :func:`compare_many` compares one query with many candidates and
reuses the query's prepared cells, rotations and transforms.
"""

from __future__ import annotations

import math
import time
import warnings as _warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ballistics._version import __version__
from ballistics.device import resolve_device
from ballistics.errors import EmptyScanError, ScanWarning
from ballistics.matching.breechface._cells import cell_geometry
from ballistics.matching.breechface._decision import (
    Combined,
    HighResult,
    Rows,
    _max_cmc_theta,
    combine_directions,
    high_cmc,
    original_cmc,
    rows_from,
    top_rows,
)
from ballistics.matching.breechface._engine import (
    DirectionResult,
    PreparedCells,
    prepare_cells,
    register_cells,
)
from ballistics.matching.breechface._pose_ncc import ncc_at_pose
from ballistics.matching.breechface._registration import Levels, Registration, register_full
from ballistics.matching.breechface._robust import robust_pose
from ballistics.matching.breechface._rotation import rotate_stack, wrap_angle
from ballistics.matching.breechface.features import FEATURE_NAMES, _direction_stats, aces_features
from ballistics.matching.breechface.params import CompareParams, get_params, parse_rotation
from ballistics.params import check_choice
from ballistics.scan import Scan, check_same_modality


@dataclass
class Direction:
    """Registration and decisions of one direction."""

    result: DirectionResult
    rows: Rows
    original: np.ndarray
    high: HighResult

    @property
    def cmc_count(self) -> int:
        return int(np.unique(self.rows.cell[self.original]).size)

    @property
    def high_count(self) -> int:
        return int(np.unique(self.rows.cell[self.high.is_cmc]).size)

    @property
    def n_valid_cells(self) -> int:
        return int(np.unique(self.rows.cell).size)


@dataclass
class Comparison:
    """Result of :func:`compare` (see ``docs/compare.md`` for every field)."""

    reference: dict[str, Any]
    target: dict[str, Any]
    params: CompareParams
    cmc_count: int
    cmc_count_high: int
    cmc_count_combined: int
    cmc_count_reverse: int
    theta_deg: float
    dx_um: float
    dy_um: float
    ccf_max: float
    cells: list[dict[str, Any]]
    features: dict[str, float]
    forward: Direction
    reverse: Direction
    combined: Combined
    registration: Registration
    spacing_um: tuple[float, float]
    device: str
    seconds: float
    warnings: tuple[str, ...] = ()
    version: str = field(default=__version__)

    def cmc_theta_distribution(self) -> dict[str, list[list[float]]]:
        """CMC candidates per angle (the CMC-theta distribution) of both directions."""
        out: dict[str, list[list[float]]] = {}
        for name, d in (("forward", self.forward), ("reverse", self.reverse)):
            th = sorted(d.high.theta_counts)
            out[name] = [[float(t), int(d.high.theta_counts[t])] for t in th]
        return out

    def cell_table(self, direction: str = "forward") -> list[dict[str, Any]]:
        """Per cell of one direction, each at its best-correlation angle.

        Parameters
        ----------
        direction
            ``"forward"`` (reference cells -> target: the rows of :attr:`cells`) or
            ``"reverse"`` (target cells -> reference, on the target's grid).

        Returns
        -------
        list of dict
            Row-major over the grid: the keys of :attr:`cells` plus ``ref_missing_count``
            (missing points of the cell), ``target_missing_count`` (of its target region)
            and ``joint_missing_count`` (missing in the cell and in the aligned target patch
            alike) at that angle; the last two are ``None`` for a cell never compared.
        """
        check_choice("direction", direction, ("forward", "reverse"))
        return _cells_table(self.forward if direction == "forward" else self.reverse,
                            counts=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``ballistics compare --json`` (documented in docs/compare.md)."""
        return {
            "reference": dict(self.reference),
            "target": dict(self.target),
            "cmc_count": self.cmc_count,
            "cmc_count_high": self.cmc_count_high,
            "cmc_count_combined": self.cmc_count_combined,
            "cmc_count_reverse": self.cmc_count_reverse,
            "theta_deg": self.theta_deg,
            "dx_um": self.dx_um,
            "dy_um": self.dy_um,
            "ccf_max": self.ccf_max,
            "cells": [dict(c) for c in self.cells],
            "cmc_theta_distribution": self.cmc_theta_distribution(),
            "high_cmc": {
                "forward_passed": self.forward.high.passed,
                "reverse_passed": self.reverse.high.passed,
                "combined_passed": self.combined.passed,
                "combined_reason": self.combined.reason,
            },
            "registration": {
                "theta_deg": self.registration.theta_deg,
                "dx_um": self.registration.dx_um,
                "dy_um": self.registration.dy_um,
                "ncc": self.registration.ncc,
            },
            "features": dict(self.features),
            "params": self.params.to_dict(),
            "spacing_um": list(self.spacing_um),
            "device": self.device,
            "seconds": self.seconds,
            "version": self.version,
            "warnings": list(self.warnings),
        }


# --- preparation ---------------------------------------------------------------------------
class _Prepared:
    """A scan on the compute device with caches of its cells and rotated copies."""

    def __init__(self, scan: Scan, device: torch.device) -> None:
        self.scan = scan
        self.tensor = torch.from_numpy(np.array(scan.heights, dtype=np.float32)).to(device)
        self.levels = Levels(self.tensor)   # coarse levels, computed once per scan
        self._cells: dict[Any, PreparedCells] = {}
        self._rot: dict[tuple[float, ...], torch.Tensor] = {}

    def cells(self, params: CompareParams) -> PreparedCells:
        key = (params.grid, params.region_multiplier, params.max_missing)
        if key not in self._cells:
            g = cell_geometry(self.scan.shape, params.grid, params.region_multiplier)
            self._cells[key] = prepare_cells(self.tensor, g, params.max_missing)
        return self._cells[key]

    def rotated(self, angles: Sequence[float], cache: bool) -> torch.Tensor:
        key = tuple(float(a) for a in angles)
        if key in self._rot:
            return self._rot[key]
        rot = rotate_stack(self.tensor, list(key))
        if cache:
            self._rot = {key: rot}
        return rot


def _describe(scan: Scan) -> dict[str, Any]:
    return {"path": scan.source, "sha256": scan.sha256, "shape": list(scan.shape),
            "spacing_um": list(scan.spacing_um)}


#: Largest ratio of the two topographies' robust height spreads that is taken for two breech
#: faces measured in the same unit: processed breech faces differ by a few times (the 95
#: Weller casings by 1.9x; Weller, Fadul and DFSC together 0.8-1.7 um), a unit confusion by
#: 25.4 (mil) or 1000 (nm, mm). Above it the comparison warns.
HEIGHT_SCALE_RATIO = 20.0


def _robust_sd(h: np.ndarray) -> float:
    v = h[np.isfinite(h)]
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def _scale_note(a: Scan, b: Scan) -> str | None:
    """A warning when two topographies' heights differ in scale as only a unit error can."""
    if a.modality != "topography":
        return None
    sa, sb = _robust_sd(a.heights), _robust_sd(b.heights)
    if min(sa, sb) <= 0 or max(sa, sb) <= HEIGHT_SCALE_RATIO * min(sa, sb):
        return None
    return (f"the reference's and the target's heights differ in scale by "
            f"{max(sa, sb) / min(sa, sb):.0f}x (robust sd {sa:.3g} vs {sb:.3g} um), more than "
            f"two breech faces measured in one unit do: check both files' height units (nm "
            f"or mm read as um); a raw scan in the wrong unit is not segmented or filtered "
            f"as a casing, and its comparison is not reliable")


def _harmonise(a: Scan, b: Scan, warn: list[str]) -> tuple[Scan, Scan]:
    """Same modality required; different spacings -> resample the finer scan to the coarser.
    Heights that differ in scale as only a unit error can add a warning."""
    check_same_modality(a, b, ("reference", "target"))
    for s, name in ((a, "reference"), (b, "target")):
        if not np.isfinite(s.heights).any():
            raise EmptyScanError(f"the {name} scan has no measured points", path=s.source)
    note = _scale_note(a, b)
    if note is not None:
        warn.append(note)
    if np.allclose(a.spacing_um, b.spacing_um, rtol=1e-6, atol=0):
        return a, b
    from ballistics.preprocess.resample import resample

    coarse = (max(a.spacing_um[0], b.spacing_um[0]), max(a.spacing_um[1], b.spacing_um[1]))
    out = []
    for s, name in ((a, "reference"), (b, "target")):
        if not np.allclose(s.spacing_um, coarse, rtol=1e-6, atol=0):
            msg = (f"the {name} was resampled from {s.spacing_um[0]:g} x {s.spacing_um[1]:g} um "
                   f"to the coarser spacing {coarse[0]:g} x {coarse[1]:g} um")
            warn.append(msg)
            s = resample(s, coarse)
        out.append(s)
    return out[0], out[1]


# --- one comparison -------------------------------------------------------------------------
def _direction(cells: PreparedCells, rotated: torch.Tensor, angles: Sequence[float],
               p: CompareParams, spacing: tuple[float, float]) -> Direction:
    res = register_cells(cells, rotated, angles, p.max_missing, spacing, p.search,
                         p.pyramid_factor)
    return _as_direction(res, p)


def _as_direction(res: DirectionResult, p: CompareParams) -> Direction:
    rows = rows_from(res.angles, res.valid, res.dx_um, res.dy_um, res.corr)
    orig = original_cmc(rows, p.tx_um, p.ty_um, p.ttheta_deg, p.tcorr)
    high = high_cmc(rows, p.tx_um, p.ty_um, p.ttheta_deg, p.tcorr, p.tau)
    return Direction(res, rows, orig, high)


def _consensus(d: Direction, reg: Registration) -> tuple[float, float, float, str]:
    """Consensus pose of a direction: medians over its CMCs, else its High CMC candidates on
    the most populated angle, else the whole-scan registration."""
    r = d.rows
    for sel, how in ((d.original, "original CMCs"), (d.high.is_cmc, "High CMCs")):
        if sel.any():
            return (float(np.median(r.theta[sel])), float(np.median(r.dx[sel])),
                    float(np.median(r.dy[sel])), how)
    if d.high.candidates.any():
        counts = d.high.theta_counts
        best = max(counts.values())
        th = float(np.median([t for t, c in counts.items() if c == best]))
        sel = d.high.candidates & (r.theta == th)
        if sel.any():
            return th, float(np.median(r.dx[sel])), float(np.median(r.dy[sel])), "candidates"
    return reg.theta_deg, reg.dx_um, reg.dy_um, "whole-scan registration"


def _cells_table(d: Direction, *, counts: bool = False) -> list[dict[str, Any]]:
    """Per cell (row-major) at its best-correlation angle: the ``cells`` of the JSON; with
    ``counts`` also the missing-point counts of the cell, its region and both."""
    g = d.result.geometry
    r = d.rows
    top = top_rows(r)
    first: dict[int, int] = {}
    for i in top:  # of tied best rows, the first that is a CMC (the count counts the cell)
        k = int(r.cell[i])
        if k not in first or (d.original[i] and not d.original[first[k]]):
            first[k] = int(i)
    high_cell = {int(k) for k in r.cell[d.high.is_cmc]}
    out = []
    for k in range(g.n_cells):
        i, j = (int(v) for v in g.index[k])
        entry: dict[str, Any] = {"index": [i + 1, j + 1], "cmcr_index": [j + 1, i + 1]}
        if k in first:
            t = first[k]
            entry.update({
                "valid": True, "dx_um": float(r.dx[t]), "dy_um": float(r.dy[t]),
                "theta_deg": float(r.theta[t]), "corr": float(r.corr[t]),
                "is_cmc": bool(d.original[t]), "is_high_cmc": k in high_cell,
            })
            a = int(np.nonzero(d.result.angles == r.theta[t])[0][0])
            entry["ccf"] = float(d.result.ccf[a, k])
        else:
            a = None
            entry.update({"valid": False, "dx_um": None, "dy_um": None, "theta_deg": None,
                          "corr": None, "is_cmc": False, "is_high_cmc": False, "ccf": None})
        area = max(1, int(np.prod(g.cell_size[k])))
        entry["missing_fraction"] = float(d.result.ref_missing[k] / area)
        if counts:
            entry["ref_missing_count"] = int(d.result.ref_missing[k])
            entry["target_missing_count"] = (None if a is None
                                             else int(d.result.target_missing[a, k]))
            entry["joint_missing_count"] = (None if a is None
                                            else int(d.result.joint_missing[a, k]))
        out.append(entry)
    return out


#: the stages of one comparison, in order, as :func:`compare` reports them to ``stage``
STAGES = ("registration and cells, reference -> target", "cells, target -> reference",
          "combining the directions")


@dataclass
class ForwardStage:
    """The first half of a comparison: the pose, the forward direction and what follows
    from them alone (:func:`compare_forward`; :func:`finish_comparisons` completes it).

    ``feature_bounds`` gives, for every feature of the finished comparison, the interval it
    will lie in: exact for the features of the forward direction and the pose
    (``ncc_at_pose``, ``cmc_count``, ...), a range for those the reverse direction sets.
    """

    params: CompareParams
    registration: Registration
    forward: Direction
    rev_angles: list[float]
    consensus: tuple[float, float, float, str]
    ncc_at_pose: float
    switch_note: str | None
    warnings: list[str]
    seconds: float
    device: str

    def feature_bounds(self) -> dict[str, tuple[float, float]]:
        """``{feature: (lo, hi)}`` for the finished comparison's features (NaN = the
        value is NaN; infinite = not bounded)."""
        fwd, p = self.forward, self.params
        n1 = fwd.cmc_count
        k = float(fwd.result.geometry.n_cells)
        # combine_directions: without a forward CMC or a forward High CMC mode the combined
        # count is min(forward, reverse) <= forward; otherwise at most the grid's cells
        t1 = _max_cmc_theta(fwd.rows, fwd.high, p.ttheta_deg)
        fails = n1 == 0 or t1 is None
        comb_hi = float(n1) if fails else max(float(n1), k)
        inf = math.inf
        out: dict[str, tuple[float, float]] = {name: (-inf, inf) for name in FEATURE_NAMES}
        reg = self.registration
        scores = np.array([s for s in reg.per_angle if s > -1.5], float)
        margin = float(scores.max() - np.median(scores)) if scores.size else math.nan
        n_valid_f = float(fwd.n_valid_cells)
        exact = {
            "ccf_max": float(reg.ncc), "ccf_margin": margin, "cmc_count": float(n1),
            "cmc_count_high": float(fwd.high_count),
            "cmc_fraction": float(n1 / n_valid_f) if n_valid_f > 0 else math.nan,
            "consensus_from_cmc": 1.0 if self.consensus[3] == "original CMCs" else 0.0,
            "ncc_at_pose": float(self.ncc_at_pose),
        }
        out.update({name: (v, v) for name, v in exact.items()})
        out["cmc_count_combined"] = (0.0, comb_hi)
        out["cmc_count_reverse"] = (0.0, k)
        out["high_cmc_passed"] = (0.0, 0.0 if fails else 1.0)
        out["n_cells_valid"] = (0.0, n_valid_f)
        # theta_sd_deg: the mean of the two directions' spreads (the forward one alone when
        # the reverse has none); the reverse spread lies in [0, range / sqrt(2)] of its grid
        f_sd = _direction_stats(fwd)["theta_sd"]
        if math.isfinite(f_sd):
            rev_hi = ((max(self.rev_angles) - min(self.rev_angles)) / math.sqrt(2.0)
                      if self.rev_angles else inf)
            out["theta_sd_deg"] = (f_sd / 2.0, max(f_sd, (f_sd + rev_hi) / 2.0))
        return out


def _forward_prepared(ref: _Prepared, tgt: _Prepared, p: CompareParams, device: torch.device,
                      warn: list[str], cache_rotations: bool) -> ForwardStage:
    t0 = time.perf_counter()
    spacing = ref.scan.spacing_um
    switch_note = None
    if p.rotation == "full":
        pose = robust_pose(ref.levels, tgt.levels, ref.cells(p), p, spacing)
        reg, fwd_angles = pose.registration, pose.angles
        rev_angles = [-a for a in fwd_angles]
        fwd = _as_direction(pose.forward, p)
        if pose.switched:
            th = pose.registration.theta_deg
            switch_note = (f"the cells' vote overruled the whole-scan correlation peak: pose "
                           f"{th:g}° ({pose.votes[th]} CMC-θ votes) instead of "
                           f"{pose.theta0_deg:g}° ({pose.vote_c0} votes)")
    else:
        fwd_angles = p.grid_angles()
        rev_angles = fwd_angles
        reg = register_full(ref.levels, tgt.levels, spacing,
                            coarse_spacing_um=p.coarse_spacing_um, step_deg=p.coarse_step_deg,
                            angles=fwd_angles)
        fwd = _direction(ref.cells(p), tgt.rotated(fwd_angles, cache_rotations), fwd_angles, p,
                         spacing)
    theta, dx, dy, how = _consensus(fwd, reg)
    ncc = ncc_at_pose(ref.tensor, tgt.tensor, wrap_angle(theta),
                      int(round(dy / spacing[0])), int(round(dx / spacing[1])))
    return ForwardStage(params=p, registration=reg, forward=fwd, rev_angles=list(rev_angles),
                        consensus=(theta, dx, dy, how), ncc_at_pose=ncc,
                        switch_note=switch_note, warnings=list(warn),
                        seconds=time.perf_counter() - t0, device=str(device))


def _finish_prepared(ref: _Prepared, tgt: _Prepared, st: ForwardStage,
                     cache_rotations: bool,
                     stage: Callable[[str], None] | None = None) -> Comparison:
    t0 = time.perf_counter()
    p = st.params
    spacing = ref.scan.spacing_um
    warn = list(st.warnings)
    fwd, reg = st.forward, st.registration
    if stage is not None:
        stage(STAGES[1])
    rev = _direction(tgt.cells(p), ref.rotated(st.rev_angles, cache_rotations), st.rev_angles,
                     p, spacing)
    if stage is not None:
        stage(STAGES[2])
    comb = combine_directions(fwd.rows, fwd.original, fwd.high, rev.rows, rev.original,
                              rev.high, p.ttheta_deg)
    theta, dx, dy, how = st.consensus
    n_valid = min(fwd.n_valid_cells, rev.n_valid_cells)
    if n_valid < p.min_valid_cells:
        warn.append(
            f"only {n_valid} cells could be compared (fewer than {p.min_valid_cells}); the CMC "
            "counts rest on little surface")
    feats = aces_features(fwd, rev, comb, reg, p)
    feats["consensus_from_cmc"] = 1.0 if how == "original CMCs" else 0.0
    feats["ncc_at_pose"] = st.ncc_at_pose
    if st.switch_note is not None:
        warn.append(st.switch_note)
    cmp = Comparison(
        reference=_describe(ref.scan), target=_describe(tgt.scan), params=p,
        cmc_count=fwd.cmc_count, cmc_count_high=fwd.high_count,
        cmc_count_combined=int(comb.count), cmc_count_reverse=rev.cmc_count,
        theta_deg=wrap_angle(theta), dx_um=dx, dy_um=dy, ccf_max=float(reg.ncc),
        cells=_cells_table(fwd), features=feats, forward=fwd, reverse=rev, combined=comb,
        registration=reg, spacing_um=spacing, device=st.device,
        seconds=st.seconds + time.perf_counter() - t0, warnings=tuple(dict.fromkeys(warn)),
    )
    return cmp


def _compare_prepared(ref: _Prepared, tgt: _Prepared, p: CompareParams, device: torch.device,
                      warn: list[str], cache_rotations: bool,
                      stage: Callable[[str], None] | None = None) -> Comparison:
    if stage is not None:
        stage(STAGES[0])
    st = _forward_prepared(ref, tgt, p, device, warn, cache_rotations)
    return _finish_prepared(ref, tgt, st, cache_rotations, stage)


def _emit(warn: list[str]) -> None:
    for w in dict.fromkeys(warn):
        _warnings.warn(w, ScanWarning, stacklevel=3)


def compare(
    reference: Scan,
    target: Scan,
    params: str | CompareParams = "default",
    *,
    rotation: str | tuple[float, float, float] | None = None,
    device: str | torch.device = "auto",
    stage: Callable[[str], None] | None = None,
) -> Comparison:
    """Compare two processed scans in both directions.

    Parameters
    ----------
    reference, target
        Processed scans (heights ``(rows, cols)`` in µm, NaN = missing) of the same modality.
        Different spacings are resampled to the coarser one (recorded in ``warnings``).
    params
        ``"default"`` (full rotation), ``"cmcR"`` (-30..30 by 3 degrees) or a
        :class:`CompareParams`.
    rotation
        Override of the rotation search: ``"full"`` or ``"MIN,MAX,STEP"`` / ``(min, max, step)``.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    stage
        ``stage(name)`` is called as each of the :data:`STAGES` begins (progress bars; no
        effect on the result).

    Returns
    -------
    Comparison
        ``cmc_count`` (reference -> target, original rule), ``cmc_count_high``,
        ``cmc_count_combined``, the consensus pose ``theta_deg`` (rotation of the target, cmcR
        sign convention), ``dx_um``/``dy_um``, ``ccf_max``, ``cells``, ``features``.
    """
    p = parse_rotation(rotation, get_params(params))
    dev = resolve_device(device)
    warn: list[str] = []
    a, b = _harmonise(reference, target, warn)
    out = _compare_prepared(_Prepared(a, dev), _Prepared(b, dev), p, dev, warn, False, stage)
    _emit(list(out.warnings))
    return out


def compare_many(
    query: Scan,
    candidates: Sequence[Scan],
    params: str | CompareParams = "default",
    *,
    rotation: str | tuple[float, float, float] | None = None,
    device: str | torch.device = "auto",
    callback: Callable[[int, Comparison], None] | None = None,
    workers: int | None = 1,
) -> list[Comparison]:
    """Compare one query (as reference) with each candidate (as target), both directions.

    The query's cells and transforms are prepared once and, for a fixed rotation grid, its
    rotated copies too; candidates at another spacing are handled as :func:`compare` does.
    ``callback(i, comparison)`` is called after each candidate (progress bars).
    ``workers`` > 1 (``None`` or 0: one per CPU core) splits the candidates over that many
    spawned worker processes sharing the thread budget (CPU only; a script needs the
    ``if __name__ == "__main__":`` guard; see :mod:`ballistics.matching.breechface._parallel`).
    """
    p = parse_rotation(rotation, get_params(params))
    dev = resolve_device(device)
    if dev.type == "cpu" and workers != 1 and len(candidates) > 1:
        from ballistics.matching.breechface._parallel import compare_many_workers, resolve_workers

        n_workers = resolve_workers(workers, len(candidates))
        if n_workers > 1:
            out_w = compare_many_workers(query, candidates, p, workers=n_workers,
                                         callback=callback)
            for cmp in out_w:
                _emit(list(cmp.warnings))
            return out_w
    prepared: dict[tuple[float, float], _Prepared] = {}
    out: list[Comparison] = []
    for i, cand in enumerate(candidates):
        warn: list[str] = []
        a, b = _harmonise(query, cand, warn)
        key = a.spacing_um
        if key not in prepared:
            prepared = {key: _Prepared(a, dev)}
        q = prepared[key]
        cmp = _compare_prepared(q, _Prepared(b, dev), p, dev, warn, p.rotation == "grid")
        _emit(list(cmp.warnings))
        out.append(cmp)
        if callback is not None:
            callback(i, cmp)
    return out


def _over_candidates(query: Scan, candidates: Sequence[Scan], dev: torch.device,
                     step: Callable[[int, _Prepared, _Prepared, list[str]], Any]) -> list[Any]:
    """``step(i, prepared query, prepared candidate, warnings)`` for each candidate, the
    query prepared once per spacing (as :func:`compare_many`)."""
    prepared: dict[tuple[float, float], _Prepared] = {}
    out = []
    for i, cand in enumerate(candidates):
        warn: list[str] = []
        a, b = _harmonise(query, cand, warn)
        if a.spacing_um not in prepared:
            prepared = {a.spacing_um: _Prepared(a, dev)}
        out.append(step(i, prepared[a.spacing_um], _Prepared(b, dev), warn))
    return out


def compare_forward(
    query: Scan,
    candidates: Sequence[Scan],
    params: str | CompareParams = "default",
    *,
    rotation: str | tuple[float, float, float] | None = None,
    device: str | torch.device = "auto",
    workers: int | None = 1,
    pool: Any = None,
) -> list[ForwardStage]:
    """The first half of :func:`compare_many`: the pose and the forward direction of each
    candidate (:class:`ForwardStage`, with bounds on the features of the whole comparison).

    :func:`finish_comparisons` completes any of them into the :class:`Comparison` that
    :func:`compare_many` returns, with the same numbers. ``workers`` as in
    :func:`compare_many`; ``pool`` (:func:`ballistics.matching.breechface.worker_pool`)
    reuses started worker processes.
    """
    p = parse_rotation(rotation, get_params(params))
    dev = resolve_device(device)
    if dev.type == "cpu" and (pool is not None or (workers != 1 and len(candidates) > 1)):
        from ballistics.matching.breechface._parallel import run_workers

        out_w = run_workers("forward", query, list(candidates), p, workers=workers, pool=pool)
        if out_w is not None:
            return out_w
    grid = p.rotation == "grid"
    return _over_candidates(query, candidates, dev, lambda i, q, c, warn: _forward_prepared(
        q, c, p, dev, warn, grid))


def finish_comparisons(
    query: Scan,
    candidates: Sequence[Scan],
    stages: Sequence[ForwardStage],
    *,
    device: str | torch.device = "auto",
    workers: int | None = 1,
    pool: Any = None,
) -> list[Comparison]:
    """Complete :func:`compare_forward`'s stages (the reverse direction, the combined
    counts, the features): the comparisons :func:`compare_many` gives for these candidates."""
    if len(stages) != len(candidates):
        raise ValueError("one stage per candidate is needed")
    dev = resolve_device(device)
    if dev.type == "cpu" and (pool is not None or (workers != 1 and len(candidates) > 1)):
        from ballistics.matching.breechface._parallel import run_workers

        out_w = run_workers("finish", query, list(zip(candidates, stages, strict=True)), None,
                            workers=workers, pool=pool)
        if out_w is not None:
            for cmp in out_w:
                _emit(list(cmp.warnings))
            return out_w
    grid = stages[0].params.rotation == "grid" if stages else False

    def step(i: int, q: _Prepared, c: _Prepared, warn: list[str]) -> Comparison:
        cmp = _finish_prepared(q, c, stages[i], grid)
        _emit(list(cmp.warnings))
        return cmp

    return _over_candidates(query, candidates, dev, step)


__all__ = ["Comparison", "Direction", "ForwardStage", "compare", "compare_forward",
           "compare_many", "finish_comparisons"]
