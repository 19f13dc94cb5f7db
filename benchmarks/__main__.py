"""``python -m benchmarks accuracy|speed|scale|all|table|list``: see benchmarks/README.md."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.harness import (
    DEFAULT_RESULTS,
    PARTS,
    SUITES,
    Part,
    RunOptions,
    all_parts,
    child_main,
    parse_settings,
    parts_for,
    run_suite,
    with_settings,
)

README = Path(__file__).resolve().parent / "README.md"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Accuracy and speed benchmarks of ballistics: run suites of parts, keep "
                    "machine-stamped JSON results and plots, and write the results table.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for name in (*SUITES, "all"):
        sp = sub.add_parser(name, help=f"run the {name} suite" if name != "all" else
                            "run every part once")
        sp.add_argument("--quick", action="store_true",
                        help="small sizes: a few minutes on 2 cores")
        sp.add_argument("--force", action="store_true",
                        help="rerun parts already finished with the same parameters")
        sp.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this part (repeatable); see `list`")
        sp.add_argument("--quiet", action="store_true",
                        help="no progress on stderr (a part's own output is captured)")
        sp.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help="results directory (default benchmarks/results)")
        sp.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="give up on a part after this long (recorded as timeout)")
        sp.add_argument("--device", action="append", choices=("cpu", "cuda"), default=None,
                        help="devices to run on (default: the speed suite runs on cpu and, "
                             "when present, cuda; the others on cuda if present else cpu)")
        sp.add_argument("--readme", type=Path, default=None,
                        help="Markdown file whose results table is rewritten after the run "
                             "(default: benchmarks/README.md when --results is the default)")
        sp.add_argument("--no-table", action="store_true",
                        help="do not rewrite the results table after the run")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="pass KEY=VALUE on to run() of the parts named by --only "
                             "(repeatable; e.g. --only compare_bench --set sections=weller); "
                             "part of the resume key")
        if name == "scale":
            sp.add_argument("--max-size", type=int, default=None,
                            help="leave out collection sizes above this (e.g. 100000)")
        if name in ("accuracy", "all"):
            sp.add_argument("--data", type=Path, action="append", default=[], metavar="FOLDER",
                            help="run the generic accuracy protocol on this folder of scans "
                                 "with a manifest.csv instead of the built-in parts "
                                 "(repeatable)")
            sp.add_argument("--source-column", default="firearm_id",
                            help="manifest column naming the source (default firearm_id)")
            sp.add_argument("--processed", action="store_true",
                            help="the --data scans are already processed (e.g. the Weller set)")
    tp = sub.add_parser("table", help="rewrite the results table in benchmarks/README.md")
    tp.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    tp.add_argument("--readme", type=Path, default=README)
    tp.add_argument("--print", action="store_true", help="also print the table to stdout")
    sub.add_parser("list", help="list the parts and their suites")
    cp = sub.add_parser("_part", help=argparse.SUPPRESS)
    cp.add_argument("--module", required=True)
    cp.add_argument("--out-dir", type=Path, required=True)
    cp.add_argument("--result", type=Path, required=True)
    cp.add_argument("--kwargs", default="{}")
    cp.add_argument("--quick", action="store_true")
    return ap


def _data_parts(folders: list[Path], source_column: str, processed: bool) -> list[Part]:
    parts = []
    for folder in folders:
        folder = folder.resolve()
        if not (folder / "manifest.csv").is_file():
            raise SystemExit(f"error: {folder} has no manifest.csv")
        parts.append(Part(
            name=f"data-{folder.name}", module="benchmarks.data_bench", suites=("accuracy",),
            description=f"generic accuracy protocol on {folder}", per_device=False,
            kwargs=(("folder", str(folder)), ("source_column", source_column),
                    ("processed", bool(processed))),
        ))
    return parts


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    args = _parser().parse_args(argv)
    if args.command == "_part":
        return child_main(args.module, args.out_dir, args.result, args.quick,
                          json.loads(args.kwargs))
    if args.command == "list":
        for p in all_parts():
            print(f"{p.name:24s} {','.join(p.suites):18s} {p.description}")
        print(f"{'data-<folder>':24s} {'accuracy':18s} generic protocol, "
              "python -m benchmarks accuracy --data FOLDER")
        return 0
    if args.command == "table":
        from benchmarks.report import write_table

        text = write_table(args.results, args.readme)
        if args.print:
            print(text)
        else:
            print(f"results table written to {args.readme}", file=sys.stderr)
        return 0
    opts = RunOptions(quick=args.quick, force=args.force, only=tuple(args.only),
                      quiet=args.quiet, results_dir=args.results, timeout_s=args.timeout,
                      devices=tuple(args.device) if args.device else None)
    parts = None
    try:
        if getattr(args, "data", None):
            parts = _data_parts(args.data, args.source_column, args.processed)
        elif args.command == "scale" and args.max_size:
            parts = [Part(p.name, p.module, p.suites, p.description, p.per_device,
                          (("max_size", int(args.max_size)),))
                     for p in PARTS if "scale" in p.suites]
        settings = parse_settings(args.set)
        if settings:
            if not args.only and not getattr(args, "data", None):
                raise ValueError("--set needs --only NAME (the parts whose run() takes it)")
            parts = with_settings(parts if parts is not None else
                                  parts_for(args.command, opts.only), settings)
        summary = run_suite(args.command, opts, parts)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    readme = args.readme
    if readme is None and Path(args.results).resolve() == DEFAULT_RESULTS.resolve():
        readme = README
    if readme is not None and not args.no_table:
        from benchmarks.report import write_table

        write_table(args.results, readme)
    # a module not written yet is reported, not an error; one that fails or times out is
    return 1 if any(p["status"] in ("failed", "timeout") for p in summary["parts"]) else 0


if __name__ == "__main__":
    sys.exit(main())
