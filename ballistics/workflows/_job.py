"""One ingest, start to end, on any executor (:mod:`ballistics.workflows._executors`).

:class:`IngestJob` owns the lifecycle: open or create the collection, take its write lock,
clean orphans, record (or resume) the job file, check the model against the collection's,
hash the inputs, prepare and embed the casings, commit shards, update the index, write the
audit entry and return the :class:`~ballistics.workflows.ingest.IngestSummary`.

What runs where depends only on the executor:

- a local executor (serial or a process pool, ``remote=False``) prepares each casing in a
  task; this process embeds them with one loaded model and commits a shard every
  ``commit_every`` casings, in input order;
- a remote executor (Dask, ``remote=True``) runs one task per batch of ``commit_every``
  casings that prepares, embeds and writes a staged shard
  (:func:`~ballistics.workflows._distributed_tasks.batch_task`); this process commits the
  staged shards in completion order.

Failure semantics are the same everywhere: a missing, unreadable or unfit input, a casing
of the wrong modality or a task that failed on every attempt is a recorded failure in the
summary, never an exception.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ballistics.collection import shards as shard_io
from ballistics.collection.audit import log_event
from ballistics.collection.fsio import atomic_write_json
from ballistics.collection.lock import CollectionLock
from ballistics.collection.records import Failure, modality_mismatch
from ballistics.collection.store import Collection
from ballistics.errors import CollectionCorruptError, InputError, ParameterError
from ballistics.io._common import IMAGE_SUFFIXES
from ballistics.progress import progress
from ballistics.workflows import _distributed_tasks as tasks
from ballistics.workflows._executors import Executor
from ballistics.workflows.ingest import (
    DEFAULT_MODEL,
    DEFAULT_PRESET,
    JOB_NAME,
    IngestOptions,
    IngestSummary,
    LabelTable,
    PreparedCasing,
    check_model,
    discover_inputs,
    embed_prepared,
    embedder_info,
    load_model,
    make_records,
    open_or_create,
    prepare_casing,
    resume_job,
)
from ballistics.workflows.manage import (
    apply_change,
    label_differences,
    relabel_command,
    stale_calibration,
)

logger = logging.getLogger(__name__)

#: Files per hashing task.
HASH_CHUNK = 64

Item = tuple[str, str, dict[str, str]]  # (path, sha256, labels)


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
        # casings already committed (an earlier attempt's copy of the batch, or a casing
        # in the collection before a resumed job) are left out; they are not counted here:
        # the job counts each input once, as a duplicate when its hash comes back
        if all(s in self.committed for s in table.sha256):
            path.unlink(missing_ok=True)
            info = {"committed": 0}
        else:
            info = self.col.commit_shard(path, lock=self.lock)
        self.summary.ingested += int(info["committed"])
        self.summary.shards += 1 if info["committed"] else 0
        self.committed.update(table.sha256)
        self.count += int(info["committed"])
        if info["committed"] and self.on_commit is not None:
            self.on_commit(self.count)


def _collection_preset(col: Collection, given: str | None) -> str:
    """The preprocessing preset of this ingest: ``given``, else the collection's, else the
    default for a new collection.

    Raises
    ------
    ParameterError
        When ``given`` differs from the preset the collection's casings were prepared with
        (a later ingest left at the default preset mixed two preprocessings in one
        collection, while search prepares every query with the collection's).
    """
    stored = ((col.manifest.get("preprocess") or {}).get("preset")
              if col.embedding_info.get("model_hash") else None)
    if given is not None and stored is not None and given != stored:
        raise ParameterError(
            f"the collection's casings were prepared with the preprocessing preset "
            f"{stored!r}, not {given!r}; ingest with --preset {stored} (or leave --preset "
            "out) so that every casing, and every query of a search, is prepared alike; a "
            "collection of the other preset is another collection", path=col.directory)
    return given or stored or DEFAULT_PRESET


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
        logger.warning("discarded %d staged shard(s) of an interrupted cluster ingest (use "
                       "--resume to keep them)", len(shards))
    return len(shards)


def _new_collection_modality(files: Sequence[str], asked: str | None) -> str | None:
    """The modality an empty collection takes from its inputs: ``--modality`` when given,
    else ``"image"`` when every input is an image file (PNG, TIFF, JPEG, BMP) and
    ``"topography"`` otherwise (as before for a mixed folder); ``None`` without inputs."""
    if not files:
        return None
    if asked is not None:
        return asked
    images = all(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in files)
    return "image" if images else "topography"


def _prepare_one(path: str, modality: str | None, prepare: dict[str, Any]
                 ) -> PreparedCasing | Failure:
    """Task of a local ingest: read and prepare one casing, checked against the collection's
    modality (a mismatch is a :class:`Failure`, as on a cluster)."""
    res = prepare_casing(path, **prepare)
    if (not isinstance(res, Failure) and modality is not None
            and res.scan.modality != modality):
        return Failure(path, modality_mismatch(res.scan.modality, modality),
                       "ModalityMismatchError")
    return res


class IngestJob:
    """One ingest into one collection, run through an executor.

    Parameters
    ----------
    inputs
        Files and folders; may be empty with ``resume=True``.
    directory
        The collection (created when missing).
    executor
        Where tasks run (:class:`~ballistics.workflows._executors.SerialExecutor`,
        :class:`~ballistics.workflows._executors.PoolExecutor` or
        :class:`~ballistics.workflows._executors.DaskExecutor`).
    labels, options, resume, quiet, on_commit
        As for :func:`ballistics.workflows.ingest.ingest`.
    embedder
        A loaded embedder (local executors only; default: ``options.model`` loaded here).
    lock_name
        What the write lock says holds the collection.
    record
        Extra entries of the job file and the audit entry (e.g. the scheduler).
    warnings
        Warnings to report in the summary.
    """

    def __init__(self, inputs: Sequence[str | Path], directory: str | Path, executor: Executor,
                 *, labels: str | Path | None = None, options: IngestOptions | None = None,
                 resume: bool = False, quiet: bool = False,
                 on_commit: Callable[[int], None] | None = None, embedder: Any = None,
                 lock_name: str = "ingest", record: dict[str, Any] | None = None,
                 warnings: Sequence[str] = ()) -> None:
        self.inputs = list(inputs)
        self.directory = Path(directory)
        self.executor = executor
        self.labels = labels
        self.options = options or IngestOptions()
        self.resume = resume
        self.quiet = quiet
        self.on_commit = on_commit
        self.embedder = embedder
        self.lock_name = lock_name
        self.record = dict(record or {})
        self.warnings = list(warnings)

    # ---- the lifecycle ------------------------------------------------------------------
    def run(self) -> IngestSummary:
        """Run the ingest; returns its summary.

        Raises
        ------
        CollectionLockedError
            When another ingest holds the collection.
        CollectionError
            When the model differs from the one the collection was built with.
        InputError
            When there is nothing to ingest (or to resume).
        """
        t0 = time.perf_counter()
        given_labels = self._check_before_creating()
        self.directory.mkdir(parents=True, exist_ok=True)
        col = open_or_create(self.directory)
        lock = col.lock(self.lock_name).acquire()
        try:
            col = col.refresh()
            col.cleanup_orphans(lock=lock)
            job_path = self.directory / JOB_NAME
            inputs, labels, options = resume_job(job_path, self.inputs, self.labels,
                                                 self.options, resume=self.resume)
            model = options.model or col.embedding_info.get("model") or DEFAULT_MODEL
            if model not in ("cnn", "baseline") and Path(model).exists():
                model = str(Path(model).resolve())  # a weights file, at the workers' path
            preset = _collection_preset(col, options.preset)
            options = IngestOptions(**{**asdict(options), "model": model, "preset": preset})
            label_table = (given_labels if labels is self.labels and given_labels is not None
                           else LabelTable.read(labels) if labels is not None else None)
            atomic_write_json(job_path, {
                "inputs": [str(Path(p).resolve()) for p in inputs],
                "labels": None if labels is None else str(Path(labels).resolve()),
                "options": asdict(options), "pid": os.getpid(), **self.record,
            })
            missing: list[str] = []
            companions: list[str] = []
            files = [str(p) for p in discover_inputs(inputs, missing, companions)]
            summary = IngestSummary(collection=str(self.directory),
                                    inputs=len(files) + len(missing),
                                    skipped_companions=len(companions),
                                    warnings=list(self.warnings))
            summary.failed += [Failure(m, "file not found", "ScanFileNotFoundError").to_dict()
                               for m in missing]

            info, emb = self._model(model, options.device)
            check_model(col, _Hash(info["model_hash"]), model)
            if not col.embedding_info.get("model_hash"):
                col.set_embedding_info(info, lock=lock, preprocess=options.settings)
                col = col.refresh()
            summary.model = col.embedding_info
            modality = _new_collection_modality(files, options.modality)
            if not col.count and modality is not None and modality != col.modality:
                col.set_modality(modality, lock=lock)  # an empty collection takes the inputs'
                col = col.refresh()

            run = _Run(self, col, lock, summary, options, label_table, info, emb)
            col = run.execute(files)

            col = col.refresh()
            _settle_label_conflicts(col, lock, summary, options.update_labels, self.quiet)
            summary.index = col.update_index(lock=lock)
            col = col.refresh()
            summary.count = col.count
            if summary.ingested or summary.relabelled:
                summary.warnings += stale_calibration(col, changed=True)
            summary.seconds = time.perf_counter() - t0
            summary.rate_per_s = (summary.ingested / summary.seconds if summary.seconds > 0
                                  else 0.0)
            job_path.unlink(missing_ok=True)
            log_event(
                self.directory, "ingest",
                {**asdict(options), "labels": None if labels is None else str(labels),
                 "resume": self.resume, "inputs": [str(p) for p in inputs], **self.record},
                inputs=[{"path": p} for p in files[:10000]],
                result={k: v for k, v in summary.to_dict().items() if k != "duplicates"},
            )
            return summary
        finally:
            lock.release()

    def _check_before_creating(self) -> LabelTable | None:
        """Refuse what would fail anyway before the collection folder is created or an
        interrupted job recorded: no scans (and nothing to resume), a labels CSV that
        cannot be read. Returns the labels read (``None`` when none were given)."""
        if not self.inputs and not (self.resume and (self.directory / JOB_NAME).exists()):
            if self.resume:
                raise InputError("nothing to resume: no interrupted ingest recorded; give "
                                 "the scans to ingest", path=self.directory)
            raise InputError("no scans given to ingest")
        return LabelTable.read(self.labels) if self.labels is not None else None

    def _model(self, model: str, device: str) -> tuple[dict[str, Any], Any]:
        """The model's manifest entry, and the embedder when this process embeds."""
        if self.executor.remote:
            fut = self.executor.submit(tasks.model_info_task, model, device, gpu=True)
            info = dict(fut.result())
            info.pop("host", None)
            return info, None
        emb = self.embedder if self.embedder is not None else load_model(model, device)
        return embedder_info(emb, model), emb


def _settle_label_conflicts(col: Collection, lock: CollectionLock, summary: IngestSummary,
                            update: bool, quiet: bool) -> None:
    """Duplicates whose labels in the CSV differ from the stored ones: update the stored
    labels (``update``) or warn, naming the file, the labels and the command that fixes it."""
    if not summary.label_conflicts:
        return
    if update:
        stored = dict(zip(col.columns()["id"], col.columns()["labels"], strict=True))
        new = {c["id"]: apply_change(stored[c["id"]], {k: d["given"]
                                                        for k, d in c["labels"].items()})
               for c in summary.label_conflicts if c["id"] in stored}
        with progress(total=None, desc="relabel", unit="shard", quiet=quiet) as bar:
            out = col.rewrite_casings(lock=lock, labels=new, on_shard=lambda: bar.update(1))
        done = set(out["relabelled"])
        for c in summary.label_conflicts:
            c["updated"] = c["id"] in done
        summary.relabelled = len(done)
        return
    for c in summary.label_conflicts:
        diff = "; ".join(f"{k}: {d['collection']!r} in the collection, {d['given']!r} given"
                         for k, d in c["labels"].items())
        summary.warnings.append(
            f"{c['path']}: already in the collection as {c['id']} with different labels "
            f"({diff}); kept the collection's labels. To change them: "
            f"`{relabel_command(c['id'], c['labels'], col.directory)}`, or ingest again with "
            "--update-labels")


class _Hash:
    """What :func:`check_model` needs of an embedder: its hash."""

    def __init__(self, model_hash: str) -> None:
        self.model_hash = model_hash


class _Run:
    """The task loop of one :class:`IngestJob`: hash in chunks, then prepare/embed/commit.

    Hash results are taken in input order (the first of equal files is the one kept);
    batches are formed as hashes arrive, so hashing and the work overlap.
    """

    def __init__(self, job: IngestJob, col: Collection, lock: CollectionLock,
                 summary: IngestSummary, options: IngestOptions,
                 label_table: LabelTable | None, info: dict[str, Any], emb: Any) -> None:
        self.job = job
        self.ex = job.executor
        self.col = col
        self.lock = lock
        self.summary = summary
        self.options = options
        self.labels = label_table
        self.emb = emb
        self.model_hash = str(info["model_hash"])
        self.prepare = {"mode": options.preprocess, "preset": options.preset,
                        "spacing_um": options.spacing_um, "verify": options.verify,
                        "strict": options.strict, "modality": options.modality}
        self.window = max(4, 2 * self.ex.slots) if self.ex.remote else 4 * self.ex.slots
        # local work: prepared casings come back in submission order
        self.results: dict[int, PreparedCasing | Failure] = {}
        self.next_seq = 0
        self.pending: list[PreparedCasing] = []
        cols = col.columns()
        self.stored = dict(zip(cols["sha256"], zip(cols["id"], cols["labels"], strict=True),
                               strict=True))

    # ---- the loop -----------------------------------------------------------------------
    def execute(self, files: list[str]) -> Collection:
        """Run every task; returns the collection as last committed."""
        ex, summary = self.ex, self.summary
        if ex.remote:
            self.staging = self.job.directory / tasks.STAGING
            self.staging.mkdir(exist_ok=True)
            self.committer = _Committer(self.col, self.lock, summary, self.model_hash,
                                        self.job.on_commit)
            before = set(self.committer.committed)
            _recover_staging(self.staging, self.committer if self.job.resume else None,
                             self.job.quiet)
            seen = set(self.committer.committed)
            # casings of this job's inputs that a resumed job committed from staging: already
            # counted as ingested, so they are not duplicates when their hashes come back
            recovered = seen - before
        else:
            recovered = set()
            seen = set(self.col.columns()["sha256"])
        chunks = [files[i:i + HASH_CHUNK] for i in range(0, len(files), HASH_CHUNK)]
        n_chunks = len(chunks)
        hashed: dict[int, list[tuple[str, str | None, str]]] = {}
        next_chunk = 0  # the next chunk whose hashes are taken
        units: list[tuple[int, list[Item]]] = []  # work to submit: (seq, batch or [item])
        batch: list[Item] = []
        futures: dict[Any, tuple[str, Any]] = {}
        seq = 0
        self.bar = progress(total=len(files), desc="ingest", unit="casing",
                            quiet=self.job.quiet)

        def submit_more() -> None:
            n_work = sum(1 for kind, _ in futures.values() if kind == "work")
            while units and n_work < self.window:
                s, items = units.pop(0)
                futures[self._submit(items)] = ("work", (s, items))
                n_work += 1
            n_hash = len(futures) - n_work
            while chunks and n_hash < self.window:
                fut = ex.submit(tasks.hash_task, chunks.pop(0))
                futures[fut] = ("hash", n_chunks - len(chunks) - 1)
                n_hash += 1

        try:
            submit_more()
            while futures:
                fut = next(iter(ex.as_completed(list(futures))))
                kind, payload = futures.pop(fut)
                if kind == "hash":
                    try:
                        hashed[payload] = fut.result()
                    except Exception as exc:  # the chunk failed on every attempt
                        reason = f"hashing failed: {type(exc).__name__}: {exc}"
                        start = payload * HASH_CHUNK
                        hashed[payload] = [(p, None, reason)
                                           for p in files[start:start + HASH_CHUNK]]
                    while next_chunk in hashed:
                        for path, sha, err in hashed.pop(next_chunk):
                            if sha is None:
                                summary.failed.append({"path": path, "reason": err,
                                                       "error": "ReadError"})
                                self.bar.update(1)
                            elif sha in recovered:  # committed from staging above
                                recovered.discard(sha)
                                self.bar.update(1)
                            elif sha in seen:
                                summary.skipped_duplicates += 1
                                summary.duplicates.append({"path": path, "sha256": sha})
                                self._check_labels(path, sha)
                                self.bar.update(1)
                            else:
                                seen.add(sha)
                                lab = self.labels.get(path) if self.labels is not None else {}
                                if ex.remote:
                                    batch.append((path, sha, lab))
                                    if len(batch) >= self.options.commit_every:
                                        units.append((seq, batch))
                                        seq, batch = seq + 1, []
                                else:
                                    units.append((seq, [(path, sha, lab)]))
                                    seq += 1
                        next_chunk += 1
                    if next_chunk == n_chunks and batch:
                        units.append((seq, batch))
                        seq, batch = seq + 1, []
                else:
                    self._done(fut, *payload)
                release = getattr(fut, "release", None)
                if release is not None:
                    release()
                submit_more()
            if not ex.remote:
                self._flush()
        finally:
            self.bar.close()
            for fut in futures:
                fut.cancel()
        if ex.remote:
            _recover_staging(self.staging, None, True)
            try:
                self.staging.rmdir()
            except OSError:
                pass
            return self.committer.col
        return self.col

    def _check_labels(self, path: str, sha: str) -> None:
        """Record a duplicate of a committed casing whose CSV labels differ from its own."""
        if self.labels is None or sha not in self.stored or not self.labels.listed(path):
            return
        given = self.labels.get(path)
        given.pop("id", None)
        cid, stored = self.stored[sha]
        diffs = label_differences(stored, given)
        if diffs:
            self.summary.label_conflicts.append({"path": path, "id": cid, "sha256": sha,
                                                 "labels": diffs, "updated": False})

    # ---- the work -----------------------------------------------------------------------
    def _submit(self, items: list[Item]) -> Any:
        if self.ex.remote:
            settings = {**self.prepare, "model": self.options.model,
                        "model_hash": self.model_hash}
            key = tasks.batch_key(items, settings)
            return self.ex.submit(
                tasks.batch_task, key, items, str(self.staging), prepare=self.prepare,
                model=self.options.model, device=self.options.device,
                batch_size=self.options.batch_size, modality=self.col.modality,
                key=f"batch-{key}", gpu=True)
        return self.ex.submit(_prepare_one, items[0][0], self.col.modality, self.prepare)

    def _done(self, fut: Any, seq: int, items: list[Item]) -> None:
        try:
            res = fut.result()
        except Exception as exc:  # the task failed on every attempt
            reason = f"task failed: {type(exc).__name__}: {exc}"
            failed = [{"path": p, "reason": reason, "error": type(exc).__name__}
                      for p, _, _ in items]
            if self.ex.remote:
                self.summary.failed += failed
                self.bar.update(len(items))
                return
            res = Failure(failed[0]["path"], reason, failed[0]["error"])
        if self.ex.remote:
            self.committer.commit(self.staging, res)
            self.bar.update(len(items))
            return
        self.results[seq] = res
        while self.next_seq in self.results:
            r = self.results.pop(self.next_seq)
            self.next_seq += 1
            if isinstance(r, Failure):
                self.summary.failed.append(r.to_dict())
            else:
                self.pending.append(r)
                if len(self.pending) >= self.options.commit_every:
                    self._flush()
            self.bar.update(1)

    def _flush(self) -> None:
        """Embed the prepared casings held here and commit them as one shard."""
        if not self.pending:
            return
        vecs = embed_prepared(self.pending, self.emb, batch_size=self.options.batch_size)
        recs = make_records(self.pending, vecs, self.labels)
        committed, dups = self.col.commit(recs, lock=self.lock)
        s = self.summary
        s.ingested += len(committed)
        s.skipped_duplicates += len(dups)
        s.duplicates += [{"path": r.path, "sha256": r.sha256} for r in dups]
        s.shards += 1 if committed else 0
        self.pending = []
        if self.job.on_commit is not None:
            self.job.on_commit(self.col.count)
