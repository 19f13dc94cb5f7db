"""Choice of compute device and of CPU threads.

``device="auto"`` picks CUDA when present, else the CPU.

CPU threads: torch, OpenMP, the BLAS libraries and OpenCV each start one thread per core by
default, and OpenMP's idle threads spin. On a machine where other jobs run, that
oversubscribes the cores and a comparison can take ten times its idle time.
:func:`configure_threads` chooses one thread count from the cores this process may actually
use (its CPU affinity, the cgroup CPU quota of its container, and the other jobs runnable
right now), or takes the one given, and applies it to every pool;
:func:`set_wait_policy` makes idle OpenMP threads sleep instead of spin (it must run before
torch is imported). The ``ballistics`` command does both on every start (``--threads N``,
``BALLISTICS_THREADS``).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ballistics.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

#: the environment variable that sets the thread count (a number >= 1, or ``auto``)
THREADS_ENV = "BALLISTICS_THREADS"

#: the thread-count variables of the OpenMP, BLAS and OpenCV pools; :func:`configure_threads`
#: sets them, so that libraries loaded later and child processes follow
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                   "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "OPENCV_FOR_THREADS_NUM")

#: idle OpenMP threads spin briefly, then sleep: GNU OpenMP (torch's CPU wheels) spins
#: ``GOMP_SPINCOUNT`` times (its default without ``OMP_WAIT_POLICY`` is 300,000), Intel OpenMP
#: sleeps at once (``KMP_BLOCKTIME=0``); see :func:`set_wait_policy`
WAIT_POLICY_ENV = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "0"}

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")

#: the thread count last applied by :func:`configure_threads` (``None``: never called)
_configured: int | None = None
#: a count waiting to be applied to torch when it is imported (see :func:`resolve_device`)
_torch_pending: int | None = None
_interop_done = False


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return a ``torch.device`` for ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a device.

    Raises
    ------
    ParameterError
        When CUDA is asked for but not available, or the name is unknown.
    """
    import torch

    if _torch_pending is not None:
        _apply_torch(_torch_pending)
    if isinstance(device, torch.device):
        return device
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError("device 'cuda' was asked for but no CUDA device is available; "
                                 "use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ParameterError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


# --- the cores this process may use --------------------------------------------------------
def parse_cpu_max(text: str) -> float | None:
    """Cores allowed by a cgroup v2 ``cpu.max`` (``"QUOTA PERIOD"``; ``"max ..."``: no limit).

    Returns ``None`` when there is no limit or the text is not understood.
    """
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota = float(parts[0])
        period = float(parts[1]) if len(parts) > 1 else 100_000.0
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs_quota(quota_text: str, period_text: str) -> float | None:
    """Cores allowed by cgroup v1 ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``.

    Returns ``None`` for no limit (quota ``-1``) or text that is not understood.
    """
    try:
        quota, period = float(quota_text.strip()), float(period_text.strip())
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _upwards(mount: Path, rel: str) -> list[Path]:
    """``mount/rel`` and each of its parents up to ``mount`` (a container sees its own
    cgroup as the mount itself, so a path that is not there just leads up to it)."""
    parts = [p for p in rel.strip().strip("/").split("/") if p and p != ".."]
    return [mount.joinpath(*parts[:k]) for k in range(len(parts), -1, -1)]


def cgroup_cpu_limit(root: str | os.PathLike[str] = _CGROUP_ROOT,
                     proc_cgroup: str | os.PathLike[str] = _PROC_CGROUP) -> float | None:
    """Cores allowed to this process by its cgroup CPU quota, or ``None`` for no quota.

    Reads ``/proc/self/cgroup`` to find the process's cgroup, then the quota of that cgroup
    and of each parent (the smallest wins): ``cpu.max`` under cgroup v2, ``cpu.cfs_quota_us``
    / ``cpu.cfs_period_us`` under the v1 ``cpu`` controller.

    Parameters
    ----------
    root
        Where the cgroup file systems are mounted.
    proc_cgroup
        The process's cgroup membership file.
    """
    root = Path(root)
    membership = _read(Path(proc_cgroup)) or "0::/\n"
    limits: list[float] = []
    for line in membership.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, rel = fields
        if controllers == "":  # cgroup v2 (unified) hierarchy
            mounts = [root, root / "unified"]
            for mount in mounts:
                for folder in _upwards(mount, rel):
                    text = _read(folder / "cpu.max")
                    limit = parse_cpu_max(text) if text is not None else None
                    if limit is not None:
                        limits.append(limit)
        elif "cpu" in controllers.split(","):
            for name in (controllers, "cpu,cpuacct", "cpu"):
                mount = root / name
                if not mount.is_dir():
                    continue
                for folder in _upwards(mount, rel):
                    quota = _read(folder / "cpu.cfs_quota_us")
                    period = _read(folder / "cpu.cfs_period_us")
                    limit = (parse_cfs_quota(quota, period)
                             if quota is not None and period is not None else None)
                    if limit is not None:
                        limits.append(limit)
                break
    return min(limits) if limits else None


def affinity_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def parse_running(loadavg_text: str) -> int | None:
    """The runnable-task count of ``/proc/loadavg`` (its fourth field, ``RUNNING/TOTAL``)."""
    fields = loadavg_text.split()
    if len(fields) < 4 or "/" not in fields[3]:
        return None
    try:
        return int(fields[3].split("/", 1)[0])
    except ValueError:
        return None


def _own_running() -> int:
    """Threads of this process that are running or runnable now (at least this one)."""
    n = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for tid in tasks:
        text = _read(Path("/proc/self/task", tid, "stat"))
        # the state follows the command name, which is in parentheses and may hold spaces
        if text and text[text.rfind(")") + 2:text.rfind(")") + 3] == "R":
            n += 1
    return max(1, n)


def other_load(samples: int = 5, interval_s: float = 0.01) -> float:
    """Runnable threads of other processes, system-wide, now.

    The mean over ``samples`` readings of ``/proc/loadavg``'s runnable count, less this
    process's own runnable threads. Where there is no such file (macOS) the one-minute load
    average is used; where there is no load average either (Windows), 0.

    Notes
    -----
    The one-minute load average is not used where the runnable count exists: it remembers
    the previous command's own threads (a loop of commands would fall to one thread) and
    sees a competing job started a few seconds ago only in part.
    """
    counts: list[int] = []
    for i in range(max(1, samples)):
        text = _read(Path("/proc/loadavg"))
        running = parse_running(text) if text is not None else None
        if running is None:
            break
        counts.append(max(0, running - _own_running()))
        if i + 1 < samples:
            time.sleep(interval_s)
    if counts:
        return sum(counts) / len(counts)
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return 0.0


def available_cores(*, load: bool = True) -> int:
    """Cores this process can use now: affinity, cgroup quota and, with ``load``, the cores
    the other runnable jobs leave free; at least 1.

    ``min(affinity, floor(quota))``, then with ``load`` at most the machine's cores less
    the other jobs' runnable threads (rounded): on 2 cores with one busy job, 1.
    """
    cores = affinity_cores()
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    if load:
        free = (os.cpu_count() or cores) - other_load()
        cores = min(cores, int(math.floor(free + 0.5)))
    return max(1, cores)


# --- applying a thread count -----------------------------------------------------------------
def _parse_threads(value: str | int | None, what: str) -> int | None:
    """``None``, ``""``, ``0`` or ``"auto"``: automatic (``None``); else an int >= 1."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("", "0", "auto"):
        return None
    try:
        n = int(text)
    except ValueError:
        raise ParameterError(f"{what} must be a whole number of threads >= 1 or 'auto', "
                             f"got {value!r}") from None
    if n < 1:
        raise ParameterError(f"{what} must be >= 1 (or 0 / 'auto' to choose), got {n}")
    return n


def _apply_torch(n: int) -> None:
    """torch's intra-op threads to ``n``; its inter-op threads too, the first time (torch
    allows that only once, before any parallel work)."""
    global _torch_pending, _interop_done
    import torch

    _torch_pending = None
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if not _interop_done:
        _interop_done = True
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError as exc:  # parallel work has started, or it was set already
            logger.debug("torch inter-op threads left at %d: %s",
                         torch.get_num_interop_threads(), exc)


def _apply(n: int) -> None:
    """Apply ``n`` threads to the environment and to every pool already loaded."""
    global _torch_pending
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        _apply_torch(n)
    else:  # torch reads OMP_NUM_THREADS when imported; the inter-op count waits for it
        _torch_pending = n
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(n)
    faiss = sys.modules.get("faiss")
    if faiss is not None and hasattr(faiss, "omp_set_num_threads"):
        faiss.omp_set_num_threads(n)
    if "numpy" in sys.modules:  # NumPy's BLAS was loaded with its own thread count
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # optional: without it BLAS keeps its count in this process
            pass
        else:
            threadpool_limits(limits=n, user_api="blas")


def configure_threads(n: int | None = None, *, load: bool = True) -> int:
    """Choose and apply the number of CPU threads of this process; return it.

    The count is ``n`` when given, else ``BALLISTICS_THREADS`` when set, else
    :func:`available_cores`. It is applied to torch (intra-op threads; the inter-op threads
    once, before torch's first parallel work), to the OpenMP, MKL, OpenBLAS and OpenCV
    thread variables (``OMP_NUM_THREADS``, ...: libraries loaded later and child processes
    follow them), to OpenCV and FAISS when loaded, and to NumPy's BLAS through threadpoolctl
    when that is installed. Worker pools split the count (:func:`threads_per_worker`).

    Call it early, before heavy work; torch is configured now if imported, else when
    :func:`resolve_device` first runs (every comparison, embedding and training does).

    Parameters
    ----------
    n
        Threads; ``None`` or 0: choose automatically.
    load
        Count the jobs runnable now when choosing (``False``: affinity and quota only).

    Returns
    -------
    int
        The thread count applied.

    Raises
    ------
    ParameterError
        When ``n`` is negative or ``BALLISTICS_THREADS`` is not a number >= 1 or ``auto``.
    """
    global _configured
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise ParameterError(f"threads must be a whole number >= 1 or None, got {n!r}")
    chosen = _parse_threads(n, "threads")
    if chosen is None:
        chosen = _parse_threads(os.environ.get(THREADS_ENV), THREADS_ENV)
    if chosen is None:
        chosen = available_cores(load=load)
    _apply(chosen)
    _configured = chosen
    logger.debug("CPU threads: %d", chosen)
    return chosen


def configured_threads() -> int:
    """The thread count of the last :func:`configure_threads`, else (never called) the
    cores available now (:func:`available_cores`)."""
    return _configured if _configured is not None else available_cores()


def threads_per_worker(workers: int, total: int | None = None) -> int:
    """Threads for each of ``workers`` processes sharing ``total`` threads (default
    :func:`configured_threads`): ``total // workers``, at least 1."""
    if workers < 1:
        raise ParameterError(f"workers must be >= 1, got {workers}")
    total = configured_threads() if total is None else total
    return max(1, int(total) // int(workers))


def set_wait_policy() -> None:
    """Make idle OpenMP threads spin only briefly before they sleep (:data:`WAIT_POLICY_ENV`)
    unless the environment already sets a wait policy (``OMP_WAIT_POLICY``, or either
    variable of :data:`WAIT_POLICY_ENV`, each kept as it is).

    OpenMP reads these when it is loaded (with torch), so call this before importing torch;
    afterwards it only affects child processes. The ``ballistics`` command calls it first
    thing. A comparison is thousands of short parallel regions: threads that sleep at once
    (``OMP_WAIT_POLICY=PASSIVE``) pay a wake-up at each, 1.5-1.7x the time of a comparison on
    an idle 2-core machine; threads that spin long (GNU's default) collapse when another job
    takes a core during a multi-threaded comparison (7-12x). A short spin keeps the idle
    speed and most of the passive policy's protection (``benchmarks/README.md``, threads).
    """
    if "OMP_WAIT_POLICY" in os.environ:  # the user's policy; a spin count would override it
        return
    for var, value in WAIT_POLICY_ENV.items():
        os.environ.setdefault(var, value)


def exit_with_parent(parent: int | None = None, poll_s: float = 1.0) -> None:
    """End this process (exit status 1) within ``poll_s`` seconds of its parent's death.

    A daemon thread watches the parent process id, which changes when the parent dies and the
    process is re-parented (POSIX). Pool workers call it, so a killed command leaves no
    workers computing for nobody (nor multiprocessing's resource tracker, which ends when its
    last client does). ``parent``: the pid the parent had when it started this process (a
    parent killed while the worker was still starting is then noticed at once). No effect
    on Windows, where the id does not change.
    """
    import threading

    if parent is None:
        parent = os.getppid()
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="ballistics-parent-watch", daemon=True).start()


def worker_initializer(threads: int, parent: int | None = None) -> None:
    """Initialiser of a worker process of a pool: :func:`configure_threads` with
    ``threads`` (the caller's share, :func:`threads_per_worker`), the wait policy of
    :func:`set_wait_policy` (effective in spawned workers, which import torch afterwards) and
    :func:`exit_with_parent` (``parent``: the creating process's pid, ``os.getpid()`` there).
    """
    exit_with_parent(parent)
    set_wait_policy()
    configure_threads(threads)
