"""``ballistics embed`` and ``ballistics train``: files written, JSON, exit codes."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from ballistics.cli import main
from ballistics.models.cnn import save_checkpoint
from ballistics.models.inputs import InputParams
from ballistics.models.network import NetConfig, PolarNet
from tests.clirunner import CliRunner

SMALL = NetConfig(input=InputParams(spacing_um=75.0, size=64), n_rings=16, ring_step_um=150.0,
                  n_angles=64, widths=(4, 8, 8, 16, 16), dim=16)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def weller_files(real_data):
    folder = real_data / "weller"
    return [str(folder / f"{n}.x3p") for n in ("TW02-03", "TW01-01", "TW01-02")]


def test_embed_baseline_writes_rows_in_input_order(tmp_path, weller_files):
    out = tmp_path / "v.h5"
    r = CliRunner().invoke(main, ["embed", *weller_files, "--out", str(out), "--model",
                                  "baseline", "--processed", "--quiet", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["n"] == 3 and res["model"] == "baseline" and "version" in res
    assert res["schema"] == 1 and res["versions"]["h5py"]
    with h5py.File(out) as f:
        e = f["embeddings"][()]
        paths = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][()]]
        assert f.attrs["model"] == "baseline" and f.attrs["dim"] == e.shape[1]
    assert e.dtype == np.float32 and e.shape == (3, res["dim"])
    assert paths == weller_files
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # the two TW01 casings are nearer each other than to TW02
    assert e[1] @ e[2] > max(e[0] @ e[1], e[0] @ e[2])


def test_embed_names_each_file_once_in_its_warnings(tmp_path, weller_files):
    """The 'preprocessing detected' warning of a processed Weller scan already names its
    file: embed does not prefix the path a second time (trial 2)."""
    r = CliRunner().invoke(main, ["embed", weller_files[0], "--out", str(tmp_path / "v.h5"),
                                  "--model", "baseline", "--quiet", "--json"])
    assert r.exit_code == 0, r.output
    warns = json.loads(r.stdout)["warnings"]
    detected = [w for w in warns if "preprocessing detected" in w]
    assert detected and all(w.count(weller_files[0]) == 1 for w in warns), warns


def test_embed_with_a_weights_file(tmp_path, weller_files):
    torch.manual_seed(0)
    w = save_checkpoint(tmp_path / "w.pt", PolarNet(SMALL).eval())
    out = tmp_path / "sub" / "v.h5"
    r = CliRunner().invoke(main, ["embed", weller_files[0], "--out", str(out), "--model",
                                  str(w), "--processed", "--quiet", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    with h5py.File(out) as f:
        assert f["embeddings"].shape == (1, 16)


def test_embed_errors(tmp_path, weller_files):
    runner = CliRunner()
    r = runner.invoke(main, ["embed", weller_files[0], "--out", str(tmp_path / "a.h5"),
                             "--model", "nonsense", "--processed"])
    assert r.exit_code == 2 and "error:" in r.stderr and "Traceback" not in r.output
    r = runner.invoke(main, ["embed", str(tmp_path / "missing.x3p"), "--out",
                             str(tmp_path / "b.h5"), "--model", "baseline"])
    assert r.exit_code == 2 and "missing.x3p" in r.stderr
    assert not (tmp_path / "b.h5").exists()


def test_train_cli_small_run(tmp_path, real_data):
    folder = real_data / "weller"
    man = tmp_path / "manifest.csv"
    names = [f"TW0{s}-0{c}" for s in (1, 2) for c in (1, 2)]
    man.write_text("path,firearm_id\n" + "".join(f"{folder / n}.x3p,{n[:4]}\n" for n in names))
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--processed-manifest", str(man), "--out", str(out),
                                  "--epochs", "1", "--steps-per-epoch", "1", "--batch-size",
                                  "8", "--val-fraction", "0", "--quiet", "--json",
                                  "--device", "cpu"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["n_casings"] == 4 and res["n_sources"] == 2 and res["epochs"] == 1
    assert res["schema"] == 1 and res["versions"]["torch"]
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    log = json.loads((out / "train_log.json").read_text())
    assert log["status"] == "done" and "ballistics train" in log["command"]
    assert len(list((out / "cache").glob("*.npy"))) == 4
    r = CliRunner().invoke(main, ["train", "--out", str(out)])
    assert r.exit_code == 2
