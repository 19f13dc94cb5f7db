"""Batch ingest: read -> prepare -> embed each casing, commit shards, update the index.

The work is split so that it can be spread elsewhere (a process pool here, a Dask
cluster later):

- :func:`prepare_casing` is a pure, picklable function of one file (read + preprocess),
  returning a :class:`PreparedCasing` or a :class:`~ballistics.collection.records.Failure`;
- :func:`embed_prepared` embeds a batch with one loaded embedder;
- :func:`make_records` attaches ids and labels;
- :meth:`Collection.commit <ballistics.collection.store.Collection.commit>` writes and
  publishes one shard (the driver's job, under the write lock).

:func:`ingest` drives them locally with a process pool.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.collection.audit import log_event
from ballistics.collection.fsio import atomic_write_json
from ballistics.collection.records import CasingRecord, Failure
from ballistics.collection.store import Collection
from ballistics.errors import BallisticsError, CollectionError, InputError
from ballistics.params import check_range
from ballistics.progress import progress
from ballistics.scan import Scan

JOB_NAME = "ingest-job.json"
DEFAULT_MODEL = "cnn"


@dataclass(frozen=True)
class IngestOptions:
    """How each casing is read, prepared and embedded, and how often shards are committed.

    Parameters
    ----------
    processed
        ``True``: inputs are already processed (used as they are); ``None``: decided per
        file (scans carrying this toolkit's provenance are used as they are).
    preset
        Preprocessing preset for raw inputs.
    spacing_um
        Pixel spacing for images that carry none.
    verify
        Check X3P checksums while reading.
    model
        Embedder (``"cnn"``, ``"baseline"`` or a weights path); ``None`` = the
        collection's model, or ``"cnn"`` for a new collection.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"`` for embedding.
    workers
        Processes reading and preprocessing in parallel (1 = in this process).
    batch_size
        Embedding batch size.
    commit_every
        Casings per committed shard (smaller = less work lost on a crash, more files).
    """

    processed: bool | None = None
    preset: str = "default"
    spacing_um: float | None = None
    verify: bool = True
    model: str | None = None
    device: str = "auto"
    workers: int = 1
    batch_size: int = 32
    commit_every: int = 64

    def __post_init__(self) -> None:
        check_range("workers", self.workers, 1, 256)
        check_range("batch_size", self.batch_size, 1, 4096)
        check_range("commit_every", self.commit_every, 1, 1_000_000)
        if self.spacing_um is not None:
            check_range("spacing_um", self.spacing_um, 0, None, lo_open=True)


@dataclass(frozen=True, eq=False)
class PreparedCasing:
    """One casing read and prepared for comparison (before embedding)."""

    path: str
    sha256: str
    scan: Scan
    warnings: tuple[str, ...] = ()


@dataclass
class IngestSummary:
    """What an ingest did (the CLI prints it as JSON)."""

    collection: str
    inputs: int = 0
    ingested: int = 0
    skipped_duplicates: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    shards: int = 0
    count: int = 0
    seconds: float = 0.0
    rate_per_s: float = 0.0
    index: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


# ---- inputs and labels ------------------------------------------------------------------
def discover_inputs(inputs: Iterable[str | Path], missing: list[str] | None = None
                    ) -> list[Path]:
    """Expand files and directories (recursively) into scan files, sorted, de-duplicated.

    Inputs that do not exist are appended to ``missing`` when it is given, otherwise an
    :class:`InputError` is raised.
    """
    from ballistics.io import SUPPORTED_SUFFIXES

    suffixes = {s.lower() for s in SUPPORTED_SUFFIXES}
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in suffixes
                           and not any(part.startswith(".") for part in q.parts[len(p.parts):]))
        elif p.exists():
            found = [p]
        elif missing is not None:
            missing.append(str(p))
            continue
        else:
            raise InputError("input does not exist", path=p)
        for q in found:
            r = q.resolve()
            if r not in seen:
                seen.add(r)
                out.append(r)
    return out


class LabelTable:
    """Labels per file from a CSV with a ``path`` column (a file's path or name).

    Every other column becomes a label. ``read_manifest`` resolves paths relative to the
    CSV's folder, so the ``manifest.csv`` of ``ballistics synth`` and of the shared data
    work as they are. Lookup is by resolved path, then by file name.
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.by_path: dict[str, dict[str, str]] = {}
        self.by_name: dict[str, dict[str, str]] = {}
        for row in rows:
            if "path" not in row:
                raise InputError("the labels file needs a 'path' column")
            p = Path(str(row["path"]))
            labels = {str(k): str(v) for k, v in row.items() if k != "path" and v is not None}
            self.by_path[str(p.resolve())] = labels
            self.by_name.setdefault(p.name, labels)

    @classmethod
    def read(cls, path: str | Path) -> LabelTable:
        """Read a labels CSV through :func:`ballistics.datasets.manifest.read_manifest`."""
        from ballistics.datasets.manifest import read_manifest

        return cls(read_manifest(path))

    def get(self, path: str | Path) -> dict[str, str]:
        """Labels of a file (empty when unlisted)."""
        p = Path(path)
        return dict(self.by_path.get(str(p.resolve())) or self.by_name.get(p.name) or {})


# ---- the per-casing work ----------------------------------------------------------------
def prepare_casing(
    path: str | Path,
    *,
    processed: bool | None = None,
    preset: str = "default",
    spacing_um: float | None = None,
    verify: bool = True,
) -> PreparedCasing | Failure:
    """Read and prepare one casing for comparison (pure; runs in a worker process).

    Returns a :class:`Failure` (never raises) for a file that cannot be read or is unfit.
    """
    import warnings

    from ballistics.io import read_scan
    from ballistics.preprocess import prepare_for_comparison

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scan = read_scan(path, spacing_um=spacing_um, verify=verify)
            prepared = prepare_for_comparison(scan, preset, processed=processed)
        sha = scan.sha256
        if not sha:
            from ballistics.io import sha256_file

            sha = sha256_file(path)
        return PreparedCasing(path=str(path), sha256=sha, scan=prepared,
                              warnings=tuple(prepared.warnings))
    except BallisticsError as exc:
        return Failure(path=str(path), reason=exc.message, error=type(exc).__name__)
    except MemoryError:
        return Failure(path=str(path), reason="out of memory", error="MemoryError")
    except Exception as exc:
        return Failure(path=str(path), reason=f"{type(exc).__name__}: {exc}",
                       error=type(exc).__name__)


def _init_worker() -> None:
    """One compute thread per worker process: N workers on N cores, no oversubscription."""
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def _prepare_task(args: tuple[str, dict[str, Any]]) -> PreparedCasing | Failure:
    """Worker side of :func:`prepare_casing` (both results pickle, :class:`Scan` included)."""
    path, kw = args
    return prepare_casing(path, **kw)


def embed_prepared(
    prepared: Sequence[PreparedCasing], embedder: Any, *, batch_size: int = 32
) -> np.ndarray:
    """Embeddings ``(N, D)`` float32 of prepared casings with a loaded embedder."""
    if not prepared:
        return np.zeros((0, int(embedder.dim)), np.float32)
    emb = embedder.embed([p.scan for p in prepared], batch_size=batch_size)
    emb = np.asarray(emb, np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms > 0, norms, 1.0)


def make_records(
    prepared: Sequence[PreparedCasing],
    embeddings: np.ndarray,
    labels: LabelTable | None = None,
) -> list[CasingRecord]:
    """Attach ids and labels: id = the label ``id`` or ``casing_id`` if given, else the stem."""
    out = []
    for p, e in zip(prepared, embeddings, strict=True):
        lab = labels.get(p.path) if labels is not None else {}
        cid = lab.pop("id", None) or lab.get("casing_id") or Path(p.path).stem
        out.append(CasingRecord(id=cid, path=p.path, sha256=p.sha256, labels=lab,
                                embedding=e, scan=p.scan, warnings=p.warnings))
    return out


def load_model(model: str, device: str = "auto") -> Any:
    """Load an embedder with :func:`ballistics.models.load_embedder`."""
    from ballistics.models import load_embedder

    return load_embedder(model, device=device)


def embedder_info(embedder: Any, model: str) -> dict[str, Any]:
    """``{"model", "model_hash", "dim", "name"}`` recorded in the manifest."""
    return {"model": model, "name": str(getattr(embedder, "name", model)),
            "model_hash": str(embedder.model_hash), "dim": int(embedder.dim)}


def check_model(collection: Collection, embedder: Any, model: str) -> None:
    """Refuse an embedder whose hash differs from the one the collection was built with."""
    info = collection.embedding_info
    if info.get("model_hash") and info["model_hash"] != str(embedder.model_hash):
        raise CollectionError(
            f"the collection was embedded with model {info.get('model')!r} (hash "
            f"{info['model_hash'][:12]}), but {model!r} has hash "
            f"{str(embedder.model_hash)[:12]}; use the same model (--model) or build a new "
            "collection", path=collection.directory,
        )


# ---- the local driver -------------------------------------------------------------------

def open_or_create(directory: Path) -> Collection:
    """Open the collection in ``directory``, creating an empty one if there is none."""
    if (directory / "manifest.json").exists():
        return Collection.open(directory)
    return Collection.create(directory)


def resume_job(
    job_path: Path,
    inputs: Sequence[Any],
    labels: Any,
    options: IngestOptions,
    *,
    resume: bool,
) -> tuple[Sequence[Any], Any, IngestOptions]:
    """Inputs, labels and options of this ingest: as given, or from the interrupted job
    recorded at ``job_path`` when resuming without inputs (keeping this run's workers and
    device). Raises :class:`InputError` when there is nothing to ingest."""
    if resume and not inputs:
        if not job_path.exists():
            raise InputError("nothing to resume: no interrupted ingest recorded; give the "
                             "scans to ingest", path=job_path.parent)
        job = json.loads(job_path.read_text(encoding="utf-8"))
        inputs = job["inputs"]
        labels = labels or job.get("labels")
        saved = {k: v for k, v in job.get("options", {}).items()
                 if k in IngestOptions.__dataclass_fields__}
        options = IngestOptions(**{**saved, "workers": options.workers,
                                   "device": options.device})
    if not inputs:
        raise InputError("no scans given to ingest")
    return inputs, labels, options

def _hash_inputs(paths: Sequence[Path], quiet: bool) -> Iterator[tuple[Path, str | None, str]]:
    from ballistics.io import sha256_file

    for p in progress(paths, desc="hashing", unit="file", quiet=quiet or len(paths) < 200):
        try:
            yield p, sha256_file(p), ""
        except (OSError, BallisticsError) as exc:
            yield p, None, str(getattr(exc, "message", exc))


def ingest(
    inputs: Sequence[str | Path],
    collection_dir: str | Path,
    *,
    labels: str | Path | None = None,
    options: IngestOptions | None = None,
    resume: bool = False,
    quiet: bool = False,
    embedder: Any = None,
    on_commit: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Ingest scan files (or folders of them) into a collection.

    Parameters
    ----------
    inputs
        Files and folders; may be empty with ``resume=True`` (the interrupted job's inputs).
    collection_dir
        Created when missing.
    labels
        CSV with a ``path`` column and any label columns.
    options
        :class:`IngestOptions`.
    resume
        Continue an interrupted ingest: reuse its inputs/labels/options when ``inputs`` is
        empty. Casings already committed are skipped in any case (by SHA-256).
    quiet
        No progress bar.
    embedder
        A loaded embedder to use instead of loading ``options.model``.
    on_commit
        Called with the collection's count after each committed shard.

    Raises
    ------
    CollectionLockedError
        When another ingest holds the collection.
    """
    options = options or IngestOptions()
    t0 = time.perf_counter()
    directory = Path(collection_dir)
    directory.mkdir(parents=True, exist_ok=True)
    col = open_or_create(directory)
    lock = col.lock("ingest").acquire()
    try:
        col = col.refresh()
        col.cleanup_orphans(lock=lock)
        job_path = directory / JOB_NAME
        inputs, labels, options = resume_job(job_path, inputs, labels, options, resume=resume)
        model = options.model or col.embedding_info.get("model") or DEFAULT_MODEL
        options = IngestOptions(**{**asdict(options), "model": model})
        atomic_write_json(job_path, {
            "inputs": [str(Path(p).resolve()) for p in inputs],
            "labels": None if labels is None else str(Path(labels).resolve()),
            "options": asdict(options), "pid": os.getpid(),
        })
        label_table = LabelTable.read(labels) if labels is not None else None
        missing: list[str] = []
        files = discover_inputs(inputs, missing)
        summary = IngestSummary(collection=str(directory), inputs=len(files) + len(missing))
        summary.failed += [Failure(m, "file not found", "ScanFileNotFoundError").to_dict()
                           for m in missing]
        emb = embedder if embedder is not None else load_model(model, options.device)
        check_model(col, emb, model)
        if not col.embedding_info.get("model_hash"):
            col.set_embedding_info(embedder_info(emb, model), lock=lock,
                                   preprocess={"preset": options.preset,
                                               "processed": options.processed})
        summary.model = col.embedding_info
        known = set(col.columns()["sha256"])
        todo: list[Path] = []
        for p, sha, err in _hash_inputs(files, quiet):
            if sha is None:
                summary.failed.append(Failure(str(p), err, "ReadError").to_dict())
            elif sha in known:
                summary.skipped_duplicates += 1
                summary.duplicates.append({"path": str(p), "sha256": sha})
            else:
                known.add(sha)
                todo.append(p)
        kw = {"processed": options.processed, "preset": options.preset,
              "spacing_um": options.spacing_um, "verify": options.verify}
        pending: list[PreparedCasing] = []

        def flush() -> None:
            nonlocal col, pending
            if not pending:
                return
            vecs = embed_prepared(pending, emb, batch_size=options.batch_size)
            recs = make_records(pending, vecs, label_table)
            committed, dups = col.commit(recs, lock=lock)
            summary.ingested += len(committed)
            summary.skipped_duplicates += len(dups)
            summary.duplicates += [{"path": r.path, "sha256": r.sha256} for r in dups]
            summary.shards += 1 if committed else 0
            pending = []
            if on_commit is not None:
                on_commit(col.count)

        bar = progress(total=len(todo), desc="ingest", unit="casing", quiet=quiet)
        try:
            tasks = ((str(p), kw) for p in todo)
            if options.workers > 1 and len(todo) > 1:
                # spawn, not fork: a fork of a process whose torch/OpenMP/faiss threads are
                # running can deadlock the child
                pool = ProcessPoolExecutor(max_workers=options.workers,
                                           mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker)
                results: Iterable[PreparedCasing | Failure] = _bounded_map(
                    pool, _prepare_task, tasks, window=4 * options.workers)
            else:
                pool = None
                results = map(_prepare_task, tasks)
            try:
                for res in results:
                    if isinstance(res, Failure):
                        summary.failed.append(res.to_dict())
                    else:
                        pending.append(res)
                        if len(pending) >= options.commit_every:
                            flush()
                    bar.update(1)
                flush()
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
        finally:
            bar.close()
        col = col.refresh()
        summary.index = col.update_index(lock=lock)
        col = col.refresh()
        summary.count = col.count
        summary.seconds = time.perf_counter() - t0
        summary.rate_per_s = summary.ingested / summary.seconds if summary.seconds > 0 else 0.0
        job_path.unlink(missing_ok=True)
        log_event(
            directory, "ingest",
            {**asdict(options), "labels": None if labels is None else str(labels),
             "resume": resume, "inputs": [str(p) for p in inputs]},
            inputs=[{"path": str(p)} for p in files[:10000]],
            result={k: v for k, v in summary.to_dict().items() if k not in ("duplicates",)},
        )
        return summary
    finally:
        lock.release()


def _bounded_map(pool: Any, fn: Callable[[Any], Any], items: Iterable[Any], *, window: int
                 ) -> Iterator[Any]:
    """``pool.map`` in order with at most ``window`` tasks in flight (bounded memory)."""
    from collections import deque

    it = iter(items)
    queue: deque = deque()
    for item in it:
        queue.append(pool.submit(fn, item))
        if len(queue) >= window:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()
