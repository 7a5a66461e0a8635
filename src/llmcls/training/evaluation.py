"""Scoring a model while it trains: the report of a split (all processes together), the multi-label decision
thresholds, and the temperature that calibrates the validation logits."""

from __future__ import annotations

import numpy as np
import torch

from llmcls.config import TrainConfig
from llmcls.data.prepare import Split
from llmcls.inference.calibration import calibration, fit_temperature
from llmcls.inference.metrics import tune_thresholds
from llmcls.inference.scoring import probabilities, report
from llmcls.inference.torch_forward import logits_loss, predict_logits
from llmcls.model import Classifier
from llmcls.records import Report
from llmcls.training.distributed import all_gather, shard_range, text_range
from llmcls.training.world import SINGLE, World


def evaluate_split(
    model: Classifier,
    split: Split,
    *,
    labels: list[str],
    batch_size: int,
    device: torch.device,
    world: World = SINGLE,
    thresholds: np.ndarray | None = None,
    batch_tokens: int | None = None,
    temperature: float | None = None,
) -> Report:
    """Classification report of `model` on `split`, with the mean loss under "loss" (multi-label: labels
    predicted at `thresholds`, default 0.5; probabilities and loss of the logits divided by `temperature`).

    With several processes, each computes the logits of its part of the split and every process gets the
    report of the whole split: the figures one process computes.
    """
    start, stop = shard_range(len(split), world.rank, world.size)
    part = text_range(split.texts, start, stop)
    logits = predict_logits(
        model, part, batch_size=batch_size, device=device, batch_tokens=batch_tokens
    )  # [part, outputs]
    return report_of_logits(
        torch.cat(all_gather(logits, world)), split, labels=labels, thresholds=thresholds, temperature=temperature
    )


def report_of_logits(
    logits: torch.Tensor,
    split: Split,
    *,
    labels: list[str],
    thresholds: np.ndarray | None = None,
    temperature: float | None = None,
) -> Report:
    """`evaluate_split`'s report from the logits [n, outputs] of the whole split, already computed."""
    if temperature is not None:
        logits = logits / temperature
    probs = probabilities(logits.numpy(), multi_label=split.targets.ndim == 2)
    loss = logits_loss(logits, split.targets, len(labels))
    return report(probs, split.targets, labels=labels, thresholds=thresholds, loss=loss)


def decision_thresholds(cfg: TrainConfig, valid_probs: np.ndarray, valid_targets: np.ndarray) -> tuple[np.ndarray, str]:
    """Multi-label: the probability each class needs to be predicted, and how it was chosen: `train.threshold`
    for every class, or per class the grid value with the best F1 on the validation split (`tune`), from its
    (calibrated) probabilities [n, classes] and 0/1 targets [n, classes]."""
    if cfg.threshold == "tune":
        return tune_thresholds(valid_probs, valid_targets), "tuned: the best F1 of each class on the validation split"
    return np.full(valid_targets.shape[1], cfg.fixed_threshold), "fixed: train.threshold"


def fit_calibration(cfg: TrainConfig, logits: np.ndarray, targets: np.ndarray) -> tuple[float | None, dict]:
    """The temperature of `train.calibrate` (None for none), fitted on the validation split's logits
    [n, num_outputs] and targets, and the split's ECE before and after it.

    Returns:
        (temperature, {"valid_ece_before": ..., "valid_ece_after": ...}); with none, the two ECEs are equal.
    """
    multi_label = targets.ndim == 2
    before = calibration(probabilities(logits, multi_label), targets)["ece"]
    if cfg.calibrate == "none":
        return None, {"valid_ece_before": before, "valid_ece_after": before}
    temperature = fit_temperature(logits, targets)
    after = calibration(probabilities(logits, multi_label, temperature), targets)["ece"]
    return temperature, {"valid_ece_before": before, "valid_ece_after": after}
