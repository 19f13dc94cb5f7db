"""Single source of the package version (kept in step with pyproject.toml)."""

from importlib import metadata

try:  # pragma: no cover - depends on how the package was installed
    __version__ = metadata.version("ballistics")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.1.0"
