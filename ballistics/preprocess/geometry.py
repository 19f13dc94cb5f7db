"""Circles: the fitted primer and firing-pin geometry, robust circle fits and circle masks.

Coordinates are ``[y, x]`` (rows, columns). :class:`Circle` holds micrometres measured from
the first point (row 0, column 0) of the scan it was fitted on; the fitting helpers work in
pixel units of whatever grid they are given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ballistics.errors import ParameterError


@dataclass(frozen=True)
class Circle:
    """A circle in micrometres.

    Parameters
    ----------
    center_um
        Centre ``(y, x)`` in µm from the first point (row 0, column 0) of the input scan.
    radius_um
        Radius in µm (> 0).
    """

    center_um: tuple[float, float]
    radius_um: float

    def __post_init__(self) -> None:
        cy, cx = (float(v) for v in self.center_um)
        r = float(self.radius_um)
        if not (math.isfinite(cy) and math.isfinite(cx) and math.isfinite(r) and r > 0):
            raise ParameterError(f"a circle needs a finite centre and a radius > 0, got "
                                 f"center_um={self.center_um}, radius_um={self.radius_um}")
        object.__setattr__(self, "center_um", (cy, cx))
        object.__setattr__(self, "radius_um", r)

    def to_dict(self) -> dict[str, object]:
        """``{"center_um": [y, x], "radius_um": r}`` (the CLI's JSON shape)."""
        return {"center_um": [self.center_um[0], self.center_um[1]], "radius_um": self.radius_um}

    @classmethod
    def from_dict(cls, d: dict) -> Circle:
        """Inverse of :meth:`to_dict`."""
        return cls((float(d["center_um"][0]), float(d["center_um"][1])), float(d["radius_um"]))

    def shifted(self, dy_um: float, dx_um: float) -> Circle:
        """The same circle in a frame whose origin moved by ``(dy, dx)`` µm."""
        return Circle((self.center_um[0] - dy_um, self.center_um[1] - dx_um), self.radius_um)

    def grown(self, dr_um: float) -> Circle:
        """The circle with ``dr_um`` added to the radius (negative shrinks)."""
        return Circle(self.center_um, max(self.radius_um + dr_um, 1e-6))


def circle_mask(shape: tuple[int, int], spacing_um: tuple[float, float], circle: Circle,
                *, origin_um: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Boolean ``(rows, cols)`` mask of the points inside ``circle``.

    ``origin_um`` is the position (µm, in the circle's frame) of the grid's first point.
    """
    dy, dx = spacing_um
    yy = origin_um[0] + np.arange(shape[0]) * dy - circle.center_um[0]
    xx = origin_um[1] + np.arange(shape[1]) * dx - circle.center_um[1]
    return (yy[:, None] ** 2 + xx[None, :] ** 2) <= circle.radius_um ** 2


def radius_map(shape: tuple[int, int], spacing_um: tuple[float, float],
               center_um: tuple[float, float],
               origin_um: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Distance (µm) of every grid point from ``center_um``, float32 ``(rows, cols)``."""
    yy = (origin_um[0] + np.arange(shape[0]) * spacing_um[0] - center_um[0]).astype(np.float32)
    xx = (origin_um[1] + np.arange(shape[1]) * spacing_um[1] - center_um[1]).astype(np.float32)
    return np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)


# --- fitting (pixel units) -----------------------------------------------------------------

def fit_circle_lsq(pts: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kåsa) least-squares circle through ``pts`` ``(N, 2)`` as ``[y, x]``.

    Returns ``(cy, cx, r)``; raises ``ValueError`` when degenerate.
    """
    p = np.asarray(pts, dtype=np.float64)
    if len(p) < 3:
        raise ValueError("at least 3 points are needed to fit a circle")
    m = p.mean(axis=0)
    q = p - m
    a = np.column_stack([2 * q[:, 0], 2 * q[:, 1], np.ones(len(q))])
    b = (q ** 2).sum(axis=1)
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    cy, cx, c = sol
    r2 = c + cy ** 2 + cx ** 2
    if not np.isfinite(r2) or r2 <= 0:
        raise ValueError("degenerate circle fit")
    return float(cy + m[0]), float(cx + m[1]), float(math.sqrt(r2))


def refine_circle_geometric(pts: np.ndarray, cy: float, cx: float, r: float,
                            iterations: int = 10) -> tuple[float, float, float]:
    """Gauss-Newton refinement of the geometric distance ``| |p - c| - r |``."""
    p = np.asarray(pts, dtype=np.float64)
    c = np.array([cy, cx, r], dtype=np.float64)
    for _ in range(iterations):
        d = p - c[:2]
        dist = np.hypot(d[:, 0], d[:, 1])
        dist = np.maximum(dist, 1e-9)
        res = dist - c[2]
        jac = np.column_stack([-d[:, 0] / dist, -d[:, 1] / dist, -np.ones(len(p))])
        step, *_ = np.linalg.lstsq(jac, -res, rcond=None)
        c += step
        if np.abs(step).max() < 1e-4:
            break
    if not np.all(np.isfinite(c)) or c[2] <= 0:
        return cy, cx, r
    return float(c[0]), float(c[1]), float(c[2])


@dataclass(frozen=True)
class CircleFit:
    """Result of :func:`ransac_circle` in pixel units."""

    cy: float
    cx: float
    r: float
    inlier_fraction: float
    rms: float
    n_points: int
    coverage: float  # fraction of the circumference (in 64 sectors) with inliers


def ransac_circle(pts: np.ndarray, *, tol: float, iterations: int = 400, seed: int = 0,
                  r_min: float = 0.0, r_max: float = np.inf) -> CircleFit | None:
    """Robust circle fit: RANSAC on 3-point circles, then geometric least squares on inliers.

    Parameters
    ----------
    pts
        ``(N, 2)`` candidate boundary points ``[y, x]`` (pixels).
    tol
        Inlier distance from the circle (pixels).
    iterations
        Number of random 3-point hypotheses (vectorised).
    seed
        Seed of the deterministic random generator.
    r_min, r_max
        Admissible radius range (pixels).

    Returns
    -------
    CircleFit or None
        ``None`` when fewer than 8 points are given or no hypothesis is admissible.
    """
    p = np.asarray(pts, dtype=np.float64)
    n = len(p)
    if n < 8:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(iterations, 3))
    a, b, c = p[idx[:, 0]], p[idx[:, 1]], p[idx[:, 2]]
    # circumcentre of each triplet
    d = 2 * (a[:, 0] * (b[:, 1] - c[:, 1]) + b[:, 0] * (c[:, 1] - a[:, 1])
             + c[:, 0] * (a[:, 1] - b[:, 1]))
    ok = np.abs(d) > 1e-9
    a2, b2, c2 = (a ** 2).sum(1), (b ** 2).sum(1), (c ** 2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        uy = (a2 * (b[:, 1] - c[:, 1]) + b2 * (c[:, 1] - a[:, 1]) + c2 * (a[:, 1] - b[:, 1])) / d
        ux = (a2 * (c[:, 0] - b[:, 0]) + b2 * (a[:, 0] - c[:, 0]) + c2 * (b[:, 0] - a[:, 0])) / d
    rr = np.hypot(a[:, 0] - uy, a[:, 1] - ux)
    ok &= np.isfinite(rr) & (rr >= r_min) & (rr <= r_max)
    if not ok.any():
        return None
    uy, ux, rr = uy[ok], ux[ok], rr[ok]
    # score hypotheses on a subsample of points for speed
    sub = p if n <= 1500 else p[rng.choice(n, 1500, replace=False)]
    best_score, best = -1, None
    chunk = 256
    for s in range(0, len(rr), chunk):
        dist = np.abs(np.hypot(sub[None, :, 0] - uy[s:s + chunk, None],
                               sub[None, :, 1] - ux[s:s + chunk, None]) - rr[s:s + chunk, None])
        score = (dist < tol).sum(axis=1)
        k = int(np.argmax(score))
        if score[k] > best_score:
            best_score, best = int(score[k]), (uy[s + k], ux[s + k], rr[s + k])
    assert best is not None
    cy, cx, r = best
    for _ in range(3):
        dist = np.abs(np.hypot(p[:, 0] - cy, p[:, 1] - cx) - r)
        inl = dist < tol
        if inl.sum() < 5:
            break
        cy, cx, r = refine_circle_geometric(p[inl], cy, cx, r)
    dist = np.abs(np.hypot(p[:, 0] - cy, p[:, 1] - cx) - r)
    inl = dist < tol
    if not (r_min <= r <= r_max) or inl.sum() < 5:
        return None
    ang = np.arctan2(p[inl, 0] - cy, p[inl, 1] - cx)
    sectors = np.unique(((ang + np.pi) / (2 * np.pi) * 64).astype(int) % 64)
    return CircleFit(cy=float(cy), cx=float(cx), r=float(r),
                     inlier_fraction=float(inl.mean()), rms=float(np.sqrt((dist[inl] ** 2).mean())),
                     n_points=int(n), coverage=float(len(sectors) / 64))
