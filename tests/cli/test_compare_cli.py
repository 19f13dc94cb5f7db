"""``ballistics compare``: JSON contract, report, errors (small synthetic X3P files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ballistics.cli import main
from ballistics.scan import Scan
from tests.clirunner import CliRunner
from tests.surfaces import ellipse_surface, turned


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from ballistics.io import write_x3p

    d = tmp_path_factory.mktemp("cmp")
    ref = ellipse_surface(1)
    tgt = turned(ref)
    paths = []
    for name, h in (("a.x3p", ref), ("b.x3p", tgt)):
        p = d / name
        write_x3p(Scan(h, (12.5, 12.5)), p)  # about 1.8 mm² measured: fit for comparison
        paths.append(str(p))
    return paths, d


def test_compare_json_and_report(files):
    (a, b), d = files
    report = d / "r.html"
    res = CliRunner().invoke(main, ["compare", a, b, "--preset", "cmcR", "--rotation", "-6,3,3",
                                    "--processed", "--json", "--report", str(report),
                                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["reference"]["path"] == a and len(out["reference"]["sha256"]) == 64
    assert out["target"]["path"] == b
    for key in ("cmc_count", "cmc_count_high", "cmc_count_combined", "theta_deg", "dx_um",
                "dy_um", "ccf_max", "cells", "features", "params", "version", "warnings"):
        assert key in out
    assert out["params"]["theta_min_deg"] == -6 and out["params"]["search"] == "exact"
    assert len(out["cells"]) == 64 and out["cells"][9]["index"] == [2, 2]
    assert out["cmc_count"] >= 5
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("<img") == 4
    assert "http://" not in text and "https://" not in text
    assert "<h2>Software versions</h2>" in text and "<td>torch</td>" in text  # provenance


def test_compare_text_output(files):
    (a, b), _ = files
    res = CliRunner().invoke(main, ["compare", a, b, "--preset", "cmcR", "--rotation", "-3,0,3",
                                    "--processed", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "CMC count (reference -> target)" in res.stdout


def test_compare_bad_input_exit_codes(files, tmp_path):
    (a, _), _ = files
    res = CliRunner().invoke(main, ["compare", a, str(tmp_path / "missing.x3p"), "--processed"])
    assert res.exit_code == 2
    assert "error:" in res.stderr and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["compare", a, a, "--processed", "--rotation", "1,2"])
    assert res.exit_code == 2
    assert "rotation" in res.stderr
    for rotation in ("0,360,0", "30,-30,3"):  # checked before the (missing) scans are read
        res = CliRunner().invoke(main, ["compare", str(tmp_path / "missing.x3p"), a,
                                        "--rotation", rotation])
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith(f"error: --rotation {rotation}: "), res.stderr
        assert "missing.x3p" not in res.stderr
        assert "theta_" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "missing.x3p"), a,
                                    "--rotation", "30,-30,3"])
    assert res.stderr.strip() == ("error: --rotation 30,-30,3: MIN (30) is above MAX (-30); "
                                  "give MIN,MAX,STEP in degrees")
    for bad in ("-1", "0"):  # ignored for X3P files, but never silently accepted
        res = CliRunner().invoke(main, ["compare", a, a, "--processed", "--spacing-um", bad])
        assert res.exit_code == 2 and "--spacing-um" in res.stderr, res.output
        assert len(res.stderr.strip().splitlines()) == 1
    from ballistics.io import write_x3p

    tiny = tmp_path / "tiny.x3p"
    write_x3p(Scan(ellipse_surface(5, (40, 30)), (6.25, 6.25)), tiny)
    res = CliRunner().invoke(main, ["compare", a, str(tiny), "--processed"])
    assert res.exit_code == 2
    assert "unfit for comparison" in res.stderr and "tiny.x3p" in res.stderr


def _csv_value(text: str):
    """A field of the CSV back to the JSON's value (empty = null)."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return float(text)


def test_compare_csv_agrees_with_json(files):
    import csv

    from ballistics.cli.compare import CELL_CSV_COLUMNS
    from ballistics.provenance import SCHEMA, VERSION_KEYS

    (a, b), d = files
    table = d / "cells.csv"
    res = CliRunner().invoke(main, ["compare", a, b, "--preset", "cmcR", "--rotation", "-3,0,3",
                                    "--processed", "--json", "--csv", str(table),
                                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["schema"] == SCHEMA == 1 and tuple(out["versions"]) == VERSION_KEYS
    with open(table, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CELL_CSV_COLUMNS
        rows = [{k: (v if k in ("direction", "cellIndex") else _csv_value(v))
                 for k, v in r.items()} for r in reader]
    fwd = [r for r in rows if r["direction"] == "refToTarget"]
    rev = [r for r in rows if r["direction"] == "targetToRef"]
    assert len(fwd) == len(out["cells"]) == 64 and len(rev) == 64
    pairs = {"theta": "theta_deg", "dx_um": "dx_um", "dy_um": "dy_um", "fft_ccf": "ccf",
             "pairwiseCompCor": "corr", "refMissingProp": "missing_fraction",
             "valid": "valid", "is_cmc": "is_cmc", "is_high_cmc": "is_high_cmc"}
    for r, c in zip(fwd, out["cells"], strict=True):
        assert [r["row"], r["col"]] == c["index"]
        assert r["cellIndex"] == f"{c['cmcr_index'][0]}, {c['cmcr_index'][1]}"
        for col, key in pairs.items():
            assert r[col] == c[key], (col, r, c)  # the same digits as the JSON
        if c["valid"]:  # cmcR's x, y: transposed axes, opposite sign, in µm
            assert (r["x"], r["y"]) == (-c["dy_um"], -c["dx_um"])
            assert 0 <= r["jointlyMissing"] <= r["refMissingCount"]
            assert r["targMissingCount"] >= 0
        else:
            assert r["x"] is None and r["pairwiseCompCor"] is None
    # the counts of the JSON are the CSV's congruent cells
    assert sum(r["is_cmc"] for r in fwd) == out["cmc_count"] >= 5
    assert sum(r["is_high_cmc"] for r in fwd) == out["cmc_count_high"]
    assert sum(r["is_cmc"] for r in rev) == out["cmc_count_reverse"] >= 5
    # the original rule (Song 2013) on one direction's rows gives its is_cmc column
    p = out["params"]
    for rows_d in (fwd, rev):
        ok = [r for r in rows_d if r["pairwiseCompCor"] is not None]
        med = {k: float(np.median([r[k] for r in ok])) for k in ("x", "y", "theta")}
        for r in rows_d:
            rule = r in ok and (abs(r["x"] - med["x"]) <= p["ty_um"] + 1e-6
                                and abs(r["y"] - med["y"]) <= p["tx_um"] + 1e-6
                                and abs(r["theta"] - med["theta"]) <= p["ttheta_deg"] + 1e-6
                                and r["pairwiseCompCor"] >= p["tcorr"])
            assert r["is_cmc"] == rule, r
    grid = {-3.0, 0.0}  # --rotation -3,0,3, both directions (cmcR's grid)
    assert {r["theta"] for r in fwd + rev if r["valid"]} <= grid


def test_compare_csv_to_stdout(files):
    import csv
    import io

    (a, b), _ = files
    base = ["compare", a, b, "--preset", "cmcR", "--rotation", "-3,0,3", "--processed",
            "--device", "cpu"]
    res = CliRunner().invoke(main, [*base, "--csv", "-"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 128 and "CMC count" not in res.stdout  # the table alone
    res = CliRunner().invoke(main, [*base, "--csv", "-", "--json"])
    assert res.exit_code == 2 and "--csv -" in res.stderr and not res.stdout


@pytest.fixture(scope="module")
def annuli(tmp_path_factory):
    """Two band-limited surfaces cut to an annulus (a hole in the middle), as cmcR writes
    processed breech faces, without this toolkit's provenance."""
    from ballistics.io import write_x3p

    d = tmp_path_factory.mktemp("annuli")
    ref = ellipse_surface(3)
    yy, xx = np.mgrid[: ref.shape[0], : ref.shape[1]]
    hole = (yy - ref.shape[0] / 2) ** 2 + (xx - ref.shape[1] / 2) ** 2 < 22 ** 2
    paths = []
    for name, h in (("a.x3p", ref), ("b.x3p", turned(ref))):
        p = d / name
        write_x3p(Scan(np.where(hole, np.nan, h).astype(np.float32), (12.5, 12.5)), p)
        paths.append(str(p))
    return paths, d


def _compare_json(args):
    res = CliRunner().invoke(main, ["compare", *args, "--preset", "cmcR", "--rotation", "-6,3,3",
                                    "--json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_compare_auto_detects_processed_inputs(annuli):
    (a, b), d = annuli
    report = d / "r.html"
    auto = _compare_json([a, b, "--report", str(report)])
    forced = _compare_json([a, b, "--processed"])
    same = _compare_json([a, b, "--preprocess", "processed"])
    for key in ("cmc_count", "cmc_count_reverse", "cmc_count_combined", "theta_deg"):
        assert auto[key] == forced[key] == same[key]
    det = auto["reference"]["preprocessing_detected"]
    assert det["mode"] == "auto" and det["source"] == "measured" and det["state"] == "processed"
    assert [s["step"] for s in det["steps"]] == ["segment", "level", "filter", "resample"]
    assert all(not s["needed"] and s["evidence"] for s in det["steps"])
    assert any("preprocessing detected" in w for w in auto["warnings"])
    assert forced["target"]["preprocessing_detected"]["source"] == "forced"
    assert not any("preprocessing detected" in w for w in forced["warnings"])
    text = report.read_text()
    assert "preprocessing detected" in text and "skipped: centre valid fraction" in text


def test_compare_preprocess_raw_and_conflicts(annuli):
    (a, b), _ = annuli
    res = CliRunner().invoke(main, ["compare", a, b, "--processed", "--preprocess", "raw"])
    assert res.exit_code == 2 and "contradicts" in res.output
    # forced raw: every step applied, and a warning that the measurement disagrees
    raw = _compare_json([a, b, "--preprocess", "raw"])
    det = raw["reference"]["preprocessing_detected"]
    assert det["state"] == "raw" and det["source"] == "forced"
    assert "bandpass" in [s["name"] for s in raw["reference"]["preprocessing"]]
    assert any("treated as raw (forced)" in w for w in raw["warnings"])


def test_compare_shows_the_lr_caveats_on_stderr(files):
    """The LR's caveats (here: the shipped calibration, fitted with the default preset, used
    on a cmcR comparison) reach the terminal, not only the JSON's ``warnings``."""
    (a, b), _ = files
    for extra in ([], ["--json"]):
        res = CliRunner().invoke(main, ["compare", a, b, "--preset", "cmcR", "--rotation",
                                        "-3,0,3", "--processed", "--device", "cpu", *extra])
        assert res.exit_code == 0, res.output
        lines = res.stderr.splitlines()
        assert any(ln.startswith("warning: ") and "indicative only" in ln for ln in lines)
        assert any(ln.startswith("warning: the LR comes from the calibration shipped")
                   for ln in lines)
        assert len(lines) == len(set(lines))  # each caveat once
        if extra:
            out = json.loads(res.stdout.strip().splitlines()[-1])
            assert any("indicative only" in w for w in out["warnings"])


def test_compare_of_two_images_flags_the_topography_calibration(tmp_path):
    """Two 2D images compared with the shipped calibration (fitted on topographies): the
    caveat is in the JSON's warnings and on stderr."""
    from ballistics.io import write_x3p

    ref = ellipse_surface(1)
    paths = []
    for name, h in (("a.x3p", ref), ("b.x3p", turned(ref))):
        p = tmp_path / name
        write_x3p(Scan(h, (12.5, 12.5), modality="image"), p)
        paths.append(str(p))
    res = CliRunner().invoke(main, ["compare", *paths, "--preset", "cmcR", "--rotation",
                                    "-3,0,3", "--processed", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert any("fitted on 3D topographies" in w for w in out["warnings"])
    assert "fitted on 3D topographies" in res.stderr


def test_two_file_warnings_name_their_file(real_data):
    """Each input's reader warnings name the file they concern, in the JSON and on stderr
    (a 'non-standard revision' of one of two inputs said neither which before)."""
    quirk = str(real_data / "quirks" / "TW01-01_revision-variant.x3p")
    other = str(real_data / "weller" / "TW01-02.x3p")
    res = CliRunner().invoke(main, ["compare", quirk, other, "--json", "--quiet", "--device",
                                    "cpu"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    revision = [w for w in out["warnings"] if "non-standard revision" in w]
    assert revision == [f"{quirk}: non-standard revision 'ISO5436-2000' read as "
                        "'ISO5436 - 2000'"]
    assert f"warning: {revision[0]}" in res.stderr.splitlines()
    # the detection notes named their file already: named once, not twice
    assert not any(w.startswith(f"{quirk}: {quirk}") for w in out["warnings"])
    assert any(w.startswith(f"{other}: preprocessing detected") for w in out["warnings"])


def test_compare_striae_warnings_name_their_file(real_data):
    land = str(real_data / "quirks" / "sample-land_x3ptools.x3p")
    res = CliRunner().invoke(main, ["compare-striae", land, str(real_data / "lea_x3ptools.x3p"),
                                    "--kind", "lea", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    root = [w for w in out["warnings"] if "non-standard root element" in w]
    assert len(root) == 1 and root[0].startswith(f"{land}: ")
    assert any(ln == f"warning: {root[0]}" for ln in res.stderr.splitlines())
