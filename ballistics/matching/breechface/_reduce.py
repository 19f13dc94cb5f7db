"""Whole-tensor sums that do not depend on the number of threads.

On the CPU, torch splits a reduction of a large tensor to a single value among its threads,
so ``x.sum()`` of the same values can differ in the last bits between one and two threads;
and the thread count of a command follows the machine's load (``ballistics.device``). These
sums take a fixed partition instead: rows of :data:`CHUNK` values, each summed whole, then
the row sums, so the order of the additions is the same for any thread count, and a
comparison's numbers depend only on its inputs, parameters and device.
"""

from __future__ import annotations

import torch

#: Values per row of the fixed partition (below torch's parallel grain, so that a row and
#: the vector of row sums are each summed in one piece).
CHUNK = 8192


def fixed_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of every element of ``x`` (a 0-d tensor on its device), added in an order
    that does not depend on the number of threads."""
    flat = x.reshape(-1)
    n = flat.numel()
    if n <= CHUNK:
        return flat.sum()
    pad = (-n) % CHUNK
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return flat.view(-1, CHUNK).sum(dim=1).sum()


def fixed_nanmean(x: torch.Tensor) -> torch.Tensor:
    """``torch.nanmean(x)`` over every element, by :func:`fixed_sum` (NaN when every value
    is NaN, as ``torch.nanmean``)."""
    ok = ~torch.isnan(x)
    total = fixed_sum(torch.where(ok, x, torch.zeros_like(x)))
    return total / fixed_sum(ok.to(x.dtype))
