"""Metric learning of the breech-face embedder (``ballistics train``).

- **Loss**: supervised contrastive (Khosla et al. 2020) on L2-normalised embeddings with
  temperature ``temperature``: every other casing of the same source in the batch is a
  positive, all others negatives; the softmax weights the hardest negatives most.
- **Batches**: ``batch_size / per_source`` sources x ``per_source`` casings (drawn with
  replacement for sources with few casings: each draw gets its own augmentation). With
  ``hard_negatives`` on, half of the sources of each batch are the nearest neighbours (by the
  current source centroids, recomputed every epoch) of the other half: hard-negative mining.
- **Augmentation**: :mod:`ballistics.models.augment` (partial transfer, drop-outs, noise, tilt,
  gain) plus a random rotation over the full circle and a random centring error.
- **Validation** on sources (firearms) never seen in training: top-1/top-10 hit rates, mates
  within 100, mAP of the un-augmented, randomly rotated validation casings after each epoch;
  ``best.pt`` keeps the epoch with the best validation mAP (the last epoch without validation).
- **Checkpoints** ``last.pt`` (everything needed to ``--resume``) after each epoch,
  ``best.pt`` (weights only), and ``train_log.json`` (parameters, per-epoch loss/metrics).
- A ``linear`` head (``NetConfig(head="linear")``) starts as the principal axes of the
  training casings' pooled features (:meth:`PolarNet.init_head_pca`), so training refines a
  projection that already keeps most of the information; with ``refit_head_pca`` (default)
  the head is refitted to the principal axes of the *trained* features after every epoch
  (before validation and checkpoints). The contrastive loss then shapes the convolutional
  features, while the projection stays an unsupervised one that does not specialise to the
  few training firearms (measured: a trained projection lost generalisation to unseen
  firearms, see ``docs/models.md``).
- Fixed seeds (numpy and torch generators) make a CPU run repeatable.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ballistics._version import __version__
from ballistics.device import resolve_device
from ballistics.errors import InputError, ModelError
from ballistics.jsonutil import dumps
from ballistics.models.augment import AugmentParams, augment, random_pose
from ballistics.models.cnn import load_checkpoint, save_checkpoint
from ballistics.models.data import TrainingSet, load_training_set, split_sources
from ballistics.models.metrics import retrieval_metrics
from ballistics.models.network import NetConfig, PolarNet, join_branches
from ballistics.params import check_range, params_dict
from ballistics.progress import progress

__all__ = ["TrainParams", "embed_prepared", "join_checkpoints", "supcon_loss", "train",
           "train_on_set"]


@dataclass(frozen=True)
class TrainParams:
    """Training schedule; the defaults are the shipped configuration."""

    epochs: int = 20
    batch_size: int = 64
    per_source: int = 4
    steps_per_epoch: int | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    temperature: float = 0.1
    val_fraction: float = 0.2
    hard_negatives: bool = True
    refit_head_pca: bool = True
    seed: int = 0
    augment: AugmentParams = field(default_factory=AugmentParams)

    def __post_init__(self) -> None:
        check_range("epochs", self.epochs, 1, 100_000)
        check_range("batch_size", self.batch_size, 4, 4096)
        check_range("per_source", self.per_source, 2, self.batch_size // 2)
        if self.steps_per_epoch is not None:
            check_range("steps_per_epoch", self.steps_per_epoch, 1, 10_000_000)
        check_range("lr", self.lr, 0, 1, lo_open=True)
        check_range("weight_decay", self.weight_decay, 0, 1)
        check_range("warmup_steps", self.warmup_steps, 0, 1_000_000)
        check_range("temperature", self.temperature, 0.001, 10)
        check_range("val_fraction", self.val_fraction, 0, 0.9)
        check_range("seed", self.seed, 0, 2**63 - 1)


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss of L2-normalised ``z`` ``(B, D)`` with integer ``labels``."""
    b = z.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=z.device)
    sim = (z @ z.T).float() / temperature
    sim = sim.masked_fill(eye, float("-inf"))
    logprob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    logprob = logprob.masked_fill(eye, 0.0)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    n_pos = pos.sum(1)
    per = -(logprob * pos).sum(1) / n_pos.clamp_min(1)
    has = n_pos > 0
    if not bool(has.any()):
        return sim.new_zeros(())
    return per[has].mean()


@torch.inference_mode()
def embed_prepared(net: PolarNet, inputs: np.ndarray, device: torch.device,
                   batch_size: int = 64, angles: np.ndarray | None = None) -> np.ndarray:
    """Embeddings of prepared inputs in eval mode (optionally rotated by ``angles`` radians)."""
    net.eval()
    out = []
    for i in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.asarray(inputs[i:i + batch_size], dtype=np.float32)).to(device)
        a = None if angles is None else torch.from_numpy(
            np.asarray(angles[i:i + batch_size], dtype=np.float32)).to(device)
        out.append(net(x, angle=a).float().cpu().numpy())
    return np.concatenate(out) if out else np.empty((0, net.cfg.out_dim), np.float32)


@torch.inference_mode()
def _pooled_prepared(net: PolarNet, inputs: np.ndarray, device: torch.device,
                     batch_size: int = 64) -> torch.Tensor:
    """Angle-invariant pooled features (before the head) of prepared inputs, eval mode, CPU."""
    net.eval()
    out = []
    for i in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.asarray(inputs[i:i + batch_size], dtype=np.float32)).to(device)
        out.append(net.pooled(net.sampler(x)).float().cpu())
    net.train()
    return torch.cat(out)


class _BatchSampler:
    """P sources x K casings per batch, optionally half of them hard negatives."""

    def __init__(self, labels: np.ndarray, p: TrainParams, rng: np.random.Generator) -> None:
        self.labels = labels
        self.by_label = {int(c): np.nonzero(labels == c)[0] for c in np.unique(labels)}
        self.classes = np.array(sorted(self.by_label))
        self.n_cls = min(p.batch_size // p.per_source, len(self.classes))
        self.k = p.per_source
        self.hard = p.hard_negatives
        self.rng = rng
        self.neighbours: np.ndarray | None = None  # (n_classes, m) indices into classes

    def set_centroids(self, emb: np.ndarray) -> None:
        cents = np.stack([emb[self.by_label[int(c)]].mean(0) for c in self.classes])
        cents /= np.linalg.norm(cents, axis=1, keepdims=True) + 1e-12
        sim = cents @ cents.T
        np.fill_diagonal(sim, -np.inf)
        self.neighbours = np.argsort(-sim, axis=1)[:, :8]

    def sample(self) -> np.ndarray:
        chosen: list[int] = []
        if self.hard and self.neighbours is not None:
            anchors = self.rng.permutation(len(self.classes))[: max(1, self.n_cls // 2)]
            seen = set()
            for a in anchors:
                for c in (int(a), *(int(j) for j in self.rng.permutation(self.neighbours[a]))):
                    if c not in seen:
                        seen.add(c)
                        chosen.append(c)
                        if c != a:
                            break
                if len(chosen) >= self.n_cls:
                    break
            rest = [c for c in self.rng.permutation(len(self.classes)) if int(c) not in seen]
            chosen.extend(int(c) for c in rest[: self.n_cls - len(chosen)])
        else:
            chosen = [int(c) for c in self.rng.permutation(len(self.classes))[: self.n_cls]]
        idx = []
        for c in chosen:
            rows = self.by_label[int(self.classes[c])]
            idx.extend(self.rng.choice(rows, self.k, replace=len(rows) < self.k).tolist())
        return np.asarray(idx, dtype=np.int64)


def _lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(obj, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def train_on_set(
    data: TrainingSet,
    out_dir: str | os.PathLike[str],
    *,
    params: TrainParams | None = None,
    config: NetConfig | None = None,
    device: str = "auto",
    resume: bool = False,
    quiet: bool = False,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on prepared inputs; writes ``last.pt``, ``best.pt`` and ``train_log.json``.

    Returns the summary (also the last entry of the log): paths, epochs, best validation.
    """
    p = params or TrainParams()
    cfg = config or NetConfig()
    if cfg.pooling == "gem+phase":
        raise ModelError("train the 'gem' and 'phase' networks separately and join them with "
                         "join_checkpoints")
    if data.inputs.shape[2:] != (cfg.input.size, cfg.input.size):
        raise ModelError(f"prepared inputs are {data.inputs.shape[2:]}, the network expects "
                         f"{cfg.input.size}x{cfg.input.size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    tr_rows, va_rows = split_sources(data.sources, p.val_fraction, p.seed)
    train_set, val_set = data.subset(tr_rows), data.subset(va_rows)
    labels_np = train_set.labels
    torch.manual_seed(p.seed)
    net = PolarNet(cfg).to(dev)
    if cfg.head == "linear" and not (resume and (out / "last.pt").is_file()):
        net.init_head_pca(_pooled_prepared(net, train_set.inputs, dev))
    opt = torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    steps = p.steps_per_epoch or max(1, math.ceil(len(train_set.sources) / p.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps * p.epochs, p.warmup_steps))
    rng = np.random.default_rng(p.seed)
    gen = torch.Generator(device=dev)
    gen.manual_seed(p.seed)
    sampler = _BatchSampler(labels_np, p, rng)
    val_angles = np.random.default_rng(p.seed + 1).uniform(0, 2 * math.pi, len(va_rows))
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start_epoch = 0
    run_meta = {
        "version": __version__,
        "train_params": params_dict(p),
        "net_config": cfg.to_dict(),
        "n_train_casings": len(tr_rows),
        "n_train_sources": len(set(train_set.sources)),
        "n_val_casings": len(va_rows),
        "n_val_sources": len(set(val_set.sources)),
        "val_sources": sorted(set(val_set.sources)),
        "skipped": data.skipped,
        **(meta or {}),
    }
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume and last_path.is_file():
        ck = load_checkpoint(last_path)
        if ck.get("config") != cfg.to_dict() or ck.get("train_params") != params_dict(p):
            raise InputError("--resume: the checkpoint was made with other parameters; "
                             "use the same options or a new --out", path=last_path)
        net.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        rng.bit_generator.state = json.loads(ck["numpy_rng"])
        gen.set_state(ck["torch_rng"].to(torch.uint8).cpu())
        history = json.loads(ck["history"])
        best = json.loads(ck["best"]) if ck.get("best") else None
        start_epoch = int(ck["epoch"])
        if ck.get("centroids_neighbours") is not None:
            sampler.neighbours = ck["centroids_neighbours"].numpy()
    t0 = time.perf_counter()
    for epoch in range(start_epoch, p.epochs):
        net.train()
        losses = []
        bar = progress(range(steps), desc=f"epoch {epoch + 1}/{p.epochs}", unit="step",
                       quiet=quiet)
        for _ in bar:
            idx = sampler.sample()
            x = torch.from_numpy(train_set.inputs[idx].astype(np.float32)).to(dev)
            y = torch.from_numpy(labels_np[idx]).to(dev)
            angle, shift = random_pose(len(idx), p.augment, cfg.input.spacing_um, gen, dev)
            polar = augment(net.sampler(x, angle, shift), p.augment, gen)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                z = net.embed_polar(polar)
            loss = supcon_loss(F.normalize(z.float(), dim=1), y, p.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        bar.close()
        entry: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                                 "lr": float(sched.get_last_lr()[0]),
                                 "elapsed_s": time.perf_counter() - t0}
        if cfg.head == "linear" and p.refit_head_pca:
            net.init_head_pca(_pooled_prepared(net, train_set.inputs, dev))
        if p.hard_negatives:
            emb_tr = embed_prepared(net, train_set.inputs, dev)
            sampler.set_centroids(emb_tr)
        if va_rows:
            emb = embed_prepared(net, val_set.inputs, dev, angles=val_angles)
            entry["val"] = retrieval_metrics(emb, val_set.sources)
            score = entry["val"]["map"]
        else:
            score = -entry["loss"]
        history.append(entry)
        improved = best is None or score > best["score"]
        if improved:
            best = {"epoch": epoch + 1, "score": score, "val": entry.get("val")}
            save_checkpoint(best_path, net, meta={**run_meta, "epoch": epoch + 1,
                                                  "val": entry.get("val")})
        extra = {
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "numpy_rng": json.dumps(rng.bit_generator.state), "torch_rng": gen.get_state(),
            "history": json.dumps(history), "best": json.dumps(best), "epoch": epoch + 1,
            "train_params": params_dict(p),
            "centroids_neighbours": None if sampler.neighbours is None
            else torch.from_numpy(sampler.neighbours),
        }
        save_checkpoint(last_path, net, meta={**run_meta, "epoch": epoch + 1}, extra=extra)
        _write_json(out / "train_log.json", {**run_meta, "history": history, "best": best,
                                             "status": "running"})
    summary = {
        **run_meta,
        "history": history,
        "best": best,
        "status": "done",
        "best_path": str(best_path),
        "last_path": str(last_path),
        "device": str(dev),
    }
    _write_json(out / "train_log.json", summary)
    return summary


def train(
    manifests: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    params: TrainParams | None = None,
    config: NetConfig | None = None,
    processed_manifests: Sequence[str | os.PathLike[str]] = (),
    source_column: str = "firearm_id",
    exclude_sources: str | None = None,
    processed: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    resume: bool = False,
    quiet: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Train an embedder from manifests (see :func:`load_training_set` and :func:`train_on_set`).

    ``cache_dir`` defaults to ``<out_dir>/cache``.
    """
    cfg = config or NetConfig()
    out = Path(out_dir)
    data = load_training_set(
        manifests, processed_manifests=processed_manifests, source_column=source_column,
        exclude_sources=exclude_sources,
        processed=processed, input_params=cfg.input,
        cache_dir=out / "cache" if cache_dir is None else cache_dir, quiet=quiet)
    meta = {"manifests": [str(m) for m in manifests],
            "processed_manifests": [str(m) for m in processed_manifests],
            "source_column": source_column,
            "exclude_sources": exclude_sources, "command": command,
            "n_casings": len(data.sources), "n_sources": len(set(data.sources))}
    return train_on_set(data, out, params=params, config=cfg, device=device, resume=resume,
                        quiet=quiet, meta=meta)


def join_checkpoints(
    gem_path: str | os.PathLike[str],
    phase_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    phase_share: float = 0.2,
    command: str | None = None,
) -> Path:
    """Join a trained ``gem`` and a trained ``phase`` checkpoint into one ``gem+phase`` model.

    The training metadata of both branches is kept (``meta["branches"]``).
    """
    obj = {}
    nets = {}
    for key, path in (("gem", gem_path), ("phase", phase_path)):
        ck = load_checkpoint(path)
        try:
            net = PolarNet(NetConfig.from_dict(ck["config"]))
            net.load_state_dict(ck["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"the weights do not fit the network ({exc})", path=path) from None
        nets[key] = net
        obj[key] = dict(ck.get("meta") or {})
    joined = join_branches(nets["gem"], nets["phase"], phase_share)
    meta = {"version": __version__, "command": command, "phase_share": phase_share,
            "branches": obj}
    return save_checkpoint(out_path, joined, meta=meta)
