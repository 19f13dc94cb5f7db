"""The batched cell-correlation engine (PyTorch; one code path for CPU and CUDA).

For one comparison direction, every valid reference cell is registered against its target
region in every rotated copy of the target, as cmcR does it:

1. cells and regions are standardised (mean 0, sd 1 over their measured points) and their
   missing points set to 0;
2. the cross-correlation over cmcR's searched translations is computed through real FFTs,
   batched over cells and angles; the cells' transforms are computed once per direction and
   reused for every angle;
3. the translation is the CCF peak (first maximum in row-major order); the CCF value is the
   correlation normalised by the norms of the cell and region (cmcR's ``fft_ccf``);
4. the similarity is the pairwise-complete Pearson correlation between the cell and the
   cell-sized patch of the rotated target at that translation (cmcR's ``pairwiseCompCor``),
   which ignores the zero-filled holes that make FFT CCF values poor scores.

Tensors follow the input's device; correlations are computed in float32, the final
pairwise-complete correlation in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ballistics.matching.breechface._blocks import (
    BoxSums,
    axis_index,
    cell_moments,
    cut_blocks,
    cut_patches,
    lag_range,
    pairwise_corr,
    standardise,
)
from ballistics.matching.breechface._cells import CellGeometry
from ballistics.matching.breechface._exact import exact_peaks, lag_ramp
from ballistics.matching.breechface._exact_reference import exact_peaks_reference
from ballistics.matching.breechface._pyramid import pyramid_search, pyramid_transforms
from ballistics.matching.breechface._reduce import fixed_nanmean
from ballistics.matching.breechface._rotation import rotate_stack
from ballistics.matching.breechface._tuning import tuning_for

#: Backends of the exact search: the fused, batched one and the plain reference.
EXACT_BACKENDS = ("fused", "reference")


@dataclass
class DirectionResult:
    """Per cell and angle registration of one direction (reference cells -> target).

    Arrays are ``(A, K)`` over the angles and the grid's cells (row-major); entries where
    ``valid`` is False (cell or region too incomplete) hold 0 / NaN.
    ``dx_px``/``dy_px`` are the displacement of the matching target patch relative to the
    reference cell, along columns (x) and rows (y), in points of the rotated target.
    """

    angles: np.ndarray
    geometry: CellGeometry
    spacing_um: tuple[float, float]
    cell_valid: np.ndarray
    valid: np.ndarray
    dx_px: np.ndarray
    dy_px: np.ndarray
    ccf: np.ndarray
    corr: np.ndarray
    ref_missing: np.ndarray
    target_missing: np.ndarray
    joint_missing: np.ndarray

    @property
    def dx_um(self) -> np.ndarray:
        return self.dx_px * self.spacing_um[1]

    @property
    def dy_um(self) -> np.ndarray:
        return self.dy_px * self.spacing_um[0]


@dataclass
class PreparedCells:
    """Reference cells standardised and transformed once (reused over angles and targets)."""

    geometry: CellGeometry
    fft_shape: tuple[int, int]
    keep: torch.Tensor          # indices of valid cells (Kv,)
    keep_host: np.ndarray       # the same on the host (geometry lookups)
    moments: torch.Tensor       # (Kv, 3, mr * mc) of the heights, for pairwise_corr
    norm: torch.Tensor          # (Kv,)
    missing: np.ndarray         # (K,) missing counts of all cells
    cell_valid: np.ndarray      # (K,)
    std: torch.Tensor           # (Kv, mr, mc) standardised cells, missing = 0
    _pyr: dict | None = None
    _spec: torch.Tensor | None = None

    @property
    def spectrum(self) -> torch.Tensor:
        """(Kv, Pr, Pc//2+1) ``rfft2`` of the standardised cells times :func:`lag_ramp`
        (computed on first use: the exact search needs it, the pyramid search does not)."""
        if self._spec is None:
            self._spec = torch.fft.rfft2(self.std, s=self.fft_shape) * lag_ramp(
                self.geometry, self.keep_host, self.fft_shape, self.std.device)
        return self._spec

    def pyramid(self, factor: int, window: int) -> dict:
        """Transforms of the cells for the coarse-to-fine search (cached per factor)."""
        if self._pyr is None:
            self._pyr = {}
        key = (factor, window)
        if key not in self._pyr:
            self._pyr[key] = pyramid_transforms(self.std, self.geometry,
                                                self.keep_host, factor, window)
        return self._pyr[key]


def prepare_cells(
    reference: torch.Tensor, geometry: CellGeometry, max_missing: float
) -> PreparedCells:
    """Cut, filter, standardise and transform the reference cells."""
    dev = reference.device
    h, w = reference.shape
    mr, mc = geometry.max_cell
    ri, rin, _ = axis_index(geometry.cell_start[:, 0], geometry.cell_size[:, 0], mr, h, dev)
    ci, cin, _ = axis_index(geometry.cell_start[:, 1], geometry.cell_size[:, 1], mc, w, dev)
    patch = reference[ri[:, :, None], ci[:, None, :]]
    inside = rin[:, :, None] & cin[:, None, :]
    patch = torch.where(inside, patch, torch.full_like(patch, float("nan")))
    area = torch.as_tensor(geometry.cell_size.prod(axis=1), device=dev)
    missing = (torch.isnan(patch) & inside).sum(dim=(1, 2))
    valid = (missing.double() / area.double() <= max_missing) & (area - missing >= 2)
    # (once per scan: the number of valid cells sets the shapes of everything after)
    keep_np = torch.nonzero(valid).view(-1).cpu().numpy()
    # cells ordered by region size (then grid order): the exact search batches cells of one
    # region size, which are then contiguous
    rsz = geometry.region_size[keep_np]
    keep_np = keep_np[np.lexsort((keep_np, rsz[:, 1], rsz[:, 0]))]
    keep = torch.as_tensor(keep_np, device=dev)
    raw = patch[keep]
    std, _ = standardise(raw, (1, 2))
    pr, pc = geometry.fft_size()
    norm = torch.sqrt((std * std).sum(dim=(1, 2)))
    return PreparedCells(
        geometry=geometry, fft_shape=(pr, pc), keep=keep, keep_host=keep_np,
        moments=cell_moments(raw), norm=norm, missing=missing.cpu().numpy(),
        cell_valid=valid.cpu().numpy(), std=std,
    )


def register_cells(
    cells: PreparedCells,
    rotated: torch.Tensor,
    angles: Sequence[float],
    max_missing: float,
    spacing_um: tuple[float, float],
    search: str,
    factor: int = 4,
    *,
    exact_backend: str = "fused",
) -> DirectionResult:
    """Register the prepared cells against every rotated copy of the target.

    Parameters
    ----------
    cells
        From :func:`prepare_cells`.
    rotated
        ``(A, rows, cols)`` rotated target (NaN = missing), same device as the cells.
    angles
        The ``A`` angles (degrees) of ``rotated``.
    max_missing
        Regions with a larger missing proportion are dropped.
    spacing_um
        ``(dy, dx)`` of the target, for the result's µm properties.
    search
        ``"exact"``: the CCF over all of cmcR's searched translations at full resolution.
        ``"pyramid"``: the CCF of ``factor x factor`` block sums first, then the full-resolution
        CCF in a window of +-``factor`` points around the coarse peak (several times faster;
        the peak can differ from the exact one where the CCF has several similar maxima).
    factor
        Block size of the coarse level of ``search="pyramid"``.
    exact_backend
        ``"fused"`` (:func:`~._exact.exact_peaks`) or ``"reference"``
        (:func:`~._exact_reference.exact_peaks_reference`, the plain version, for tests).

    Everything stays on the target's device; the per-cell tables come to the host (NumPy)
    once, at the end.
    """
    g = cells.geometry
    n_ang = rotated.shape[0]
    k_all = g.n_cells
    kv = int(cells.keep.numel())
    out_shape = (n_ang, k_all)
    res = {
        "valid": np.zeros(out_shape, bool), "dx": np.zeros(out_shape, np.int64),
        "dy": np.zeros(out_shape, np.int64), "ccf": np.full(out_shape, np.nan),
        "corr": np.full(out_shape, np.nan), "tmiss": np.zeros(out_shape, np.int64),
        "jmiss": np.zeros(out_shape, np.int64),
    }
    if exact_backend not in EXACT_BACKENDS:
        raise ValueError(f"exact_backend must be one of {EXACT_BACKENDS}, not {exact_backend!r}")
    if kv > 0 and n_ang > 0:
        _register(cells, rotated, max_missing, res, search, int(factor), exact_backend)
    return DirectionResult(
        angles=np.asarray(list(angles), float), geometry=g, spacing_um=spacing_um,
        cell_valid=cells.cell_valid, valid=res["valid"], dx_px=res["dx"], dy_px=res["dy"],
        ccf=res["ccf"], corr=res["corr"], ref_missing=cells.missing,
        target_missing=res["tmiss"], joint_missing=res["jmiss"],
    )


def _register(cells: PreparedCells, rotated: torch.Tensor, max_missing: float, res: dict,
              search: str, factor: int, exact_backend: str) -> None:
    g = cells.geometry
    dev = rotated.device
    tuning = tuning_for(dev)
    keep_np = cells.keep_host
    n_ang, h, w = rotated.shape
    pr, pc = cells.fft_shape
    mr, mc = g.max_cell
    nr, nc = g.max_region
    kv = len(keep_np)

    # the geometry of the valid cells (host arrays: static layout), uploaded once
    rs, cs = g.region_start[keep_np], g.region_size[keep_np]
    lo_r, hi_r = lag_range(g.lags_r[keep_np], cs[:, 0])
    lo_c, hi_c = lag_range(g.lags_c[keep_np], cs[:, 1])
    # in the pyramid search, regions are cut at a multiple of the block size (zeros beyond)
    gr, gc = (nr, nc) if search == "exact" else (-(-nr // factor) * factor,
                                                  -(-nc // factor) * factor)
    # a NaN-padded frame that holds every region and every aligned cell-sized patch
    top = max(0, int(-min((rs[:, 0]).min(), (rs[:, 0] + lo_r).min())))
    left = max(0, int(-min((rs[:, 1]).min(), (rs[:, 1] + lo_c).min())))
    bottom = max(0, int(max((rs[:, 0] + gr).max(), (rs[:, 0] + hi_r + mr).max())) - h)
    right = max(0, int(max((rs[:, 1] + gc).max(), (rs[:, 1] + hi_c + mc).max())) - w)

    def on_dev(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=dev)

    reg_r0, reg_c0 = on_dev(rs[:, 0]), on_dev(rs[:, 1])        # (kv,)
    reg_size = on_dev(cs)                                       # (kv, 2)
    region_area = reg_size.prod(dim=1).double()
    lr = on_dev(g.lags_r[keep_np])
    lc = on_dev(g.lags_c[keep_np])
    cell_size = on_dev(g.cell_size[keep_np])
    cell_r0, cell_c0 = on_dev(g.cell_start[keep_np, 0]), on_dev(g.cell_start[keep_np, 1])
    cell_area = cell_size.prod(dim=1)
    n_raw = cells.moments[:, 1].sum(dim=1).round().long()

    boxes = BoxSums((rs[:, 0], cs[:, 0]), (rs[:, 1], cs[:, 1]), (h, w), dev)
    # heights are centred on the first angle's mean (a tensor: no host round trip)
    offset = fixed_nanmean(rotated[0])
    offset = torch.where(torch.isfinite(offset), offset, torch.zeros_like(offset))
    frame_px = (h + top + bottom) * (w + left + right)
    # per angle: the frame and the aligned patches (float64 and masks); the pyramid search
    # also holds every standardised region and its transforms, the exact search one batch
    per_angle = frame_px * 4 + kv * mr * mc * 8 * 3
    budget = tuning.exact_batch_bytes
    if search != "exact":
        per_angle += kv * (pr * pc * 4 * 4 + nr * nc * 4 * 2)
        budget = tuning.batch_bytes
    chunk = max(1, min(n_ang, budget // max(per_angle, 1)))
    # one NaN-padded frame buffer for every batch of angles: its border is filled once
    frames = torch.full((chunk, h + top + bottom, w + left + right), float("nan"),
                        dtype=rotated.dtype, device=dev)
    # the per-cell tables of the valid cells, filled batch by batch on the device
    out = {
        "valid": torch.zeros((n_ang, kv), dtype=torch.bool, device=dev),
        "dy": torch.zeros((n_ang, kv), dtype=torch.long, device=dev),
        "dx": torch.zeros((n_ang, kv), dtype=torch.long, device=dev),
        "ccf": torch.zeros((n_ang, kv), dtype=torch.float64, device=dev),
        "corr": torch.zeros((n_ang, kv), dtype=torch.float64, device=dev),
        "tmiss": torch.zeros((n_ang, kv), dtype=torch.long, device=dev),
        "jmiss": torch.zeros((n_ang, kv), dtype=torch.long, device=dev),
    }
    for a0 in range(0, n_ang, chunk):
        a1 = min(n_ang, a0 + chunk)
        na = a1 - a0
        t = rotated[a0:a1]
        frame = frames[:na]
        frame[:, top:top + h, left:left + w].copy_(t)
        # region statistics from summed-area tables (no pass over the 9x redundant regions)
        n_pts, s1, s2 = boxes(t, offset)
        n_pts = n_pts.round()
        tmiss = (region_area.unsqueeze(0) - n_pts).long()
        rvalid = (tmiss.double() / region_area <= max_missing) & (n_pts >= 2)
        mean = s1 / n_pts.clamp(min=1)
        var = ((s2 - s1 * mean) / (n_pts - 1).clamp(min=1)).clamp(min=0.0)
        # a constant region: the sums' rounding must not turn 0 into a tiny variance
        var = torch.where(var > 1e-12 * (s2 / n_pts.clamp(min=1)), var, torch.zeros_like(var))
        sd = torch.sqrt(var)
        inv = torch.where(sd > 0, 1.0 / sd, torch.ones_like(sd))
        norm_b = torch.where(sd > 0, torch.sqrt((n_pts - 1).clamp(min=0)), torch.zeros_like(sd))

        if search == "exact":
            if exact_backend == "fused":
                best, tr, tc = exact_peaks(frame, reg_r0 + top, reg_c0 + left, reg_size,
                                           (nr, nc), mean + offset, inv, rvalid,
                                           cells.spectrum, (pr, pc), tuning)
            else:
                best, tr, tc = exact_peaks_reference(frame, reg_r0 + top, reg_c0 + left,
                                                     reg_size, (nr, nc), mean + offset, inv,
                                                     rvalid, cells.std, lr, lc, (pr, pc))
            o_r = torch.gather(lr.unsqueeze(0).expand(na, -1, -1), 2, tr.unsqueeze(2)).squeeze(2)
            o_c = torch.gather(lc.unsqueeze(0).expand(na, -1, -1), 2, tc.unsqueeze(2)).squeeze(2)
        else:
            std = cut_blocks(frame, reg_r0 + top, reg_c0 + left, reg_size[:, 0],
                             reg_size[:, 1], gr, gc, tuning=tuning)
            std.sub_((mean + offset).to(std.dtype)[..., None, None])
            std.mul_(inv.to(std.dtype)[..., None, None])
            std.nan_to_num_(nan=0.0)
            o_r, o_c, best = pyramid_search(cells, std, factor)
            del std
        ccf_val = best.double() / (cells.norm.double().unsqueeze(0) * norm_b).clamp(min=1e-30)
        start_r = reg_r0.unsqueeze(0) + o_r   # (na, kv)
        start_c = reg_c0.unsqueeze(0) + o_c
        # the aligned target patch (NaN outside the target and beyond the cell's size)
        patch = cut_patches(frame, start_r + top, start_c + left, cell_size, mr, mc, tuning)
        corr, n_both, n_pat = pairwise_corr(cells.moments, patch)
        jmiss = cell_area.unsqueeze(0) - (n_pat + n_raw.unsqueeze(0) - n_both)

        sl = slice(a0, a1)
        out["valid"][sl] = rvalid
        out["dy"][sl] = torch.where(rvalid, start_r - cell_r0.unsqueeze(0), 0)
        out["dx"][sl] = torch.where(rvalid, start_c - cell_c0.unsqueeze(0), 0)
        out["ccf"][sl] = torch.where(rvalid, ccf_val, float("nan"))
        out["corr"][sl] = torch.where(rvalid, corr, float("nan"))
        out["tmiss"][sl] = tmiss
        out["jmiss"][sl] = torch.where(rvalid, jmiss, 0)
    # the result boundary: one copy of each table to the host
    for key, val in out.items():
        res[key][:, keep_np] = val.cpu().numpy()


def compare_direction(
    reference: torch.Tensor,
    target: torch.Tensor,
    geometry: CellGeometry,
    angles: Sequence[float],
    max_missing: float,
    spacing_um: tuple[float, float],
    *,
    cells: PreparedCells | None = None,
    rotated: torch.Tensor | None = None,
    search: str,
    factor: int = 4,
) -> DirectionResult:
    """Reference cells against the target rotated by each angle (one direction); ``search``
    and ``factor`` as in :func:`register_cells`."""
    if cells is None:
        cells = prepare_cells(reference, geometry, max_missing)
    if rotated is None:
        rotated = rotate_stack(target, list(angles))
    return register_cells(cells, rotated, angles, max_missing, spacing_um, search, factor)
