"""One exception hierarchy for the whole toolkit.

Every error a user can cause or act on is a :class:`BallisticsError`. Each carries an
``exit_code`` that the CLI uses: 2 for bad input (a file, a parameter, a scan that is
unfit), 1 for other failures. Messages name the file (when there is one) and say what
to do about the problem.
"""

from __future__ import annotations

import os


class ScanWarning(UserWarning):
    """A deviation that was tolerated (a non-standard file, a corrected unit, a fallback).

    Warnings of this class are also recorded in the ``warnings`` of the object they
    concern (a :class:`~ballistics.scan.Scan`, a result), so JSON output can list them.
    """


class BallisticsError(Exception):
    """Base class of every error raised on purpose by ``ballistics``.

    Parameters
    ----------
    message
        What went wrong and, where possible, what to do about it.
    path
        The file concerned, if any; it is prefixed to ``str(error)``.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


# --- bad input (exit code 2) -------------------------------------------------------------
class InputError(BallisticsError):
    """Bad input: a file, an argument or a scan that cannot be used as given."""

    exit_code = 2


class ScanFileNotFoundError(InputError):
    """The input file does not exist or is not a regular file."""


class UnsupportedFormatError(InputError):
    """The file extension or content is not a format ``ballistics`` reads."""


class UnsupportedFeatureError(InputError):
    """The file is valid but uses a feature that is not supported (profiles, point clouds)."""


class CorruptFileError(InputError):
    """The file is damaged: not a zip, no ``main.xml``, malformed XML, truncated data."""


class UnsafeFileError(CorruptFileError):
    """The file tries something dangerous (XML entity expansion, external entities, huge sizes)."""


class ChecksumError(CorruptFileError):
    """A stored checksum does not match the data (read anyway with ``verify=False``)."""


class SizeMismatchError(CorruptFileError):
    """The declared matrix size does not match the stored data."""


class EmptyScanError(InputError):
    """The scan has no points, or no valid (non-NaN) points where some are needed."""


class MissingSpacingError(InputError):
    """An image carries no pixel spacing and none was given with ``spacing_um``."""


class ParameterError(InputError):
    """A parameter is outside its valid range; the message gives the range."""


class ModalityMismatchError(InputError):
    """Two inputs of different modality (topography vs image) cannot be compared, or a file's
    modality contradicts the one asked (``read_scan(..., modality=...)``, ``--modality``)."""


class SegmentationError(InputError):
    """The breech-face region (primer, firing pin) could not be found."""


class UnfitScanError(InputError):
    """The quality verdict rejects the scan for comparison; the message gives the reason."""


class NoSignatureError(InputError):
    """A striated region yields no measurable striation signature."""


# --- other failures (exit code 1) -------------------------------------------------------
class DependencyError(BallisticsError):
    """An optional dependency is missing; the message names the extra to install."""


class CollectionError(BallisticsError):
    """A reference collection cannot be used as asked."""


class NotACollectionError(CollectionError, InputError):
    """The path given as a collection holds no collection (no ``manifest.json``): bad input,
    exit code 2, whichever command was given it.

    Parameters
    ----------
    message
        Default: what is wrong and how to get a collection.
    path
        The folder given as the collection.
    """

    def __init__(self, message: str | None = None, *,
                 path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message or (
            "not a collection (no manifest.json); give the folder that `ballistics ingest` "
            "created, or create one with `ballistics ingest SCANS... --collection DIR`"),
            path=path)


class CollectionLockedError(CollectionError):
    """Another process holds the collection's write lock."""


class CollectionCorruptError(CollectionError):
    """A collection file fails its checksum or cannot be read; the message gives the fix."""


class ModelError(BallisticsError):
    """An embedding model cannot be loaded or does not fit the input."""


__all__ = [
    "BallisticsError",
    "ChecksumError",
    "CollectionCorruptError",
    "CollectionError",
    "CollectionLockedError",
    "CorruptFileError",
    "DependencyError",
    "EmptyScanError",
    "InputError",
    "MissingSpacingError",
    "NotACollectionError",
    "ModalityMismatchError",
    "ModelError",
    "NoSignatureError",
    "ParameterError",
    "ScanFileNotFoundError",
    "ScanWarning",
    "SegmentationError",
    "SizeMismatchError",
    "UnfitScanError",
    "UnsafeFileError",
    "UnsupportedFeatureError",
    "UnsupportedFormatError",
]
