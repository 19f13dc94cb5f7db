"""Data sets: the synthetic casing generator and study manifests.

- :mod:`ballistics.datasets.synthetic`: synthetic firearms and casings with ground truth
  (:func:`~ballistics.datasets.synthetic.make_firearm`,
  :func:`~ballistics.datasets.synthetic.fire`, :func:`~ballistics.datasets.synthetic.generate`).
- :mod:`ballistics.datasets.manifest`: :func:`read_manifest` for ``manifest.csv`` files.

This package sits beside :mod:`ballistics.io`; it imports nothing above it.
"""

from ballistics.datasets.manifest import read_manifest

__all__ = ["read_manifest"]
