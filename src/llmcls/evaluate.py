"""Evaluating a trained run on a labelled file."""

from __future__ import annotations

from pathlib import Path

import torch

from llmcls.data.prepare import drop_empty_texts
from llmcls.data.readers import read_examples
from llmcls.errors import DataError
from llmcls.inference import report_from_logits
from llmcls.predict import Predictor


def evaluate_file(run_dir: str | Path, data_path: str | Path, device: str | torch.device = "auto",
                  text_column: str | int | None = None, label_column: str | int | None = None,
                  fmt: str | None = None, batch_size: int | None = None) -> dict:
    """Metrics of a run's model on a labelled file.

    The file is read with the run's data settings (format, columns, header, encoding) unless overridden.

    Returns:
        The classification report (see llmcls.metrics) with "loss" and "path" added.

    Raises:
        RunError: `run_dir` is not a usable run.
        DataError: the file is unreadable or has labels the model does not know.
    """
    predictor = Predictor.load(run_dir, device, batch_size)
    data = predictor.run.config.data
    examples = read_examples(data_path, data.text_column if text_column is None else text_column,
                             data.label_column if label_column is None else label_column,
                             fmt or data.format, data.header, data.encoding)
    examples = drop_empty_texts(examples, data_path, data.empty_texts)
    labels = predictor.run.labels
    unseen = labels.unknown(examples.labels)
    if unseen:
        raise DataError(f"{data_path}: labels the model was not trained on: {', '.join(map(repr, unseen[:10]))} "
                        f"(model labels: {', '.join(labels.labels)})")
    report = report_from_logits(predictor.logits(examples.texts), labels.encode(examples.labels), labels.labels)
    report["path"] = str(data_path)
    return report
