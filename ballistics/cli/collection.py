"""``ballistics collection list|remove|relabel|export``: manage a collection's entries.

``list`` prints the entries (``--json``: one JSON object per entry, JSON Lines); ``remove``
and ``relabel`` change the collection atomically under its write lock, as a new
generation, with an audit-log line; ``export`` writes a manifest-like CSV that ``ingest
--labels`` and ``relabel --from-csv`` read back.
"""

from __future__ import annotations

import click

from ballistics.cli.common import (
    OUTPUT_FILE,
    echo_err,
    emit_json,
    handle_errors,
    json_option,
    quiet_option,
    threads_option,
    write_csv,
)


def _collection_option(func):
    return click.option("--collection", "collection", required=True,
                        type=click.Path(file_okay=False), help="Collection directory.")(func)


def _where_option(func):
    return click.option("--where", multiple=True, metavar="COL=VAL",
                        help="Only entries whose label COL equals VAL (repeatable; the "
                             "columns id, path and sha256 work too).")(func)


def _filters(where, exclude=()):
    from ballistics.collection import parse_filters

    return parse_filters(where) or None, parse_filters(exclude) or None


def _labels_text(labels) -> str:
    return " ".join(f"{k}={v}" for k, v in labels.items())


@click.group("collection")
def collection() -> None:
    """List, remove, relabel and export the entries of a collection."""


@collection.command("list")
@_collection_option
@_where_option
@click.option("--exclude", multiple=True, metavar="COL=VAL",
              help="Leave out entries whose label COL equals VAL (repeatable).")
@json_option
@handle_errors
def list_cmd(collection, where, exclude, as_json) -> None:
    """List the entries: id, source path, SHA-256 and labels, in row order.

    With --json one JSON object per entry (JSON Lines): id, path, sha256, labels.
    """
    from ballistics.workflows.manage import list_entries

    w, x = _filters(where, exclude)
    entries = list_entries(collection, where=w, exclude=x)
    if as_json:
        for e in entries:
            emit_json(e)
        return
    if not entries:
        echo_err(f"{collection}: no entries" + (" match" if w or x else ""))
        return
    width = max(len(e["id"]) for e in entries)
    for e in entries:
        click.echo(f"{e['id']:<{width}}  {e['sha256'][:12]}  {e['path']}  "
                   f"{_labels_text(e['labels'])}".rstrip())


@collection.command("remove")
@click.argument("ids", nargs=-1)
@_collection_option
@_where_option
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@threads_option
@json_option
@quiet_option
@handle_errors
def remove_cmd(ids, collection, where, dry_run, as_json, quiet) -> None:
    """Remove entries IDS (and those --where matches) from the collection.

    Atomic under the collection's write lock: a new generation without them, the index
    rebuilt, a line in the audit log. Their source files are not touched; ingest them
    again to put them back.
    """
    from ballistics.workflows.manage import remove_entries

    w, _ = _filters(where)
    out = remove_entries(collection, list(ids), where=w, dry_run=dry_run, quiet=quiet)
    if as_json:
        emit_json(out)
        return
    verb = "would remove" if dry_run else "removed"
    for e in out["removed"]:
        click.echo(f"{verb} {e['id']}  {e['path']}")
    click.echo(f"{out['collection']}: {verb} {len(out['removed'])} entr"
               f"{'y' if len(out['removed']) == 1 else 'ies'}; the collection holds "
               f"{out['count']} casings (generation {out['generation']})")
    for m in out["warnings"]:
        echo_err(f"warning: {m}")


@collection.command("relabel")
@click.argument("ids", nargs=-1)
@_collection_option
@click.option("--set", "sets", multiple=True, metavar="COL=VAL",
              help="Set label COL to VAL on every entry IDS names (repeatable).")
@click.option("--unset", "unsets", multiple=True, metavar="COL",
              help="Remove label COL from every entry IDS names (repeatable).")
@click.option("--from-csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              metavar="FILE",
              help="CSV with an id (or sha256, or path) column and label columns; an empty "
                   "field leaves that label as it is.")
@click.option("--dry-run", is_flag=True, help="Only list what would change.")
@json_option
@quiet_option
@handle_errors
def relabel_cmd(ids, collection, sets, unsets, csv_path, dry_run, as_json, quiet) -> None:
    """Change the labels of entries IDS (--set/--unset) or of the entries a CSV lists.

    Atomic under the collection's write lock: a new generation, a line in the audit log
    with every label before and after. The index is unchanged (labels are not embedded).
    """
    from ballistics.errors import ParameterError
    from ballistics.workflows.manage import parse_assignments, relabel_entries

    if (sets or unsets) and not ids:
        raise ParameterError("--set/--unset need the ids of the entries to relabel")
    if ids and not (sets or unsets):
        raise ParameterError("give --set COL=VAL or --unset COL for the entries named")
    change = parse_assignments(sets, unsets) if ids else {}
    out = relabel_entries(collection, {i: change for i in ids}, csv_path=csv_path,
                          dry_run=dry_run, quiet=quiet)
    if as_json:
        emit_json(out)
        return
    verb = "would relabel" if dry_run else "relabelled"
    for e in out["relabelled"]:
        diff = ", ".join(f"{k}: {e['before'].get(k)!r} -> {e['after'].get(k)!r}"
                         for k in sorted(set(e["before"]) | set(e["after"]))
                         if e["before"].get(k) != e["after"].get(k))
        click.echo(f"{verb} {e['id']}: {diff}")
    click.echo(f"{out['collection']}: {verb} {len(out['relabelled'])}, unchanged "
               f"{out['unchanged']} (generation {out['generation']})")
    for m in out["warnings"]:
        echo_err(f"warning: {m}")


@collection.command("export")
@_collection_option
@click.option("--csv", "csv_path", type=OUTPUT_FILE, required=True, metavar="FILE",
              help="Write the table to this CSV file ('-': stdout).")
@_where_option
@click.option("--exclude", multiple=True, metavar="COL=VAL",
              help="Leave out entries whose label COL equals VAL (repeatable).")
@json_option
@handle_errors
def export_cmd(collection, csv_path, where, exclude, as_json) -> None:
    """Write the entries as a manifest-like CSV: path, id, sha256, one column per label.

    `ballistics ingest --labels FILE` and `ballistics collection relabel --from-csv FILE`
    read it back. With --json a summary object goes to stdout (not with --csv -).
    """
    from ballistics.cli.common import check_csv_target
    from ballistics.workflows.manage import export_table

    check_csv_target(csv_path, stdout_taken=as_json)
    w, x = _filters(where, exclude)
    columns, rows = export_table(collection, where=w, exclude=x)
    write_csv(csv_path, columns, rows)
    if as_json:
        emit_json({"collection": str(collection), "csv": csv_path, "rows": len(rows),
                   "columns": columns})
    elif csv_path != "-":
        click.echo(f"{collection}: wrote {len(rows)} entries to {csv_path}")
