"""Paired speed comparison of this tree's ``compare`` with an earlier commit's, in one process.

On a noisy shared machine, separate runs drift by more than the change being measured; here
the two engines alternate, comparison by comparison, on the processed Fadul pair, and the
median of the per-pair time ratios is reported with both medians. The earlier commit is
exported with ``git archive`` into a temporary folder and imported under another package
name (``ballistics_base``).

``python benchmarks/compare_ab.py BASE_COMMIT [--preset cmcR] [--threads 2] [--pairs 20]
[--scans A.x3p B.x3p ...]`` (default scans: the processed Fadul pair; paths relative to
``../shared/data/real``). With more than two scans, each run is ``compare_many`` of the first
against the others (what a search's re-ranking does: the query prepared once); the CPU
seconds of each run (``time.process_time``) are paired as well as the wall seconds.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "real"


def _export(commit: str, dest: Path) -> None:
    tar = subprocess.run(["git", "-C", str(REPO), "archive", commit, "ballistics"],
                         check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(dest, filter="data")
    (dest / "ballistics").rename(dest / "ballistics_base")
    for py in (dest / "ballistics_base").rglob("*.py"):
        text = py.read_text()
        text = re.sub(r"\bballistics\.", "ballistics_base.", text)
        text = re.sub(r"from ballistics import", "from ballistics_base import", text)
        py.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("--preset", default="cmcR")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--scans", nargs="+", default=["fadul1-1_processed.x3p",
                                                   "fadul1-2_processed.x3p"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ballistics_ab_"))
    _export(args.base, tmp)
    sys.path.insert(0, str(tmp))
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(args.threads)
    import ballistics_base.matching as base
    from ballistics_base.io import read_scan as read_base

    import ballistics.matching as new
    from ballistics.io import read_scan

    a = read_scan(DATA / args.scans[0])
    # each engine gets scans of its own package (isinstance checks differ between them)
    a0 = read_base(DATA / args.scans[0])
    if len(args.scans) == 2:
        b = read_scan(DATA / args.scans[1])
        b0 = read_base(DATA / args.scans[1])
        runs = {"base": lambda: [base.compare(a0, b0, args.preset, device="cpu")],
                "new": lambda: [new.compare(a, b, args.preset, device="cpu")]}
    else:
        bs = [read_scan(DATA / s) for s in args.scans[1:]]
        bs0 = [read_base(DATA / s) for s in args.scans[1:]]
        runs = {"base": lambda: base.compare_many(a0, bs0, args.preset, device="cpu"),
                "new": lambda: new.compare_many(a, bs, args.preset, device="cpu")}
    times: dict[str, list[float]] = {"base": [], "new": []}
    cpu: dict[str, list[float]] = {"base": [], "new": []}
    counts = {k: [(c.cmc_count, c.theta_deg, c.features) for c in f()]
              for k, f in runs.items()}   # warm-up
    for i in range(args.pairs):
        for k in (("base", "new") if i % 2 == 0 else ("new", "base")):
            t0, c0 = time.perf_counter(), time.process_time()
            runs[k]()
            times[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    ratio = statistics.median(n / o for n, o in zip(times["new"], times["base"], strict=True))
    cpu_ratio = statistics.median(n / o for n, o in zip(cpu["new"], cpu["base"], strict=True))
    print(f"{args.preset}, {args.threads} threads, {args.pairs} pairs, {len(args.scans) - 1} "
          f"target(s): base {args.base} median {statistics.median(times['base']):.4f} s (min "
          f"{min(times['base']):.4f}), this tree median {statistics.median(times['new']):.4f} s "
          f"(min {min(times['new']):.4f}), median ratio {ratio:.3f} (CPU s {cpu_ratio:.3f}); "
          f"identical results: {json.dumps(counts['base']) == json.dumps(counts['new'])}")


if __name__ == "__main__":
    main()
