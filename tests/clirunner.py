"""``click.testing.CliRunner`` with the same result attributes on click 8.1 and click >= 8.2.

click >= 8.2 always keeps the streams apart: ``result.stdout`` is standard output alone,
``result.stderr`` standard error alone, and ``result.output`` both, as a terminal shows them.
click 8.1 (the floor in pyproject.toml) mixes standard error into standard output unless the
runner is made with ``mix_stderr=False`` (an argument that click 8.2 removed), and then its
``result.output`` holds standard output only. The runner below asks click 8.1 for separate
streams and gives its results an ``output`` of standard output followed by standard error, so
a test reads ``.stdout``, ``.stderr`` and ``.output`` the same way under either version.
"""

from __future__ import annotations

import inspect
from typing import Any

from click.testing import CliRunner as _ClickRunner
from click.testing import Result

#: True under click < 8.2, whose runner takes ``mix_stderr`` (and mixes by default).
MIXES_STDERR = "mix_stderr" in inspect.signature(_ClickRunner.__init__).parameters


class _SeparateResult(Result):
    """A click 8.1 result whose ``output`` is standard output then standard error."""

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class CliRunner(_ClickRunner):
    """Test runner with separate ``.stdout`` and ``.stderr`` and a combined ``.output``."""

    def __init__(self, **kwargs: Any) -> None:
        if MIXES_STDERR:
            kwargs.setdefault("mix_stderr", False)
        super().__init__(**kwargs)

    def invoke(self, *args: Any, **kwargs: Any) -> Result:
        result = super().invoke(*args, **kwargs)
        if MIXES_STDERR and not getattr(self, "mix_stderr", True):
            separate = _SeparateResult.__new__(_SeparateResult)
            separate.__dict__.update(result.__dict__)
            return separate
        return result
