"""The per-casing columns of a collection (ids, paths, hashes, labels), kept up to date
incrementally.

Shards are only ever appended (a commit adds one at the end of the manifest's list; only
``drop_shards`` removes any), so the columns of the collection at generation ``g + 1`` are
those at ``g`` plus the new shard's. A :class:`RowTable` remembers which shards it has read
and, when shown a newer manifest, reads only the shards it has not seen: a writer that
commits batch after batch reads each shard table once, so a commit's cost does not grow
with the number of shards. When the manifest's shard list is not an extension of what the
table holds (a shard was dropped, a manifest restored), the table starts over.

The table is a cache in memory only: nothing on disk changes, so crash safety is the
shards' and the manifest's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ballistics.collection import shards as shard_io
from ballistics.errors import CollectionCorruptError


def _key(entry: Mapping[str, Any]) -> tuple[str, str]:
    return str(entry["file"]), str(entry.get("sha256", ""))


class RowTable:
    """Columns over the first shards of a collection, in row order.

    Attributes
    ----------
    ids, paths, sha256, labels
        One entry per row.
    id_set, sha_set
        The same ids and hashes as sets (duplicate and id-clash checks in O(1)).
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.paths: list[str] = []
        self.sha256: list[str] = []
        self.labels: list[dict[str, str]] = []
        self.id_set: set[str] = set()
        self.sha_set: set[str] = set()
        self._shards: list[tuple[str, str]] = []
        self._starts: list[int] = [0]

    @property
    def count(self) -> int:
        """Rows held."""
        return len(self.ids)

    def covers(self, entries: Sequence[Mapping[str, Any]]) -> bool:
        """True when the table holds exactly the shards ``entries`` list."""
        return self._shards == [_key(e) for e in entries]

    def extends_to(self, entries: Sequence[Mapping[str, Any]]) -> bool:
        """True when ``entries`` starts with every shard the table holds (in order)."""
        n = len(self._shards)
        return len(entries) >= n and [_key(e) for e in entries[:n]] == self._shards

    def holds(self, entries: Sequence[Mapping[str, Any]]) -> bool:
        """True when the table's first shards are exactly those ``entries`` lists (it may
        hold more: a reader at an older generation uses a prefix)."""
        n = len(entries)
        return len(self._shards) >= n and self._shards[:n] == [_key(e) for e in entries]

    def append(self, entry: Mapping[str, Any], ids: Sequence[str], paths: Sequence[str],
               sha256: Sequence[str], labels: Sequence[Mapping[str, str]]) -> None:
        """Add the rows of one more shard (already read or just written)."""
        self.ids += list(ids)
        self.paths += list(paths)
        self.sha256 += list(sha256)
        self.labels += [dict(lab) for lab in labels]
        self.id_set.update(ids)
        self.sha_set.update(sha256)
        self._shards.append(_key(entry))
        self._starts.append(len(self.ids))

    def sync(self, directory: Path, entries: Sequence[Mapping[str, Any]]) -> RowTable:
        """The table for exactly the shards ``entries`` lists.

        Reads only the shards past those already held when ``entries`` extends them (and
        returns ``self``, grown); otherwise returns a new table read from scratch.
        """
        table = self if self.extends_to(entries) else RowTable()
        for entry in entries[len(table._shards):]:
            path = directory / entry["file"]
            t = shard_io.read_table(path, digest=entry.get("datasets_sha256"))
            if t.count != int(entry["count"]):
                raise CollectionCorruptError(
                    f"shard holds {t.count} casings, the manifest recorded {entry['count']}; "
                    f"{shard_io.FIX_HINT}", path=path)
            table.append(entry, t.ids, t.paths, t.sha256, t.labels)
        return table

    def columns(self, n_shards: int) -> dict[str, list[Any]]:
        """``{"id", "path", "sha256", "labels"}`` over the first ``n_shards`` shards (copies:
        the table keeps growing, a caller's columns do not)."""
        stop = self._starts[n_shards]
        return {"id": self.ids[:stop], "path": self.paths[:stop],
                "sha256": self.sha256[:stop], "labels": self.labels[:stop]}
