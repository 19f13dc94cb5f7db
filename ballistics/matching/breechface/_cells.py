"""Cell layout, target regions and the searched translations, as cmcR defines them.

All indices are 0-based, half-open, on arrays ``(rows, cols) = (y, x)``.

- The reference is split into ``grid = (R, C)`` cells. Along an axis of ``size`` points the
  ``k``-th of ``n`` blocks ends at ``ceil(k * size / n)`` (the non-homogeneous split of
  CImg/imager's ``imsplit(nb = n)`` that cmcR uses), so block sizes differ by at most one.
- The target region of a cell spans, along each axis, 1-based ``floor(c - M*m/2)`` to
  ``ceil(c + M*m/2)`` where ``c`` is the cell's 1-based centre, ``m`` its side and ``M`` the
  side multiplier (3); parts outside the target are missing (cmcR pads them with NA).
- cmcR's FFT cross-correlation (``filterViaFFT``) keeps ``n`` lags per axis (``n`` = region
  side) out of the ``m + n - 1`` of the full linear correlation, after ``fftshift``,
  ``circshift(round((n-m)/2))`` and a crop from ``round(m/2)``. :func:`searched_lags` gives,
  for each kept index ``t``, the offset of the cell's first point inside the region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


def _round_half_away(x: float) -> int:
    """MATLAB/cmcR ``round2``: halves away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def split_bounds(size: int, n: int) -> list[tuple[int, int]]:
    """Blocks ``[start, stop)`` of an axis of ``size`` points split into ``n`` parts."""
    ends = [-(-k * size // n) for k in range(1, n + 1)]
    starts = [0, *ends[:-1]]
    return list(zip(starts, ends, strict=True))


def region_bounds(start: int, stop: int, multiplier: int) -> tuple[int, int]:
    """Target-region ``[start, stop)`` (0-based, may extend outside the scan) of a cell block."""
    m = stop - start
    center = (start + 1 + stop) / 2.0  # 1-based centre of the block, as cmcR computes it
    lo = math.floor(center - multiplier * m / 2.0)
    hi = math.ceil(center + multiplier * m / 2.0)
    return lo - 1, hi


def searched_lags(m: int, n: int) -> np.ndarray:
    """Offsets (0-based, may be negative) of the cell inside the region, one per kept CCF index.

    Index ``t`` of cmcR's cropped CCF matrix corresponds to the cell's first point lying at
    region position ``offsets[t]``; cmcR reports the translation ``t - floor(n/2)``.
    """
    big = m + n - 1
    hm = _round_half_away(m / 2.0)
    v = _round_half_away((n - m) / 2.0)
    t = np.arange(n)
    o = (-(t + hm - 1 - v + (big + 1) // 2)) % big
    o = np.where(o > n - 1, o - big, o)
    return o.astype(np.int64)


@dataclass(frozen=True)
class CellGeometry:
    """Cells of a reference of ``shape`` and their target regions and searched offsets.

    Arrays are per cell ``k`` (row-major over the grid): ``index`` (row, col) 0-based,
    ``cell_start/cell_size`` (K, 2), ``region_start/region_size`` (K, 2) and the padded lag
    tables ``lags_r`` (K, max n_r), ``lags_c`` (K, max n_c) (unused entries are 0).
    """

    shape: tuple[int, int]
    grid: tuple[int, int]
    multiplier: int
    index: np.ndarray
    cell_start: np.ndarray
    cell_size: np.ndarray
    region_start: np.ndarray
    region_size: np.ndarray
    lags_r: np.ndarray
    lags_c: np.ndarray

    @property
    def n_cells(self) -> int:
        return int(self.index.shape[0])

    @property
    def max_cell(self) -> tuple[int, int]:
        return int(self.cell_size[:, 0].max()), int(self.cell_size[:, 1].max())

    @property
    def max_region(self) -> tuple[int, int]:
        return int(self.region_size[:, 0].max()), int(self.region_size[:, 1].max())

    def fft_size(self) -> tuple[int, int]:
        """FFT sizes (rows, cols) at which the circular correlation has no aliasing on the
        searched lags, rounded up to a 2-3-5-smooth length (computed once per layout)."""
        hit = self.__dict__.get("_fft")
        if hit is not None:
            return hit
        out = []
        for ax, lags in ((0, self.lags_r), (1, self.lags_c)):
            need = 1
            for k in range(self.n_cells):
                m = int(self.cell_size[k, ax])
                n = int(self.region_size[k, ax])
                o = lags[k, :n]
                need = max(need, n - int(o.min()), int(o.max()) + m)
            out.append(next_fast_len(need))
        size = (out[0], out[1])
        object.__setattr__(self, "_fft", size)   # a cache, not a field: frozen stays frozen
        return size


def next_fast_len(n: int) -> int:
    """A fast FFT length >= n: the 2-3-5-smooth length of least estimated cost.

    Among the 2-3-5-smooth lengths in ``[n, 2 n]``, the cost model ``L * (1 + 0.25 e3 +
    0.15 e5)`` (``e3``, ``e5``: exponents of 3 and 5) prefers powers of two, which pocketfft
    transforms fastest (e.g. 256 instead of 243 = 3**5: about 1.5x faster per point).
    """
    best, best_cost = 0, float("inf")
    p2 = 1
    while p2 <= 2 * n:
        p3, e3 = p2, 0
        while p3 <= 2 * n:
            p5, e5 = p3, 0
            while p5 <= 2 * n:
                if p5 >= n:
                    cost = p5 * (1.0 + 0.25 * e3 + 0.15 * e5)
                    if cost < best_cost or (cost == best_cost and p5 < best):
                        best, best_cost = p5, cost
                p5 *= 5
                e5 += 1
            p3 *= 3
            e3 += 1
        p2 *= 2
    return best


def cell_geometry(
    shape: tuple[int, int], grid: tuple[int, int], multiplier: int = 3
) -> CellGeometry:
    """The cell layout of a reference of ``shape`` (rows, cols) split into ``grid`` cells.

    Layouts are cached (a collection's scans share a few shapes): the same object comes
    back for the same arguments, so its arrays must not be modified. (They are not marked
    read-only because torch warns on converting read-only arrays.)
    """
    return _cell_geometry((int(shape[0]), int(shape[1])), (int(grid[0]), int(grid[1])),
                          int(multiplier))


@lru_cache(maxsize=32)
def _cell_geometry(shape: tuple[int, int], grid: tuple[int, int], multiplier: int
                   ) -> CellGeometry:
    rows = split_bounds(int(shape[0]), int(grid[0]))
    cols = split_bounds(int(shape[1]), int(grid[1]))
    index, cstart, csize, rstart, rsize, lr, lc = [], [], [], [], [], [], []
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            g0, g1 = region_bounds(r0, r1, multiplier)
            h0, h1 = region_bounds(c0, c1, multiplier)
            index.append((i, j))
            cstart.append((r0, c0))
            csize.append((r1 - r0, c1 - c0))
            rstart.append((g0, h0))
            rsize.append((g1 - g0, h1 - h0))
            lr.append(searched_lags(r1 - r0, g1 - g0))
            lc.append(searched_lags(c1 - c0, h1 - h0))
    nr = max(len(x) for x in lr)
    nc = max(len(x) for x in lc)
    lags_r = np.zeros((len(lr), nr), np.int64)
    lags_c = np.zeros((len(lc), nc), np.int64)
    for k, (a, b) in enumerate(zip(lr, lc, strict=True)):
        lags_r[k, : len(a)] = a
        lags_c[k, : len(b)] = b
    return CellGeometry(
        shape=(int(shape[0]), int(shape[1])), grid=(int(grid[0]), int(grid[1])),
        multiplier=int(multiplier), index=np.array(index, np.int64),
        cell_start=np.array(cstart, np.int64), cell_size=np.array(csize, np.int64),
        region_start=np.array(rstart, np.int64), region_size=np.array(rsize, np.int64),
        lags_r=lags_r, lags_c=lags_c,
    )
