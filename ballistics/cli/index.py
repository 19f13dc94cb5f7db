"""``ballistics index``: maintain a collection's FAISS index."""

from __future__ import annotations

import click

from ballistics.cli.common import emit_json, handle_errors, json_option, threads_option


@click.group("index")
def index() -> None:
    """Maintain the search index of a collection."""


@index.command("rebuild")
@click.option("--collection", "collection", required=True, type=click.Path(file_okay=False),
              help="Collection directory.")
@click.option("--kind", type=click.Choice(["auto", "flat", "ivfpq", "hnsw"]), default=None,
              help="Index kind (default: as before; auto = exact up to 100k casings, IVF-PQ "
                   "beyond).")
@threads_option
@json_option
@handle_errors
def rebuild(collection, kind, as_json) -> None:
    """Rebuild the index from the stored embeddings (fixes a damaged or missing index)."""
    import json
    from pathlib import Path

    from ballistics.collection.audit import log_event
    from ballistics.collection.store import MANIFEST_NAME, Collection

    d = Path(collection)
    col = Collection.open(d)
    with col.lock("index rebuild") as lock:
        entry = col.update_index(lock=lock, kind=kind, rebuild=True)
    manifest = json.loads((d / MANIFEST_NAME).read_text(encoding="utf-8"))
    out = {"collection": str(d), "count": manifest["count"], "index": entry}
    log_event(d, "index rebuild", {"kind": kind}, result={"kind": entry.get("kind"),
                                                          "count": entry.get("count")})
    if as_json:
        emit_json(out)
    else:
        click.echo(f"{d}: rebuilt a {entry.get('kind')} index over {entry.get('count', 0)} "
                   "casings")
