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
The lifecycle (lock, orphan cleanup, resume file, model check, index, audit) is the one of
every ingest (:class:`~ballistics.workflows._job.IngestJob` with a
:class:`~ballistics.workflows._executors.DaskExecutor`); a missing or unreadable input is a
recorded failure, as locally. Every call goes through the client, so no default Dask client
is needed (a fresh ``ballistics ingest --scheduler`` process works).

A killed driver is restarted with ``resume=True`` (``--resume``): finished shards left in
``DIR/staging`` are committed and only the casings still missing are sent out again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ballistics.errors import CollectionError, DependencyError, ParameterError
from ballistics.params import check_range
from ballistics.workflows._executors import DaskExecutor
from ballistics.workflows._job import HASH_CHUNK, IngestJob, _Committer, _recover_staging
from ballistics.workflows.ingest import IngestOptions, IngestSummary

logger = logging.getLogger(__name__)

__all__ = ["HASH_CHUNK", "IngestJob", "_Committer", "_recover_staging", "connect", "ingest",
           "require_dask"]

DASK_EXTRA = "pip install 'forensic-ballistics[dask]'"


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


def _wait_for_workers(client: Any, timeout: float) -> None:
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        raise CollectionError(
            f"the Dask scheduler has no workers after {timeout:.0f} s; start some with "
            "`dask worker SCHEDULER_ADDRESS` (see docs/cluster.md)"
        ) from None


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
        No progress bar and no dashboard link (logged at INFO on this module's logger).
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
            logger.info("Dask dashboard: %s", client.dashboard_link)
        warnings = []
        if options.workers > 1:
            warnings.append("--workers is ignored on a cluster: the Dask workers do the work "
                            "(start more with `dask worker`)")
        address = str(client.scheduler.address)
        return IngestJob(
            inputs, collection_dir, DaskExecutor(client, retries=retries), labels=labels,
            options=options, resume=resume, quiet=quiet, on_commit=on_commit,
            lock_name="ingest (dask)", warnings=warnings,
            record={"scheduler": address, "retries": retries},
        ).run()
    finally:
        if own_client:
            client.close()
