"""``ballistics demo``: build a small synthetic collection and search it, end to end."""

from __future__ import annotations

import click

from ballistics.cli.common import (
    echo_err,
    emit_json,
    handle_errors,
    json_option,
    quiet_option,
    threads_option,
)


@click.command("demo")
@click.option("--out", "out", type=click.Path(file_okay=False), default="ballistics-demo",
              show_default=True, help="Folder for the scans, the collection and the report.")
@click.option("--firearms", type=int, default=8, show_default=True,
              help="Synthetic firearms in the collection.")
@click.option("--casings", type=int, default=3, show_default=True,
              help="Casings per firearm in the collection (one more is held out).")
@click.option("--queries", type=int, default=3, show_default=True,
              help="Held-out casings searched.")
@click.option("--shortlist", type=int, default=6, show_default=True,
              help="Casings re-ranked per query.")
@click.option("--top", type=int, default=4, show_default=True,
              help="Candidates listed per query (the re-ranking completes only the "
                   "comparisons that can reach them).")
@click.option("--model", default=None, help="Embedder (default: cnn, else baseline).")
@click.option("--workers", type=click.IntRange(0, 1024), default=0, show_default=True,
              help="Worker processes of ingest and search (0 = one per thread of "
                   "--threads: the cores free now).")
@click.option("--keep-scans", is_flag=True,
              help="Keep the ingested casings' X3P files (deleted by default: the collection "
                   "holds their surfaces; about 1.4 MB each).")
@threads_option
@json_option
@quiet_option
@handle_errors
def demo(out, firearms, casings, queries, shortlist, top, model, workers, keep_scans, as_json,
         quiet) -> None:
    """Generate synthetic casings, ingest them, search held-out ones, write report.html."""
    from ballistics.workflows.demo import run_demo

    say = echo_err if as_json else click.echo
    result = run_demo(out, n_firearms=firearms, n_casings=casings, n_queries=queries,
                      shortlist=shortlist, top=top, model=model, workers=workers,
                      keep_scans=keep_scans, quiet=quiet, say=say)
    if as_json:
        emit_json(result)
