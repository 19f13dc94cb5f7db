"""``ballistics compare-striae`` and ``compare-bullets``: JSON contract, errors, reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ballistics.cli import main
from ballistics.datasets.synthetic.striae import (
    fire_bullet,
    make_barrel,
    make_mark,
    make_tool,
    striae_params,
    true_phase,
    write_bullet,
)
from ballistics.scan import Scan
from tests.clirunner import CliRunner


def _write(scan: Scan, path) -> str:
    from ballistics.io import write_x3p

    write_x3p(scan, path)
    return str(path)


def test_compare_striae_json_and_report(tmp_path) -> None:
    p = striae_params("realistic")
    tool = make_tool("F1", 1, p)
    a = _write(make_mark(tool, 1, p, direction_deg=80.0, shape=(110, 260)).scan,
               tmp_path / "a.x3p")
    b = _write(make_mark(tool, 2, p, direction_deg=95.0, shape=(120, 250)).scan,
               tmp_path / "b.x3p")
    report = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["compare-striae", a, b, "--kind", "aperture-shear",
                                    "--region", "0,0,330,800", "--json",
                                    "--report", str(report), "--case", "C-7",
                                    "--examiner", "J. Doe"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("ccf_max", "lag_um", "cms", "direction_deg", "overlap_um", "version",
                "versions", "schema", "warnings"):
        assert key in out
    assert out["ccf_max"] > 0.5
    assert abs(out["direction_deg"][0] - 80.0) < 1.0
    assert abs(out["direction_deg"][1] - (95.0 - 180.0)) < 1.0  # reported in (-90, 90]
    html = report.read_text()
    # the figure is a PNG (its "CCF" labels are pixels): look for its alt text and the score
    assert "<img" in html and "aligned signatures and cross-correlation" in html
    assert "<td>ccf_max</td>" in html
    # a case record: the case, both files with their SHA-256, the parameters
    from ballistics.io import sha256_file

    assert out["case"]["case"] == "C-7" and out["case"]["exhibit"] is None
    assert [i["sha256"] for i in out["inputs"]] == [sha256_file(a), sha256_file(b)]
    assert out["report_sha256"] == {"html": sha256_file(report)}
    assert "<td>C-7</td>" in html and sha256_file(a) in html and sha256_file(b) in html
    assert "<td>kind</td><td>aperture-shear</td>" in html and "[0, 0, 330, 800]" in html
    assert "compare match_tolerance_um" in html and "<h2>Inputs</h2>" in html


def test_compare_striae_refuses_a_topography_against_an_image(tmp_path) -> None:
    """A striated mark as a topography against the same mark as a 2D image: exit 2 with the
    message of ``compare`` (trial 2: it was compared, exit 0, no warning)."""
    from ballistics.errors import ModalityMismatchError
    from ballistics.matching.striae.marks import compare_mark_scans

    p = striae_params("realistic")
    scan = make_mark(make_tool("F1", 1, p), 1, p, direction_deg=80.0, shape=(110, 260)).scan
    image = scan.replace(modality="image")
    a = _write(scan, tmp_path / "a.x3p")
    b = _write(image, tmp_path / "b.x3p")
    res = CliRunner().invoke(main, ["compare-striae", a, b, "--region", "0,0,330,800"])
    assert res.exit_code == 2, res.output
    assert "cannot compare a topography" in res.stderr and "with an image" in res.stderr
    with pytest.raises(ModalityMismatchError):
        compare_mark_scans(scan, image, "mark", region=(0, 0, 330, 800))
    res = CliRunner().invoke(main, ["compare-striae", a, a, "--region", "0,0,330,800"])
    assert res.exit_code == 0, res.output


def test_compare_striae_flat_region_is_bad_input(tmp_path) -> None:
    flat = _write(Scan(np.zeros((60, 90), np.float32), (3.0, 3.0)), tmp_path / "f.x3p")
    res = CliRunner().invoke(main, ["compare-striae", flat, flat, "--json"])
    assert res.exit_code == 2
    assert "no striation signature" in res.stderr and "Traceback" not in res.output
    res2 = CliRunner().invoke(main, ["compare-striae", flat, flat, "--region", "1,2,3"])
    assert res2.exit_code == 2 and "region" in res2.stderr


@pytest.fixture(scope="module")
def bullet_dirs(tmp_path_factory):
    p = striae_params("easy", land_length_um=150.0, land_width_um=1000.0)
    barrel = make_barrel("B9", 9, p)
    a, b = fire_bullet(barrel, 1, p), fire_bullet(barrel, 2, p)
    c = fire_bullet(make_barrel("B8", 8, p), 3, p)
    root = tmp_path_factory.mktemp("bullets")
    write_bullet(a, root / "a")
    write_bullet(b, root / "b")
    write_bullet(c, root / "c")
    return root, true_phase(a, b)


def test_compare_bullets_json(bullet_dirs) -> None:
    root, phase = bullet_dirs
    report, pdf = root / "report.html", root / "report.pdf"
    res = CliRunner().invoke(main, ["compare-bullets", str(root / "a"), str(root / "b"),
                                    "--json", "--report", str(report), "--pdf", str(pdf),
                                    "--case", "C-8", "--exhibit", "B1 vs B2"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("lands_a", "lands_b", "ccf", "phase_scores", "best_phase", "sam", "version",
                "versions", "schema", "warnings"):
        assert key in out
    assert out["lands_a"][0] == "land_1.x3p" and len(out["ccf"]) == 6
    assert out["best_phase"] == phase
    assert out["sam"] == pytest.approx(max(out["phase_scores"]))
    from ballistics.io import sha256_file

    land = root / "a" / "land_1.x3p"
    assert out["inputs"]["a"][0] == {"path": str(land), "sha256": sha256_file(land),
                                     "shape": out["inputs"]["a"][0]["shape"],
                                     "spacing_um": out["inputs"]["a"][0]["spacing_um"],
                                     "modality": "topography"}
    assert len(out["inputs"]["b"]) == 6 and out["case"]["exhibit"] == "B1 vs B2"
    assert out["report_sha256"] == {"html": sha256_file(report), "pdf": sha256_file(pdf)}
    html = report.read_text()
    assert sha256_file(land) in html and "<td>B1 vs B2</td>" in html
    assert "land signature" in html and "<h2>Land signatures</h2>" in html
    assert pdf.read_bytes().startswith(b"%PDF-") and b"C-8" in pdf.read_bytes()
    ordered = sorted(out["phase_scores"], reverse=True)
    assert out["phase_margin"] == pytest.approx(ordered[0] - ordered[1]) and ordered[1] > 0
    assert out["phase_z"] > 3 and out["score_sam_margin"] > out["sam"]
    # the learned score and its LR, with the calibration in compare --json's shape
    lo, hi = out["calibration"]["log10_lr_bounds"]
    assert 1 < out["log10_lr"] <= hi and "for same source" in out["lr_verbal"]
    assert set(out["calibration"]) == {"source", "score_model", "lr_method",
                                       "log10_lr_bounds", "metrics", "fitted"}
    assert out["calibration"]["source"] == "synthetic-default"
    assert out["land_best_phase"] == phase and len(out["land_scores"]) == 6
    assert out["gaps_a"] == [] and out["gaps_b"] == []
    assert "log10 LR" in html and out["lr_verbal"] in html and "Cllr" in html


def test_compare_bullets_workers_match_serial_and_stop_on_bad_file(bullet_dirs,
                                                                   tmp_path) -> None:
    import shutil

    root, _ = bullet_dirs
    outs = []
    for threads in ("1", "2"):  # serial, then two forked worker processes
        res = CliRunner().invoke(main, ["compare-bullets", str(root / "a"), str(root / "b"),
                                        "--json", "--threads", threads])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout.strip().splitlines()[-1])
        outs.append({k: out[k] for k in ("ccf", "cms", "phase_scores", "score", "log10_lr",
                                         "warnings")})
    assert outs[0] == outs[1]
    bad = tmp_path / "bad"
    shutil.copytree(root / "b", bad)
    (bad / "land_3.x3p").write_bytes(b"not a zip file")
    res = CliRunner().invoke(main, ["compare-bullets", str(root / "a"), str(bad),
                                    "--threads", "2"])
    assert res.exit_code == 2 and "land_3.x3p" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_compare_bullets_missing_and_blank_land(bullet_dirs, tmp_path) -> None:
    """A folder with five lands against one with six, and a land whose signature cannot be
    extracted (flat): warnings and gaps, not failures; the true phase is still found."""
    import shutil

    root, phase = bullet_dirs
    five = tmp_path / "five"
    shutil.copytree(root / "b", five)
    (five / "land_3.x3p").unlink()
    res = CliRunner().invoke(main, ["compare-bullets", str(root / "a"), str(five), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(out["ccf"]) == 6 and len(out["ccf"][0]) == 6 and len(out["gaps_b"]) == 1
    assert out["lands_b"].count(None) == 1 and "land_3.x3p" not in out["lands_b"]
    assert out["lands_b"][out["gaps_b"][0]] is None
    assert any("5 lands, the other 6" in w for w in out["warnings"])
    assert "5 lands, the other 6" in res.stderr and out["log10_lr"] > 1
    # the land facing the gap in the best phase is the one whose counterpart was dropped
    k = out["best_phase"]
    for i in range(6):
        name = out["lands_b"][(i + k) % 6]
        expect = f"land_{(i + phase) % 6 + 1}.x3p"
        assert name == (None if expect == "land_3.x3p" else expect)
    blank = tmp_path / "blank"
    shutil.copytree(root / "b", blank)
    _write(Scan(np.zeros((96, 900), np.float32), (1.5625, 1.5625)), blank / "land_4.x3p")
    res = CliRunner().invoke(main, ["compare-bullets", str(root / "a"), str(blank), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["gaps_b"] == [3] and out["lands_b"][3] == "land_4.x3p"
    assert all(v is None for v in np.array(out["ccf"], dtype=object)[:, 3])
    assert any("land_4.x3p" in w and "left out" in w for w in out["warnings"])
    assert out["best_phase"] == phase and out["log10_lr"] > 1


def test_compare_bullets_lands_narrower_than_the_scan_name_their_files(bullet_dirs,
                                                                         tmp_path) -> None:
    """Lands scanned with a field narrower than the land (the middle 60 % of each: no groove
    in view): the true phase with LR > 1, and every land's "no groove shoulder" warning
    names its file as given (one of them was also printed without a file name, the others
    with the file name alone, the same in both bullets' folders)."""
    from ballistics.io import read_scan

    root, phase = bullet_dirs
    narrow = tmp_path / "narrow"
    narrow.mkdir()
    for f in sorted((root / "b").glob("*.x3p")):
        scan = read_scan(f)
        h = np.asarray(scan.heights)
        w = int(h.shape[1] * 0.6)
        c0 = (h.shape[1] - w) // 2
        _write(scan.replace(heights=np.ascontiguousarray(h[:, c0:c0 + w])), narrow / f.name)
    res = CliRunner().invoke(main, ["compare-bullets", str(root / "a"), str(narrow), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["best_phase"] == phase and out["log10_lr"] > 1
    grooves = [w for w in out["warnings"] if "no groove shoulder" in w]
    assert len(grooves) == 6
    assert sorted(w.split(": ")[0] for w in grooves) == [
        str(f) for f in sorted(narrow.glob("*.x3p"))]
    assert not any(line.startswith("warning: no groove") for line in res.stderr.splitlines())


def test_compare_bullets_warns_when_a_bullet_matches_only_turned_over(bullet_dirs,
                                                                        tmp_path) -> None:
    """Bullet B scanned the other way round (each land turned by 180°, the lands met in
    reverse order: another lab's protocol) looks like a different barrel's bullet as given;
    the command says so instead of leaving a silent low LR. Bullets as given (same barrel,
    different barrel) get no such warning."""
    from ballistics.io import read_scan

    root, _ = bullet_dirs
    turned = tmp_path / "turned"
    turned.mkdir()
    files = sorted((root / "b").glob("*.x3p"))
    for f, name in zip(files, [g.name for g in reversed(files)], strict=True):
        scan = read_scan(f)
        _write(scan.replace(heights=np.ascontiguousarray(np.asarray(scan.heights)[::-1, ::-1])),
               turned / name)
    res = CliRunner().invoke(main, ["compare-bullets", str(root / "a"), str(turned), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["log10_lr"] < 0
    hits = [w for w in out["warnings"] if "turned end over end" in w]
    assert len(hits) == 1 and "scanned the same way round" in hits[0]
    assert "turned end over end" in res.stderr
    for other in ("b", "c"):
        res = CliRunner().invoke(main, ["compare-bullets", str(root / "a"), str(root / other),
                                        "--json"])
        out = json.loads(res.stdout.strip().splitlines()[-1])
        assert not any("turned end over end" in w for w in out["warnings"]), other


def test_compare_bullets_many_folders(bullet_dirs, tmp_path, monkeypatch) -> None:
    """Three folders (plus a copy of one): every pair as JSON Lines and CSV, each distinct
    land file read once, the same-barrel pair alone supported."""
    import csv
    import shutil

    import ballistics.cli.striae as cli_striae

    root, phase = bullet_dirs
    copy = tmp_path / "a_copy"
    shutil.copytree(root / "a", copy)
    reads: list[str] = []
    task = cli_striae._land_task

    def counting(path, *args):
        reads.append(path)
        return task(path, *args)

    monkeypatch.setattr(cli_striae, "_land_task", counting)
    # in this process (the counting wrapper cannot go to worker processes), whatever the
    # machine's load and the modules already loaded
    monkeypatch.setattr("ballistics.device.configured_threads", lambda: 1)
    dirs = [str(root / "a"), str(root / "b"), str(root / "c"), str(copy)]
    table = tmp_path / "pairs.csv"
    res = CliRunner().invoke(main, ["compare-bullets", *dirs, "--json", "--csv", str(table),
                                    "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert len(reads) == 18  # a and its copy have the same files: read once
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert len(lines) == 6 and all(o["schema"] == 1 for o in lines)
    by = {(o["a"], o["b"]): o for o in lines}
    ab = by[dirs[0], dirs[1]]
    assert ab["best_phase"] == phase and ab["log10_lr"] > 1
    assert by[dirs[0], dirs[2]]["log10_lr"] < 0 and by[dirs[1], dirs[2]]["log10_lr"] < 0
    same = by[dirs[0], dirs[3]]  # a bullet against its own copy: the strongest pair
    assert same["best_phase"] == 0 and same["score"] > ab["score"]
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 6 and rows[0]["a"] == dirs[0] and rows[0]["b"] == dirs[1]
    assert float(rows[0]["score"]) == pytest.approx(ab["score"])
    assert float(rows[0]["log10_lr"]) == pytest.approx(ab["log10_lr"])
    res = CliRunner().invoke(main, ["compare-bullets", *dirs[:3]])
    assert res.exit_code == 0 and "log10 LR" in res.stdout, res.stderr
    assert len(res.stdout.strip().splitlines()) == 4
    res = CliRunner().invoke(main, ["compare-bullets", *dirs[:3], "--report",
                                    str(tmp_path / "r.html")])
    assert res.exit_code == 2 and "two folders" in res.stderr


def test_compare_bullets_many_folders_warns_on_stderr(bullet_dirs) -> None:
    """With more than two folders each pair's warnings (the LR of the shipped synthetic
    model) reach stderr once, as with two folders, in the matrix, CSV and JSON modes."""
    root, _ = bullet_dirs
    dirs = [str(root / "a"), str(root / "b"), str(root / "c")]
    two = CliRunner().invoke(main, ["compare-bullets", *dirs[:2], "--json"])
    assert two.exit_code == 0, two.output
    shipped = [w for w in json.loads(two.stdout)["warnings"] if "fitted on synthetic" in w]
    assert shipped and shipped[0] in two.stderr
    for extra in ([], ["--json"], ["--csv", "-"]):
        res = CliRunner().invoke(main, ["compare-bullets", *dirs, *extra])
        assert res.exit_code == 0, res.output
        assert res.stderr.count(shipped[0]) == 1, (extra, res.stderr)


def test_compare_bullets_bad_folder(tmp_path) -> None:
    res = CliRunner().invoke(main, ["compare-bullets", str(tmp_path), str(tmp_path / "nope")])
    assert res.exit_code == 2 and "error:" in res.stderr


def test_compare_striae_proposes_the_aperture_shear_band(tmp_path) -> None:
    """End to end without --region: synthetic casings whose firing pins left aperture shear;
    the band is found on each scan and the same firearm's marks correlate, another's not."""
    from ballistics.datasets.synthetic import fire, make_firearm, params_for

    p = params_for("realistic", aperture_shear_probability=1.0,
                   aperture_shear_shot_probability=1.0)
    gun, other = make_firearm("F0", 4242, p), make_firearm("G0", 5252, p)
    a = _write(fire(gun, 1, p).scan, tmp_path / "a.x3p")
    b = _write(fire(gun, 2, p).scan, tmp_path / "b.x3p")
    c = _write(fire(other, 3, p).scan, tmp_path / "c.x3p")
    out = {}
    for name, path in (("same", b), ("different", c)):
        res = CliRunner().invoke(main, ["compare-striae", a, path, "--kind", "aperture-shear",
                                        "--json"])
        assert res.exit_code == 0, res.output
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])
    assert any("proposed automatically" in w for w in out["same"]["warnings"])
    # the band chosen on each scan is in the JSON and in the report's parameters
    bands = out["same"]["proposed_region_um"]
    assert len(bands) == 2 and all(len(bx) == 4 and bx[2] > bx[0] and bx[3] > bx[1]
                                   for bx in bands)
    report = tmp_path / "shear.html"
    res = CliRunner().invoke(main, ["compare-striae", a, b, "--kind", "aperture-shear",
                                    "--json", "--report", str(report)])
    assert res.exit_code == 0, res.output
    html = report.read_text()
    for name, bx in zip(("a.x3p", "b.x3p"), bands, strict=True):
        assert f"band used on {name}" in html
        assert "[" + ", ".join(f"{v:.6g}" for v in bx) + "]" in html
    assert out["same"]["ccf_max"] > 0.8            # measured 0.94
    assert out["different"]["ccf_max"] < 0.5       # measured 0.36
    assert out["same"]["cms"] > 3 * out["different"]["cms"]


def test_compare_bullets_report_lists_every_warning(bullet_dirs) -> None:
    """The bullet report's Warnings held the comparison's only: the Hamby 44 pair's LR at
    the upper bound of the bullet calibration (+3.00) and the lands' reading warnings were
    in the JSON and on stderr, not in the case record (trial 4). It now lists the JSON's
    warnings."""
    import html as html_lib

    root, _ = bullet_dirs
    report = root / "warned.html"
    res = CliRunner().invoke(main, ["compare-bullets", str(root / "a"), str(root / "b"),
                                    "--json", "--report", str(report)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert any("shipped with the package" in w for w in out["warnings"])
    page = html_lib.unescape(report.read_text())
    section = page[page.index("<h2>Warnings</h2>"):]
    for w in out["warnings"]:
        assert w in section, w
