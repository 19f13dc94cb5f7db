"""A writer process for the crash tests: commits records in small batches, prints progress.

Usage: python -m tests.collection._writer DIR N BATCH [HOLD_SECONDS]
Prints "committed <count>" after each commit returns and "indexed" after the index update.
With HOLD_SECONDS it takes the lock, prints "locked" and sleeps (for the lock tests).
"""

from __future__ import annotations

import sys
import time

from ballistics.collection.store import Collection
from tests.collection.helpers import make_record


def main() -> None:
    directory, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    hold = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    col = Collection.create(directory, embedding={"model": "t", "model_hash": "h", "dim": 16})
    with col.lock("writer test") as lock:
        if hold:
            print("locked", flush=True)
            time.sleep(hold)
            return
        col.cleanup_orphans(lock=lock)
        have = set(col.refresh().columns()["sha256"])
        todo = [r for r in (make_record(i, shape=(150, 170)) for i in range(n))
                if r.sha256 not in have]
        for start in range(0, len(todo), batch):
            col.commit(todo[start:start + batch], lock=lock)
            print(f"committed {col.count}", flush=True)
        col.update_index(lock=lock)
        print("indexed", flush=True)


if __name__ == "__main__":
    main()
