"""Progress as it happens, rendered for the terminal: training's bar and epoch lines, tune's trial lines, predict's
bar. Each renderer is an event handler (llmcls.events). Imports neither torch nor spaCy."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

from llmcls.events import DownloadProgress, EpochEnded, EpochStarted, Info, PredictionProgress, StepDone, TrialEnded
from llmcls.records import EpochRecord


def format_epoch(record: EpochRecord, improved: bool) -> str:
    micro = f" micro-F1 {record['valid_micro_f1']:.4f}" if "valid_micro_f1" in record else ""
    return (
        f"epoch {record['epoch']:>2}: train loss {record['train_loss']:.4f} | valid loss "
        f"{record['valid_loss']:.4f} acc {record['valid_accuracy']:.4f}{micro} macro-F1 {record['valid_macro_f1']:.4f}"
        f" | {record['seconds']:.0f}s, {record['train_tokens_per_s']:,.0f} tok/s, "
        f"padding {record['padding_fraction']:.1%}{'  * best' if improved else ''}"
    )


def format_trial(event: TrialEnded, metric: str) -> str:
    """One line per trial of `llmcls tune`: its state, metric, epochs and time, the values it drew, the best so far."""

    def short(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    value = "-" if event.value is None else f"{event.value:.4f}"
    drawn = " ".join(f"{key.rsplit('.', 1)[-1]}={short(v)}" for key, v in event.params.items())
    best = "none yet" if event.best_number is None else f"trial {event.best_number} {event.best_value:.4f}"
    note = f" ({event.note})" if event.note else ""
    return (
        f"trial {event.number:>3} {event.state:<8} valid {metric} {value}, {event.epochs} epochs, "
        f"{event.seconds:.0f}s | {drawn} | best: {best}{note}"
    )


class TuneProgress:
    """Renders the events of `llmcls tune`: a line per trial on stdout, notes on stderr."""

    def __init__(self, metric: str, enabled: bool = True):
        self.metric, self.enabled = metric, enabled

    def __call__(self, event: object) -> None:
        if not self.enabled:
            return
        if isinstance(event, TrialEnded):
            print(format_trial(event, self.metric), flush=True)
        elif isinstance(event, Info):
            print(event.message, file=sys.stderr, flush=True)


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
                self.download = tqdm(
                    total=event.total_bytes,
                    unit="B",
                    unit_scale=True,
                    desc="download",
                    file=self.stream,
                    disable=None if self.enabled else True,
                )
            self.download.update(event.done_bytes - self.download.n)
            if event.total_bytes is not None and event.done_bytes >= event.total_bytes:
                self.download.close()
        elif isinstance(event, EpochStarted):
            self._loss = self._tokens = self._examples = 0.0
            self._t0 = time.perf_counter()
            self.bar = tqdm(
                total=event.batches,
                desc=f"epoch {event.epoch}/{event.epochs}",
                unit="batch",
                file=self.stream,
                disable=None if self.enabled else True,
                leave=False,
                dynamic_ncols=True,
                initial=event.done,
            )
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


class PredictProgressBar:
    """Renders `PredictionProgress` events as a tqdm bar on stderr, for long inputs only (at least `minimum`
    texts) and only on a terminal, and `Info` events as `note: ...` lines on stderr."""

    def __init__(self, stream: TextIO | None = None, minimum: int = 2000):
        self.stream = stream or sys.stderr
        self.minimum = minimum
        self.bar: tqdm | None = None

    def __call__(self, event: object) -> None:
        if isinstance(event, Info):
            tqdm.write(f"note: {event.message}", file=self.stream)
            return
        if not isinstance(event, PredictionProgress):
            return
        if (event.done if event.total is None else event.total) < self.minimum:  # input read as it goes: by done
            return
        if self.bar is None:
            self.bar = tqdm(
                total=event.total,
                desc="predict",
                unit="text",
                file=self.stream,
                disable=None,
                leave=False,
                dynamic_ncols=True,
            )
        self.bar.update(event.done - self.bar.n)
        if event.total is not None and event.done >= event.total:
            self.bar.close()

    def close(self) -> None:
        """End the bar of an input whose size was not known ahead."""
        if self.bar is not None:
            self.bar.close()
