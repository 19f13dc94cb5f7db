"""``ballistics search``: which casings of the collection match a query casing?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ballistics.cli.common import (
    OUTPUT_FILE,
    case_options,
    check_csv_target,
    check_report_paths,
    csv_option,
    device_option,
    echo_err,
    emit_json,
    handle_errors,
    json_option,
    pdf_option,
    preprocess_options,
    quiet_option,
    resolve_preprocess,
    scan_read_options,
    threads_option,
    write_csv,
    write_report_files,
)

#: the first columns of ``search --csv``: the query, then the JSON candidates' fields; one
#: ``labels.<column>`` column per label follows (pandas ``json_normalize`` names)
CANDIDATE_CSV_COLUMNS = ("query", "query_sha256", "rank", "id", "path", "embedding_similarity",
                         "cmc_count", "score", "log10_lr")


def candidate_csv(results: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of ``search --csv``: one row per candidate of every query, in order."""
    labels: dict[str, None] = {}
    rows = []
    for res in results:
        for c in res.candidates:
            row = {"query": res.query["path"], "query_sha256": res.query["sha256"]}
            row.update({k: c[k] for k in CANDIDATE_CSV_COLUMNS[2:]})
            for k, v in c["labels"].items():
                labels.setdefault(k)
                row[f"labels.{k}"] = v
            rows.append(row)
    return [*CANDIDATE_CSV_COLUMNS, *(f"labels.{k}" for k in labels)], rows


def _nth(path: str | None, n: int, queries: str | None, suffix: str) -> str | None:
    """The report file of query ``n`` (from 0): ``path`` itself for one query, else
    ``STEM-<n+1>SUFFIX`` beside it."""
    if path is None or queries is None:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{n + 1}{p.suffix or suffix}"))


def _report_parameters(searcher: Any, collection: str, opts: Any) -> dict[str, Any]:
    """The search's settings as the report lists them."""
    col = searcher.collection
    return {
        "collection": str(collection), "collection generation": col.generation,
        "casings in the collection": col.count,
        "embedding model": (col.embedding_info or {}).get("model"),
        "top": opts.top, "shortlist": opts.shortlist, "re-ranking": opts.rerank,
        "where": dict(opts.where) if opts.where else "none",
        "exclude": dict(opts.exclude) if opts.exclude else "none",
        "query preprocessing": {"auto": "auto (the steps it still needs, as measured)",
                                "raw": "raw (every step, forced)",
                                "processed": "processed (used as given, forced)"}.get(
            opts.preprocess, str(opts.preprocess)),
        "device": opts.device, "workers": opts.workers,
    }


def _pair_reports(res: Any, html_out: str, n: int, searcher: Any, collection: str, opts: Any,
                  case: Any, quiet: bool) -> list[dict[str, Any]]:
    """Write the top ``n`` pair reports of one query into ``<html_out stem>_pairs/``."""
    from ballistics.workflows.search import write_pair_reports

    out = Path(html_out)
    own = searcher.calibration.source == "collection"
    return write_pair_reports(res, out.with_name(f"{out.stem}_pairs"), n, options=opts,
                              case=case, calibration=searcher.calibration,
                              collection=collection if own else None,
                              relative_to=out.parent, quiet=quiet)


def _print_table(result) -> None:
    from ballistics.matching.evidence import calibration_label

    click.echo(f"query: {result.query['path']} (sha256 {result.query['sha256'][:12]})")
    click.echo(f"calibration: {calibration_label(result.calibration)}")
    click.echo(f"{'rank':>4}  {'id':<24} {'cmc':>4} {'score':>8} {'log10 LR':>9} {'emb':>6}"
               "  labels")
    for c in result.candidates:
        labels = ", ".join(f"{k}={v}" for k, v in c["labels"].items())
        cmc = "-" if c["cmc_count"] is None else str(c["cmc_count"])
        click.echo(f"{c['rank']:>4}  {c['id']:<24} {cmc:>4} {c['score']:>8.2f} "
                   f"{c['log10_lr']:>9.2f} {c['embedding_similarity']:>6.3f}  {labels}")
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)


@click.command("search")
@click.argument("query", required=False, type=click.Path())
@click.option("--collection", "collection", required=True, type=click.Path(file_okay=False),
              help="Collection directory.")
@click.option("--top", type=int, default=10, show_default=True, help="Candidates returned.")
@click.option("--shortlist", type=int, default=100, show_default=True,
              help="Nearest casings by embedding re-ranked by the full comparison.")
@click.option("--where", multiple=True, metavar="COLUMN=VALUE",
              help="Only casings with this label (repeatable; values of one column are OR'ed).")
@click.option("--exclude", multiple=True, metavar="COLUMN=VALUE",
              help="Leave out casings with this label (repeatable).")
@preprocess_options("The query is")
@click.option("--queries", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file listing query paths, one per line: prints JSON Lines.")
@click.option("--report", "report", type=OUTPUT_FILE, default=None,
              help="Write an HTML report (for --queries: one page per query, OUT-<n>.html).")
@click.option("--pair-reports", "pair_reports", type=click.IntRange(0, 100_000), default=0,
              show_default=True, metavar="N",
              help="With --report: also write the full pair report (as 'compare --report') "
                   "of the top N hits into REPORT_pairs/ and link each hit to it; the other "
                   "hits show the command that writes theirs.")
@pdf_option
@case_options
@click.option("--preset", default=None, help="Comparison preset (default: the collection's).")
@click.option("--workers", type=click.IntRange(0, 1024), default=0, show_default=True,
              help="CPU processes for the re-ranking, sharing --threads (0 = one per thread).")
@click.option("--rerank", type=click.Choice(["early", "full"]), default="early",
              show_default=True,
              help="early: complete a comparison only where it can change the top (same "
                   "result as full, faster); full: every shortlisted casing compared in full.")
@csv_option("the candidates (one row each; for --queries, of every query)")
@device_option
@scan_read_options
@threads_option
@json_option
@quiet_option
@handle_errors
def search(query, collection, top, shortlist, where, exclude, preprocess_mode, processed,
           queries, report, pair_reports, pdf_path, case, preset, workers, rerank, csv_path,
           device, spacing_um, modality, no_verify, strict, as_json, quiet) -> None:
    """Search QUERY against the collection: shortlist by embedding, re-rank by comparison.

    --report writes an HTML report, --pdf the same as PDF (for --queries one per query,
    OUT-<n>.html / OUT-<n>.pdf); the case options head them; the audit log records the
    case and each report's SHA-256. --pair-reports N also writes the full comparison report
    of each of the top N hits (OUT_pairs/NN-<id>.html beside OUT.html).
    """
    from ballistics.collection.reader import parse_filters
    from ballistics.errors import InputError, NotACollectionError, ParameterError
    from ballistics.progress import progress
    from ballistics.workflows.search import Searcher, SearchOptions, audit_search

    if (query is None) == (queries is None):
        raise InputError("give one QUERY or --queries FILE_LIST")
    check_csv_target(csv_path, stdout_taken=as_json or queries is not None)
    check_report_paths(report, pdf_path)
    if pair_reports and not report:
        raise ParameterError("--pair-reports needs --report OUT.html (the pair reports are "
                             "written beside it, in OUT_pairs/)")
    opts = SearchOptions(
        top=top, shortlist=shortlist, where=parse_filters(where) or None,
        exclude=parse_filters(exclude) or None,
        preprocess=resolve_preprocess(preprocess_mode, processed),
        compare_preset=preset, device=device, spacing_um=spacing_um, verify=not no_verify,
        strict=strict, workers=workers, modality=modality, rerank=rerank,
    )
    if not (Path(collection) / "manifest.json").is_file():
        raise NotACollectionError(path=str(collection))
    if queries is not None:
        base = Path(queries).parent
        paths = [ln.strip() for ln in Path(queries).read_text().splitlines()
                 if ln.strip() and not ln.startswith("#")]
        paths = [p if Path(p).is_absolute() else str(base / p) for p in paths]
        if not paths:
            raise InputError("the query list names no scan (one path per line)", path=queries)
    else:
        paths = [query]
    searcher = Searcher(collection, device=device)
    results = []
    reports: list[dict[str, Any]] = []
    failed = 0
    shown: set[str] = set()  # warnings already on stderr (a batch repeats the shared ones)
    for n, p in enumerate(progress(paths, desc="search", unit="query",
                                   quiet=quiet or len(paths) == 1)):
        try:
            res = searcher.search(searcher.prepare(p, opts), opts, quiet=quiet)
        except Exception as exc:
            if queries is None:
                raise
            from ballistics.errors import BallisticsError

            failed += 1
            msg = exc.message if isinstance(exc, BallisticsError) else str(exc)
            emit_json({"query": {"path": p, "sha256": None}, "error": msg, "candidates": [],
                       "case": case.to_dict()})
            echo_err(f"error: {p}: {msg}")  # the contract's line, also for a batch
            continue
        results.append(res)
        out = res.to_dict()
        out["case"] = case.to_dict()
        if report or pdf_path:
            from ballistics.report.search import search_document

            html_out, pdf_out = (_nth(report, n, queries, ".html"),
                                 _nth(pdf_path, n, queries, ".pdf"))
            pairs = None
            if html_out is not None and report:
                pairs = _pair_reports(res, html_out, pair_reports, searcher, collection, opts,
                                      case, quiet)
                if pair_reports:
                    out["pair_reports"] = [{k: v for k, v in e.items() if k != "href"}
                                           for e in pairs]
            doc = search_document(res, case=case, pair_reports=pairs,
                                  parameters=_report_parameters(searcher, collection, opts))
            hashes = write_report_files(doc, out, html_out, pdf_out)
            reports.append({"query": res.query["path"], "html": html_out, "pdf": pdf_out,
                            "sha256": hashes,
                            **({"pair_reports": [{"html": e["html"], "sha256": e["sha256"]}
                                                 for e in pairs if e["html"]]}
                               if pairs and pair_reports else {})})
            for key, label in (("report", "report"), ("report_pdf", "pdf")):
                if key in out and not (as_json or queries is not None):
                    fmt = "html" if key == "report" else "pdf"
                    click.echo(f"{label}: {out[key]} (sha256 {hashes[fmt]})", err=True)
            written = [e["html"] for e in pairs or () if e["html"]]
            if written and not (as_json or queries is not None):
                click.echo(f"pair reports: {len(written)} in {Path(written[0]).parent}",
                           err=True)
        if as_json or queries is not None:
            emit_json(out)
            # on stderr too, each once, as compare --json does: a script that reads the
            # JSON still shows the user the caveats (out-of-date calibration, LR bounds)
            for w in dict.fromkeys(res.warnings):
                if w not in shown:
                    shown.add(w)
                    click.echo(f"warning: {w}", err=True)
        elif csv_path != "-":
            _print_table(res)
        else:  # the table goes to stdout: only the warnings are shown (stderr)
            for w in res.warnings:
                click.echo(f"warning: {w}", err=True)
    if csv_path:
        write_csv(csv_path, *candidate_csv(results))
    audit_search(searcher.collection, opts, results, case=case.to_dict(), reports=reports)
    if failed:
        raise SystemExit(2)
