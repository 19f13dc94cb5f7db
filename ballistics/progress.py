"""Progress bars for long work: shown on a TTY (stderr), silent with ``quiet=True``."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    quiet: bool = False,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on stderr with rate and ETA, disabled when quiet or stderr is not a TTY."""
    disable = quiet or not sys.stderr.isatty()
    return tqdm(
        iterable, total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr,
        dynamic_ncols=True, **kwargs,
    )
