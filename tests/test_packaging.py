"""Packaging metadata agrees with itself: name, version, licence, typed marker, citation."""

from __future__ import annotations

from pathlib import Path

import pytest

import ballistics
from ballistics import _version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_distribution_name_version_and_licence():
    project = PYPROJECT["project"]
    assert project["name"] == _version.DIST_NAME == "forensic-ballistics"
    assert project["scripts"] == {"ballistics": "ballistics.cli:main"}
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "Apache License" in (REPO / "LICENSE").read_text(encoding="utf-8")[:200]
    assert any(req.startswith("filelock") for req in project["dependencies"])
    citation = (REPO / "CITATION.cff").read_text(encoding="utf-8")
    assert f'version: "{project["version"]}"' in citation
    assert "license: Apache-2.0" in citation
    assert f"## [{project['version']}]" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")


def test_typed_marker_and_main_module_ship():
    pkg = Path(ballistics.__file__).resolve().parent
    assert (pkg / "py.typed").is_file() and (pkg / "__main__.py").is_file()
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert "py.typed" in data["ballistics"]
    assert "data/*.json" in data["ballistics.matching.lr"]


# Floors that .ci/lower-bounds installs at a newer version, each with the reason in
# .ci/lower-bounds.txt and docs/install.md ("Tested versions"): the floor is declared, not tested.
UNTESTED_FLOORS = {"torch"}
# From the dev extra, the test runners that the lower-bounds job also pins at their floors.
DEV_PINNED = {"pytest", "hypothesis"}


def _floors() -> dict[str, str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [r for r in map(Requirement, project["optional-dependencies"]["dev"])
             if canonicalize_name(r.name) in DEV_PINNED]
    floors = {}
    for req in reqs:
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{req}: give exactly one '>=' floor"
        floors[canonicalize_name(req.name)] = lower[0]
    return floors


def _pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (REPO / ".ci" / "lower-bounds.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f".ci/lower-bounds.txt: {line!r} is not 'name==version'"
            assert canonicalize_name(name) not in pins, f"{name} pinned twice"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_lower_bounds_pins_equal_the_floors_in_pyproject():
    from packaging.version import Version

    floors, pins = _floors(), _pins()
    assert {"numpy", "click", "pytest", "torch"} <= set(floors)
    assert set(pins) == set(floors), (
        f"only in pyproject.toml: {sorted(set(floors) - set(pins))}; "
        f"only in .ci/lower-bounds.txt: {sorted(set(pins) - set(floors))}")
    for name, floor in floors.items():
        if name in UNTESTED_FLOORS:
            assert Version(pins[name]) >= Version(floor), name
        else:
            # compare as versions: "2.0" in pyproject.toml and "2.0.0" pinned are the same floor
            assert Version(pins[name]) == Version(floor), (
                f"{name}: pyproject.toml says >={floor}, .ci/lower-bounds.txt pins {pins[name]}")


def test_tested_versions_in_install_md_match_the_lower_bounds_job():
    install = (REPO / "docs" / "install.md").read_text(encoding="utf-8")
    assert "## Tested versions" in install
    section = install.split("## Tested versions", 1)[1].split("\n## ", 1)[0]
    for name, version in _pins().items():
        assert f"| {name} | {version} |" in section, f"docs/install.md: {name} {version} missing"
    for name in UNTESTED_FLOORS:
        assert f"{name} floor" in section and "not tested" in section
