"""Cluster-scale ingest on ``dask.distributed``: workers prepare and embed, the driver commits.

``ingest(inputs, DIR, scheduler="tcp://HOST:8786")`` (CLI: ``ballistics ingest ...
--scheduler tcp://HOST:8786``) spreads a collection ingest over a Dask cluster:

1. the driver (this process) takes the collection's write lock, lists the inputs and sends
   them to the workers in chunks to be hashed (SHA-256, so no file is read on the driver);
2. it drops casings already in the collection or seen earlier in the job, groups the rest
   into batches of ``commit_every`` casings and submits one task per batch, keyed by the
   batch's content (:func:`~ballistics.workflows._distributed_tasks.batch_key`);
3. a worker reads, preprocesses and embeds its batch (the model loaded once per worker
   process, on its GPU when it has one) and writes a shard file into ``DIR/staging/``;
4. the driver commits each finished shard in completion order with
   :meth:`Collection.commit_shard <ballistics.collection.store.Collection.commit_shard>`
   (the same atomic manifest publication as a local ingest; duplicates by SHA-256 are left
   out) and finally brings the FAISS index up to date (``Collection.update_index``: exact
   up to 100k casings, IVF-PQ trained on a sample beyond).

Fault tolerance: a worker that dies mid-batch has its task rerun elsewhere by the scheduler
(and ``retries`` reruns a task that raised); a rerun writes to its own content-keyed names
and atomically replaces a dead attempt's output, and the driver commits each SHA-256 once.
A killed driver is restarted with ``resume=True`` (``--resume``): finished shards left in
``DIR/staging`` are committed and only the casings still missing are sent out again.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ballistics.collection import shards as shard_io
from ballistics.collection.audit import log_event
from ballistics.collection.fsio import atomic_write_json
from ballistics.collection.lock import CollectionLock
from ballistics.collection.store import Collection
from ballistics.errors import (
    CollectionCorruptError,
    CollectionError,
    DependencyError,
    ParameterError,
)
from ballistics.params import check_range
from ballistics.progress import progress
from ballistics.workflows import _distributed_tasks as tasks
from ballistics.workflows.ingest import (
    DEFAULT_MODEL,
    JOB_NAME,
    IngestOptions,
    IngestSummary,
    LabelTable,
    check_model,
    discover_inputs,
    open_or_create,
    resume_job,
)

#: Files per hashing task.
HASH_CHUNK = 64
DASK_EXTRA = "pip install ballistics[dask]"


def require_dask() -> Any:
    """Import ``distributed`` or raise :class:`DependencyError` naming the extra to install."""
    try:
        import distributed
    except ImportError:
        raise DependencyError(
            "cluster ingest (--scheduler) needs dask.distributed, which is not installed; "
            f"install the 'dask' extra: {DASK_EXTRA}"
        ) from None
    return distributed


def connect(scheduler: str | Any, *, timeout: float = 30.0) -> tuple[Any, bool]:
    """A ``distributed.Client`` for ``scheduler`` (an address or a client); ``(client, own)``.

    Raises
    ------
    ParameterError
        When the address is not ``tcp://HOST:PORT`` (or another Dask protocol).
    CollectionError
        When no scheduler answers at the address within ``timeout`` seconds.
    """
    distributed = require_dask()
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    address = str(scheduler).strip()
    if "://" not in address or not address.rsplit(":", 1)[-1].isdigit():
        raise ParameterError(
            f"--scheduler must look like tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786), got "
            f"{scheduler!r}")
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise CollectionError(
            f"no Dask scheduler answers at {address} ({type(exc).__name__}); start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS` (see docs/cluster.md)"
        ) from None
    return client, True


def _gpu_resources(client: Any) -> dict[str, float] | None:
    """``{"GPU": 1}`` when every worker advertises a GPU (one batch per GPU at a time), else
    ``None`` (no restriction: a worker with CUDA uses it through ``device="auto"``)."""
    workers = client.scheduler_info().get("workers", {})
    if workers and all(float((w.get("resources") or {}).get("GPU", 0)) >= 1
                       for w in workers.values()):
        return {"GPU": 1}
    return None


def _threads(client: Any) -> int:
    workers = client.scheduler_info().get("workers", {})
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def _wait_for_workers(client: Any, timeout: float) -> None:
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        raise CollectionError(
            f"the Dask scheduler has no workers after {timeout:.0f} s; start some with "
            "`dask worker SCHEDULER_ADDRESS` (see docs/cluster.md)"
        ) from None


class _Committer:
    """Commits staged shards into the collection, each SHA-256 once, in completion order."""

    def __init__(self, col: Collection, lock: CollectionLock, summary: IngestSummary,
                 model_hash: str, on_commit: Callable[[int], None] | None) -> None:
        self.col = col
        self.lock = lock
        self.summary = summary
        self.model_hash = model_hash
        self.on_commit = on_commit
        self.committed = set(col.columns()["sha256"])
        self.count = col.count

    def commit(self, staging: Path, marker: dict[str, Any]) -> None:
        """Commit the shard a batch marker names (missing: already committed earlier)."""
        self.summary.failed += list(marker.get("failed") or [])
        name = marker.get("shard")
        if name:
            if marker.get("model_hash") and marker["model_hash"] != self.model_hash:
                self.summary.failed += [
                    {"path": p, "error": "ModelError", "reason":
                     f"worker {marker.get('host')} embedded with model hash "
                     f"{str(marker['model_hash'])[:12]}, the collection's is "
                     f"{self.model_hash[:12]}; give every worker the same weights"}
                    for p in marker.get("paths", [])]
                (staging / name).unlink(missing_ok=True)
            else:
                self.commit_file(staging / name)
        (staging / tasks.marker_name(marker["key"])).unlink(missing_ok=True)

    def commit_file(self, path: Path) -> None:
        """Commit one staged shard file (duplicates left out); a missing file is skipped."""
        if not path.exists():
            return
        try:
            table = shard_io.read_table(path)
        except CollectionCorruptError as exc:
            self.summary.warnings.append(f"discarded an unreadable staged shard {path.name}: "
                                         f"{exc.message}")
            path.unlink(missing_ok=True)
            return
        dups = [{"path": p, "sha256": s} for p, s in zip(table.paths, table.sha256, strict=True)
                if s in self.committed]
        if len(dups) == table.count:
            path.unlink(missing_ok=True)
            info = {"committed": 0, "duplicates": len(dups)}
        else:
            info = self.col.commit_shard(path, lock=self.lock)
        self.summary.ingested += int(info["committed"])
        self.summary.skipped_duplicates += int(info["duplicates"])
        self.summary.duplicates += dups
        self.summary.shards += 1 if info["committed"] else 0
        self.committed.update(table.sha256)
        self.count += int(info["committed"])
        if info["committed"] and self.on_commit is not None:
            self.on_commit(self.count)


def _recover_staging(staging: Path, committer: _Committer | None, quiet: bool) -> int:
    """Commit (``committer``) or discard (``None``) what an earlier driver left in staging.

    Returns the number of finished shards found.
    """
    for p in staging.glob(f".{tasks.SHARD_PREFIX}*"):  # partial outputs of dead attempts
        p.unlink(missing_ok=True)
    for p in staging.glob(".*.tmp"):
        p.unlink(missing_ok=True)
    shards = sorted(staging.glob(f"{tasks.SHARD_PREFIX}*.h5"))
    markers = sorted(staging.glob(f"{tasks.SHARD_PREFIX}*.json"))
    for p in shards:
        if committer is not None:
            committer.commit_file(p)
        else:
            p.unlink(missing_ok=True)
    for p in markers:
        p.unlink(missing_ok=True)
    if shards and committer is None and not quiet:
        print(f"discarded {len(shards)} staged shard(s) of an interrupted cluster ingest "
              "(use --resume to keep them)", file=sys.stderr)
    return len(shards)


def ingest(
    inputs: Sequence[str | Path],
    collection_dir: str | Path,
    *,
    scheduler: str | Any,
    labels: str | Path | None = None,
    options: IngestOptions | None = None,
    resume: bool = False,
    quiet: bool = False,
    on_commit: Callable[[int], None] | None = None,
    retries: int = 3,
    connect_timeout: float = 30.0,
) -> IngestSummary:
    """Ingest scan files into a collection on a ``dask.distributed`` cluster.

    Parameters
    ----------
    inputs
        Files and folders, at paths every worker can read (shared storage); may be empty
        with ``resume=True``.
    collection_dir
        The collection (created when missing), on storage every worker can write to.
    scheduler
        ``"tcp://HOST:PORT"`` of a running Dask scheduler, or a ``distributed.Client``.
    labels
        CSV with a ``path`` column and label columns (read on the driver).
    options
        :class:`~ballistics.workflows.ingest.IngestOptions`; ``workers`` is ignored (the
        cluster's workers do the work), ``commit_every`` is the batch (and shard) size,
        ``device`` is what each worker uses (``"auto"``: its GPU when it has one).
    resume
        Continue an interrupted ingest: commit the finished shards left in staging, and
        reuse the recorded inputs when ``inputs`` is empty.
    quiet
        No progress bar and no dashboard line on stderr.
    on_commit
        Called with the collection's count after each committed shard.
    retries
        Reruns of a batch task that raised (a dead worker's tasks are rerun by the scheduler
        regardless, up to its ``allowed-failures``).
    connect_timeout
        Seconds to wait for the scheduler and for its first worker.

    Returns
    -------
    IngestSummary
        As for a local ingest.

    Raises
    ------
    DependencyError
        When ``dask.distributed`` is not installed.
    CollectionLockedError
        When another ingest holds the collection.
    """
    options = options or IngestOptions()
    check_range("retries", retries, 0, 100)
    client, own_client = connect(scheduler, timeout=connect_timeout)
    try:
        _wait_for_workers(client, connect_timeout)
        if not quiet:
            print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        return _drive(client, inputs, Path(collection_dir), labels=labels, options=options,
                      resume=resume, quiet=quiet, on_commit=on_commit, retries=retries)
    finally:
        if own_client:
            client.close()


def _drive(client: Any, inputs: Sequence[str | Path], directory: Path, *,
           labels: str | Path | None, options: IngestOptions, resume: bool, quiet: bool,
           on_commit: Callable[[int], None] | None, retries: int) -> IngestSummary:
    distributed = require_dask()
    t0 = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    col = open_or_create(directory)
    lock = col.lock("ingest (dask)").acquire()
    try:
        col = col.refresh()
        col.cleanup_orphans(lock=lock)
        job_path = directory / JOB_NAME
        inputs, labels, options = resume_job(job_path, inputs, labels, options, resume=resume)
        model = options.model or col.embedding_info.get("model") or DEFAULT_MODEL
        if model not in ("cnn", "baseline") and Path(model).exists():
            model = str(Path(model).resolve())  # a weights file, at the workers' path
        options = IngestOptions(**{**asdict(options), "model": model})
        atomic_write_json(job_path, {
            "inputs": [str(Path(p).resolve()) for p in inputs],
            "labels": None if labels is None else str(Path(labels).resolve()),
            "options": asdict(options), "pid": os.getpid(), "scheduler": client.scheduler.address,
        })
        label_table = LabelTable.read(labels) if labels is not None else None
        files = [str(p) for p in discover_inputs(inputs)]
        summary = IngestSummary(collection=str(directory), inputs=len(files))
        if options.workers > 1:
            summary.warnings.append("--workers is ignored on a cluster: the Dask workers "
                                    "do the work (start more with `dask worker`)")

        resources = _gpu_resources(client)
        info = client.submit(tasks.model_info_task, model, options.device,
                             resources=resources, pure=False).result()
        info.pop("host", None)

        class _Loaded:  # check_model needs only the hash
            model_hash = info["model_hash"]

        check_model(col, _Loaded(), model)
        if not col.embedding_info.get("model_hash"):
            col.set_embedding_info(info, lock=lock, preprocess={
                "preset": options.preset, "processed": options.processed})
            col = col.refresh()
        summary.model = col.embedding_info

        staging = directory / tasks.STAGING
        staging.mkdir(exist_ok=True)
        committer = _Committer(col, lock, summary, info["model_hash"], on_commit)
        _recover_staging(staging, committer if resume else None, quiet)

        prepare = {"processed": options.processed, "preset": options.preset,
                   "spacing_um": options.spacing_um, "verify": options.verify}
        settings = {**prepare, "model": model, "model_hash": info["model_hash"]}
        seen = set(committer.committed)
        window = max(4, 2 * _threads(client))
        chunks = deque(files[i:i + HASH_CHUNK] for i in range(0, len(files), HASH_CHUNK))
        ready: deque[list[tuple[str, str, dict[str, str]]]] = deque()
        pending: list[tuple[str, str, dict[str, str]]] = []
        futures: dict[Any, tuple[str, list[Any]]] = {}
        done_q = distributed.as_completed()
        bar = progress(total=len(files), desc="ingest", unit="casing", quiet=quiet)

        def submit_more() -> None:
            n_batches = sum(1 for kind, _ in futures.values() if kind == "batch")
            while ready and n_batches < window:
                items = ready.popleft()
                key = tasks.batch_key(items, settings)
                fut = client.submit(
                    tasks.batch_task, key, items, str(staging), prepare=prepare, model=model,
                    device=options.device, batch_size=options.batch_size,
                    modality=col.modality,
                    key=f"ballistics-batch-{key}", retries=retries, resources=resources,
                    priority=10,
                )
                futures[fut] = ("batch", items)
                done_q.add(fut)
                n_batches += 1
            n_hash = len(futures) - n_batches
            while chunks and n_hash < window:
                chunk = chunks.popleft()
                fut = client.submit(tasks.hash_task, chunk, retries=retries, pure=False)
                futures[fut] = ("hash", chunk)
                done_q.add(fut)
                n_hash += 1

        try:
            submit_more()
            while futures:
                fut = next(done_q)
                kind, items = futures.pop(fut)
                if kind == "hash":
                    try:
                        hashed = fut.result()
                    except Exception as exc:  # the chunk failed on every attempt
                        reason = f"hashing failed on the cluster: {type(exc).__name__}: {exc}"
                        hashed = [(p, None, reason) for p in items]
                    for path, sha, err in hashed:
                        if sha is None:
                            summary.failed.append({"path": path, "reason": err,
                                                   "error": "ReadError"})
                            bar.update(1)
                        elif sha in seen:
                            summary.skipped_duplicates += 1
                            summary.duplicates.append({"path": path, "sha256": sha})
                            bar.update(1)
                        else:
                            seen.add(sha)
                            lab = label_table.get(path) if label_table is not None else {}
                            pending.append((path, sha, lab))
                            if len(pending) >= options.commit_every:
                                ready.append(pending)
                                pending = []
                    if not chunks and not any(k == "hash" for k, _ in futures.values()):
                        if pending:
                            ready.append(pending)
                            pending = []
                else:
                    try:
                        marker = fut.result()
                    except Exception as exc:  # the batch failed on every attempt
                        reason = f"batch failed on the cluster: {type(exc).__name__}: {exc}"
                        summary.failed += [{"path": p, "reason": reason,
                                            "error": type(exc).__name__} for p, _, _ in items]
                    else:
                        committer.commit(staging, marker)
                    bar.update(len(items))
                fut.release()
                submit_more()
        finally:
            bar.close()
            for fut in futures:
                fut.cancel()
        col = col.refresh()
        summary.index = col.update_index(lock=lock)
        col = col.refresh()
        summary.count = col.count
        summary.seconds = time.perf_counter() - t0
        summary.rate_per_s = summary.ingested / summary.seconds if summary.seconds > 0 else 0.0
        _recover_staging(staging, None, True)
        try:
            staging.rmdir()
        except OSError:
            pass
        job_path.unlink(missing_ok=True)
        log_event(
            directory, "ingest",
            {**asdict(options), "labels": None if labels is None else str(labels),
             "resume": resume, "inputs": [str(p) for p in inputs],
             "scheduler": str(client.scheduler.address), "retries": retries},
            inputs=[{"path": p} for p in files[:10000]],
            result={k: v for k, v in summary.to_dict().items() if k not in ("duplicates",)},
        )
        return summary
    finally:
        lock.release()
