"""Turning results and progress events into text for the terminal. Imports neither torch nor spaCy."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

from llmcls.events import DownloadProgress, EpochEnded, EpochStarted, Info, StepDone


def format_report(report: dict[str, Any]) -> str:
    """A classification report as a readable table: summary, per-class scores, confusion matrix."""
    labels = report["labels"]
    width = max(12, *(len(label) for label in labels))
    lines = []
    if "path" in report:
        lines.append(f"data: {report['path']} ({report['n']} examples)")
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
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              f"{'':<{width}}  " + "  ".join(f"{label:>{cell}}" for label in labels)]
    for label, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)


def format_predictions(predictions: list, top_k: int) -> str:
    """One line per text: the label and its probability (or the top-k), then the text."""
    lines = []
    for p in predictions:
        if top_k > 1:
            scores = ", ".join(f"{label} {prob:.3f}" for label, prob in p.top)
            lines.append(f"{scores}\t{p.text}")
        else:
            lines.append(f"{p.label}\t{p.probability:.3f}\t{p.text}")
    return "\n".join(lines)


def format_profile(p: dict[str, Any]) -> str:
    """The figures of `llmcls profile` as aligned lines."""
    def si(x: float | None, unit: str) -> str:
        if x is None:
            return "unknown"
        for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(x) >= factor:
                return f"{x / factor:.2f} {prefix}{unit}"
        return f"{x:.1f} {unit}"

    m = p["model"]
    lines = [
        f"run          {p['run']}  ({'Bi' if m['bidirectional'] else ''}LSTM {m['num_layers']}x{m['hidden_size']}, "
        f"{m['embedding_dim']}d embeddings, {p['parameters']:,} parameters)",
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
            if p["train_cycles_per_token"] else "cycles/token unknown (no clock reading)",
        ]
        if p["train_share_of_peak"]:
            lines.append(f"training runs at {p['train_share_of_peak']:.0%} of the CPU's float32 peak")
    return "\n".join(lines)


def format_export(result: Any) -> str:
    """The files and measurements of `llmcls export` (an llmcls.export.ExportResult)."""
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
    lines += ["", f"measured on {result.data}: {result.n_texts:,} texts, {result.n_tokens:,} tokens, batches of "
                  f"{result.batch_size} (torch threads: {result.torch_threads})",
              f"  {'backend':<10} {'accuracy':>8} {'change':>8} {'max |logit diff|':>17} {'texts/s':>9} {'speed-up':>8}"]
    base = result.figures[0]
    for f in result.figures:
        change = f"{100 * (f.accuracy - base.accuracy):+.2f} pt" if f is not base else ""
        diff = f"{f.max_abs_diff:.1e}" if f is not base else ""
        lines.append(f"  {f.name:<10} {f.accuracy:>8.4f} {change:>8} {diff:>17} {f.texts_per_s:>9,.0f} "
                     f"{f.texts_per_s / base.texts_per_s:>7.2f}x")
    return "\n".join(lines)


def format_epoch(record: dict[str, Any], improved: bool) -> str:
    return (f"epoch {record['epoch']:>2}: train loss {record['train_loss']:.4f} | valid loss "
            f"{record['valid_loss']:.4f} acc {record['valid_accuracy']:.4f} macro-F1 {record['valid_macro_f1']:.4f}"
            f" | {record['seconds']:.0f}s, {record['train_tokens_per_s']:,.0f} tok/s, "
            f"padding {record['padding_fraction']:.1%}{'  * best' if improved else ''}")


class TrainProgress:
    """Renders training events: a tqdm bar per epoch with loss and tokens/s, and a summary line per epoch."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.download: tqdm | None = None
        self._loss = self._tokens = self._examples = 0.0
        self._t0 = 0.0

    def _write(self, text: str) -> None:
        if self.enabled:
            tqdm.write(text, file=self.stream)

    def __call__(self, event: object) -> None:
        if isinstance(event, Info):
            self._write(event.message)
        elif isinstance(event, DownloadProgress):
            if self.download is None:
                self.download = tqdm(total=event.total_bytes, unit="B", unit_scale=True, desc="download",
                                     file=self.stream, disable=None if self.enabled else True)
            self.download.update(event.done_bytes - self.download.n)
            if event.total_bytes is not None and event.done_bytes >= event.total_bytes:
                self.download.close()
        elif isinstance(event, EpochStarted):
            self._loss = self._tokens = self._examples = 0.0
            self._t0 = time.perf_counter()
            self.bar = tqdm(total=event.batches, desc=f"epoch {event.epoch}/{event.epochs}", unit="batch",
                            file=self.stream, disable=None if self.enabled else True, leave=False,
                            dynamic_ncols=True, initial=event.done)
        elif isinstance(event, StepDone) and self.bar is not None:
            self._loss += event.loss * event.examples
            self._examples += event.examples
            self._tokens += event.tokens
            self.bar.update(1)
            if self.bar.n % 20 == 0:
                rate = self._tokens / max(time.perf_counter() - self._t0, 1e-9)
                self.bar.set_postfix(loss=f"{self._loss / self._examples:.4f}", tok_s=f"{rate:,.0f}", refresh=False)
        elif isinstance(event, EpochEnded):
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            self._write(format_epoch(event.record, event.improved))
