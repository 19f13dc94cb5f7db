"""Scan files: X3P (ISO 25178-72) and 2D image readers and writers.

Only this package converts units (X3P stores metres; everything else uses µm).

- :func:`read_scan` reads ``.x3p`` (strict x3pio path plus a tolerant path for real-world
  variants), ``.png .tif .tiff .jpg .jpeg`` images, and ``.al3d .sur .plu .vk4`` through
  surfalize (extra ``formats``).
- :func:`write_x3p` writes a scan so that it reads back bit-for-bit, metadata and provenance
  included.
- :func:`scan_info` reads a file's header only; :func:`sha256_file` hashes a file;
  :func:`read_mask_png` reads a user mask.
- :func:`same_measurement` says when two scans are one measurement (the same file, or two
  exports of one measurement by the same instrument at the same time).
"""

from ballistics.io._common import sha256_file
from ballistics.io.identity import same_measurement
from ballistics.io.images import read_mask_png
from ballistics.io.reader import (
    SUPPORTED_SUFFIXES,
    ScanInfo,
    file_format,
    read_scan,
    scan_info,
)
from ballistics.io.x3p_write import write_x3p

__all__ = [
    "SUPPORTED_SUFFIXES",
    "ScanInfo",
    "file_format",
    "read_mask_png",
    "read_scan",
    "same_measurement",
    "scan_info",
    "sha256_file",
    "write_x3p",
]
