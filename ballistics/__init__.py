"""ballistics: open, auditable automated firearm evidence comparison.

The package is layered; data flows one way::

    io -> preprocess -> features/models -> matching -> collection -> report -> cli

A lower layer never imports a higher one. Lengths are micrometres everywhere in the
public API, arrays are ``(rows, cols) = (y, x)`` and missing data is NaN.
"""

from ballistics._version import __version__
from ballistics.errors import BallisticsError, ScanWarning
from ballistics.scan import Scan

__all__ = ["BallisticsError", "Scan", "ScanWarning", "__version__"]
