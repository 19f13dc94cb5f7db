"""Progress bars for long work: shown on a TTY (stderr), silent with ``quiet=True``.

``delay`` (seconds) keeps a bar hidden until the work has taken that long, so that short
runs print nothing. The environment variable ``BALLISTICS_PROGRESS_DELAY`` (seconds, e.g.
``0``) overrides every bar's ``delay``: set it to see bars at once (the tests do).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

#: environment variable overriding the ``delay`` of every bar (seconds)
DELAY_ENV = "BALLISTICS_PROGRESS_DELAY"


def _delay(default: float) -> float:
    text = os.environ.get(DELAY_ENV)
    if text is None:
        return default
    try:
        return max(0.0, float(text))
    except ValueError:
        return default


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    quiet: bool = False,
    delay: float = 0.0,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on stderr with rate and ETA, disabled when quiet or stderr is not a TTY.

    ``delay``: seconds before the bar first appears (``BALLISTICS_PROGRESS_DELAY``
    overrides it); the bar is redrawn as it advances.
    """
    disable = quiet or not sys.stderr.isatty()
    return tqdm(
        iterable, total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr,
        dynamic_ncols=True, delay=_delay(delay), **kwargs,
    )
