"""Where an ingest's tasks run: in this process, in a local process pool, or on Dask.

An executor has two calls, :meth:`Executor.submit` (returns a future-like object with
``result()``, ``done()`` and ``cancel()``) and :meth:`Executor.as_completed` (yields the
given futures as they finish), plus ``slots`` (tasks it runs at once) and ``close()``.
:class:`~ballistics.workflows._job.IngestJob` drives every executor the same way.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import as_completed as _cf_as_completed
from typing import Any, Protocol

from ballistics.device import threads_per_worker, worker_initializer


class Executor(Protocol):
    """The small interface an ingest needs from whatever runs its tasks."""

    #: ``True``: tasks run elsewhere and embed there (the driver commits staged shards);
    #: ``False``: the driver holds the embedder and embeds prepared casings itself.
    remote: bool
    #: Tasks run at once (sizes the window of tasks in flight).
    slots: int

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None,
               gpu: bool = False, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)``; ``key`` names the task and ``gpu`` asks for a GPU
        slot where the executor knows about them (both ignored elsewhere)."""

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        """The given futures, each once, as they finish."""

    def close(self) -> None:
        """Cancel what is still queued and release the resources."""


class SerialExecutor:
    """Runs each task at once, in this process (``workers=1``)."""

    remote = False
    slots = 1

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None,
               gpu: bool = False, **kwargs: Any) -> Future:
        """Run ``fn`` now; the returned future holds its result or its exception."""
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # delivered by result(), as from any other executor
            fut.set_exception(exc)
        return fut

    def as_completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        """The futures in order (they are all finished)."""
        return iter(list(futures))

    def close(self) -> None:
        """Nothing to release."""


class PoolExecutor:
    """A local pool of ``workers`` spawned processes (``workers > 1``).

    Each worker runs ``threads`` compute threads (default: the process's thread budget,
    :func:`ballistics.device.configured_threads`, split between the workers, at least 1).
    """

    remote = False

    def __init__(self, workers: int, *, threads: int | None = None) -> None:
        self.slots = int(workers)
        self.threads = threads_per_worker(self.slots) if threads is None else int(threads)
        # spawn, not fork: a fork of a process whose torch/OpenMP/faiss threads are running
        # can deadlock the child; each worker takes its share of the threads before it
        # imports torch
        self.pool = ProcessPoolExecutor(max_workers=self.slots,
                                        mp_context=multiprocessing.get_context("spawn"),
                                        initializer=worker_initializer,
                                        initargs=(self.threads, os.getpid()))

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None,
               gpu: bool = False, **kwargs: Any) -> Future:
        """Queue ``fn`` on the pool."""
        return self.pool.submit(fn, *args, **kwargs)

    def as_completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        """:func:`concurrent.futures.as_completed`."""
        return _cf_as_completed(list(futures))

    def close(self) -> None:
        """Cancel queued tasks and wait for the running ones."""
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """A ``distributed.Client``: tasks run on the cluster's workers, which embed.

    No default client is needed: every call goes through ``client`` (a client made with
    ``set_as_default=False`` works from a fresh process).

    Parameters
    ----------
    client
        A connected ``distributed.Client``.
    retries
        Reruns of a task that raised.
    """

    remote = True

    def __init__(self, client: Any, *, retries: int = 3) -> None:
        self.client = client
        self.retries = int(retries)
        workers = client.scheduler_info().get("workers", {})
        self.slots = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        # {"GPU": 1} when every worker advertises a GPU (one batch per GPU at a time), else
        # no restriction: a worker with CUDA uses it through device="auto"
        gpus = [float((w.get("resources") or {}).get("GPU", 0)) for w in workers.values()]
        self.resources = {"GPU": 1} if gpus and min(gpus) >= 1 else None

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None,
               gpu: bool = False, **kwargs: Any) -> Any:
        """``client.submit``: a named task gets key ``ballistics-<key>`` and runs before
        unnamed ones; ``gpu`` tasks take the workers' GPU resource when they all have one."""
        return self.client.submit(
            fn, *args, **kwargs, key=None if key is None else f"ballistics-{key}",
            pure=False, retries=self.retries,
            resources=self.resources if gpu else None, priority=10 if key else 0)

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        """``distributed.as_completed`` on this client's event loop."""
        import distributed

        return iter(distributed.as_completed(list(futures), loop=self.client.loop))

    def close(self) -> None:
        """The client stays open (its owner closes it)."""
