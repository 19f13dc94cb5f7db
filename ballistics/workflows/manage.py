"""Managing a collection's entries: list, remove, relabel, export.

What an examiner does to the casings already in a collection, on top of the storage
engine's :meth:`~ballistics.collection.store.Collection.rewrite_casings`:

- :func:`list_entries`: the entries (id, source path, SHA-256, labels), optionally filtered
  with the ``--where`` / ``--exclude`` syntax of search;
- :func:`remove_entries`: remove entries by id or filter, atomically under the collection's
  write lock, as a new generation (the index is rebuilt), with an audit-log line;
- :func:`relabel_entries`: set or unset label columns of entries (from ``--set`` or a CSV
  read by :func:`read_label_changes`), atomically, with an audit-log line;
- :func:`export_table`: a manifest-like table (``path``, ``id``, ``sha256``, one column per
  label) that ``ingest --labels`` and ``relabel --from-csv`` read back.
"""

from __future__ import annotations

import csv
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ballistics.collection.audit import log_event
from ballistics.collection.store import Collection
from ballistics.errors import CorruptFileError, InputError, ParameterError
from ballistics.progress import progress

#: Columns of an exported table and of a relabel CSV that identify an entry (never labels).
KEY_COLUMNS: tuple[str, ...] = ("path", "id", "sha256")

LabelChange = dict[str, "str | None"]  # column -> new value (None: remove the column)


def stale_calibration(col: Collection, *, changed: bool = False) -> list[str]:
    """The warning that the collection's own calibration is out of date, or ``[]``.

    Parameters
    ----------
    col
        The collection (its state after the change, if any).
    changed
        ``True`` right after a command changed the casings (ingest, remove, relabel): the
        calibration, fitted before, is out of date. ``False`` (search, compare): out of
        date when the casings changed since it was fitted
        (:attr:`~ballistics.collection.reader.CollectionReader.calibration_outdated`).

    Returns
    -------
    list of str
        One message naming the command that refits it, or none.
    """
    if not col.manifest.get("calibration"):
        return []
    if changed:
        when = "before this change"
    elif col.calibration_outdated:
        when = "before the collection's casings last changed (ingest, remove or relabel)"
    else:
        return []
    return [f"the collection's own calibration was fitted {when}; refit it with "
            f"`ballistics calibrate --collection {shlex.quote(str(col.directory))}`"]


def _entries(col: Collection, rows: Iterable[int]) -> list[dict[str, Any]]:
    cols = col.columns()
    return [{"id": cols["id"][r], "path": cols["path"][r], "sha256": cols["sha256"][r],
             "labels": dict(cols["labels"][r])} for r in rows]


def list_entries(
    collection: str | Path | Collection,
    *,
    where: Mapping[str, Sequence[str]] | None = None,
    exclude: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """The collection's entries in row order, filtered as search filters.

    Parameters
    ----------
    collection
        The collection directory (or an opened collection).
    where, exclude
        Label filters (:func:`ballistics.collection.parse_filters`); the pseudo-columns
        ``id``, ``path`` and ``sha256`` work too.

    Returns
    -------
    list of dict
        ``{"id", "path", "sha256", "labels"}`` per entry.
    """
    col = collection if isinstance(collection, Collection) else Collection.open(collection)
    if not col.count:
        return []
    mask = col.label_mask(where, exclude)
    return _entries(col, (int(r) for r in mask.nonzero()[0]))


def _select(col: Collection, ids: Sequence[str],
            where: Mapping[str, Sequence[str]] | None) -> list[str]:
    """Ids named or matched by ``where`` (row order); an unknown id is an InputError."""
    known = set(col.ids)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise InputError(f"no casing with id {', '.join(map(repr, unknown[:5]))}"
                         f"{' ...' if len(unknown) > 5 else ''} in the collection; list them "
                         "with `ballistics collection list --collection DIR`",
                         path=col.directory)
    chosen = set(ids)
    if where:
        mask = col.label_mask(where)
        chosen |= {col.ids[int(r)] for r in mask.nonzero()[0]}
    return [i for i in col.ids if i in chosen]


def remove_entries(
    collection: str | Path,
    ids: Sequence[str] = (),
    *,
    where: Mapping[str, Sequence[str]] | None = None,
    dry_run: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Remove entries from a collection, atomically, as a new generation.

    Parameters
    ----------
    collection
        The collection directory.
    ids
        Ids of the entries to remove.
    where
        Also remove every entry these label filters match.
    dry_run
        Only report what would be removed.
    quiet
        No progress bar.

    Returns
    -------
    dict
        ``collection``, ``removed`` (the entries, as :func:`list_entries`), ``count``,
        ``generation``, ``index`` (the rebuilt index entry), ``dry_run``, ``seconds``,
        ``warnings``.

    Raises
    ------
    InputError
        When nothing is selected or an id is unknown.
    CollectionLockedError
        When another writer holds the collection.
    """
    if not ids and not where:
        raise InputError("give the ids of the entries to remove or --where COLUMN=VALUE")
    t0 = time.perf_counter()
    col = Collection.open(collection)
    with col.lock("collection remove") as lock:
        col = col.refresh()
        chosen = _select(col, ids, where)
        if not chosen:
            raise InputError("no entry matches the filter; nothing removed", path=col.directory)
        row_of = {cid: r for r, cid in enumerate(col.ids)}
        entries = _entries(col, [row_of[i] for i in chosen])
        warnings: list[str] = []
        if not dry_run:
            rows = col.columns()["id"]
            want = set(chosen)
            n_shards = _shards_touched(col, rows, want)
            with progress(total=n_shards, desc="remove", unit="shard", quiet=quiet) as bar:
                out = col.rewrite_casings(lock=lock, remove=chosen,
                                          on_shard=lambda: bar.update(1))
            col = col.refresh()
            warnings += stale_calibration(col, changed=True)
            log_event(col.directory, "collection remove",
                      {"ids": list(ids), "where": dict(where or {})},
                      inputs=[{"id": e["id"], "path": e["path"], "sha256": e["sha256"]}
                              for e in entries],
                      result={"removed": len(out["removed"]), "count": col.count,
                              "generation": col.generation,
                              "shards_rewritten": out["shards_rewritten"]})
    return {"collection": str(col.directory), "removed": entries, "count": col.count,
            "generation": col.generation, "index": col.manifest.get("index"),
            "dry_run": dry_run, "seconds": time.perf_counter() - t0, "warnings": warnings}


def _shards_touched(col: Collection, ids: Sequence[str], want: set[str]) -> int:
    n, pos = 0, 0
    for entry in col.manifest["shards"]:
        k = int(entry["count"])
        n += bool(want.intersection(ids[pos:pos + k]))
        pos += k
    return n


def apply_change(labels: Mapping[str, str], change: Mapping[str, str | None]) -> dict[str, str]:
    """``labels`` with ``change`` applied (a ``None`` value removes the column)."""
    out = dict(labels)
    for k, v in change.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = str(v)
    return out


def label_differences(stored: Mapping[str, str], given: Mapping[str, str]
                      ) -> dict[str, dict[str, str | None]]:
    """The columns of ``given`` whose value differs from ``stored``:
    ``{column: {"collection": old or None, "given": new}}``."""
    return {k: {"collection": stored.get(k), "given": str(v)}
            for k, v in given.items() if stored.get(k) != str(v)}


def relabel_command(casing_id: str, diffs: Mapping[str, Mapping[str, Any]],
                    collection: str | Path) -> str:
    """The ``ballistics collection relabel`` command line that sets ``diffs``' given values."""
    import shlex

    sets = " ".join("--set " + shlex.quote(f"{k}={d['given']}") for k, d in diffs.items())
    return (f"ballistics collection relabel {shlex.quote(casing_id)} {sets} "
            f"--collection {shlex.quote(str(collection))}")


def parse_assignments(items: Sequence[str], unset: Sequence[str] = ()) -> LabelChange:
    """``["COL=VAL", ...]`` and ``["COL", ...]`` -> ``{COL: VAL, COL: None}`` (``--set`` and
    ``--unset``); raises ParameterError on a bad item or a key column."""
    out: LabelChange = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--set must look like COLUMN=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k:
            raise ParameterError(f"--set must name a column: COLUMN=VALUE, got {item!r}")
        out[k] = v
    for k in unset:
        out[k.strip()] = None
    bad = sorted(set(out) & set(KEY_COLUMNS))
    if bad:
        names = " and ".join(repr(b) for b in bad)
        what = ("identifies an entry and is not a label: it" if len(bad) == 1 else
                "identify an entry and are not labels: they")
        raise ParameterError(f"{names} {what} cannot be set or unset (the columns that "
                             f"identify an entry are {', '.join(KEY_COLUMNS)})")
    if "" in out:
        raise ParameterError("--unset needs a column name")
    return out


def read_label_changes(path: str | Path) -> tuple[str, list[tuple[str, LabelChange]]]:
    """Read a relabel CSV: a key column (``id``, else ``sha256``, else ``path``) and label
    columns.

    A CSV with a ``path`` column is read as ``ingest --labels`` reads it
    (:func:`ballistics.datasets.read_manifest`: paths relative to the CSV's folder, the same
    value conversions), so its labels come out as ingest would have stored them. An empty
    field leaves that label unchanged.

    Returns
    -------
    key, rows
        The key column and ``(key value, {column: value})`` per row.
    """
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            raw = list(reader)
    except FileNotFoundError:
        raise InputError("the relabel CSV does not exist", path=p) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorruptFileError(f"cannot read the relabel CSV ({exc})", path=p) from None
    key = next((k for k in ("id", "sha256", "path") if k in fields), None)
    if key is None:
        raise InputError(f"the relabel CSV needs an 'id', 'sha256' or 'path' column; found "
                         f"{', '.join(fields) or 'no header'}", path=p)
    if "path" in fields:
        from ballistics.datasets import read_manifest

        rows: list[Mapping[str, Any]] = list(read_manifest(p))
    else:
        rows = list(raw)
    out: list[tuple[str, LabelChange]] = []
    for row in rows:
        kv = row.get(key)
        if kv in (None, ""):
            continue
        change: LabelChange = {str(k): str(v) for k, v in row.items()
                               if k not in KEY_COLUMNS and k is not None
                               and v not in (None, "")}
        out.append((str(kv), change))
    return key, out


def _match_rows(col: Collection, key: str, rows: Sequence[tuple[str, LabelChange]]
                ) -> tuple[dict[str, LabelChange], list[str]]:
    """Map CSV rows to casing ids; returns ``({id: change}, unmatched key values)``."""
    cols = col.columns()
    if key == "id":
        lookup = {i: i for i in cols["id"]}
    elif key == "sha256":
        lookup = dict(zip(cols["sha256"], cols["id"], strict=True))
    else:
        lookup = dict(zip(cols["path"], cols["id"], strict=True))
        names: dict[str, list[str]] = {}
        for p, i in zip(cols["path"], cols["id"], strict=True):
            names.setdefault(Path(p).name, []).append(i)
        for name, found in names.items():  # a file name that names one entry only
            if len(found) == 1:
                lookup.setdefault(name, found[0])
    changes: dict[str, LabelChange] = {}
    unmatched: list[str] = []
    for value, change in rows:
        cid = lookup.get(value)
        if cid is None and key == "path":
            cid = lookup.get(str(Path(value).resolve())) or lookup.get(Path(value).name)
        if cid is None:
            unmatched.append(value)
            continue
        changes.setdefault(cid, {}).update(change)
    return changes, unmatched


def relabel_entries(
    collection: str | Path,
    changes: Mapping[str, Mapping[str, str | None]] | None = None,
    *,
    csv_path: str | Path | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    command: str = "collection relabel",
) -> dict[str, Any]:
    """Change the labels of entries, atomically, as a new generation.

    Parameters
    ----------
    collection
        The collection directory.
    changes
        Casing id -> ``{column: new value}`` (``None`` removes the column).
    csv_path
        A CSV read by :func:`read_label_changes` (rows matched by id, SHA-256 or path);
        applied after ``changes``.
    dry_run
        Only report what would change.
    quiet
        No progress bar.
    command
        What the lock and the audit log name.

    Returns
    -------
    dict
        ``collection``, ``relabelled`` (``{"id", "path", "before", "after"}`` per changed
        entry), ``unchanged`` (entries whose labels already had these values),
        ``count``, ``generation``, ``dry_run``, ``seconds``, ``warnings`` (CSV rows that
        match no entry, a calibration fitted before the change).

    Raises
    ------
    InputError
        When an id is unknown or the CSV matches no entry.
    """
    t0 = time.perf_counter()
    wanted: dict[str, dict[str, str | None]] = {k: dict(v) for k, v in (changes or {}).items()}
    warnings: list[str] = []
    csv_rows: tuple[str, list[tuple[str, LabelChange]]] | None = None
    if csv_path is not None:
        csv_rows = read_label_changes(csv_path)
    if not wanted and not csv_rows:
        raise InputError("nothing to relabel: give an id with --set/--unset, or --from-csv")
    col = Collection.open(collection)
    with col.lock(command) as lock:
        col = col.refresh()
        _select(col, list(wanted), None)  # unknown ids are refused
        if csv_rows is not None:
            matched, unmatched = _match_rows(col, *csv_rows)
            if not matched:
                raise InputError(f"no row of the CSV matches an entry of the collection by "
                                 f"{csv_rows[0]}", path=csv_path)
            if unmatched:
                warnings.append(f"{len(unmatched)} row(s) of {csv_path} match no entry by "
                                f"{csv_rows[0]} and were left out: "
                                f"{', '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''}")
            for cid, change in matched.items():
                wanted.setdefault(cid, {}).update(change)
        cols = col.columns()
        row_of = {i: r for r, i in enumerate(cols["id"])}
        relabelled, new_labels, unchanged = [], {}, 0
        for cid in cols["id"]:
            if cid not in wanted:
                continue
            before = cols["labels"][row_of[cid]]
            after = apply_change(before, wanted[cid])
            if after == before:
                unchanged += 1
                continue
            new_labels[cid] = after
            relabelled.append({"id": cid, "path": cols["path"][row_of[cid]],
                               "before": dict(before), "after": after})
        if new_labels and not dry_run:
            with progress(total=_shards_touched(col, cols["id"], set(new_labels)),
                          desc="relabel", unit="shard", quiet=quiet) as bar:
                out = col.rewrite_casings(lock=lock, labels=new_labels,
                                          on_shard=lambda: bar.update(1))
            col = col.refresh()
            warnings += stale_calibration(col, changed=True)
            log_event(col.directory, command,
                      {"changes": {k: v for k, v in (changes or {}).items()},
                       "csv": None if csv_path is None else str(csv_path)},
                      inputs=[{"id": e["id"], "path": e["path"]} for e in relabelled],
                      result={"relabelled": len(out["relabelled"]), "unchanged": unchanged,
                              "generation": col.generation,
                              "changes": [{"id": e["id"], "before": e["before"],
                                           "after": e["after"]} for e in relabelled]})
    return {"collection": str(col.directory), "relabelled": relabelled,
            "unchanged": unchanged, "count": col.count, "generation": col.generation,
            "dry_run": dry_run, "seconds": time.perf_counter() - t0, "warnings": warnings}


def export_table(
    collection: str | Path,
    *,
    where: Mapping[str, Sequence[str]] | None = None,
    exclude: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """A manifest-like table of the entries: ``path``, ``id``, ``sha256``, then one column per
    label (the manifest's ``label_columns`` order).

    ``ingest --labels`` reads it back (the ``id`` column keeps the ids) and so does
    ``relabel --from-csv``; an entry without a label has an empty field.

    Returns
    -------
    columns, rows
    """
    col = Collection.open(collection)
    entries = list_entries(col, where=where, exclude=exclude)
    label_cols = [c for c in col.manifest.get("label_columns") or []
                  if c not in KEY_COLUMNS]
    seen = set(label_cols)
    for e in entries:
        for c in e["labels"]:
            if c not in seen and c not in KEY_COLUMNS:
                seen.add(c)
                label_cols.append(c)
    used = {c for e in entries for c in e["labels"]}
    label_cols = [c for c in label_cols if c in used]
    rows = [{**e["labels"], "path": e["path"], "id": e["id"], "sha256": e["sha256"]}
            for e in entries]
    return [*KEY_COLUMNS, *label_cols], rows
