"""The evidential value of a breech-face comparison: a learned score and a calibrated LR.

:func:`evaluate` turns a :class:`~ballistics.matching.breechface.Comparison` into an
:class:`Evidence`: the score model's score over the comparison's features, its calibrated
``log10 LR`` (bounded as the calibration data allow), the verbal equivalent on the ENFSI
scale, and a description of the calibration it came from (source, data, preset, held-out
Cllr). Without a calibration, the one shipped with the package (fitted on public reference
studies and synthetic casings; flagged ``"synthetic-default"``) is used; a collection's own
calibration (:meth:`Calibration.from_dict` of its document) is preferred where one exists.

The software proposes; the examiner decides: the LR is a measurement with the stated
calibration's limits, not a conclusion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ballistics.matching.breechface.params import PRESETS, get_params, preset_key
from ballistics.matching.lr import DEFAULT_FILES, Calibration, feature_dict, load_default

__all__ = ["Evidence", "bound_note", "bound_side", "calibration_label", "calibration_preset",
           "evaluate", "evaluate_rows", "lr_with_bound", "one_measurement_caveat",
           "preset_name", "shipped_for", "verbal_scale"]

#: ENFSI guideline for evaluative reporting (2015): upper LR bound of each verbal step.
_VERBAL = (
    (1.0, "no support for either proposition"),
    (10.0, "weak support"),
    (100.0, "moderate support"),
    (1e3, "moderately strong support"),
    (1e4, "strong support"),
    (1e6, "very strong support"),
    (math.inf, "extremely strong support"),
)

SYNTHETIC_CAVEAT = ("the LR comes from the calibration shipped with the package, fitted on "
                    "public reference studies and synthetic casings, not on this lab's; "
                    "calibrate on the lab's own reference data (ballistics calibrate) for "
                    "casework")

#: the words that mark a warning as a caveat of the LR itself (:attr:`Evidence.lr_caveats`)
LR_CAVEAT_MARK = "indicative only"

#: the shipped calibration's studies are all 3D topographies (Weller, Fadul, DFSC, synthetic)
IMAGE_CAVEAT = ("the calibration shipped with the package was fitted on 3D topographies, "
                f"these are 2D images: the LR is {LR_CAVEAT_MARK}; calibrate on a collection "
                "of the lab's own images (ballistics calibrate) and compare with --collection")


def one_measurement_caveat(sentence: str) -> str:
    """The LR caveat of two scans of one measurement (``sentence``: what
    :func:`ballistics.io.same_measurement` says): their agreement is that of one surface
    with itself, so the score and LR are no evidence of a common source."""
    return f"{sentence}; the score and LR are {LR_CAVEAT_MARK} and say nothing about a " \
           "common source"


def preset_name(params: Any) -> str | None:
    """The name of the preset ``params`` equals, ``"custom"`` for others, ``None`` for none.

    ``params`` may also be a preset's name in any case (``"cmcr"`` gives ``"cmcR"``) or
    ``"custom"``; an unknown name raises :class:`~ballistics.errors.ParameterError`."""
    if params is None:
        return None
    if isinstance(params, str):
        return "custom" if params.lower() == "custom" else preset_key(params)
    return next((name for name, q in PRESETS.items() if q == params), "custom")


def calibration_preset(params: Any) -> str:
    """The compare preset whose shipped calibration suits comparisons made with ``params``
    (:class:`~ballistics.matching.breechface.CompareParams` or a preset name; ``None``:
    ``"default"``): the preset's own, and for parameters of no preset (e.g. another
    rotation range) the preset with the same rotation search (``"grid"``: ``"cmcR"``,
    ``"full"``: ``"default"``), since ``theta_sd_deg`` depends on it."""
    if params is None or (isinstance(params, str) and params.lower() == "custom"):
        return "default"
    p = get_params(params)
    name = preset_name(p)
    if name in DEFAULT_FILES:
        return str(name)
    return next((n for n, q in PRESETS.items() if n in DEFAULT_FILES
                 and q.rotation == p.rotation), "default")


def shipped_for(calibration: Calibration | None, preset: str | None) -> Calibration:
    """The calibration to apply to comparisons whose shipped calibration is ``preset``'s
    (:func:`calibration_preset`; ``None``: not known).

    A lab's own calibration (a collection's, a file's: any source but
    ``"synthetic-default"``) is returned as it is, whatever the preset; so is a shipped one
    when ``preset`` is ``None``. A shipped calibration of another preset, or none, gives the
    package's calibration of ``preset`` (:func:`~ballistics.matching.lr.load_default`;
    ``None``: the ``"default"`` preset's)."""
    if calibration is not None and (calibration.source != "synthetic-default"
                                    or preset is None):
        return calibration
    key = calibration_preset(preset)
    if calibration is not None and calibration.fitted.get("compare_preset") == key:
        return calibration
    return load_default(key)


def calibration_label(calibration: Mapping[str, Any]) -> str:
    """The ``source`` of a calibration description (:meth:`Calibration.describe`) and the
    compare preset it was fitted with, when recorded: ``"synthetic-default (cmcR preset)"``."""
    preset = (calibration.get("fitted") or {}).get("compare_preset")
    source = str(calibration.get("source"))
    return source if preset is None else f"{source} ({preset} preset)"


def verbal_scale(log10_lr: float) -> str:
    """The ENFSI verbal equivalent of an LR, naming the proposition it supports.

    ``log10_lr > 0`` supports the same-source proposition, ``< 0`` the different-source one;
    e.g. ``verbal_scale(2.5)`` is ``"moderately strong support for same source"``.
    """
    if not math.isfinite(log10_lr):
        return "no likelihood ratio"
    lr = 10.0 ** abs(log10_lr)
    if lr <= 1.0 + 1e-12:
        return _VERBAL[0][1]
    for upper, words in _VERBAL[1:]:
        if lr <= upper:
            side = "same source" if log10_lr > 0 else "different sources"
            return f"{words} for {side}"
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class Evidence:
    """Score and likelihood ratio of one comparison.

    Attributes
    ----------
    score
        The score model's decision value (log-odds-like; higher = more similar).
    log10_lr
        Calibrated ``log10 LR`` of same source vs different sources, within
        ``calibration["log10_lr_bounds"]``.
    verbal
        :func:`verbal_scale` of ``log10_lr``.
    calibration
        Where the LR comes from: ``source`` (``"synthetic-default"`` or ``"collection"``),
        ``fitted`` (data, presets), ``metrics`` (held-out Cllr, AUC, ...), bounds, method.
    warnings
        Feature values the model had to impute, preset mismatches, the synthetic caveat.
    at_bound
        ``"upper"`` or ``"lower"`` when ``log10_lr`` is the highest or lowest value the
        calibration can give (:func:`bound_side`), else ``None``.
    """

    score: float
    log10_lr: float
    verbal: str
    calibration: dict[str, Any]
    warnings: tuple[str, ...] = field(default=())
    at_bound: str | None = None

    @property
    def lr_text(self) -> str:
        """``log10_lr`` to two decimals, with ``", at the calibration's upper bound"`` (or
        lower) where it sits at one (:func:`lr_with_bound`)."""
        return lr_with_bound(self.log10_lr, self.at_bound)

    @property
    def lr_caveats(self) -> list[str]:
        """The warnings that qualify the LR itself (another preset than the calibration's,
        2D images scored with a topography calibration), which reports show beside it."""
        return [w for w in self.warnings if LR_CAVEAT_MARK in w]

    @property
    def qualified_verbal(self) -> str:
        """:attr:`verbal`, followed by ``"; indicative only, see the LR caveats"`` when a
        caveat qualifies the LR itself (:attr:`lr_caveats`): the words alone read as a
        finding where the caveat is printed elsewhere (stderr, further down a report)."""
        if not self.lr_caveats:
            return self.verbal
        return f"{self.verbal}; {LR_CAVEAT_MARK}, see the LR caveats"

    def to_dict(self) -> dict[str, Any]:
        """``{"score", "log10_lr", "lr_verbal", "calibration"}`` (keys of ``compare --json``)."""
        return {"score": self.score, "log10_lr": self.log10_lr, "lr_verbal": self.verbal,
                "calibration": self.calibration}


def bound_side(log10_lr: float, calibration: Calibration) -> str | None:
    """``"upper"`` or ``"lower"`` when ``log10_lr`` is the highest or lowest value
    ``calibration`` can give (:attr:`LRCalibration.attainable`), else ``None``."""
    lo, hi = calibration.lr.attainable
    if np.isclose(log10_lr, hi, atol=1e-9):
        return "upper"
    if np.isclose(log10_lr, lo, atol=1e-9):
        return "lower"
    return None


def lr_with_bound(log10_lr: float, at_bound: str | None) -> str:
    """``log10_lr`` as reports print it (``"+2.95"``), followed by ``", at the
    calibration's upper bound"`` (or lower) when ``at_bound`` says so: such a value says how
    far the calibration's pairs reach, not how strong the evidence is beyond it."""
    text = f"{log10_lr:+.2f}"
    return text if at_bound is None else f"{text}, at the calibration's {at_bound} bound"


def bound_note(log10_lrs: Sequence[float] | np.ndarray, calibration: Calibration) -> str | None:
    """A warning when LRs sit at the highest or lowest value the calibration can give: the
    values say how far the calibration's pairs reach, not how strong the evidence is beyond
    that."""
    lo, hi = calibration.lr.attainable
    v = np.asarray(log10_lrs, float)
    at_hi = int(np.isclose(v, hi, atol=1e-9).sum())
    at_lo = int(np.isclose(v, lo, atol=1e-9).sum())
    if not (at_hi or at_lo):
        return None
    m = calibration.metrics
    parts = []
    if at_hi:
        parts.append(f"{at_hi} at its upper bound (log10 LR {hi:+.2f})")
    if at_lo:
        parts.append(f"{at_lo} at its lower bound (log10 LR {lo:+.2f})")
    return (f"LRs at the calibration's limits: {' and '.join(parts)}; its "
            f"{m.get('n_same_source', '?')} same-source and "
            f"{m.get('n_different_source', '?')} different-source pairs support no stronger "
            "value, so such an LR says how far that data reaches, not how much stronger the "
            "evidence may be (a larger calibration set widens the limits)")


def evaluate_rows(rows: Sequence[Mapping[str, float]], calibration: Calibration | None = None,
                  *, preset: str | None = None, modality: str | None = None,
                  params: Any = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Scores, log10 LRs and the warnings they share, for feature rows of comparisons made
    with ``preset`` (a preset name in any case, ``"custom"``, or ``None``: not known) or
    ``params`` (their :class:`~ballistics.matching.breechface.CompareParams`, which name the
    preset) of scans of ``modality`` (the common path of :func:`evaluate` and collection
    search).

    Warnings: features the score model imputed, a preset other than the calibration's, 2D
    images scored with the shipped calibration (fitted on topographies), the shipped
    synthetic calibration, LRs at the calibration's bounds.

    The shipped calibration (``None``, or one flagged ``synthetic-default``) is the one that
    suits the comparisons (:func:`calibration_preset`, :func:`shipped_for`).
    """
    return _evaluated(rows, calibration, preset, modality, params)[1:]


def _evaluated(rows: Sequence[Mapping[str, float]], calibration: Calibration | None,
               preset: str | None, modality: str | None, params: Any
               ) -> tuple[Calibration, np.ndarray, np.ndarray, list[str]]:
    """:func:`evaluate_rows` with the calibration applied first."""
    if params is not None:
        preset = preset_name(params)
        key: str | None = calibration_preset(params)
    else:
        preset = preset_name(preset) if preset else None
        key = calibration_preset(preset) if preset else None
    cal = shipped_for(calibration, key)
    if rows:
        scores, llr = cal.apply(list(rows))
    else:
        scores, llr = np.zeros(0), np.zeros(0)
    warns: list[str] = []
    # features undefined for some pairs by construction were imputed in training too: only
    # those the training rows always had are a caveat
    missing = sorted({m for r in rows for m in cal.score_model.unexpected_missing(r)})
    if missing:
        warns.append("comparison features missing for the score model (imputed): "
                     + ", ".join(missing))
    fitted_preset = cal.fitted.get("compare_preset")
    if preset and fitted_preset and preset != fitted_preset:
        if preset == "custom":
            used = "parameters of no preset ('custom')"
            remedy = "compare with a preset's own parameters (no --rotation)"
        else:
            used = f"the {preset!r} preset"
            remedy = (f"compare with the {fitted_preset!r} preset, or calibrate the "
                      f"collection with --preset {preset}")
        warns.append(f"the calibration was fitted on comparisons with the {fitted_preset!r} "
                     f"preset, these used {used}: the LRs are {LR_CAVEAT_MARK} and can point "
                     f"the wrong way (theta_sd_deg depends on the rotation search); for a "
                     f"calibrated LR {remedy}")
    if modality == "image" and cal.source == "synthetic-default":
        warns.append(IMAGE_CAVEAT)
    if cal.source == "synthetic-default":
        warns.append(SYNTHETIC_CAVEAT)
    note = bound_note(llr, cal)
    if note:
        warns.append(note)
    return cal, np.asarray(scores, float), np.asarray(llr, float), warns


def evaluate(comparison: Any, calibration: Calibration | None = None, *,
             modality: str | None = None) -> Evidence:
    """Score a comparison and calibrate the score to a likelihood ratio.

    Parameters
    ----------
    comparison
        A :class:`~ballistics.matching.breechface.Comparison` (or a mapping of its features).
    calibration
        The calibration to use: a lab's own is used as it is; ``None`` (or a shipped one) =
        the package's calibration for the comparison's preset (:func:`shipped_for`).
    modality
        What was compared (``"topography"`` or ``"image"``), when known: two images scored
        with the shipped calibration (fitted on topographies) get a warning.

    Returns
    -------
    Evidence
    """
    cal, scores, llr, warns = _evaluated([feature_dict(comparison)], calibration, None,
                                         modality, getattr(comparison, "params", None))
    value = float(llr[0])
    return Evidence(score=float(scores[0]), log10_lr=value, verbal=verbal_scale(value),
                    calibration=cal.describe(), warnings=tuple(warns),
                    at_bound=bound_side(value, cal))
