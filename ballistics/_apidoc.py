"""Write ``docs/api.md``, the API reference, from the public names and their docstrings.

Run from the repository root::

    python -m ballistics._apidoc            # (re)write docs/api.md
    python -m ballistics._apidoc --check    # exit 1 when docs/api.md is out of date

For each package (the public face ``ballistics`` first, then the packages in layer order) the
page gives a heading, the first paragraph of the package docstring, then, for each name of
its ``__all__`` (sorted), the signature (:func:`inspect.signature`) and the first paragraph of
its numpydoc docstring. Packages without ``__all__`` (``workflows``, ``report``) are listed by
their modules: a module's ``__all__`` when it has one, else the public functions and classes it
defines (``report``: only modules with ``__all__``). The output is deterministic: sorted, no
memory addresses, no absolute paths. Standard library only (it imports the packages, so torch
and the rest are loaded).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "docs" / "api.md"

#: the packages documented, in layer order; ``ballistics`` is the public face.
PACKAGES: tuple[str, ...] = (
    "ballistics",
    "ballistics.io",
    "ballistics.datasets",
    "ballistics.datasets.synthetic",
    "ballistics.preprocess",
    "ballistics.models",
    "ballistics.matching",
    "ballistics.matching.breechface",
    "ballistics.matching.striae",
    "ballistics.matching.lr",
    "ballistics.collection",
    "ballistics.report",
    "ballistics.workflows",
)

#: packages documented module by module (they have no ``__all__`` of their own), and whether a
#: module without ``__all__`` is still listed by the functions and classes it defines.
BY_MODULE: dict[str, bool] = {"ballistics.report": False, "ballistics.workflows": True}

_SIMPLE = (str, int, float, bool)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _scrub(text: str) -> str:
    """Drop memory addresses and absolute paths of this checkout or of the interpreter."""
    text = _ADDRESS.sub("", text)
    for root in sorted({str(REPO), sys.prefix, sys.base_prefix, str(Path.home())},
                       key=len, reverse=True):
        if root and root != "/":
            text = text.replace(root + "/", "").replace(root, "")
    return text


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, joined to one line ('' when there is none)."""
    if not doc:
        return ""
    lines = inspect.cleandoc(doc).splitlines()
    para: list[str] = []
    for line in lines:
        if not line.strip():
            if para:
                break
            continue
        para.append(line.strip())
    return _scrub(" ".join(para))


def _own_doc(obj: Any) -> str | None:
    """The object's own docstring (classes do not inherit one; data has none)."""
    if inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj):
        return obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    return None


class _Text:
    """An annotation written as text (``from __future__ import annotations``), shown bare."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _bare(annotation: Any) -> Any:
    return _Text(annotation) if isinstance(annotation, str) else annotation


def _signature(name: str, obj: Any) -> str:
    """``name(params) -> return`` with annotations as written; classes without the return."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        if inspect.isclass(obj):
            bases = ", ".join(b.__name__ for b in obj.__bases__ if b is not object)
            return f"{name}({bases})" if bases else name
        return f"{name}(...)"
    params = [p.replace(annotation=_bare(p.annotation)) for p in sig.parameters.values()]
    ret = inspect.Signature.empty if inspect.isclass(obj) else _bare(sig.return_annotation)
    return f"{name}{sig.replace(parameters=params, return_annotation=ret)}"


def _members(cls: type) -> list[str]:
    """Public methods and properties a class defines itself."""
    out = []
    for attr, value in vars(cls).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, (property, staticmethod, classmethod)) or inspect.isfunction(value):
            out.append(attr)
    return sorted(out)


def describe(name: str, obj: Any) -> tuple[str, str, list[str]]:
    """(code line, summary, members) of one public name."""
    if inspect.ismodule(obj):
        inner = getattr(obj, name.rsplit(".", 1)[-1], None)
        code = f"import {obj.__name__}"
        if callable(inner):
            code = _signature(name, inner)
        return code, first_paragraph(obj.__doc__), []
    if inspect.isclass(obj):
        kind = "class "
        return (kind + _signature(name, obj), first_paragraph(_own_doc(obj)), _members(obj))
    if callable(obj):
        return _signature(name, obj), first_paragraph(_own_doc(obj)), []
    text = f"{name}: {type(obj).__name__}"
    simple = isinstance(obj, _SIMPLE) or (
        isinstance(obj, (tuple, frozenset)) and all(isinstance(v, _SIMPLE) for v in obj))
    if simple and not name.startswith("__"):
        value = repr(tuple(sorted(obj)) if isinstance(obj, frozenset) else obj)
        if len(value) <= 120:
            text += f" = {value}"
    return text, "", []


def _origin(name: str, obj: Any, where: str) -> str:
    """'alias of module.name' when the object is defined elsewhere under another name."""
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    if inspect.ismodule(obj) or not isinstance(mod, str) or not isinstance(qual, str):
        return ""
    if qual != name:
        return f"Alias of `{mod}.{qual}`."
    return f"Defined in `{mod}`." if mod != where else ""


def public_names(module: ModuleType, defined_only: bool) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return sorted(names)
    if not defined_only:
        return []
    return sorted(n for n, v in vars(module).items()
                  if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
                  and v.__module__ == module.__name__)


def _submodules(package: ModuleType) -> list[str]:
    if package.__file__ is None:  # a namespace package: no files of its own
        return []
    path = Path(package.__file__).parent
    return sorted(f"{package.__name__}.{p.stem}" for p in path.glob("*.py")
                  if not p.stem.startswith("_"))


def _section(level: str, module: ModuleType, names: list[str]) -> Iterator[str]:
    yield f"{level} `{module.__name__}`"
    yield ""
    summary = first_paragraph(module.__doc__)
    if summary:
        yield summary
        yield ""
    for name in names:
        obj = getattr(module, name)
        code, summary, members = describe(name, obj)
        yield f"{level}# `{module.__name__}.{name}`"
        yield ""
        yield "```python"
        yield _scrub(code)
        yield "```"
        yield ""
        origin = _origin(name, obj, module.__name__)
        if origin:
            yield origin
            yield ""
        if summary:
            yield summary
            yield ""
        if members:
            yield "Members: " + ", ".join(f"`{m}`" for m in members) + "."
            yield ""


def generate() -> str:
    """The text of ``docs/api.md``."""
    out = [
        "# API reference",
        "",
        "Generated from the docstrings by `python -m ballistics._apidoc`; do not edit (a test",
        "fails when this page is out of date). Each package lists the names of its `__all__`;",
        "the layout and the import rules are in [architecture](architecture.md).",
        "",
    ]
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        if pkg_name in BY_MODULE:
            out.extend(_section("##", pkg, []))
            for mod_name in _submodules(pkg):
                mod = importlib.import_module(mod_name)
                names = public_names(mod, BY_MODULE[pkg_name])
                if names:
                    out.extend(_section("###", mod, names))
        else:
            out.extend(_section("##", pkg, public_names(pkg, False)))
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ballistics._apidoc",
                                 description="write docs/api.md from the docstrings")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when the file is out of date instead of writing it")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = ap.parse_args(argv)
    text = generate()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
        if current != text:
            print(f"{args.output.name} is out of date; run `python -m ballistics._apidoc`",
                  file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
