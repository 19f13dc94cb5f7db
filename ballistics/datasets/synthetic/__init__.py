"""Synthetic fired cartridge cases with ground truth.

A *firearm* is class characteristics (breech-face tooling: parallel file marks, arched or
circular lathe marks, granular or cross-hatched finish; firing-pin shape and size) shared
by every firearm of its class, plus an individual band-limited random texture (20–400 µm
wavelengths) and, for some firearms, aperture-shear striations beside the firing-pin hole.
A *firing* transfers those marks onto a small pistol primer (4.4 mm, slightly domed) with
per-shot variation (partial, spatially varying transfer; ammunition; firing-pin crater
with steep walls; drop-outs, spikes, scanner noise; plane tilt) in a random pose.

Conventions
-----------
- Arrays are ``(rows, cols) = (y, x)``, row 0 displayed at the top; positions ``[y, x]``
  in µm from the scan's first point; heights float32 µm, NaN = missing.
- ``rotation_deg`` is counter-clockwise as the image is displayed, about the primer
  centre: the casing's breech-face pattern = the firearm's pattern rotated CCW by
  ``rotation_deg`` (about the field centre), then shifted by ``(shift_y_um, shift_x_um)``.
  The primer centre is at the field centre plus that shift.
- :func:`undo_pose` maps a casing (or its mask) back into the firearm frame.

In memory: :func:`make_firearm`, :func:`fire`; on disk: :func:`generate` (X3P, PNG,
masks, ``manifest.csv``). Parameters: :class:`SynthParams`, :func:`params_for`.
"""

from ballistics.datasets.synthetic.files import (
    MANIFEST_COLUMNS,
    casing_seed,
    firearm_seed,
    generate,
)
from ballistics.datasets.synthetic.firearm import (
    Firearm,
    FirearmClass,
    firearm_grid,
    make_class,
    make_firearm,
)
from ballistics.datasets.synthetic.firing import (
    MODALITY_CHOICES,
    SyntheticCasing,
    fire,
    undo_pose,
)
from ballistics.datasets.synthetic.params import (
    AMMUNITION,
    DIFFICULTIES,
    FIRING_PIN_SHAPES,
    TOOLINGS,
    SynthParams,
    params_for,
)

__all__ = [
    "AMMUNITION",
    "DIFFICULTIES",
    "FIRING_PIN_SHAPES",
    "MANIFEST_COLUMNS",
    "MODALITY_CHOICES",
    "TOOLINGS",
    "Firearm",
    "FirearmClass",
    "SynthParams",
    "SyntheticCasing",
    "casing_seed",
    "fire",
    "firearm_grid",
    "firearm_seed",
    "generate",
    "make_class",
    "make_firearm",
    "params_for",
    "undo_pose",
]
