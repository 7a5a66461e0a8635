"""Evaluating a trained run on a labelled file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from llmcls.config import ChunkingConfig
from llmcls.data.prepare import drop_empty_texts, encode_targets
from llmcls.data.readers import read_examples
from llmcls.events import EventHandler, ignore
from llmcls.inference import report_from_logits
from llmcls.predict import Predictor


def evaluate_file(run_dir: str | Path, data_path: str | Path, device: str | torch.device = "auto",
                  text_column: str | int | None = None, label_column: str | int | None = None,
                  fmt: str | None = None, batch_size: int | None = None,
                  chunking: ChunkingConfig | dict[str, Any] | None = None,
                  threshold: float | None = None, on_event: EventHandler = ignore, backend: str = "auto") -> dict:
    """Metrics of a run's model on a labelled file.

    The file is read with the run's data settings (format, columns, header, encoding, multi-label separator)
    unless overridden.

    Args:
        chunking: how to treat long texts; default the run's `chunking` section (see llmcls.predict.Predictor).
        threshold: multi-label: one decision threshold for every class instead of the run's.
        on_event: receives `PredictionProgress` events.
        backend: what computes the logits (see `Predictor.load`); auto: the run's ONNX export when it matches the
            weights, else torch.

    Returns:
        The classification report (see llmcls.metrics; `multilabel_report` for a multi-label run) with "loss"
        and "path" added, and "chunking" when chunking was on.

    Raises:
        RunError: `run_dir` is not a usable run.
        DataError: the file is unreadable or has labels the model does not know.
        ConfigError: a threshold for a single-label run.
    """
    predictor = Predictor.load(run_dir, device, batch_size, chunking, threshold, backend=backend)
    data = predictor.run.config.data
    examples = read_examples(data_path, data.text_column if text_column is None else text_column,
                             data.label_column if label_column is None else label_column,
                             fmt or data.format, data.header, data.encoding)
    examples = drop_empty_texts(examples, data_path, data.empty_texts)
    targets = encode_targets(examples, data_path, predictor.run.labels, data, for_model=True)
    report = report_from_logits(predictor.logits(examples.texts, on_event), targets, predictor.labels,
                                predictor.thresholds)
    report["path"] = str(data_path)
    if predictor.chunking.enabled:
        c = predictor.chunking
        report["chunking"] = {"max_tokens": c.max_tokens, "stride": c.step, "aggregate": c.aggregate}
    return report
