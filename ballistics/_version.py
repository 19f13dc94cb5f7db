"""Single source of the package version (kept in step with pyproject.toml).

The distribution is ``forensic-ballistics`` (the PyPI name ``ballistics`` belongs to an
unrelated exterior-ballistics package); the import package and the command are ``ballistics``.
"""

from importlib import metadata

#: The name ``pip`` knows this project by (``pip show forensic-ballistics``).
DIST_NAME = "forensic-ballistics"

try:  # pragma: no cover - depends on how the package was installed
    __version__ = metadata.version(DIST_NAME)
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.1.0"
