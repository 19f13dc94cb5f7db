"""Per-device tuning of the cell-correlation engine: batch sizes, byte budgets, CPU paths.

One frozen :class:`Tuning` per device kind; the engine modules take their constants from
:func:`tuning_for` and nothing else. None of these change results (peaks, translations and
counts are the same for any value; floating sums may differ in the last bits where a batch
boundary moves): they trade memory for speed. The CPU values were measured on a 2-core
EPYC (the measurements are in docs/dev); the CUDA values are untuned defaults that favour
few, large kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tuning:
    """Tuning constants of one device kind.

    Attributes
    ----------
    fft_batch
        Regions per FFT call of the exact search; 0: every region of an angle in one call
        (inactive regions are transformed too, so that no mask is read on the host).
    fine_batch
        Fine-level windows per FFT call of the pyramid search; 0: all at once.
    exact_batch_bytes
        Working memory of one batch of angles in the exact search (rotated frames and
        aligned patches).
    batch_bytes
        The same bound for the pyramid search (also every standardised region and its
        transforms).
    box_angles
        Angles per pass of the region statistics (``_blocks.BoxSums``).
    registration_batch
        Angles per batch of the whole-scan registration.
    host_slices
        Cut regions, windows and patches by Python-level slice copies from host copies of
        the (host-resident) index tensors: on a CPU several times faster than gathers. False:
        one gather on the device, no host round trip.
    numpy_row_max
        Row maxima through NumPy's ``argmax`` (much faster than torch's ``max(dim=1)``
        on a CPU). Only for CPU tensors.
    """

    fft_batch: int
    fine_batch: int
    exact_batch_bytes: int
    batch_bytes: int
    box_angles: int
    registration_batch: int
    host_slices: bool
    numpy_row_max: bool


CPU = Tuning(fft_batch=8, fine_batch=64, exact_batch_bytes=28 * 2**20,
             batch_bytes=192 * 2**20, box_angles=2, registration_batch=24,
             host_slices=True, numpy_row_max=True)

CUDA = Tuning(fft_batch=0, fine_batch=0, exact_batch_bytes=28 * 2**20,
              batch_bytes=192 * 2**20, box_angles=2, registration_batch=24,
              host_slices=False, numpy_row_max=False)


def tuning_for(device: torch.device | str) -> Tuning:
    """The tuning of ``device``'s kind (CPU or anything else: the device table)."""
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    return CPU if kind == "cpu" else CUDA
