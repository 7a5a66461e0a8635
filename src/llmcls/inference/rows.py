"""A prediction as JSON: the one shape that `llmcls predict --format jsonl` writes and POST /v1/predict answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmcls.records import LabelProbability, PredictionRow

if TYPE_CHECKING:  # a renderer of predictions needs no more than this module
    from llmcls.inference.predict import Prediction


def prediction_row(prediction: Prediction, multi_label: bool) -> PredictionRow:
    """`prediction` as JSON, without its text: `label` and `probability` (multi-label: `labels` and
    `probabilities`, the labels that reach their thresholds), then `top_k`, a list of {label, probability}."""
    top_k: list[LabelProbability] = [{"label": label, "probability": p} for label, p in prediction.top]
    if multi_label:
        return {"labels": prediction.labels, "probabilities": prediction.probabilities, "top_k": top_k}
    return {"label": prediction.label, "probability": prediction.probability, "top_k": top_k}
