"""The benchmark harness: machine stamps, parts, resumable runs and result records.

A *part* is one benchmark module exposing ``run(quick: bool = False, out_dir: Path = ...) ->
dict``. The harness runs each part in its own Python process (``python -m benchmarks _part``), so a
part that is missing, raises or crashes is recorded as such and the run goes on; the child process
also gives each part a clean peak-RSS measurement and lets the speed suite pin a part to the CPU
(``CUDA_VISIBLE_DEVICES=""``) or leave CUDA visible.

Layout under the results directory (``benchmarks/results`` by default)::

    <machine_id>/machine.json          the machine stamp of the latest run on that machine
    <machine_id>/parts/<key>.json      one record per finished (or failed) part
    <machine_id>/<key>/                what the part itself wrote (its JSON, its PNGs)
    <machine_id>/plots/<key>-*.png     plots the harness drew from the part's numbers
    runs/<date>-<suite>-<machine_id>.json   one summary per harness run

``key`` is ``<part>@<device>`` plus ``-quick`` for ``--quick`` runs. A part whose record says
``ok`` with the same parameters is not rerun (resume) unless ``force`` is given.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ballistics.jsonutil import to_jsonable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = REPO / "benchmarks" / "results"
SUITES = ("accuracy", "speed", "scale")
LIBRARIES = ("ballistics", "numpy", "scipy", "torch", "faiss", "sklearn", "h5py", "cv2",
             "matplotlib", "x3pio", "psutil", "threadpoolctl", "dask")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "CUDA_VISIBLE_DEVICES")


@dataclasses.dataclass(frozen=True)
class Part:
    """One benchmark part: a module with ``run(quick, out_dir, **kwargs) -> dict``.

    Parameters
    ----------
    name
        Short name (also the record key's stem).
    module
        Importable module name.
    suites
        Suites that include the part.
    description
        What it measures (one line, shown by ``python -m benchmarks list``).
    per_device
        In the speed suite, run once on the CPU and once more on CUDA when present.
    kwargs
        Extra keyword arguments for ``run`` (JSON-able; part of the resume key).
    """

    name: str
    module: str
    suites: tuple[str, ...]
    description: str
    per_device: bool = True
    kwargs: tuple[tuple[str, Any], ...] = ()


PARTS: tuple[Part, ...] = (
    Part("synth_bench", "benchmarks.synth_bench", ("speed",),
         "synthetic casing generation speed"),
    Part("io_bench", "benchmarks.io_bench", ("speed",),
         "X3P/image read and write speed on the real sets"),
    Part("preprocess_bench", "benchmarks.preprocess_bench", ("accuracy", "speed"),
         "segmentation IoU against ground truth; preprocessing speed (scans/s)"),
    Part("detect_bench", "benchmarks.detect_bench", ("accuracy",),
         "detection of the preprocessing a scan already had: synthetic variants, real files",
         per_device=False),
    Part("compare_bench", "benchmarks.compare_bench", ("accuracy",),
         "Weller/Fadul/synthetic separation (AUC, error rates at CMC >= 6)",
         per_device=False,
         kwargs=(("sections", ("fadul_raw", "weller", "synthetic")),
                 ("weller_limit_s", 1800.0))),
    Part("compare_speed", "benchmarks.compare_bench", ("speed",),
         "pairwise comparison speed on the Fadul pair: s/pair, pairs/s in batches",
         kwargs=(("sections", ("speed",)),)),
    Part("striae_bench", "benchmarks.striae_bench", ("accuracy", "speed"),
         "striation marks and bullets: AUC of CCF/CMS, land phase, Hamby 44"),
    Part("embed_bench", "benchmarks.embed_bench", ("accuracy", "speed"),
         "retrieval hit rates CNN vs baseline; embedding throughput (casings/s)"),
    Part("search_bench", "benchmarks.search_bench", ("accuracy", "speed"),
         "search hit rates after re-ranking, Cllr, ingest rate, shortlist and search latency"),
    Part("loso_bench", "benchmarks.loso_bench", ("accuracy",),
         "leave-one-study-out: learned score and LR fitted on the other studies (AUC, "
         "errors at LR = 1, Cllr)", per_device=False),
    Part("loso_bench_cmcR", "benchmarks.loso_bench", ("accuracy",),
         "leave-one-study-out under the cmcR preset (its own shipped calibration)",
         per_device=False, kwargs=(("preset", "cmcR"),)),
    Part("weller_search_bench", "benchmarks.weller_search_bench", ("accuracy",),
         "Weller search: 95 queries, top-1/5 after re-ranking, leave-slide-out Cllr",
         per_device=False),
    Part("threads_bench", "benchmarks.threads_bench", ("speed",),
         "compare beside 0, 1, 2 CPU-bound competitors: torch default threads vs "
         "configure_threads (paired A/B, ratios to idle)", per_device=False),
    Part("demo_bench", "benchmarks.demo_bench", ("speed",),
         "ballistics demo end to end: wall time alone and beside a CPU-bound competitor, "
         "disk use", per_device=False),
    Part("cluster_bench", "benchmarks.cluster_bench", ("speed",),
         "ingest on a Dask cluster: casings/s against workers", per_device=False),
    Part("scale", "benchmarks.scale", ("scale", "speed"),
         "index build, shortlist latency and memory per casing from 10k to 1M casings"),
)


def real_data_root() -> Path:
    """``../shared/data/real`` beside the repository (``BALLISTICS_DATA`` overrides the root)."""
    env = os.environ.get("BALLISTICS_DATA")
    return (Path(env) if env else REPO.parent / "shared" / "data") / "real"


def data_parts() -> list[Part]:
    """The generic protocol (``benchmarks.data_bench``) on synthetic sets of each difficulty and
    on the real casing sets that are present."""
    out = [Part(f"data-synthetic-{d}", "benchmarks.data_bench", ("accuracy",),
                f"generic protocol on synthetic {d} topographies (fixed seed)", per_device=False,
                kwargs=(("synthetic", d),))
           for d in ("easy", "realistic", "hard")]
    root = real_data_root()
    for name, processed in (("weller", True), ("fadul_raw", False)):
        folder = root / name
        if (folder / "manifest.csv").is_file():
            out.append(Part(f"data-{name}", "benchmarks.data_bench", ("accuracy",),
                            f"generic protocol on real {name} scans", per_device=False,
                            kwargs=(("folder", str(folder)), ("processed", processed))))
    return out


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pass-through arguments of a part's ``run``: the value as JSON when it
    parses (``600``, ``true``, ``["a"]``), else a comma-separated list of strings, else a string.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY a keyword of run()")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = [v for v in value.split(",") if v] if "," in value else value
    return out


def with_settings(parts: Sequence[Part], settings: dict[str, Any]) -> list[Part]:
    """The parts with ``settings`` added to (or replacing) their ``run`` keyword arguments."""
    return [dataclasses.replace(p, kwargs=tuple({**dict(p.kwargs), **settings}.items()))
            for p in parts]


def all_parts() -> list[Part]:
    """Every known part: the area modules, the scale curve and the generic data parts."""
    return [*PARTS, *data_parts()]


def parts_for(suite: str, only: Sequence[str] | None = None) -> list[Part]:
    """The parts of a suite (``"all"`` = every part), optionally restricted to ``only`` names."""
    if suite != "all" and suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)} or all")
    parts = all_parts()
    chosen = [p for p in parts if suite == "all" or suite in p.suites]
    if only:
        known = {p.name for p in parts}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise ValueError(f"unknown part(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        chosen = [p for p in parts if p.name in only]
    return chosen


# --- machine stamp ------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _library_versions() -> dict[str, str | None]:
    import importlib

    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            mod = importlib.import_module(name)
            out[name] = str(getattr(mod, "__version__", "unknown"))
        except Exception:
            out[name] = None
    return out


def _git(*args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def thread_settings(*, import_all: bool = True) -> dict[str, Any]:
    """Thread counts that decide CPU timings: torch, faiss, OpenMP/BLAS pools and env vars.

    With ``import_all=False`` torch and faiss are only asked when already imported (a part
    that does not use them does not pay for importing them).
    """
    out: dict[str, Any] = {"env": {k: os.environ.get(k) for k in THREAD_ENV}}
    try:
        if not import_all and "torch" not in sys.modules:
            raise ImportError("torch not used")
        import torch

        out["torch_num_threads"] = torch.get_num_threads()
        out["torch_num_interop_threads"] = torch.get_num_interop_threads()
    except Exception:
        out["torch_num_threads"] = None
    try:
        if not import_all and "faiss" not in sys.modules:
            raise ImportError("faiss not used")
        import faiss

        out["faiss_omp_max_threads"] = faiss.omp_get_max_threads()
    except Exception:
        out["faiss_omp_max_threads"] = None
    try:
        from threadpoolctl import threadpool_info

        out["threadpools"] = [
            {k: info.get(k) for k in ("user_api", "internal_api", "num_threads", "version")}
            for info in threadpool_info()
        ]
    except Exception:
        out["threadpools"] = None
    return out


def machine_stamp() -> dict[str, Any]:
    """Who measured what where: a hashed host name, CPU, cores, memory, GPU, versions, threads.

    The host name is hashed (SHA-256, 12 hex digits) so results can be kept in a public
    repository without naming the machine, yet runs on one machine group together.
    """
    host_hash = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        mem_gb = round(psutil.virtual_memory().total / 1e9, 1)
    except Exception:
        physical, mem_gb = None, None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count()
    gpus: list[dict[str, Any]] = []
    cuda_version = None
    try:
        import torch

        if torch.cuda.is_available():
            cuda_version = torch.version.cuda
            for i in range(torch.cuda.device_count()):
                prop = torch.cuda.get_device_properties(i)
                gpus.append({"name": prop.name, "memory_gb": round(prop.total_memory / 1e9, 1)})
    except Exception:
        pass
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "machine_id": host_hash,
        "hostname_sha256_12": host_hash,
        "cpu_model": _cpu_model(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": physical,
        "cpu_affinity_cores": affinity,
        "memory_gb": mem_gb,
        "gpus": gpus,
        "cuda_version": cuda_version,
        "os": platform.platform(),
        "python": platform.python_version(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": commit,
        "git_dirty": bool(dirty) if dirty is not None else None,
        "versions": _library_versions(),
        "threads": thread_settings(),
    }


def describe_machine(stamp: dict[str, Any]) -> str:
    """One line naming a machine for tables: CPU model, cores, memory and GPU."""
    cores = stamp.get("cpu_affinity_cores") or stamp.get("cpu_logical_cores")
    text = f"{stamp.get('cpu_model', '?')}, {cores} cores"
    if stamp.get("memory_gb"):
        text += f", {stamp['memory_gb']} GB RAM"
    gpus = stamp.get("gpus") or []
    text += ", GPU: " + ", ".join(g["name"] for g in gpus) if gpus else ", no GPU"
    return text


# --- records --------------------------------------------------------------------------------
def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def part_key(name: str, device: str, quick: bool) -> str:
    """File-name-safe key of one part run: ``name@device`` plus ``-quick``."""
    safe = re.sub(r"[^A-Za-z0-9_.@-]+", "_", name)
    return f"{safe}@{device}" + ("-quick" if quick else "")


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """Every part record under ``results_dir`` (``*/parts/*.json``), oldest first."""
    out = []
    for path in sorted(Path(results_dir).glob("*/parts/*.json")):
        try:
            rec = read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and "part" in rec:
            rec["_path"] = str(path)
            out.append(rec)
    out.sort(key=lambda r: r.get("finished_utc") or "")
    return out


# --- running ----------------------------------------------------------------------------------
@dataclasses.dataclass
class RunOptions:
    """Options of one harness run (see ``python -m benchmarks --help``)."""

    quick: bool = False
    force: bool = False
    only: tuple[str, ...] = ()
    quiet: bool = False
    results_dir: Path = DEFAULT_RESULTS
    timeout_s: float | None = None
    devices: tuple[str, ...] | None = None


def _log(opts: RunOptions, msg: str) -> None:
    if not opts.quiet:
        print(f"[benchmarks] {msg}", file=sys.stderr, flush=True)


def _child_env(device: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env["BALLISTICS_BENCH_DEVICE"] = device
    return env


def run_part(part: Part, device: str, opts: RunOptions, stamp: dict[str, Any]) -> dict[str, Any]:
    """Run one part in a child process (or reuse its finished record) and return the record.

    The record's ``status`` is ``ok``, ``missing`` (module not found), ``failed`` (raised, crashed
    or returned something that is not a dict), ``timeout`` or ``resumed`` (an earlier ``ok``
    record with the same parameters was kept).
    """
    machine_dir = Path(opts.results_dir) / stamp["machine_id"]
    key = part_key(part.name, device, opts.quick)
    rec_path = machine_dir / "parts" / f"{key}.json"
    params = {"quick": opts.quick, "device": device, "module": part.module,
              "kwargs": dict(part.kwargs)}
    if rec_path.exists() and not opts.force:
        try:
            old = read_json(rec_path)
        except (OSError, ValueError):
            old = None
        if old and old.get("status") == "ok" and old.get("params") == to_jsonable(params):
            _log(opts, f"{key}: finished earlier ({old.get('finished_utc')}), kept; --force reruns")
            return {**old, "status_this_run": "resumed"}
    out_dir = machine_dir / key
    out_dir.mkdir(parents=True, exist_ok=True)
    result_file = machine_dir / "parts" / f".{key}.result.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks", "_part", "--module", part.module,
           "--out-dir", str(out_dir), "--result", str(result_file),
           "--kwargs", json.dumps(to_jsonable(dict(part.kwargs)))]
    if opts.quick:
        cmd.append("--quick")
    _log(opts, f"{key}: running {part.module} ({part.description})")
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    stderr_tail = ""
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=_child_env(device), timeout=opts.timeout_s, text=True,
            stdout=subprocess.DEVNULL if opts.quiet else None,
            stderr=subprocess.PIPE if opts.quiet else None,
        )
        rc = proc.returncode
        stderr_tail = (proc.stderr or "")[-4000:] if opts.quiet else ""
        timed_out = False
    except subprocess.TimeoutExpired as exc:
        rc, timed_out = None, True
        err = exc.stderr
        err = err.decode(errors="replace") if isinstance(err, bytes) else (err or "")
        stderr_tail = err[-4000:]
    wall = time.perf_counter() - t0
    child: dict[str, Any] = {}
    if result_file.exists():
        try:
            child = read_json(result_file)
        except (OSError, ValueError):
            child = {}
        result_file.unlink(missing_ok=True)
    if timed_out:
        status, error = "timeout", f"no result after {opts.timeout_s:.0f} s"
    elif child.get("status") in ("ok", "missing", "failed"):
        status, error = child["status"], child.get("error")
    else:
        status = "failed"
        error = f"child process exited with code {rc} and no result" + (
            f"; stderr tail: {stderr_tail.strip().splitlines()[-1]}" if stderr_tail.strip() else "")
    record = {
        "part": part.name,
        "key": key,
        "suites": list(part.suites),
        "description": part.description,
        "params": params,
        "status": status,
        "error": error,
        "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": round(wall, 3),
        "run_s": child.get("run_s"),
        "peak_rss_mb": child.get("peak_rss_mb"),
        "threads": child.get("threads"),
        "out_dir": os.path.relpath(out_dir, machine_dir),
        "machine": stamp,
        "result": child.get("result"),
    }
    if status != "ok" and child.get("traceback"):
        record["traceback_tail"] = child["traceback"][-3000:]
    _write_json(rec_path, record)
    if status == "ok":
        try:
            from benchmarks.report import plot_record

            record["plots"] = plot_record(record, machine_dir)
            _write_json(rec_path, record)
        except Exception as exc:
            _log(opts, f"{key}: plots failed: {type(exc).__name__}: {exc}")
    _log(opts, f"{key}: {status}" + (f" ({error})" if error else "") + f" in {wall:.1f} s")
    return {**record, "status_this_run": status}


def devices_for(part: Part, suite: str, opts: RunOptions, has_cuda: bool) -> list[str]:
    """Devices a part runs on: the speed suite runs per-device parts on CPU and CUDA."""
    if opts.devices:
        devs = list(opts.devices)
        if not has_cuda:
            devs = [d for d in devs if d != "cuda"] or ["cpu"]
        return devs
    if suite in ("speed", "all") and part.per_device and has_cuda:
        return ["cpu", "cuda"]
    return ["cuda" if has_cuda else "cpu"]


def run_suite(suite: str, opts: RunOptions, parts: Sequence[Part] | None = None,
              on_done: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the parts of a suite (or the given ``parts``), write a run summary and return it."""
    if parts is None:
        parts = parts_for(suite, opts.only or None)
    stamp = machine_stamp()
    has_cuda = bool(stamp["gpus"])
    machine_dir = Path(opts.results_dir) / stamp["machine_id"]
    _write_json(machine_dir / "machine.json", stamp)
    _log(opts, f"suite {suite} on {describe_machine(stamp)}; results in {machine_dir}")
    summary_parts = []
    seen: set[str] = set()
    for part in parts:
        for device in devices_for(part, suite, opts, has_cuda):
            key = part_key(part.name, device, opts.quick)
            if key in seen:
                continue
            seen.add(key)
            rec = run_part(part, device, opts, stamp)
            summary_parts.append({
                "key": key, "part": part.name, "device": device,
                "status": rec["status"], "status_this_run": rec["status_this_run"],
                "error": rec.get("error"), "wall_s": rec.get("wall_s"),
                "record": os.path.relpath(machine_dir / "parts" / f"{key}.json",
                                          opts.results_dir),
            })
            if on_done is not None:
                on_done(rec)
    date = stamp["date_utc"].replace(":", "").replace("-", "")
    summary = {
        "suite": suite,
        "argv": sys.argv[1:],
        "quick": opts.quick,
        "machine": stamp,
        "parts": summary_parts,
    }
    run_path = Path(opts.results_dir) / "runs" / f"{date}-{suite}-{stamp['machine_id']}.json"
    _write_json(run_path, summary)
    summary["_path"] = str(run_path)
    n_ok = sum(p["status"] == "ok" for p in summary_parts)
    _log(opts, f"suite {suite}: {n_ok}/{len(summary_parts)} parts ok; summary {run_path}")
    return summary


# --- the child process ----------------------------------------------------------------------
def child_main(module: str, out_dir: Path, result: Path, quick: bool,
               kwargs: dict[str, Any]) -> int:
    """Body of ``python -m benchmarks _part``: import, run, write ``result``; exit code 0."""
    import importlib
    import resource
    import traceback

    out: dict[str, Any] = {"module": module}
    t0 = time.perf_counter()
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            out.update(status="missing", error=f"module {module} not found (not written yet?)")
        else:
            out.update(status="failed", error=f"import of {module} failed: {exc}",
                       traceback=traceback.format_exc())
        _write_json(result, out)
        return 0
    except Exception as exc:
        out.update(status="failed", error=f"import of {module} failed: {type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc())
        _write_json(result, out)
        return 0
    run = getattr(mod, "run", None)
    if not callable(run):
        out.update(status="failed", error=f"{module} has no run(quick, out_dir) function")
        _write_json(result, out)
        return 0
    try:
        value = run(quick=quick, out_dir=Path(out_dir), **kwargs)
        if not isinstance(value, dict):
            raise TypeError(f"run() returned {type(value).__name__}, not a dict")
        out.update(status="ok", error=None, result=to_jsonable(value))
        json.dumps(out["result"], allow_nan=False)
    except BaseException as exc:
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc(), result=None)
    out["run_s"] = round(time.perf_counter() - t0, 3)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["peak_rss_mb"] = round(rss_kb / 1024.0, 1)
    out["threads"] = thread_settings(import_all=False)
    _write_json(result, out)
    return 0
