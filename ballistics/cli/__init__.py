"""The ``ballistics`` command line: a click group whose commands load lazily.

Commands are thin: they parse options, call the library and print according to the CLI
contract (see ``ballistics.cli.common``). Each lives in its own module and is imported
only when used, so ``ballistics info`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from ballistics._version import __version__

#: command name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "info": ("ballistics.cli.info", "info", "Header, spacing and quality facts of scan files."),
    "synth": ("ballistics.cli.synth", "synth", "Generate synthetic casings with ground truth."),
    "preprocess": ("ballistics.cli.preprocess", "preprocess",
                   "Segment, level, filter and resample a scan for comparison."),
    "ingest": ("ballistics.cli.ingest", "ingest", "Add scans to a reference collection."),
    "search": ("ballistics.cli.search", "search",
               "Search a collection: shortlist, re-rank, likelihood ratios."),
    "calibrate": ("ballistics.cli.calibrate", "calibrate",
                  "Fit a collection's score model and LR calibration."),
    "verify": ("ballistics.cli.verify", "verify", "Check a collection's files by checksum."),
    "index": ("ballistics.cli.index", "index", "Maintain a collection's search index."),
    "collection": ("ballistics.cli.collection", "collection",
                   "List, remove, relabel and export a collection's entries."),
    "demo": ("ballistics.cli.demo", "demo", "Synthetic collection search, end to end."),
    "compare": ("ballistics.cli.compare", "compare",
                "Compare two casings: Congruent Matching Cells, pose, HTML report."),
    "compare-striae": ("ballistics.cli.striae", "compare_striae",
                       "Compare striation signatures of two casing marks or bullet lands."),
    "compare-bullets": ("ballistics.cli.striae", "compare_bullets_cmd",
                        "Compare bullets land by land (best phase, score, LR)."),
    "view": ("ballistics.cli.view", "view",
             "Interactive viewer page of a comparison (self-contained HTML)."),
    "embed": ("ballistics.cli.embed", "embed", "Embed casings as rotation-invariant vectors."),
    "train": ("ballistics.cli.train", "train", "Train the breech-face embedder on known sources."),
}


#: click >= 8.2 raises this for a group called without a command (its message is the help)
_NO_ARGS_IS_HELP: tuple[type, ...] = tuple(
    t for t in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if t is not None)


class LazyGroup(click.Group):
    """A click group that imports each command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        return getattr(module, entry[1])

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; a usage error (unknown option, missing argument, bad
        choice) is one line on stderr and exit code 2, as every other bad input.

        Idle OpenMP threads are made to spin only briefly before they sleep
        (:func:`ballistics.device.set_wait_policy`) before any command imports torch, unless
        the environment sets a wait policy."""
        from ballistics.device import set_wait_policy

        set_wait_policy()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if isinstance(exc, _NO_ARGS_IS_HELP):  # a bare command shows its help
                click.echo(exc.format_message())
                sys.exit(0)
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            click.echo(f"error: {where}{exc.format_message()}", err=True)
            sys.exit(2)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ballistics")
def main() -> None:
    """Automated firearm evidence comparison: read, preprocess, compare, index and search
    fired cartridge cases and bullets. The software proposes; the examiner decides."""
