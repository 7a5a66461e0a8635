"""The commands that use a run: eval, predict, export, profile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import typer

from llmcls.cli.common import (
    CHUNK_AGGREGATE,
    CHUNK_STRIDE,
    CHUNK_TOKENS,
    DEVICE_HELP,
    THRESHOLD_HELP,
    app,
    chunking_changes,
    column_spec,
    load_tokenizer_without_torch,
    user_errors,
)


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
    with user_errors(ctx):
        from llmcls.cli.progress import PredictProgressBar
        from llmcls.cli.render import format_evaluation
        from llmcls.inference.evaluate import evaluate_file
        from llmcls.inference.report_html import write_report_html

        report = evaluate_file(
            run,
            data,
            device=device,
            text_column=column_spec(text_column),
            label_column=column_spec(label_column),
            fmt=fmt,
            batch_size=batch_size,
            chunking=chunking_changes(chunk_tokens, chunk_stride, chunk_aggregate),
            threshold=threshold,
            on_event=PredictProgressBar(),
            backend=backend,
            mistakes=mistakes,
        )
        if html is not None:
            write_report_html(report, str(run), html)
        typer.echo(json.dumps(report, indent=2) if as_json else format_evaluation(report))


_PREDICT_INPUT_PATH = typer.Option(
    None,
    "--input",
    "-i",
    metavar="FILE",
    help="Read the texts from FILE, - for standard input: plain text (one text per line, empty lines "
    "included), a column of a CSV/TSV/JSONL (.gz too) or Parquet file, the texts of a fastText file, of a "
    "folder of text files or of a Hugging Face dataset saved to disk; read and classified block by block.",
)
_PREDICT_INPUT_FORMAT = typer.Option(
    "auto",
    "--input-format",
    metavar="auto|txt|csv|tsv|jsonl|fasttext|parquet|class_folders|hf_disk",
    help="Format of --input (auto: from the path; standard input: txt).",
)
_PREDICT_COLUMN = typer.Option(
    None, "--column", help="Text column (name or index) of CSV/TSV/JSONL/Parquet/Arrow input (default: the run's)."
)
_PREDICT_BACKEND = typer.Option(
    "auto",
    "--backend",
    "-b",
    help="torch (the run's weights), torch-bf16 (the same under bfloat16 autocast: faster on CPUs with bf16 "
    "units), onnx or onnx-int8 (the models of `llmcls export`, CPU, no torch), or "
    "auto: onnx when RUN/export holds one for the run's current weights and onnxruntime is installed.",
)


@app.command()
def predict(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run directory written by `llmcls train`."),
    texts: list[str] | None = typer.Argument(None, help="Texts to classify (or use --input)."),
    input_path: str | None = _PREDICT_INPUT_PATH,
    input_format: str = _PREDICT_INPUT_FORMAT,
    column: str | None = _PREDICT_COLUMN,
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
    backend: str = _PREDICT_BACKEND,
) -> None:
    """Classify texts with a trained run: per text, in input order, the label and its probability (multi-label:
    every label whose probability reaches its threshold) as a table, CSV or JSONL."""
    with user_errors(ctx):
        from llmcls.cli.progress import PredictProgressBar
        from llmcls.data.inputs import input_blocks
        from llmcls.inference.predict import Predictor

        fmt = "jsonl" if as_json else fmt
        _check_predict_options(fmt, input_format=input_format, from_file=input_path is not None, texts=texts)
        predictor = Predictor.load(
            run,
            device,
            batch_size=batch_size,
            chunking=chunking_changes(chunk_tokens, chunk_stride, chunk_aggregate),
            threshold=threshold,
            backend=backend,
        )
        if not predictor.backend.startswith("torch"):
            load_tokenizer_without_torch(predictor)
        progress = PredictProgressBar()
        if input_path is not None:  # read, classified and written block by block: memory bounded by a block
            blocks = _noting_empty(
                input_blocks(input_path, predictor.run.config.data, column=column_spec(column), fmt=input_format)
            )
            predictions = predictor.predict_blocks(blocks, top_k, on_event=progress)
        else:
            predictions = iter([predictor.predict(list(texts or []), top_k, on_event=progress)])  # type: ignore[list-item]
        _write_predictions(
            predictions,
            output,
            top_k=top_k,
            fmt=fmt,
            separator=predictor.run.config.data.label_separator,
            multi_label=predictor.multi_label,
        )
        progress.close()


def _check_predict_options(fmt: str, *, input_format: str, from_file: bool, texts: list[str] | None) -> None:
    from llmcls.cli.render import OUTPUT_FORMATS
    from llmcls.data.readers import TEXT_FORMATS

    if fmt not in OUTPUT_FORMATS:
        raise typer.BadParameter(f"--format {fmt}: expected one of {', '.join(OUTPUT_FORMATS)}")
    if input_format not in ("auto",) + TEXT_FORMATS:
        raise typer.BadParameter(f"--input-format {input_format}: expected auto or {', '.join(TEXT_FORMATS)}")
    if from_file == bool(texts):
        raise typer.BadParameter("give the texts as arguments, or --input FILE (- for standard input), not both")


def _write_predictions(predictions, output: Path | None, **options) -> None:
    """Blocks of predictions to `output` (written whole or not at all) or to standard output, as they come."""
    from llmcls.cli.render import write_predictions
    from llmcls.fileio import atomic_open

    if output is None:
        write_predictions(predictions, lambda text: typer.echo(text, nl=False), **options)
        return
    with atomic_open(output, text=True) as fh:
        write_predictions(predictions, fh.write, **options)


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
    with user_errors(ctx):
        from dataclasses import asdict

        from llmcls.cli.render import format_export
        from llmcls.export.write import export_run

        result = export_run(
            run,
            export_format=fmt,
            quantize=quantize,
            data=data,
            measure=measure,
            seconds=seconds,
            batch_size=batch_size,
        )
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
    with user_errors(ctx):
        from llmcls.cli.render import format_profile
        from llmcls.profiling import profile_run

        figures = profile_run(run, data_path=data, device=device, batch_size=batch_size, seconds=seconds)
        typer.echo(json.dumps(figures, indent=2) if as_json else format_profile(figures))
