"""Lazily loaded public names of a package (PEP 562 ``__getattr__`` / ``__dir__``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, names: Mapping[str, str], namespace: dict[str, Any]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``names`` live in modules.

    ``names`` maps a public name to its module: a submodule name relative to ``package``
    (``"comparison"``) or an absolute module name (``"ballistics.io"``). The module is
    imported on first use of a name, so importing the package stays cheap.
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            module = names[name]
            full = module if module.startswith("ballistics") else f"{package}.{module}"
            return getattr(importlib.import_module(full), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
