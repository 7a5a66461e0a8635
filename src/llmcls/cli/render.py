"""Turning results into text for the terminal: reports, predictions, and what init, profile, export and tune
found (progress as it happens: cli/progress.py). Imports neither torch nor spaCy."""

from __future__ import annotations

import csv
import inspect
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from llmcls.inference.rows import prediction_row
from llmcls.records import Report

OUTPUT_FORMATS = ("table", "csv", "jsonl")


def paragraphs(doc: str | None) -> str:
    """A docstring as help text: each paragraph's lines joined into one, paragraphs apart by a blank line
    (Typer keeps a docstring's line breaks, which then split sentences in the middle of a terminal line)."""
    blocks = inspect.cleandoc(doc or "").split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in block.splitlines()) for block in blocks)


def _report_head(report: Report, kind: str) -> tuple[list[str], int, list[str]]:
    """A report's labels, the width of its label column, and its first line (the data it is on, if a file)."""
    labels = report["labels"]
    lines = [f"data: {report['path']} ({report['n']} examples{kind})"] if "path" in report else []
    return labels, max(12, *(len(label) for label in labels)), lines


def format_report(report: Report) -> str:
    """A classification report as a readable table: summary, per-class scores, confusion matrix (multi-label:
    micro and macro scores, per-class scores and thresholds)."""
    if report.get("multi_label"):
        return format_multilabel_report(report)
    labels, width, lines = _report_head(report, "")
    lines += [
        f"accuracy   {report['accuracy']:.4f}",
        f"macro-F1   {report['macro_f1']:.4f}   (precision {report['macro_precision']:.4f}, "
        f"recall {report['macro_recall']:.4f})",
    ]
    if "loss" in report:
        lines.append(f"loss       {report['loss']:.4f}")
    lines += ["", f"{'class':<{width}}  precision  recall      f1  support"]
    for label in labels:
        c = report["per_class"][label]
        lines.append(f"{label:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  {c['support']:7d}")
    cell = max(7, *(len(label) for label in labels), *(len(str(v)) for row in report["confusion_matrix"] for v in row))
    lines += [
        "",
        "confusion matrix (rows: true, columns: predicted)",
        f"{'':<{width}}  " + "  ".join(f"{label:>{cell}}" for label in labels),
    ]
    for label, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)


def format_multilabel_report(report: Report) -> str:
    """A multi-label report: micro/macro scores, subset accuracy, and per class P/R/F1, support and threshold."""
    labels, width, lines = _report_head(report, ", multi-label")
    lines += [
        f"micro-F1   {report['micro_f1']:.4f}   (precision {report['micro_precision']:.4f}, "
        f"recall {report['micro_recall']:.4f})",
        f"macro-F1   {report['macro_f1']:.4f}   (precision {report['macro_precision']:.4f}, "
        f"recall {report['macro_recall']:.4f})",
        f"subset accuracy {report['accuracy']:.4f}   hamming loss {report['hamming_loss']:.4f}",
    ]
    if "loss" in report:
        lines.append(f"loss       {report['loss']:.4f}")
    thresholds = report.get("thresholds", {})
    lines += ["", f"{'class':<{width}}  precision  recall      f1  support  predicted  threshold"]
    for label in labels:
        c = report["per_class"][label]
        limit = f"{thresholds[label]:9.2f}" if label in thresholds else f"{'':9}"
        lines.append(
            f"{label:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  "
            f"{c['support']:7d}  {c['predicted']:9d}  {limit}"
        )
    return "\n".join(lines)


def format_evaluation(report: Report, text_width: int = 100) -> str:
    """The report of `llmcls eval`: `format_report`'s table, then the calibration (ECE and the non-empty bins),
    the most confident mistakes (texts cut at `text_width` characters) and the largest confusions."""
    lines = [format_report(report)]
    if "calibration" in report:
        c = report["calibration"]
        lines += [
            "",
            f"calibration: ECE {c['ece']:.4f} ({c['n_bins']} equal-width bins over {c['over']})",
            f"{'confidence':<13}  {'count':>7}  {'mean confidence':>15}  {'accuracy':>8}",
        ]
        lines += [
            f"{b['lower']:.3f}-{b['upper']:.3f}  {b['count']:7d}  {b['confidence']:15.4f}  {b['accuracy']:8.4f}"
            for b in c["bins"]
            if b["count"]
        ]
    if "mistakes" in report:
        lines += ["", f"most confident mistakes ({len(report['mistakes'])} of {report['n_mistakes']})"]
        for m in report["mistakes"]:
            true, predicted = ("|".join(m[k]) if isinstance(m[k], list) else m[k] for k in ("true", "predicted"))
            text = m["text"] if len(m["text"]) <= text_width else m["text"][: text_width - 3] + "..."
            lines.append(f"{m['confidence']:.3f}  {true} -> {predicted or '-'}  #{m['index']}: {text}")
    confusions = report.get("confusions")
    if confusions is not None:
        lines += ["", "confusions (true -> predicted, count, share of the true class)"]
        lines += [f"{c['true']} -> {c['predicted']}  {c['count']}  {c['share']:.1%}" for c in confusions[:10]]
    elif "confusions" in report:
        lines += ["", "confusions: do not apply to a multi-label run (see the per-class precision and recall)"]
    return "\n".join(lines)


def _top_columns(top_k: int) -> list[str]:
    return [f"top_{i}_{part}" for i in range(1, top_k + 1) for part in ("label", "probability")] if top_k > 1 else []


def write_predictions(
    blocks: Iterable[list],
    write: Callable[[str], Any],
    *,
    top_k: int = 1,
    fmt: str = "table",
    separator: str = "|",
    multi_label: bool = False,
) -> None:
    """Write blocks of predictions as they come (`format_predictions`, a CSV header once), so that an input of
    any size is written without holding all of it."""
    first = True
    for predictions in blocks:
        write(
            format_predictions(
                predictions, top_k=top_k, fmt=fmt, separator=separator, multi_label=multi_label, header=first
            )
        )
        first = False
    if first and fmt == "csv":  # no text at all: the header alone
        write(format_predictions([], top_k=top_k, fmt=fmt, separator=separator, multi_label=multi_label))


def format_predictions(
    predictions: list,
    *,
    top_k: int = 1,
    fmt: str = "table",
    separator: str = "|",
    multi_label: bool = False,
    header: bool = True,
) -> str:
    """Predictions (llmcls.inference.predict.Prediction) as text, one row per text in input order (`header`:
    whether CSV starts with its header row).

    Formats:
        table: tab-separated `label  probability  text` (top-k > 1: `label p, label p, ...  text`); multi-label:
            `label p, label p  text` for the predicted labels, `-` for none.
        csv: a header, then `text,label,probability` (multi-label: the predicted labels and their probabilities,
            each joined with `separator`); top-k > 1 adds `top_1_label,top_1_probability,...`.
        jsonl: one object per text: `text`, `label`, `probability`, `top_k` (a list of {label, probability});
            multi-label: `labels` and `probabilities` (lists) instead of `label` and `probability`.
    """
    if fmt == "jsonl":
        rows = []
        for p in predictions:
            row = {"text": p.text, **prediction_row(p, multi_label)}
            rows.append(json.dumps(row, ensure_ascii=False) + "\n")
        return "".join(rows)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if header:
            writer.writerow(["text", "label", "probability"] + _top_columns(top_k))
        for p in predictions:
            if multi_label:
                cells = [separator.join(p.labels), separator.join(f"{prob:.6g}" for prob in p.probabilities)]
            else:
                cells = [p.label, f"{p.probability:.6g}"]
            top = [cell for label, prob in p.top for cell in (label, f"{prob:.6g}")] if top_k > 1 else []
            writer.writerow([p.text] + cells + top)
        return buffer.getvalue()
    lines = []
    for p in predictions:
        if multi_label:
            chosen = ", ".join(f"{label} {prob:.3f}" for label, prob in zip(p.labels, p.probabilities)) or "-"
            shown = "\ttop: " + ", ".join(f"{label} {prob:.3f}" for label, prob in p.top) if top_k > 1 else ""
            lines.append(f"{chosen}{shown}\t{p.text}")
        elif top_k > 1:
            scores = ", ".join(f"{label} {prob:.3f}" for label, prob in p.top)
            lines.append(f"{scores}\t{p.text}")
        else:
            lines.append(f"{p.label}\t{p.probability:.3f}\t{p.text}")
    return "".join(line + "\n" for line in lines)


def format_init(result: Any) -> str:
    """What `llmcls init` wrote and chose (an `llmcls.adapt.render.InitResult`)."""
    lines = [f"wrote {result.path}: {result.profile.texts:,} texts, {result.profile.classes} classes"]
    lines += [f"  {c.key}: {c.shown}  ({c.reason})" for c in result.choices]
    return "\n".join(lines + [f"train with: llmcls train --config {result.path}"])


def format_profile(p: dict[str, Any]) -> str:
    """The figures of `llmcls profile` as aligned lines."""

    def si(x: float | None, unit: str) -> str:
        if x is None:
            return "unknown"
        for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(x) >= factor:
                return f"{x / factor:.2f} {prefix}{unit}"
        return f"{x:.1f} {unit}"

    lines = [
        f"run          {p['run']}  ({p['network']}, {p['parameters']:,} parameters)",
        f"measured on  {p['data']}: {p['texts']} texts, {p['mean_tokens_per_text']:.1f} tokens each; {p['device']}"
        + (f", {p['threads']} threads" if "threads" in p else f", {p.get('gpu', '')}"),
        f"FLOPs/token  forward {si(p['flops_per_token_forward'], 'FLOP')}, "
        f"training step {si(p['flops_per_token_train_step'], 'FLOP')}",
        f"training     {p['train_tokens_per_s']:,.0f} tokens/s (batch {p['train_batch_size']}) = "
        f"{si(p['train_flop_per_s'], 'FLOP/s')}",
        f"prediction   {p['predict_tokens_per_s']:,.0f} tokens/s, {p['predict_texts_per_s']:,.0f} texts/s = "
        f"{si(p['predict_flop_per_s'], 'FLOP/s')}",
    ]
    if "clock_hz" in p:
        lines += [
            f"CPU          {p['cpu']}, {p['threads']} of {p['cpu_cores']} cores at {si(p['clock_hz'], 'Hz')}; "
            f"float32 peak {si(p['peak_flop_per_s'], 'FLOP/s')}",
            f"cycles/token training {p['train_cycles_per_token']:,.0f}, prediction {p['predict_cycles_per_token']:,.0f}"
            if p["train_cycles_per_token"]
            else "cycles/token unknown (no clock reading)",
        ]
        if p["train_share_of_peak"]:
            lines.append(f"training runs at {p['train_share_of_peak']:.0%} of the CPU's float32 peak")
    return "\n".join(lines)


def format_export(result: Any) -> str:
    """The files and measurements of `llmcls export` (an llmcls.export.write.ExportResult)."""

    def size(n: int) -> str:
        return f"{n / 1e6:.2f} MB"

    lines = [f"exported {result.run_dir} (weights {size(result.weights_bytes)}) to {result.manifest.parent}"]
    for m in result.models:
        kind = "float32"
        if m.quantized_ops:
            kind = "int8 weights: " + ", ".join(f"{n} {op}" for op, n in m.quantized_ops.items())
            if m.float_ops_left:
                kind += "; still float: " + ", ".join(f"{n} {op}" for op, n in m.float_ops_left.items())
        lines.append(f"  {m.path.name:<17} {size(m.size_bytes):>9}  {kind}")
    if not result.figures:
        return "\n".join(lines)
    lines += [
        "",
        f"measured on {result.data}: {result.n_texts:,} texts, {result.n_tokens:,} tokens, batches of "
        f"{result.batch_size} (torch threads: {result.torch_threads})",
        f"  {'backend':<10} {'accuracy':>8} {'change':>8} {'max |logit diff|':>17} {'texts/s':>9} {'speed-up':>8}",
    ]
    base = result.figures[0]
    for f in result.figures:
        change = f"{100 * (f.accuracy - base.accuracy):+.2f} pt" if f is not base else ""
        diff = f"{f.max_abs_diff:.1e}" if f is not base else ""
        lines.append(
            f"  {f.name:<10} {f.accuracy:>8.4f} {change:>8} {diff:>17} {f.texts_per_s:>9,.0f} "
            f"{f.texts_per_s / base.texts_per_s:>7.2f}x"
        )
    return "\n".join(lines)


def format_tune_result(result: Any) -> str:
    """The end of `llmcls tune`: the best trial, its config and run directory, the tables (a TuneResult)."""
    out = result.out_dir
    lines = [f"{result.trials_run} trials run, {result.trials_total} in the study {out / 'study.db'}"]
    if result.best_number is None:
        return "\n".join(lines + ["no trial has completed: give a longer --budget or more --trials"])
    lines += [
        f"best: trial {result.best_number}, valid {result.metric} {result.best_value:.4f}",
        *(f"  {key} = {value!r}" for key, value in result.best_params.items()),
        f"config: {out / 'best.yaml'}",
        f"run directory (eval or predict it as it is): {result.best_run_dir}",
        f"every trial: {out / 'trials.md'}, {out / 'trials.csv'}",
    ]
    return "\n".join(lines)
