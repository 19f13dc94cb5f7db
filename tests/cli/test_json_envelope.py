"""The envelope of every JSON object the command line prints (``schema``, ``version``,
``versions``, ``warnings``), the versions helper, and the CSV writer of ``--csv``."""

from __future__ import annotations

import ast
import csv
import importlib.metadata
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ballistics.cli.common import emit_json, write_csv
from ballistics.provenance import SCHEMA, VERSION_KEYS, versions

CLI = Path(__file__).resolve().parents[2] / "ballistics" / "cli"


def test_emit_json_adds_schema_versions_and_merges_warnings(capsys):
    emit_json({"warnings": ["a"], "count": 3, "version": "given"}, warnings_=["a", "b"])
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["schema", "count", "version", "versions", "warnings"]
    assert out["schema"] == SCHEMA == 1 and out["count"] == 3 and out["version"] == "given"
    assert out["warnings"] == ["a", "b"] and tuple(out["versions"]) == VERSION_KEYS
    emit_json({"n": float("nan")})
    out = json.loads(capsys.readouterr().out)
    assert out["n"] is None and out["versions"] == versions()
    assert list(out) == ["schema", "n", "version", "versions", "warnings"]  # README: all four
    assert out["warnings"] == []


def test_versions_come_from_the_installed_distributions_without_imports():
    code = ("import sys, json\n"
            "from ballistics.provenance import versions\n"
            "v = versions()\n"
            "heavy = [m for m in ('torch', 'cv2', 'faiss', 'h5py', 'scipy') if m in sys.modules]\n"
            "print(json.dumps([v, heavy]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=CLI.parents[1])
    assert r.returncode == 0, r.stderr
    v, heavy = json.loads(r.stdout)
    assert heavy == []
    assert v == versions()  # the same in a process that imported them (this one did)
    assert v["numpy"] == importlib.metadata.version("numpy")
    assert v["torch"] == importlib.metadata.version("torch")
    opencv = {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()
              if d.metadata["Name"] and d.metadata["Name"].lower().startswith("opencv")}
    assert v["opencv"] is not None and v["opencv"] in opencv.values()
    assert v["python"] == ".".join(map(str, sys.version_info[:3]))


def test_every_json_command_prints_through_emit_json():
    """A command module that takes --json prints JSON only with emit_json (which adds the
    envelope); no module but common.py serialises JSON for stdout itself."""
    with_json = []
    for path in sorted(CLI.glob("*.py")):
        if path.name == "common.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not ({"dumps", "dump"} & (names | attrs)), f"{path.name} serialises JSON itself"
        if "json_option" in names:
            with_json.append(path.stem)
            assert "emit_json" in names, f"{path.name} takes --json but never calls emit_json"
    assert {"compare", "search", "striae", "info", "ingest", "calibrate", "verify", "index",
            "demo", "embed", "train", "synth", "preprocess"} <= set(with_json)


def test_write_csv_fields(tmp_path, capsys):
    rows = [{"a": 0.1 + 0.2, "b": None, "c": True, "d": np.float32(1.5), "e": "µm, \"x\""},
            {"a": float("nan"), "b": np.int64(7), "c": np.bool_(False), "d": 2, "e": ""}]
    path = tmp_path / "t.csv"
    write_csv(str(path), ["a", "b", "c", "d", "e"], rows)
    with open(path, newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert float(got[0]["a"]) == 0.1 + 0.2  # shortest round-trip digits, as in the JSON
    assert got[0]["b"] == "" and got[0]["c"] == "true" and got[0]["d"] == "1.5"
    assert got[0]["e"] == "µm, \"x\""
    assert got[1] == {"a": "", "b": "7", "c": "false", "d": "2", "e": ""}
    write_csv("-", ["a"], [{"a": 1}])
    assert list(csv.reader(io.StringIO(capsys.readouterr().out))) == [["a"], ["1"]]

