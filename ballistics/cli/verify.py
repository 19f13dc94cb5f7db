"""``ballistics verify``: check a collection's files against their checksums."""

from __future__ import annotations

import sys

import click

from ballistics.cli.common import echo_err, emit_json, handle_errors, json_option, quiet_option


def _verify(col, quick: bool, quiet: bool) -> dict:
    """``col.verify`` with a bar over the shards (on a terminal, after 2 s)."""
    from ballistics.progress import progress

    shards = col.manifest.get("shards") if isinstance(col.manifest, dict) else None
    n = len(shards) if isinstance(shards, list) else 0
    with progress(total=n or None, desc="verify", unit="shard", quiet=quiet,
                  delay=2.0) as bar:
        return col.verify(full=not quick, callback=lambda _f: bar.update(1))


def _echo_repair(report: dict, collection: str) -> None:
    """What ``--drop-damaged`` did: the shards dropped, the state after, the files to
    ingest again (or, for a shard too damaged to read its paths, what to do instead)."""
    for f in report.get("dropped") or ():
        click.echo(f"dropped {f} (kept aside as {f}.damaged)")
    after = report["after"]
    click.echo(f"{after['collection']}: after the repair: {'OK' if after['ok'] else 'DAMAGED'}: "
               f"{after['count']} casings, {after['checked']} files checked, index covers "
               f"{after['index']['covers']}")
    lost = report.get("lost") or []
    # a shard too damaged to read its paths is listed as "<N casings of FILE>"
    unreadable = [p for p in lost if p.startswith("<")]
    readable = [p for p in lost if not p.startswith("<")]
    for p in readable:
        click.echo(f"ingest again: {p}")
    if readable:
        click.echo(f"(`ballistics ingest FILES --collection {collection} --labels CSV` with "
                   "the files above and the labels CSV they were ingested with)")
    for p in unreadable:
        click.echo(f"ingest again: {p[1:-1]}: their paths could not be read from the damaged "
                   f"shard; ingest the folders they came from again (`ballistics ingest DIR "
                   f"--collection {collection} --labels CSV`: casings still in the collection "
                   "are skipped)")


@click.command("verify")
@click.option("--collection", "collection", required=True, type=click.Path(file_okay=False),
              help="Collection directory.")
@click.option("--quick", is_flag=True,
              help="Only whole-file checksums (skip reading every HDF5 chunk).")
@click.option("--drop-damaged", is_flag=True,
              help="Remove damaged shards from the collection and list the files to ingest "
                   "again.")
@json_option
@quiet_option
@handle_errors
def verify(collection, quick, drop_damaged, as_json, quiet) -> None:
    """Verify the manifest, every shard, the index and the calibration of a collection
    (exit 1 if damaged)."""
    from ballistics.collection.audit import log_event
    from ballistics.collection.manifest import MANIFEST_NAME
    from ballistics.collection.store import Collection
    from ballistics.errors import CollectionCorruptError

    # opened without checks: listing what is damaged is the point
    col = Collection.open(collection, check=False)
    report = _verify(col, quick, quiet)
    if drop_damaged and report["problems"]:
        if any(p["file"] == MANIFEST_NAME for p in report["problems"]):
            raise CollectionCorruptError(
                "manifest.json is damaged, so --drop-damaged cannot repair the collection "
                "(it would publish the damaged manifest); restore manifest.json from a backup",
                path=col.directory)
        shard_files = {p["file"] for p in report["problems"] if p["file"].startswith("shards/")}
        with col.lock("verify --drop-damaged") as lock:
            report["lost"] = col.drop_shards(shard_files, lock=lock) if shard_files else []
            report["dropped"] = sorted(shard_files)
            col = col.refresh()
            if any(p["file"].startswith("index/") for p in report["problems"]):
                col.update_index(lock=lock, rebuild=True)
                col = col.refresh()
        report["after"] = _verify(col, quick, quiet)
        if report["lost"]:  # casings left the collection: its own calibration is out of date
            from ballistics.workflows.manage import stale_calibration

            report["warnings"] = [*report["warnings"], *stale_calibration(col, changed=True)]
    log_event(col.directory, "verify", {"quick": quick, "drop_damaged": drop_damaged},
              result={"ok": report["ok"], "problems": len(report["problems"]),
                      "count": report["count"], "generation": report["generation"]})
    if as_json:
        emit_json(report)
    else:
        status = "OK" if report["ok"] else "DAMAGED"
        click.echo(f"{report['collection']}: {status}: {report['count']} casings, "
                   f"{report['checked']} files checked, index covers {report['index']['covers']}")
        for p in report["problems"]:
            echo_err(f"problem: {p['file']}: {p['problem']} -> fix: {p['fix']}")
        for w in report["warnings"]:
            echo_err(f"warning: {w}")
        for o in report["orphans"]:
            echo_err(f"note: orphan file {o} (left by an interrupted writer; removed by the next "
                     "ingest)")
        if "after" in report:
            _echo_repair(report, collection)
    ok = report["ok"] or report.get("after", {}).get("ok", False)
    if not ok:
        sys.exit(1)
