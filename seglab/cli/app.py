"""The `seglab` command: one typer app, one module per command.

Every error prints as one line on stderr (``run``): errors the user can fix (SeglabError, OSError naming a
file) exit with status 2, an interrupted run with 130, a bug in seglab with 1; warnings are one line too.
--debug (or SEGLAB_DEBUG=1) shows the traceback instead. tests/cli/test_corpus.py holds the malformed
inputs this is checked on.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import typer
from rich.markup import escape

from seglab.cli.common import err_console
from seglab.cli.bench import bench
from seglab.cli.data import data_app
from seglab.cli.demo import demo
from seglab.cli.eval import eval_checkpoint
from seglab.cli.export import export
from seglab.cli.models import models
from seglab.cli.predict import predict
from seglab.cli.recipes import recipes
from seglab.cli.report import report
from seglab.cli.tables import tables
from seglab.cli.train import train
from seglab.errors import Interrupted, SeglabError, one_line

app = typer.Typer(
    no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
    help="seglab: the CNN segmentation models of the survey, trained and compared on one API.",
)
app.command("models")(models)
app.command("recipes")(recipes)
app.command("train")(train)
app.command("eval")(eval_checkpoint)
app.command("predict")(predict)
app.command("export")(export)
app.command("demo")(demo)
app.command("bench")(bench)
app.command("tables")(tables)
app.command("report")(report)
app.add_typer(data_app, name="data")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        from seglab import __version__  # noqa: PLC0415

        try:
            torch = version("torch")  # from the metadata: importing torch would take seconds
        except PackageNotFoundError:
            torch = "not installed"
        print(f"seglab {__version__} (torch {torch}, python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="print the versions of seglab, torch and python, and exit"),
) -> None:
    if debug:
        os.environ["SEGLAB_DEBUG"] = "1"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `seglab` script."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv) and return its exit status, printing errors as one line.

    Status 2: an error the user can fix (SeglabError, a bad option); 130: interrupted (Ctrl-C); 1: a bug in
    seglab, still one line (--debug, or SEGLAB_DEBUG=1, re-raises every error with its traceback).
    """
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        try:
            app(args=argv, prog_name="seglab")
        except SystemExit as exc:  # typer ends every command (and --help, and usage errors) this way
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            if code == 130:  # typer's answer to a Ctrl-C outside a training run
                err_console.print("[bold yellow]interrupted[/] (Ctrl-C)", highlight=False)
            return code
        except Exception as exc:  # noqa: BLE001 - the one place every error becomes one line
            if os.environ.get("SEGLAB_DEBUG") == "1":
                raise
            return _report(exc)
    except SeglabError as late:
        # Under torchrun: the SIGTERM that stops the other ranks raised (once) while this rank was already
        # reporting a broken collective; report the peer's failure it names instead of dying with a traceback.
        if os.environ.get("SEGLAB_DEBUG") == "1":
            raise
        return _report(late)
    finally:
        warnings.showwarning = shown
    return 0


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    """Warnings as one line on stderr ("warning: ..."), without Python's source-line echo."""
    err_console.print(f"[yellow]warning:[/] {escape(' '.join(str(message).split()))}", highlight=False, soft_wrap=True)


def _report(exc: Exception) -> int:
    """Print ``exc`` as one line on stderr and return the exit status it deserves.

    Under torchrun the line starts with the rank; a rank whose collective broke because another rank
    failed names that rank instead, and a failing rank leaves its line for the others to name.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        from seglab.engine.distributed import (PeerFailure, announce_failure, describe_peer_failure,
                                               hold_off_termination, is_peer_failure)

        hold_off_termination()
        rank = f"rank {os.environ.get('RANK', '0')} of {world}"
        if is_peer_failure(exc):
            why = str(exc) if isinstance(exc, PeerFailure) else describe_peer_failure()
            err_console.print(f"[bold red]stopped[/] ({rank}): {escape(why)}", highlight=False, soft_wrap=True)
            return 2
        announce_failure(f"{type(exc).__name__}: {one_line(exc)}")
        err_console.print(f"[bold red]{rank}:[/]", end=" ", highlight=False)
    if isinstance(exc, Interrupted):
        err_console.print(f"[bold yellow]interrupted[/]: {escape(one_line(exc))}", highlight=False, soft_wrap=True)
        return 130
    if isinstance(exc, SeglabError):
        err_console.print(f"[bold red]error[/] ({type(exc).__name__}): {escape(one_line(exc))}", highlight=False, soft_wrap=True)
        return 2
    if isinstance(exc, OSError) and exc.strerror:  # a file the user named: disk full, permission, missing
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(f"[bold red]error[/] (OSError): {escape(where + exc.strerror)}", highlight=False, soft_wrap=True)
        return 2
    message = " ".join(str(exc).split())[:300]
    err_console.print(f"[bold red]internal error[/] ({type(exc).__name__}): {escape(message)}; this is a bug in seglab: "
                      "rerun with --debug and report the traceback", highlight=False, soft_wrap=True)
    return 1


if __name__ == "__main__":
    main()
