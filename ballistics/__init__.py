"""ballistics: open, auditable automated firearm evidence comparison.

The public face, loaded lazily (``import ballistics`` does not import torch)::

    import ballistics

    a = ballistics.read_scan("fadul1-1_processed.x3p")
    b = ballistics.read_scan("fadul1-2_processed.x3p")
    c = ballistics.compare(a, b, "cmcR")       # Congruent Matching Cells, both directions
    c.cmc_count, c.theta_deg

- files: :func:`read_scan`, :func:`write_x3p`;
- preparation: :func:`preprocess` (segment, level, filter, resample);
- comparison: :func:`compare` (breech faces), :func:`compare_striae` (striated marks),
  :func:`compare_bullets` (bullets land by land);
- search: :func:`embed`, :class:`Collection`, :func:`ingest`, :func:`search`;
- CPU threads: :func:`configure_threads` (from the cores free now, or as given);
- the data model: :class:`Scan`, :class:`BallisticsError`, :class:`ScanWarning`.

Each name is documented where it lives (``docs/api.md`` lists them all). The packages
underneath are layered; data flows one way (``docs/architecture.md``)::

    io -> datasets, preprocess -> models, matching -> collection -> report -> workflows -> cli

Lengths are micrometres everywhere in the public API, arrays are ``(rows, cols) = (y, x)``
and missing data is NaN.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

#: Environment defaults that make the CPU results the same on every x86-64 processor: MKL
#: (torch's CPU FFTs) otherwise picks its code path by processor (AVX-512 on recent Intel,
#: another on AMD), and its last bits decide near-ties (the pose of a different-source pair).
#: MKL reads it at its first call, so it is set here, before any comparison; a value already
#: in the environment is kept (``docs/install.md``, Same results on every machine).
_REPRODUCIBLE_ENV = {"MKL_CBWR": "COMPATIBLE"}
for _var, _value in _REPRODUCIBLE_ENV.items():
    os.environ.setdefault(_var, _value)
del _var, _value

from ballistics._version import __version__  # noqa: E402
from ballistics.errors import BallisticsError, ScanWarning  # noqa: E402
from ballistics.scan import Scan  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from ballistics.collection.store import Collection
    from ballistics.device import configure_threads
    from ballistics.io import read_scan, write_x3p
    from ballistics.matching.breechface.comparison import compare
    from ballistics.matching.striae.marks import compare_bullet_scans as compare_bullets
    from ballistics.matching.striae.marks import compare_mark_scans as compare_striae
    from ballistics.models import embed
    from ballistics.workflows.ingest import ingest
    from ballistics.workflows.search import search

#: public name -> (module, attribute); ``preprocess`` is the package itself, callable as
#: :func:`ballistics.preprocess.preprocess`.
_LAZY: dict[str, tuple[str, str]] = {
    "read_scan": ("ballistics.io", "read_scan"),
    "write_x3p": ("ballistics.io", "write_x3p"),
    "compare": ("ballistics.matching.breechface.comparison", "compare"),
    "compare_striae": ("ballistics.matching.striae.marks", "compare_mark_scans"),
    "compare_bullets": ("ballistics.matching.striae.marks", "compare_bullet_scans"),
    "embed": ("ballistics.models", "embed"),
    "Collection": ("ballistics.collection.store", "Collection"),
    "configure_threads": ("ballistics.device", "configure_threads"),
    "ingest": ("ballistics.workflows.ingest", "ingest"),
    "search": ("ballistics.workflows.search", "search"),
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name == "preprocess":
        return importlib.import_module("ballistics.preprocess")
    raise AttributeError(f"module 'ballistics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "BallisticsError",
    "Collection",
    "Scan",
    "ScanWarning",
    "__version__",
    "compare",
    "compare_bullets",
    "compare_striae",
    "configure_threads",
    "embed",
    "ingest",
    "preprocess",
    "read_scan",
    "search",
    "write_x3p",
]
