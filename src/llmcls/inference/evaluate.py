"""Evaluating a trained run on a labelled file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcls.config import ChunkingConfig
from llmcls.data.inputs import read_labelled
from llmcls.data.targets import encode_targets
from llmcls.events import EventHandler, ignore
from llmcls.inference.calibration import calibration
from llmcls.inference.error_analysis import MISTAKES, error_report
from llmcls.inference.predict import Predictor
from llmcls.inference.scoring import report as score
from llmcls.records import Report

if TYPE_CHECKING:
    import torch


def evaluate_file(
    run_dir: str | Path,
    data_path: str | Path,
    *,
    device: str | torch.device = "auto",
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    fmt: str | None = None,
    batch_size: int | None = None,
    chunking: ChunkingConfig | dict[str, Any] | None = None,
    threshold: float | None = None,
    on_event: EventHandler = ignore,
    backend: str = "auto",
    mistakes: int = MISTAKES,
) -> Report:
    """Metrics of a run's model on a labelled file.

    The file is read with the run's data settings (format, columns, header, encoding, multi-label separator)
    unless overridden.

    Args:
        chunking: how to treat long texts; default the run's `chunking` section (see
            llmcls.inference.predict.Predictor).
        threshold: multi-label: one decision threshold for every class instead of the run's.
        on_event: receives `PredictionProgress` events.
        backend: what computes the logits (see `Predictor.load`); auto: the run's ONNX export when it matches the
            weights, else torch.
        mistakes: how many of the most confident mistakes to list.

    Returns:
        The classification report of the class probabilities (llmcls.inference.scoring; the loss is their
        cross-entropy) with "path" added, "chunking" when chunking was on, "calibration"
        (llmcls.inference.calibration) and the error analysis (llmcls.inference.error_analysis.error_report:
        "n_mistakes", "mistakes", "confusions").

    Raises:
        RunError: `run_dir` is not a usable run.
        DataError: the file is unreadable or has labels the model does not know.
        ConfigError: a threshold for a single-label run.
    """
    predictor = Predictor.load(
        run_dir, device, batch_size=batch_size, chunking=chunking, threshold=threshold, backend=backend
    )
    config, data = predictor.run.config, predictor.run.config.data
    changes = {"text_column": text_column, "label_column": label_column, "format": fmt}
    data = data.model_copy(update={key: value for key, value in changes.items() if value is not None})
    config = config.model_copy(update={"data": data})
    examples, path = read_labelled(config, data_path)
    targets = encode_targets(examples, path, labels=predictor.run.labels, data=data, for_model=True)
    probs = predictor.class_probabilities(examples.texts, on_event)
    thresholds = predictor.thresholds
    report = score(probs, targets, labels=predictor.labels, thresholds=thresholds)
    report["calibration"] = calibration(probs, targets)
    analysis = error_report(probs, targets, texts=examples.texts, report=report, thresholds=thresholds, limit=mistakes)
    report.update(analysis)
    report["path"] = str(data_path)
    if predictor.chunking.enabled:
        c = predictor.chunking
        report["chunking"] = {"max_tokens": c.max_tokens or 0, "stride": c.step, "aggregate": c.aggregate}
    return report
