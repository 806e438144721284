"""The `seglab` command: one typer app, one module per command.

Errors the user can fix (SeglabError) print as one line and exit with status 2; --debug (or
SEGLAB_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from seglab.cli.common import err_console
from seglab.cli.bench import bench
from seglab.cli.data import data_app
from seglab.cli.demo import demo
from seglab.cli.eval import eval_checkpoint
from seglab.cli.export import export
from seglab.cli.models import models
from seglab.cli.predict import predict
from seglab.cli.recipes import recipes
from seglab.cli.tables import tables
from seglab.cli.train import train
from seglab.errors import SeglabError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
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
app.add_typer(data_app, name="data")


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="show tracebacks")) -> None:
    if debug:
        os.environ["SEGLAB_DEBUG"] = "1"


def main() -> None:
    """Entry point of the `seglab` script."""
    try:
        app()
    except SeglabError as exc:
        if os.environ.get("SEGLAB_DEBUG") == "1":
            raise
        err_console.print(f"[bold red]error[/] ({type(exc).__name__}): {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
