"""Loss, augmentation, metrics, training loop (checkpoints, resume, log) and checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ballistics.errors import InputError, ModelError, ParameterError
from ballistics.models import Embedder, embed, load_embedder
from ballistics.models.augment import AugmentParams, augment
from ballistics.models.cnn import CNNEmbedder, save_checkpoint
from ballistics.models.data import TrainingSet, split_sources
from ballistics.models.inputs import InputParams, prepare_input
from ballistics.models.metrics import retrieval_metrics
from ballistics.models.network import NetConfig, PolarNet
from ballistics.models.train import TrainParams, join_checkpoints, supcon_loss, train_on_set
from ballistics.scan import Scan

SMALL = NetConfig(input=InputParams(spacing_um=75.0, size=64), n_rings=16, ring_step_um=150.0,
                  n_angles=64, widths=(4, 8, 8, 16, 16), dim=16, n_harmonics=2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_supcon_prefers_clustered_embeddings():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    good = torch.nn.functional.normalize(torch.eye(3).repeat_interleave(2, 0)
                                         + 0.01 * torch.randn(6, 3), dim=1)
    bad = torch.nn.functional.normalize(torch.tensor(
        [[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]), dim=1)
    assert supcon_loss(good, labels, 0.1) < supcon_loss(bad, labels, 0.1) - 1.0
    assert float(supcon_loss(good, torch.arange(6), 0.1)) == 0.0  # no positives


def test_augment_is_reproducible_and_respects_the_mask():
    x = torch.randn(4, 2, 16, 48)
    x[:, 1] = 1.0
    p = AugmentParams(p_partial=1.0, p_dropout=1.0)
    a = augment(x, p, torch.Generator().manual_seed(3))
    b = augment(x, p, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert a.shape == x.shape
    assert (a[:, 0][a[:, 1] == 0] == 0).all()
    assert (a[:, 1] == 0).any() and (a[:, 1] == 1).any()
    valid = a[:, 1] > 0
    assert abs(float(a[:, 0][valid].mean())) < 0.2


def test_retrieval_metrics_on_a_known_ranking():
    e = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.7, 0.7]], dtype=np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    m = retrieval_metrics(e, ["a", "a", "b", "b", "c"], ks=(1, 2), within=1)
    assert m["n_queries"] == 4 and m["top1"] == 1.0 and m["mates_within_1"] == 1.0
    m2 = retrieval_metrics(e, ["a", "b", "a", "b", "c"], ks=(1, 3), within=2)
    assert m2["top1"] == 0.0 and m2["top3"] == 0.5 and m2["mates_within_2"] == 0.0


def test_split_sources_holds_out_whole_firearms():
    sources = [f"F{i // 3}" for i in range(30)]
    tr, va = split_sources(sources, 0.2, seed=1)
    assert set(tr) | set(va) == set(range(30)) and not set(tr) & set(va)
    assert not {sources[i] for i in tr} & {sources[i] for i in va}
    assert len({sources[i] for i in va}) == 2
    with pytest.raises(InputError):
        split_sources(["a", "b", "c"], 0.2, seed=0)


def _toy_set(n_src: int = 6, per: int = 3) -> TrainingSet:
    """Textured annuli: casings of one source share a texture (with noise and random pose)."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    inputs, sources = [], []
    yy, xx = np.mgrid[:70, :66]
    for s in range(n_src):
        tex = ndimage.gaussian_filter(rng.standard_normal((70, 66)), 1.5)
        for _ in range(per):
            h = tex + 0.3 * ndimage.gaussian_filter(rng.standard_normal((70, 66)), 1.0)
            r = np.hypot(yy - 35, xx - 33)
            h[(r > 30) | (r < 8)] = np.nan
            scan = Scan(h.astype(np.float32), (75.0, 75.0))
            inputs.append(prepare_input(scan, SMALL.input))
            sources.append(f"S{s}")
    return TrainingSet(np.stack(inputs).astype(np.float16), sources,
                       [f"{s}-{i}" for i, s in enumerate(sources)])


def test_training_writes_checkpoints_log_and_resumes_identically(tmp_path):
    data = _toy_set()
    params = TrainParams(epochs=2, batch_size=8, per_source=2, steps_per_epoch=2,
                         val_fraction=0.34, warmup_steps=1, seed=3)
    full = train_on_set(data, tmp_path / "full", params=params, config=SMALL, device="cpu",
                        quiet=True)
    assert full["status"] == "done" and len(full["history"]) == 2
    assert full["n_val_sources"] == 2 and full["n_train_sources"] == 4
    log = json.loads((tmp_path / "full" / "train_log.json").read_text())
    assert log["history"][0]["val"]["n_queries"] == 6
    assert np.isfinite(log["history"][-1]["loss"])
    # interrupted after one epoch, then resumed: the same weights as the uninterrupted run
    one = TrainParams(**{**params.__dict__, "epochs": 1})
    train_on_set(data, tmp_path / "part", params=one, config=SMALL, device="cpu", quiet=True)
    with pytest.raises(InputError):  # other parameters than the checkpoint's
        train_on_set(data, tmp_path / "part", params=params, config=SMALL, device="cpu",
                     resume=True, quiet=True)
    part2 = tmp_path / "part2"
    train_on_set(data, part2, params=params, config=SMALL, device="cpu", quiet=True)
    again = train_on_set(data, part2, params=params, config=SMALL, device="cpu",
                         resume=True, quiet=True)
    assert len(again["history"]) == 2  # nothing left to do
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(part2 / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # fixed seeds: repeatable on the CPU
    emb = CNNEmbedder(tmp_path / "full" / "best.pt", device="cpu")
    assert isinstance(emb, Embedder) and emb.dim == 16


def test_resume_continues_an_interrupted_run(tmp_path, monkeypatch):
    import ballistics.models.train as tr

    data = _toy_set(n_src=5, per=2)
    params = TrainParams(epochs=2, batch_size=8, per_source=2, steps_per_epoch=1,
                         val_fraction=0.0, warmup_steps=1, seed=5)
    train_on_set(data, tmp_path / "full", params=params, config=SMALL, device="cpu", quiet=True)
    real = tr.embed_prepared
    calls = {"n": 0}

    def dies_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "embed_prepared", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train_on_set(data, tmp_path / "res", params=params, config=SMALL, device="cpu",
                     quiet=True)
    monkeypatch.setattr(tr, "embed_prepared", real)
    log = json.loads((tmp_path / "res" / "train_log.json").read_text())
    assert log["status"] == "running" and len(log["history"]) == 1
    done = train_on_set(data, tmp_path / "res", params=params, config=SMALL, device="cpu",
                        resume=True, quiet=True)
    assert [h["epoch"] for h in done["history"]] == [1, 2]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "res" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_round_trip_and_loader_errors(tmp_path):
    torch.manual_seed(0)
    net = PolarNet(SMALL).eval()
    path = save_checkpoint(tmp_path / "w.pt", net, meta={"note": "test"})
    emb = load_embedder(str(path), device="cpu")
    assert emb.dim == 16 and emb.meta["note"] == "test" and len(emb.model_hash) == 64
    h = np.random.default_rng(0).standard_normal((60, 70)).astype(np.float32)
    v = embed([Scan(h, (75.0, 75.0))], model=emb)
    assert v.shape == (1, 16) and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    assert embed([], model=emb).shape == (0, 16)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        load_embedder(str(bad))
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ModelError):
        load_embedder(str(tmp_path / "other.pt"))
    with pytest.raises(ParameterError):
        load_embedder("no-such-model")
    with pytest.raises(ParameterError):
        load_embedder(str(path), device="quantum")


def test_phase_branch_training_refits_the_pca_head_and_joins(tmp_path):
    """A linear head is the principal axes of the trained features after every epoch; a gem
    and a phase checkpoint join into one gem+phase embedder."""
    data = _toy_set()
    phase_cfg = NetConfig(**{**SMALL.__dict__, "pooling": "phase", "head": "linear",
                             "dim": 8, "phase_channels": 3, "phase_harmonics": 8,
                             "phase_lags": (1, 2), "phase_learned_weight": 0.5})
    params = TrainParams(epochs=1, batch_size=8, per_source=2, steps_per_epoch=2,
                         val_fraction=0.34, warmup_steps=1, seed=3)
    train_on_set(data, tmp_path / "phase", params=params, config=phase_cfg, device="cpu",
                 quiet=True)
    train_on_set(data, tmp_path / "gem", params=params, config=SMALL, device="cpu", quiet=True)
    w = torch.load(tmp_path / "phase" / "best.pt", weights_only=True)["state_dict"]
    w = w["head.0.weight"].double()
    assert torch.allclose(w @ w.T, torch.eye(8, dtype=torch.float64), atol=1e-4)
    path = join_checkpoints(tmp_path / "gem" / "best.pt", tmp_path / "phase" / "best.pt",
                            tmp_path / "joined.pt", phase_share=0.2, command="test")
    emb = load_embedder(str(path), device="cpu")
    assert emb.dim == 24 and emb.meta["branches"]["phase"]["net_config"]["dim"] == 8
    v = emb.embed_inputs(data.inputs[:4].astype(np.float32))
    assert v.shape == (4, 24) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(v[:, 16:], axis=1), np.sqrt(0.2), atol=1e-5)
    with pytest.raises(ModelError):  # joined nets are not trained as one
        train_on_set(data, tmp_path / "x", params=params, device="cpu", quiet=True,
                     config=NetConfig(**{**SMALL.__dict__, "pooling": "gem+phase"}))
