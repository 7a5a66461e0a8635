"""What the commands share: the Typer app they register on, one-line errors, the options every prediction command
takes, and loading the tokenizer without torch."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import click
import typer

from llmcls.errors import LlmclsError, RemoteError
from llmcls.training.world import World

app = typer.Typer(
    name="llmcls",
    help="Train, evaluate and use text classifiers: GloVe-initialised (bi)LSTMs over packed sequences.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N."


@contextmanager
def user_errors(ctx: typer.Context) -> Iterator[None]:
    """Show errors as one line on stderr with exit code 1 (130 for Ctrl-C); the traceback only with --debug.

    Of several training processes, process 0 reports an interruption or an error they share; the others name
    themselves in errors of their own.
    """
    debug = bool(ctx.obj and ctx.obj.get("debug"))
    rank = World.from_env().rank  # several processes: torchrun set it
    try:
        yield
    except RemoteError:  # reported by the process where it happened
        raise typer.Exit(1) from None
    except LlmclsError as exc:
        if debug:
            traceback.print_exc()
        typer.echo(f"error: {f'process {rank}: ' if rank else ''}{exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        if not rank:
            typer.echo(
                "interrupted; a training run keeps its last checkpoint (continue it with --resume RUN_DIR)", err=True
            )
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, click.exceptions.ClickException):
        raise
    except Exception as exc:  # a bug or an unforeseen condition: still one line, the traceback on request
        if debug:
            traceback.print_exc()
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        typer.echo(f"error: {type(exc).__name__}{where}: {exc}; run with --debug for the traceback", err=True)
        raise typer.Exit(1) from None


@contextmanager
def torch_hidden_from_thinc() -> Iterator[None]:
    """Load spaCy without torch, for the prediction paths that do not use it.

    thinc (under spaCy) imports torch whenever it is installed, which takes seconds; spaCy's tokenizer never
    uses it. Only the CLI does this, for the duration of the import: a library must not hide modules from
    the program that imports it.
    """
    hidden = "torch" not in sys.modules
    if hidden:
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` now raises ImportError
    try:
        yield
    finally:
        if hidden and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


def load_tokenizer_without_torch(predictor) -> None:
    with torch_hidden_from_thinc():
        predictor.encoding.encode(["warm up"])  # loads the tokenizer (spaCy, for a BiLSTM) now


def command_line(ctx: typer.Context, without: tuple[str, ...] = ()) -> list[str]:
    """The options of the running command as given (those left at their defaults omitted), for starting it again:
    every option of the command is repeated, whatever options it gains."""
    argv: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in without or param.param_type_name != "option" or value in (None, (), [], param.default):
            continue
        flag = param.opts[0]
        if getattr(param, "is_flag", False):  # an Option (click.Parameter does not declare it)
            argv += [flag] if value else param.secondary_opts[:1]
        else:
            argv += [item for v in (value if param.multiple else [value]) for item in (flag, str(v))]
    return argv


def column_spec(value: str | None) -> str | int | None:
    """A column given on the command line: digits mean an index."""
    return int(value) if value is not None and value.isdigit() else value


def chunk_options():
    """The chunking options that eval and predict share (see the README's "Long texts")."""
    return (
        typer.Option(
            None,
            "--chunk-tokens",
            min=0,
            metavar="N",
            help="Classify long texts window by window, N tokens a window (0: no chunking); "
            "default the run's chunking.max_tokens.",
        ),
        typer.Option(None, "--chunk-stride", min=1, metavar="S", help="Tokens between window starts (default N // 2)."),
        typer.Option(
            None,
            "--chunk-aggregate",
            metavar="mean|max",
            help="Combine the windows' class probabilities by their mean or their maximum.",
        ),
    )


def chunking_changes(tokens: int | None, stride: int | None, aggregate: str | None) -> dict:
    """The chunking keys given on the command line, as changes to the run's chunking section."""
    changes: dict = {}
    if tokens is not None:
        changes["max_tokens"] = tokens or None
    if stride is not None:
        changes["stride"] = stride
    if aggregate is not None:
        changes["aggregate"] = aggregate
    return changes


THRESHOLD_HELP = (
    "Multi-label runs: predict every label whose probability is at least T (default: the run's per-class thresholds)."
)
CHUNK_TOKENS, CHUNK_STRIDE, CHUNK_AGGREGATE = chunk_options()
