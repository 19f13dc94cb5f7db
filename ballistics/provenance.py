"""What made an output: the schema number of the CLI's JSON, the software versions and the
``ballistics compare`` command line that gives a comparison's numbers again.

One helper for every place that records provenance: the JSON objects of the command line
(``ballistics.cli.common.emit_json``), the HTML reports (``ballistics.report.html.page``)
and the collection's audit log (``ballistics.collection.audit``).

:func:`versions` imports nothing: each library's version is the one of its installed
distribution (``importlib.metadata``, about 20 ms the first time, cached for the process),
so every command reports the same, whether it imported the library or not; a library without
package metadata reports its ``__version__`` when the process has imported it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import sys
from pathlib import Path

from ballistics._version import __version__

__all__ = ["SCHEMA", "VERSION_KEYS", "compare_argv", "versions"]

#: Version of the layout of the CLI's JSON objects (``"schema"`` in each). It is raised when
#: a key is removed or changes meaning; new keys alone do not raise it.
SCHEMA = 1

#: key in ``versions()`` -> (import name, distribution names that provide it, in order)
_LIBRARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "numpy": ("numpy", ("numpy",)),
    "scipy": ("scipy", ("scipy",)),
    "torch": ("torch", ("torch",)),
    "opencv": ("cv2", ("opencv-python-headless", "opencv-python",
                       "opencv-contrib-python-headless", "opencv-contrib-python")),
    "faiss": ("faiss", ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11",
                        "faiss")),
    "h5py": ("h5py", ("h5py",)),
}

#: the keys of :func:`versions`, in order
VERSION_KEYS: tuple[str, ...] = ("ballistics", "python", *_LIBRARIES)


@functools.cache
def _installed(distributions: tuple[str, ...]) -> str | None:
    for dist in distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _library_version(module: str, distributions: tuple[str, ...]) -> str | None:
    found = _installed(distributions)
    if found is None:  # no package metadata (e.g. a source build): the module's own, if loaded
        v = getattr(sys.modules.get(module), "__version__", None)
        found = None if v is None else str(v)
    return found


def versions() -> dict[str, str | None]:
    """The versions of this toolkit, Python and the libraries its results depend on.

    Returns
    -------
    dict
        ``ballistics``, ``python``, ``numpy``, ``scipy``, ``torch``, ``opencv``, ``faiss``,
        ``h5py`` (:data:`VERSION_KEYS`) -> version string (the distribution's, e.g.
        ``opencv-python-headless`` 4.10.0.84), ``None`` for a library that is not
        installed. Nothing is imported to find them.
    """
    out: dict[str, str | None] = {"ballistics": __version__,
                                  "python": platform.python_version()}
    for key, (module, dists) in _LIBRARIES.items():
        out[key] = _library_version(module, dists)
    return out


def compare_argv(reference: str | Path, target: str | Path, *, preset: str | None = None,
                 rotation: str | None = None, preprocess: str = "auto",
                 spacing_um: float | None = None, modality: str | None = None,
                 verify: bool = True, strict: bool = False,
                 collection: str | Path | None = None,
                 report: str | Path | None = None) -> list[str]:
    """The arguments of a ``ballistics compare`` command line (``["ballistics", "compare",
    ...]``): the two inputs (and ``report``, ``collection``) as absolute paths, so that it
    runs from any folder, then every option that is not the command's default."""
    args = ["ballistics", "compare", os.path.abspath(reference), os.path.abspath(target)]
    if report is not None:
        args += ["--report", os.path.abspath(report)]
    if preset not in (None, "default"):
        args += ["--preset", str(preset)]
    if rotation is not None:
        args.append(f"--rotation={rotation}")
    if preprocess != "auto":
        args += ["--preprocess", preprocess]
    if spacing_um is not None:
        args += ["--spacing-um", f"{float(spacing_um):g}"]
    if modality is not None:
        args += ["--modality", modality]
    if not verify:
        args.append("--no-verify")
    if strict:
        args.append("--strict")
    if collection is not None:
        args += ["--collection", os.path.abspath(collection)]
    return args
