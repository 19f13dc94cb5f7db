"""Parameters of the areal (breech-face) comparison: cells, rotations, CMC thresholds.

Two presets:

``"cmcR"``
    The settings of the cmcR README (Zemmels, VanderPlas and Hofmann 2022) for the processed
    Fadul pair: 8 x 8 cells, cells and regions with more than 85 % missing values dropped,
    target regions three times the cell side, rotations -30..30 degrees in 3 degree steps,
    Song (2013) thresholds Tx = Ty = 20 px at 6.25 um (125 um), Ttheta = 6 degrees,
    Tcorr = 0.5, and Tong (2015) High CMC with tau = 1.
``"default"``
    The same cell comparison and thresholds, but for casings at unknown orientation: a coarse
    full-circle registration of the whole scans at reduced resolution first, then the cell
    comparison on a fine rotation grid around the coarse estimate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ballistics.errors import ParameterError
from ballistics.params import check_choice, check_range, params_dict

ROTATION_MODES = ("grid", "full")
SEARCH_MODES = ("exact", "pyramid")

#: The fields of :class:`CompareParams` that only one rotation mode uses: ``"grid"`` searches
#: its theta grid (and never the coarse circle, fine grid or candidates' vote of ``"full"``);
#: ``"full"`` ignores the theta grid. Every other field applies to both.
ROTATION_FIELDS: dict[str, tuple[str, ...]] = {
    "grid": ("theta_min_deg", "theta_max_deg", "theta_step_deg"),
    "full": ("coarse_step_deg", "coarse_prescreen", "fine_halfwidth_deg", "fine_step_deg",
             "vote_candidates", "vote_floor", "vote_margin", "lnorm_sigma_um"),
}


@dataclass(frozen=True)
class CompareParams:
    """Parameters of :func:`ballistics.matching.compare`.

    Parameters
    ----------
    grid
        Number of cells ``(rows, cols)`` the reference scan is divided into (cmcR: 8 x 8).
    max_missing
        Cells (and target regions) with a larger proportion of missing values are dropped
        (cmcR: 0.85).
    region_multiplier
        Side of the target region searched for each cell, in cell sides (cmcR: 3).
    rotation
        ``"grid"``: rotations ``theta_min_deg..theta_max_deg`` by ``theta_step_deg``;
        ``"full"``: coarse registration over 360 degrees, then a fine grid of
        ``fine_halfwidth_deg`` around it in ``fine_step_deg`` steps.
    theta_min_deg, theta_max_deg, theta_step_deg
        The rotation grid of ``rotation="grid"`` (cmcR: -30, 30, 3).
    coarse_step_deg
        Angular step of the full-circle coarse registration.
    coarse_spacing_um
        Point spacing at which the coarse registration runs (the scans are block-averaged).
    coarse_prescreen
        ``rotation="full"`` only: scan the circle first at twice ``coarse_spacing_um`` and
        search at ``coarse_spacing_um`` only around its best ``coarse_prescreen`` local maxima
        (about 4x faster); 0 searches every angle at ``coarse_spacing_um``.
    fine_halfwidth_deg, fine_step_deg
        Fine grid around the coarse angle for ``rotation="full"``.
    tx_um, ty_um
        Translation thresholds of the CMC rules, micrometres (cmcR: 20 px at 6.25 um).
    ttheta_deg
        Rotation threshold (original rule) and maximum width of the High CMC mode.
    tcorr
        Minimum pairwise-complete correlation of a congruent cell (cmcR: 0.5).
    tau
        High CMC: angles whose candidate count is at least ``max - tau`` are "high" (cmcR: 1).
    min_valid_cells
        Fewer valid cells than this gives a warning on the result (not an error).
    search
        Translation search per cell and angle: ``"exact"`` (cmcR: the FFT CCF over every
        translation of the region) or ``"pyramid"`` (coarse CCF of block sums, then the exact
        CCF within +-``pyramid_factor`` points of the coarse peak; several times faster).
    pyramid_factor
        Block size of the coarse level of ``search="pyramid"``.
    vote_candidates
        ``rotation="full"`` only: when the cells' CMC-θ vote at the whole-scan angle is below
        ``vote_floor + vote_margin``, this many further candidate angles (the best local
        maxima of a full-circle scan of locally normalised heights) are put to the cells'
        vote (0: the whole-scan angle is always kept). See ``docs/compare.md``.
    vote_floor, vote_margin
        A candidate replaces the whole-scan angle only when its vote is at least
        ``vote_floor`` and at least ``vote_margin`` above the vote at the whole-scan angle.
    lnorm_sigma_um
        Gaussian scale of the local normalisation (mean and standard deviation) applied
        before the candidates' full-circle scan.
    """

    grid: tuple[int, int] = (8, 8)
    max_missing: float = 0.85
    region_multiplier: int = 3
    rotation: str = "full"
    theta_min_deg: float = -30.0
    theta_max_deg: float = 30.0
    theta_step_deg: float = 3.0
    coarse_step_deg: float = 3.0
    coarse_spacing_um: float = 25.0
    coarse_prescreen: int = 3
    fine_halfwidth_deg: float = 4.0
    fine_step_deg: float = 2.0
    tx_um: float = 125.0
    ty_um: float = 125.0
    ttheta_deg: float = 6.0
    tcorr: float = 0.5
    tau: float = 1.0
    min_valid_cells: int = 10
    search: str = "pyramid"
    pyramid_factor: int = 4
    vote_candidates: int = 6
    vote_floor: int = 5
    vote_margin: int = 3
    lnorm_sigma_um: float = 100.0

    def __post_init__(self) -> None:
        grid = tuple(int(g) for g in self.grid)
        if len(grid) != 2 or any(g < 1 or g > 64 for g in grid):
            raise ParameterError(f"grid must be two integers in [1, 64], got {self.grid!r}")
        object.__setattr__(self, "grid", grid)
        check_range("max_missing", self.max_missing, 0.0, 1.0, hi_open=True)
        check_range("region_multiplier", self.region_multiplier, 1, 9)
        object.__setattr__(self, "region_multiplier", int(self.region_multiplier))
        check_choice("rotation", self.rotation, ROTATION_MODES)
        check_range("theta_min_deg", self.theta_min_deg, -360.0, 360.0)
        check_range("theta_max_deg", self.theta_max_deg, self.theta_min_deg, 360.0)
        check_range("theta_step_deg", self.theta_step_deg, 0.0, 90.0, lo_open=True)
        check_range("coarse_step_deg", self.coarse_step_deg, 0.0, 45.0, lo_open=True)
        check_range("coarse_spacing_um", self.coarse_spacing_um, 0.0, 1000.0, lo_open=True)
        check_range("coarse_prescreen", self.coarse_prescreen, 0, 60)
        object.__setattr__(self, "coarse_prescreen", int(self.coarse_prescreen))
        check_range("fine_halfwidth_deg", self.fine_halfwidth_deg, 0.0, 90.0)
        check_range("fine_step_deg", self.fine_step_deg, 0.0, 45.0, lo_open=True)
        check_range("tx_um", self.tx_um, 0.0, None, lo_open=True)
        check_range("ty_um", self.ty_um, 0.0, None, lo_open=True)
        check_range("ttheta_deg", self.ttheta_deg, 0.0, 180.0)
        check_range("tcorr", self.tcorr, -1.0, 1.0)
        check_range("tau", self.tau, 0.0, None)
        check_range("min_valid_cells", self.min_valid_cells, 1, 10_000)
        check_choice("search", self.search, SEARCH_MODES)
        check_range("pyramid_factor", self.pyramid_factor, 2, 16)
        object.__setattr__(self, "pyramid_factor", int(self.pyramid_factor))
        for name, hi in (("vote_candidates", 60), ("vote_floor", 10_000), ("vote_margin", 10_000)):
            check_range(name, getattr(self, name), 0, hi)
            object.__setattr__(self, name, int(getattr(self, name)))
        check_range("lnorm_sigma_um", self.lnorm_sigma_um, 0.0, 10_000.0, lo_open=True)
        if len(self.grid_angles()) > 721:
            raise ParameterError("the rotation grid has more than 721 angles; use a larger step")

    # --- derived -------------------------------------------------------------------------
    def grid_angles(self) -> list[float]:
        """The angles of ``rotation="grid"`` (degrees, cmcR sign convention)."""
        n = int(round((self.theta_max_deg - self.theta_min_deg) / self.theta_step_deg + 1e-9))
        return [round(self.theta_min_deg + i * self.theta_step_deg, 9) for i in range(n + 1)]

    def fine_angles(self, center_deg: float) -> list[float]:
        """The fine grid around a coarse angle for ``rotation="full"``."""
        n = int(round(self.fine_halfwidth_deg / self.fine_step_deg + 1e-9))
        return [round(center_deg + i * self.fine_step_deg, 9) for i in range(-n, n + 1)]

    def replace(self, **changes: Any) -> CompareParams:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict of the parameters."""
        return params_dict(self)

    def applicable(self) -> dict[str, Any]:
        """:meth:`to_dict` without the fields of the other rotation mode
        (:data:`ROTATION_FIELDS`): what the reports list, since e.g. the theta limits do not
        apply to ``rotation="full"``."""
        unused = {f for mode, names in ROTATION_FIELDS.items() if mode != self.rotation
                  for f in names}
        return {k: v for k, v in self.to_dict().items() if k not in unused}


PRESETS: dict[str, CompareParams] = {
    "default": CompareParams(),
    "cmcR": CompareParams(rotation="grid", search="exact"),
}


def get_params(params: str | CompareParams | None = "default") -> CompareParams:
    """Resolve a preset name (``"default"``, ``"cmcR"``) or pass parameters through."""
    if params is None:
        return PRESETS["default"]
    if isinstance(params, CompareParams):
        return params
    if isinstance(params, str):
        for name, p in PRESETS.items():
            if params.lower() == name.lower():
                return p
        check_choice("preset", params, tuple(PRESETS))
    raise ParameterError(
        f"params must be a preset name or CompareParams, got {type(params).__name__}")


def preset_key(name: str) -> str:
    """A preset's name as :data:`PRESETS` spells it (``"cmcr"`` -> ``"cmcR"``).

    Raises
    ------
    ParameterError
        For a name that is no preset's.
    """
    p = get_params(name)
    return next(k for k, q in PRESETS.items() if q == p)


def parse_rotation(
    spec: str | tuple[float, float, float] | None, base: CompareParams, *,
    name: str = "rotation",
) -> CompareParams:
    """Apply a rotation override: ``"full"``, ``"MIN,MAX,STEP"`` or a ``(min, max, step)`` tuple.

    Parameters
    ----------
    spec
        ``"full"``, ``"MIN,MAX,STEP"`` in degrees (``MIN <= MAX``, both in [-360, 360],
        ``0 < STEP <= 90``), a ``(min, max, step)`` tuple, or ``None`` (``base`` as it is).
    base
        The parameters to override.
    name
        What the messages call the value (the CLI passes ``"--rotation"``).

    Raises
    ------
    ParameterError
        Naming the value as given and, for a range, which of MIN, MAX and STEP is wrong
        (``rotation 30,-30,3: MIN (30) is above MAX (-30); give MIN,MAX,STEP in degrees``).
    """
    if spec is None:
        return base
    if isinstance(spec, str):
        label = f"{name} {spec.strip()}"
        s = spec.strip().lower()
        if s == "full":
            return base.replace(rotation="full")
        parts = [p for p in s.replace(" ", "").split(",") if p]
        try:
            if len(parts) != 3:
                raise ValueError(spec)
            lo, hi, step = (float(p) for p in parts)
        except ValueError as exc:
            raise ParameterError(
                f"{label}: give 'full' or MIN,MAX,STEP in degrees (e.g. -30,30,3)") from exc
    else:
        label = f"{name} {spec!r}"
        try:
            lo, hi, step = (float(v) for v in spec)
        except (TypeError, ValueError) as exc:
            raise ParameterError(
                f"{label}: give 'full' or (min, max, step) in degrees") from exc
    if not all(math.isfinite(v) for v in (lo, hi, step)):
        raise ParameterError(f"{label}: MIN, MAX and STEP must be finite numbers of degrees")
    if lo > hi:
        raise ParameterError(
            f"{label}: MIN ({lo:g}) is above MAX ({hi:g}); give MIN,MAX,STEP in degrees")
    if lo < -360.0 or hi > 360.0:
        raise ParameterError(
            f"{label}: MIN ({lo:g}) and MAX ({hi:g}) must lie within -360..360 degrees")
    if not 0.0 < step <= 90.0:
        raise ParameterError(
            f"{label}: STEP ({step:g}) must be above 0 and at most 90 degrees")
    return base.replace(rotation="grid", theta_min_deg=lo, theta_max_deg=hi, theta_step_deg=step)
