"""The case a report belongs to: case number, exhibit, examiner and notes.

:class:`CaseInfo` is what ``--case``, ``--exhibit``, ``--examiner``, ``--notes`` and
``--case-file`` give on the command line (``ballistics.cli.common.case_options``): the
"Case" table at the head of every report, the ``case`` key of the JSON output and the
``case`` of a search's audit-log line. The toolkit does not interpret the fields; it records
them as given (surrounding white space removed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ballistics.errors import InputError, ParameterError

__all__ = ["CASE_KEYS", "CaseInfo", "utc_now"]

#: the fields of a case, in the order reports show them
CASE_KEYS: tuple[str, ...] = ("case", "exhibit", "examiner", "notes")

#: longest accepted text per field (characters); a case file is read up to 1 MiB
_MAX_CHARS = {"case": 200, "exhibit": 200, "examiner": 200, "notes": 20_000}
_MAX_FILE_BYTES = 1 << 20


def utc_now() -> str:
    """The current time in UTC as ISO 8601 to the second, e.g. ``2026-12-08T09:14:03Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ParameterError(f"case field {key!r} must be text, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) > _MAX_CHARS[key]:
        raise ParameterError(f"case field {key!r} is {len(text)} characters long; at most "
                             f"{_MAX_CHARS[key]} are accepted")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        raise ParameterError(f"case field {key!r} contains control characters")
    if key != "notes" and "\n" in text:
        raise ParameterError(f"case field {key!r} must be one line")
    return text or None


@dataclass(frozen=True)
class CaseInfo:
    """Case number, exhibit, examiner and free-text notes of a report (each optional).

    Parameters
    ----------
    case, exhibit, examiner
        One line of text each (at most 200 characters); ``None`` when not given.
    notes
        Free text (at most 20,000 characters, line breaks kept); ``None`` when not given.

    Raises
    ------
    ParameterError
        A field that is not text, too long, or (other than ``notes``) spans lines.
    """

    case: str | None = None
    exhibit: str | None = None
    examiner: str | None = None
    notes: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _text(f.name, getattr(self, f.name)))

    @property
    def is_empty(self) -> bool:
        """True when no field is given."""
        return all(getattr(self, k) is None for k in CASE_KEYS)

    def to_dict(self) -> dict[str, str | None]:
        """``{"case", "exhibit", "examiner", "notes"}`` (``None`` where not given): the
        ``case`` key of the command line's JSON."""
        return {k: getattr(self, k) for k in CASE_KEYS}

    def rows(self) -> list[tuple[str, str]]:
        """``(field, value)`` rows of the report's "Case" table ("not given" where absent)."""
        return [(k, "not given" if getattr(self, k) is None else getattr(self, k))
                for k in CASE_KEYS]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str | None = None) -> CaseInfo:
        """A case from a mapping with (some of) the keys :data:`CASE_KEYS`; any other key
        is an error (a misspelt field would otherwise be lost silently)."""
        unknown = sorted(set(data) - set(CASE_KEYS))
        if unknown:
            raise InputError(f"unknown case field(s) {', '.join(map(repr, unknown))}; the "
                             f"fields are {', '.join(CASE_KEYS)}", path=source)
        try:
            return cls(**{k: data.get(k) for k in CASE_KEYS})
        except ParameterError as exc:
            raise ParameterError(exc.message, path=source) from None

    @classmethod
    def read(cls, path: str | Path) -> CaseInfo:
        """A case from a small JSON file holding one object with (some of) the keys
        ``case``, ``exhibit``, ``examiner``, ``notes``.

        Raises
        ------
        InputError
            The file is missing, larger than 1 MiB, not UTF-8 JSON, not one object, or
            names another key.
        """
        p = Path(path)
        try:
            size = p.stat().st_size
            if size > _MAX_FILE_BYTES:
                raise InputError(f"the case file is {size} bytes; a case file is a small JSON "
                                 "object (at most 1 MiB)", path=str(path))
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("case file not found", path=str(path)) from None
        except IsADirectoryError:
            raise InputError("the case file is a folder; give a JSON file", path=str(path)
                             ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"the case file is not JSON ({exc})", path=str(path)) from None
        if not isinstance(data, dict):
            raise InputError('the case file must hold one JSON object, e.g. {"case": '
                             '"2026-0412", "exhibit": "Q1"}', path=str(path))
        return cls.from_mapping(data, source=str(path))

    def updated(self, **given: str | None) -> CaseInfo:
        """A copy with the fields given (not ``None``) replacing these: options override
        the case file."""
        return CaseInfo(**{k: given.get(k) if given.get(k) is not None else getattr(self, k)
                           for k in CASE_KEYS})
