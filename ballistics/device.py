"""Choice of compute device. ``device="auto"`` picks CUDA when present, else the CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ballistics.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return a ``torch.device`` for ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a device.

    Raises
    ------
    ParameterError
        When CUDA is asked for but not available, or the name is unknown.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError("device 'cuda' was asked for but no CUDA device is available; "
                                 "use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ParameterError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
