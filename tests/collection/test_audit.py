"""Audit log: one JSON line per event, torn last lines skipped, fields present."""

from __future__ import annotations

import json

from ballistics.collection.audit import AUDIT_NAME, log_event, read_audit


def test_append_and_read_back(tmp_path):
    log_event(tmp_path, "ingest", {"workers": 2}, inputs=[{"path": "a.x3p", "sha256": "ab"}],
              result={"ingested": 3, "nan": float("nan")})
    log_event(tmp_path, "search", {"top": 10}, result={"queries": 1})
    with open(tmp_path / AUDIT_NAME, "a") as fh:
        fh.write('{"time": "torn')  # a crash mid-line
    entries = list(read_audit(tmp_path))
    assert [e["command"] for e in entries] == ["ingest", "search"]
    e = entries[0]
    assert set(e) == {"time", "user", "host", "pid", "command", "parameters", "inputs",
                      "version", "versions", "result"}
    from ballistics.provenance import versions

    assert e["versions"] == versions() and e["versions"]["ballistics"] == e["version"]
    assert e["time"].endswith("+00:00") and e["parameters"] == {"workers": 2}
    assert e["result"] == {"ingested": 3, "nan": None}
    lines = (tmp_path / AUDIT_NAME).read_text().splitlines()
    assert json.loads(lines[1])["command"] == "search"
