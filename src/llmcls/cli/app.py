"""The `llmcls` command: parse arguments, call the library, render the result. Nothing else lives here.

The commands are in `training_commands`, `prediction_commands` and `serve_command`, registered on `common.app` when
they are imported here. Heavy modules (torch, spaCy) are imported inside the commands so that `--help` stays fast.
"""

from __future__ import annotations

import typer

from llmcls import __version__

# isort: off
# the commands register on `app` as they are imported, in the order `llmcls --help` lists them
from llmcls.cli import training_commands  # noqa: F401
from llmcls.cli import prediction_commands  # noqa: F401
from llmcls.cli import serve_command  # noqa: F401

# isort: on
from llmcls.cli.common import app


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmcls {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Train, evaluate and use text classifiers: GloVe-initialised (bi)LSTMs over packed sequences."""
    ctx.obj = {"debug": debug}


def main() -> None:
    app(prog_name="llmcls")


def _reflow_help() -> None:
    """Every command's help (and the listing in `llmcls --help`) as paragraphs that the terminal wraps."""
    from llmcls.cli.render import paragraphs

    for command in app.registered_commands:
        command.help = paragraphs(command.help or command.callback.__doc__)


_reflow_help()


if __name__ == "__main__":
    main()
