"""One query against many candidates on several CPU cores: worker processes, one thread each.

Torch's own intra-op threads speed one comparison up by only about 1.5x on two cores (many
mid-sized operations, OpenMP overhead); comparisons of different candidates are independent,
so splitting the candidates over worker processes that run one thread each uses the cores
fully (about 2x on two cores). The workers are spawned (fresh interpreters: a process forked
after torch started its OpenMP threads can hang in its first parallel region), so a script
that asks for workers needs Python's usual ``if __name__ == "__main__":`` guard.

The workers share the process's thread budget (:func:`ballistics.device.configured_threads`):
``workers=None`` or 0 starts one per available thread, and each worker runs
``budget // workers`` torch threads (at least 1), so the pool never runs more threads than
the cores it was given.

The results are the same comparisons as :func:`ballistics.matching.compare_many` returns, in
the candidates' order. The serial path may run another thread count than the workers, so
the last bits of correlations may differ between the two, not the decisions.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from ballistics.device import affinity_cores, configured_threads, threads_per_worker
from ballistics.device import worker_initializer as _init_worker
from ballistics.errors import ParameterError
from ballistics.scan import Scan


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    return affinity_cores()


def resolve_workers(workers: int | None, n_tasks: int) -> int:
    """``None`` or 0: one per thread of the process's budget
    (:func:`ballistics.device.configured_threads`: affinity, cgroup quota, other jobs, or
    ``--threads``); never more than ``n_tasks``; at least 1."""
    if workers is None or workers == 0:
        workers = configured_threads()
    if workers < 0:
        raise ParameterError(f"workers must be >= 0 (0 = one per core), got {workers}")
    return max(1, min(int(workers), max(1, n_tasks)))


def _compare_chunk(query: Scan, chunk: Sequence[Scan], params: Any,
                   rotation: Any) -> list[Any]:
    import warnings

    from ballistics.matching.breechface.comparison import compare_many

    # every comparison carries its own warnings in ``Comparison.warnings``; the caller
    # emits them, so the worker's copies are dropped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare_many(query, chunk, params, rotation=rotation, device="cpu")


#: most candidates per worker task when a callback reports progress
CALLBACK_CHUNK = 4


def _run_chunk(kind: str, query: Scan, chunk: Sequence[Any], params: Any) -> list[Any]:
    import warnings

    from ballistics.matching.breechface import comparison as c

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "forward":
            return c.compare_forward(query, chunk, params, device="cpu")
        cands = [x[0] for x in chunk]
        stages = [x[1] for x in chunk]
        return c.finish_comparisons(query, cands, stages, device="cpu")


class WorkerPool(ProcessPoolExecutor):
    """A process pool that knows its size (``workers``)."""

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers, mp_context=_context(), initializer=_init_worker,
                         initargs=(threads_per_worker(workers), os.getpid()))
        self.workers = workers


def worker_pool(workers: int | None) -> WorkerPool:
    """Started CPU worker processes for :func:`compare_forward` and
    :func:`finish_comparisons` (``pool=``), reused over several calls; use it as a context
    manager. ``workers`` as in :func:`resolve_workers` (``None`` or 0: one per core)."""
    return WorkerPool(resolve_workers(workers, 1 << 20))


def run_workers(kind: str, query: Scan, items: Sequence[Any], params: Any, *,
                workers: int | None, pool: WorkerPool | None = None
                ) -> list[Any] | None:
    """``kind`` (``"forward"``/``"finish"``) over ``items`` in chunks on a pool (``pool`` or
    one started for this call); ``None`` when one worker is enough (the caller runs it)."""
    n = len(items)
    if n == 0:
        return []
    n_workers = pool.workers if pool is not None else resolve_workers(workers, n)
    if n_workers <= 1 and pool is None:
        return None
    n_chunks = min(n, max(1, n_workers) * 3)
    bounds = [round(i * n / n_chunks) for i in range(n_chunks + 1)]
    chunks = [list(items[bounds[i]:bounds[i + 1]]) for i in range(n_chunks)]
    own = pool is None
    ex = pool if pool is not None else WorkerPool(n_workers)
    try:
        futures = [ex.submit(_run_chunk, kind, query, ch, params) for ch in chunks]
        return [x for fut in futures for x in fut.result()]
    finally:
        if own:
            ex.shutdown()


def _context() -> mp.context.BaseContext:
    # spawn, not fork: a process forked after torch started its OpenMP threads can hang in
    # its first parallel region (seen in the test suite)
    return mp.get_context("spawn")


def compare_many_workers(
    query: Scan,
    candidates: Sequence[Scan],
    params: Any = "default",
    *,
    rotation: Any = None,
    workers: int,
    callback: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Compare ``query`` with each candidate on ``workers`` CPU processes.

    Each worker runs :func:`ballistics.device.threads_per_worker` threads: the process's
    thread budget split between the workers, at least 1.

    Parameters
    ----------
    query, candidates, params, rotation
        As for :func:`ballistics.matching.compare_many`.
    workers
        Worker processes (>= 2; use :func:`compare_many` for one).
    callback
        ``callback(i, comparison)`` for each candidate, in order, as its chunk finishes
        (chunks of at most :data:`CALLBACK_CHUNK` candidates then).

    Returns
    -------
    list of Comparison
        In the candidates' order.
    """
    n = len(candidates)
    if n == 0:
        return []
    # a few chunks per worker balance uneven comparison costs; each chunk prepares the
    # query once (cheap: its cells). With a callback (a progress bar) chunks hold at most
    # CALLBACK_CHUNK candidates so that it is called every few seconds; the comparisons
    # and their order are the same.
    n_chunks = min(n, workers * 3)
    if callback is not None:
        n_chunks = min(n, max(n_chunks, -(-n // CALLBACK_CHUNK)))
    bounds = [round(i * n / n_chunks) for i in range(n_chunks + 1)]
    chunks = [list(candidates[bounds[i]:bounds[i + 1]]) for i in range(n_chunks)]
    out: list[Any] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context(),
                             initializer=_init_worker,
                             initargs=(threads_per_worker(workers), os.getpid())) as pool:
        futures = [pool.submit(_compare_chunk, query, c, params, rotation) for c in chunks]
        for fut in futures:
            for cmp in fut.result():
                if callback is not None:
                    callback(len(out), cmp)
                out.append(cmp)
    return out


__all__ = ["compare_many_workers", "resolve_workers", "run_workers", "usable_cores",
           "worker_pool"]
