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
