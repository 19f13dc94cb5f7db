"""Batch ingest: read -> prepare -> embed each casing, commit shards, update the index.

The work is split so that it can be spread elsewhere (a process pool, a Dask cluster):

- :func:`prepare_casing` is a pure, picklable function of one file (read + preprocess),
  returning a :class:`PreparedCasing` or a :class:`~ballistics.collection.records.Failure`;
- :func:`embed_prepared` embeds a batch with one loaded embedder;
- :func:`make_records` attaches ids and labels;
- :meth:`Collection.commit <ballistics.collection.store.Collection.commit>` writes and
  publishes one shard (the driver's job, under the write lock).

:func:`ingest` runs them in this process or a local process pool through
:class:`~ballistics.workflows._job.IngestJob`, which owns the lifecycle (lock, resume file,
model check, commits, index, audit) for every executor, Dask included
(:func:`ballistics.workflows.distributed.ingest`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.collection.records import CasingRecord, Failure
from ballistics.collection.store import Collection
from ballistics.errors import BallisticsError, CollectionError, InputError
from ballistics.params import check_choice, check_range
from ballistics.scan import Scan

JOB_NAME = "ingest-job.json"
#: The preprocessing preset of a new collection when none is given.
DEFAULT_PRESET = "default"
DEFAULT_MODEL = "cnn"


@dataclass(frozen=True)
class IngestOptions:
    """How each casing is read, prepared and embedded, and how often shards are committed.

    Parameters
    ----------
    processed
        ``True``: the older spelling of ``preprocess="processed"``; ``None`` (default):
        ``preprocess`` decides.
    preset
        Preprocessing preset (``"default"`` or ``"cmcR"``); ``None`` = the collection's,
        or ``"default"`` for a new collection. A collection's casings are all prepared
        with one preset: another one is refused.
    spacing_um
        Pixel spacing for images that carry none.
    verify
        Check X3P checksums while reading.
    strict
        Refuse X3P content that no checksum covers (see :func:`ballistics.io.read_scan`).
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
    update_labels
        A file already in the collection (same SHA-256) whose labels in the labels CSV
        differ from the stored ones gets the CSV's values (the columns the CSV gives);
        otherwise it keeps its labels and the summary warns.
    modality
        What files that do not say hold (see :func:`ballistics.io.read_scan`): ``None`` as
        the file says, ``"topography"`` reads image files as height maps in µm.
    preprocess
        ``"auto"`` (default): each file gets the preset's steps it still needs, as measured
        (:func:`ballistics.preprocess.prepare_detected`; a scan with this toolkit's
        provenance is used as it is); ``"raw"``: every step; ``"processed"``: none.
    """

    processed: bool | None = None
    preset: str | None = None
    spacing_um: float | None = None
    verify: bool = True
    strict: bool = False
    model: str | None = None
    device: str = "auto"
    workers: int = 1
    batch_size: int = 32
    commit_every: int = 64
    update_labels: bool = False
    modality: str | None = None
    preprocess: str = "auto"

    def __post_init__(self) -> None:
        from ballistics.preprocess.params import PRESETS, get_preset

        # an unknown preset is bad input before anything is created (it was recorded in a
        # new collection's manifest, and every later search of it failed)
        if self.preset is not None:
            key = next((k for k in PRESETS if k.lower() == str(self.preset).lower()),
                       self.preset)
            get_preset(key)
            object.__setattr__(self, "preset", key)
        check_range("workers", self.workers, 1, 256)
        object.__setattr__(self, "preprocess", preprocess_mode(self.preprocess, self.processed))
        check_range("batch_size", self.batch_size, 1, 4096)
        check_range("commit_every", self.commit_every, 1, 1_000_000)
        if self.spacing_um is not None:
            check_range("spacing_um", self.spacing_um, 0, None, lo_open=True)
        if self.modality is not None:
            check_choice("modality", self.modality, ("topography", "image"))

    @property
    def settings(self) -> dict[str, Any]:
        """The collection manifest's ``preprocess`` object: ``{"preset", "mode",
        "processed"}`` (``processed``, ``True`` for mode ``"processed"`` else ``None``, is
        what older versions read)."""
        return {"preset": self.preset or DEFAULT_PRESET, "mode": self.preprocess,
                "processed": True if self.preprocess == "processed" else None}


def preprocess_mode(mode: str | None, processed: bool | None = None) -> str:
    """The preprocessing mode (``"auto"``, ``"raw"`` or ``"processed"``) of ``mode`` and the
    older ``processed`` flag (``True`` = ``"processed"``, ``False`` = ``"raw"``, ``None`` =
    ``mode``; ``mode`` ``None`` = ``"auto"``).

    Raises
    ------
    ParameterError
        An unknown mode, or a ``processed`` flag that contradicts an explicit mode.
    """
    from ballistics.errors import ParameterError
    from ballistics.preprocess.detect import MODES

    m = (mode or "auto").lower()
    check_choice("preprocess", m, MODES)
    if processed is None:
        return m
    flag = "processed" if processed else "raw"
    if m not in ("auto", flag):
        raise ParameterError(f"processed={processed} contradicts preprocess={m!r}; give one")
    return flag


#: the key of a prepared scan's ``metadata`` (and so of a collection entry's) that holds
#: :meth:`Detection.to_dict <ballistics.preprocess.Detection.to_dict>`: what preprocessing
#: the file was found to have had and which steps were applied; entries of collections
#: ingested before it existed lack it ("unknown")
DETECTED_KEY = "preprocessing_detected"


def detected_of(scan: Scan) -> dict[str, Any] | None:
    """The recorded detection of a prepared (or stored) scan, ``None`` when unknown."""
    from ballistics.scan import thaw

    det = scan.metadata.get(DETECTED_KEY)
    return None if det is None else dict(thaw(det))


def prepare_scan(scan: Scan, preset: str = "default", mode: str = "auto"
                 ) -> tuple[Scan, dict[str, Any]]:
    """Prepare a read scan for comparison or embedding as ``mode`` says and record it.

    :func:`ballistics.preprocess.prepare_detected`, with the detection's JSON object also
    stored in the prepared scan's metadata under :data:`DETECTED_KEY` (a scan that
    already holds one, as a collection's stored surfaces do, keeps it).

    Returns
    -------
    tuple
        ``(prepared scan, detection dict)``.

    Raises
    ------
    UnfitScanError
        The quality verdict rejects the scan.
    """
    from ballistics.preprocess import prepare_detected
    from ballistics.scan import thaw

    prepared, det = prepare_detected(scan, preset, mode)
    out = det.to_dict()
    if DETECTED_KEY not in prepared.metadata:
        prepared = prepared.replace(metadata={**thaw(prepared.metadata), DETECTED_KEY: out})
    return prepared, out


@dataclass(frozen=True, eq=False)
class PreparedCasing:
    """One casing read and prepared for comparison (before embedding).

    ``detected`` is the preprocessing detection's JSON object
    (:meth:`Detection.to_dict <ballistics.preprocess.Detection.to_dict>`).
    """

    path: str
    sha256: str
    scan: Scan
    warnings: tuple[str, ...] = ()
    detected: dict[str, Any] | None = None


@dataclass
class IngestSummary:
    """What an ingest did (the CLI prints it as JSON).

    ``skipped_duplicates`` counts files already in the collection (or repeated);
    ``skipped_companions`` the mask images of scans found in the folders walked (see
    :func:`discover_inputs`); ``label_conflicts`` lists duplicates whose labels in the
    labels CSV differ from the stored ones (``{"path", "id", "sha256", "labels": {column:
    {"collection", "given"}}, "updated"}``); ``relabelled`` how many of those were updated
    (``IngestOptions.update_labels``).
    """

    collection: str
    inputs: int = 0
    ingested: int = 0
    skipped_duplicates: int = 0
    skipped_companions: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    label_conflicts: list[dict[str, Any]] = field(default_factory=list)
    relabelled: int = 0
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
#: ``STEM<sep><kind>``: the name of a companion mask image of the scan ``STEM`` (``ballistics
#: synth`` writes ``masks/STEM_mask.png`` and ``masks/STEM_shear.png``)
COMPANION_KINDS: tuple[str, ...] = ("mask", "shear")
_COMPANION_SEPS = ("_", "-", ".")


def companion_of(name: str) -> str | None:
    """The scan stem a mask image's file name points to (``F001-01_mask.png`` ->
    ``F001-01``), or ``None`` when the name is not a companion's."""
    stem = Path(name).stem
    low = stem.lower()
    for kind in COMPANION_KINDS:
        for sep in _COMPANION_SEPS:
            if low.endswith(sep + kind) and len(stem) > len(kind) + 1:
                return stem[:-(len(kind) + 1)]
    return None


def _drop_companions(found: list[Path]) -> tuple[list[Path], list[Path]]:
    """Split the files of one folder walk into scans and companion masks: an image named
    ``STEM_mask.*`` / ``STEM_shear.*`` (or with ``-`` / ``.``) is a companion when the walk
    also found a scan ``STEM.*`` (any folder of the walk: synth puts masks in ``masks/``)."""
    from ballistics.io import file_format

    stems = {q.stem for q in found if companion_of(q.name) is None}
    keep: list[Path] = []
    companions: list[Path] = []
    for q in found:
        owner = (companion_of(q.name) if file_format(q) in ("png", "tiff", "jpeg", "bmp")
                 else None)
        (companions if owner is not None and owner in stems else keep).append(q)
    return keep, companions


def discover_inputs(inputs: Iterable[str | Path], missing: list[str] | None = None,
                    companions: list[str] | None = None) -> list[Path]:
    """Expand files and directories (recursively) into scan files, sorted, de-duplicated.

    Inputs that do not exist are appended to ``missing`` when it is given, otherwise an
    :class:`InputError` is raised. In a folder, the mask images of its scans (an image
    ``STEM_mask.*`` or ``STEM_shear.*`` beside a scan ``STEM.*`` anywhere in the folder, as
    ``ballistics synth`` writes them) are not scans: they are left out and appended to
    ``companions`` when it is given. A file named on its own is always taken.
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
            found, masks = _drop_companions(found)
            if companions is not None:
                companions += [str(q) for q in masks]
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

    Every other column becomes a label, but ``sha256`` (a key column of ``ballistics
    collection export``); an ``id`` column gives the casing's id. ``read_manifest``
    resolves paths relative to the CSV's folder, so the ``manifest.csv`` of ``ballistics
    synth`` and of the shared data work as they are. Lookup is by resolved path, then by file name.
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.by_path: dict[str, dict[str, str]] = {}
        self.by_name: dict[str, dict[str, str]] = {}
        for row in rows:
            if "path" not in row:
                raise InputError("the labels file needs a 'path' column")
            p = Path(str(row["path"]))
            labels = {str(k): str(v) for k, v in row.items()
                      if k not in ("path", "sha256") and v is not None}
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

    def listed(self, path: str | Path) -> bool:
        """True when the table has a row for the file."""
        p = Path(path)
        return str(p.resolve()) in self.by_path or p.name in self.by_name


# ---- the per-casing work ----------------------------------------------------------------
def prepare_casing(
    path: str | Path,
    *,
    processed: bool | None = None,
    preset: str = "default",
    spacing_um: float | None = None,
    verify: bool = True,
    strict: bool = False,
    modality: str | None = None,
    mode: str = "auto",
) -> PreparedCasing | Failure:
    """Read and prepare one casing for comparison (pure; runs in a worker process).

    ``mode`` is the preprocessing mode (:func:`prepare_scan`); ``processed`` its older
    spelling (see :func:`preprocess_mode`). Returns a :class:`Failure` (never raises) for a
    file that cannot be read or is unfit.
    """
    import warnings

    from ballistics.io import read_scan

    try:
        mode = preprocess_mode(mode, processed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scan = read_scan(path, spacing_um=spacing_um, verify=verify, strict=strict,
                             modality=modality)
            prepared, detected = prepare_scan(scan, preset, mode)
        sha = scan.sha256
        if not sha:
            from ballistics.io import sha256_file

            sha = sha256_file(path)
        return PreparedCasing(path=str(path), sha256=sha, scan=prepared,
                              warnings=tuple(prepared.warnings), detected=detected)
    except BallisticsError as exc:
        return Failure(path=str(path), reason=exc.message, error=type(exc).__name__)
    except MemoryError:
        return Failure(path=str(path), reason="out of memory", error="MemoryError")
    except Exception as exc:
        return Failure(path=str(path), reason=f"{type(exc).__name__}: {exc}",
                       error=type(exc).__name__)


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
    from ballistics.workflows._executors import PoolExecutor, SerialExecutor
    from ballistics.workflows._job import IngestJob

    options = options or IngestOptions()
    executor = PoolExecutor(options.workers) if options.workers > 1 else SerialExecutor()
    try:
        return IngestJob(inputs, collection_dir, executor, labels=labels, options=options,
                         resume=resume, quiet=quiet, on_commit=on_commit,
                         embedder=embedder).run()
    finally:
        executor.close()
