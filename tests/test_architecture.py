"""The package layering of ``docs/architecture.md``: every import follows the table below,
the packages form no cycle, and the public face loads lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ballistics"
BASE = {"_version", "_lazy", "errors", "scan", "params", "device", "progress", "jsonutil",
        "provenance"}

#: unit -> the units it may import (besides itself); the same table is in docs/architecture.md
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "io": {"base"},
    "datasets": {"base", "io"},
    "preprocess": {"base"},
    "models": {"base", "io", "datasets", "preprocess"},
    "matching.lr": {"base"},
    "matching.breechface": {"base", "preprocess"},
    "matching.striae": {"base", "preprocess"},
    "matching": {"base", "matching.breechface", "matching.striae", "matching.lr"},
    "collection": {"base"},
    "report": {"base", "preprocess", "matching", "matching.breechface", "matching.striae",
               "matching.lr"},
    "workflows": {"base", "io", "datasets", "preprocess", "models", "matching",
                  "matching.breechface", "matching.striae", "matching.lr", "collection",
                  "report"},
}
ALLOWED["cli"] = set(ALLOWED) - {"cli"}


def unit(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in BASE:
        return "base"
    if parts[1] == "__main__":  # ``python -m ballistics``: the command's other entry point
        return "cli"
    if parts[1] == "matching" and len(parts) > 2 and parts[2] in ("breechface", "striae", "lr"):
        return f"matching.{parts[2]}"
    return parts[1]


def imports() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every ``ballistics`` import, lazy ones
    inside functions included."""
    out = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        mod = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if mod == "ballistics":  # the public face: its names load lazily; typing-only imports
            tree.body = [n for n in tree.body if not (isinstance(n, ast.If)
                                                      and "TYPE_CHECKING" in ast.unparse(n.test))]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                targets = [n for n in names[:1] if n.startswith("ballistics")]
                # ``from ballistics.matching import striae`` imports the subpackage
                targets += [n for n in names[1:] if unit(n) != unit(node.module)
                            and (PKG.parent / n.replace(".", "/")).exists()]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("ballistics")]
            else:
                continue
            out += [(mod, t, node.lineno) for t in targets]
    return out


def test_every_import_follows_the_layering() -> None:
    bad = [f"{src} (line {line}) imports {dst}: {unit(src)} may not import {unit(dst)}"
           for src, dst, line in imports()
           if unit(dst) != unit(src) and unit(dst) not in ALLOWED[unit(src)]]
    assert not bad, "\n".join(bad)


def test_the_table_has_no_cycle_and_names_every_package() -> None:
    units = {unit(m) for m, _, _ in imports()} | {unit(d) for _, d, _ in imports()}
    assert units <= set(ALLOWED), units - set(ALLOWED)
    state: dict[str, int] = {}

    def visit(u: str, path: tuple[str, ...]) -> None:
        assert state.get(u) != 1, f"cycle: {' -> '.join((*path, u))}"
        if state.get(u) == 2:
            return
        state[u] = 1
        for v in ALLOWED[u]:
            visit(v, (*path, u))
        state[u] = 2

    for u in ALLOWED:
        visit(u, ())


def test_a_violation_is_caught(tmp_path) -> None:
    assert unit("ballistics.collection.store") == "collection"
    assert unit("ballistics.matching.breechface._engine") == "matching.breechface"
    assert unit("ballistics.scan") == "base" and unit("ballistics") == "base"
    assert unit("ballistics.matching.evidence") == "matching"
    assert "report" not in ALLOWED["collection"] and "workflows" not in ALLOWED["report"]


def test_import_ballistics_is_light() -> None:
    code = ("import sys, ballistics, ballistics.matching, ballistics.cli\n"
            "heavy = [m for m in ('torch', 'faiss', 'matplotlib', 'h5py', 'sklearn') "
            "if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert callable(ballistics.compare) and 'torch' in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_public_names_resolve() -> None:
    import ballistics

    for name in ballistics.__all__:
        assert getattr(ballistics, name) is not None, name
    assert ballistics.preprocess.preprocess is not None and callable(ballistics.preprocess)
