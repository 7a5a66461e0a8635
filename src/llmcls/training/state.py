"""What a training run is made of while it runs: its state (saved in every checkpoint), the parts the loop
drives, and what training returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from llmcls.config import Config, TrainConfig
from llmcls.data.batching import BucketSampler
from llmcls.data.prepare import PreparedData
from llmcls.events import EventHandler
from llmcls.records import EpochRecord, Report, VectorCoverage
from llmcls.training.averaging import WeightAverage
from llmcls.training.step import Stepper


@dataclass(kw_only=True)
class TrainResult:
    run_dir: Path
    best_epoch: int
    valid: Report  # classification report of the best model on the validation split, with its "loss"
    test: Report | None  # likewise on the test split, when the config has one
    history: list[EpochRecord]


@dataclass(kw_only=True)
class TrainState:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 1  # the epoch in progress
    step: int = 0  # batches of `epoch` already done (global batches, whatever the number of processes)
    global_step: int = 0  # optimizer steps (one per train.accumulate batches)
    best_value: float | None = None
    best_epoch: int = 0
    since_best: int = 0
    loss_sum: float = 0.0  # sums over the batches of `epoch` done so far
    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0  # training seconds of `epoch` so far
    history: list[EpochRecord] = field(default_factory=list)
    # {"tokens": share, "words": share} of the training data with a pretrained vector (None without vectors):
    # measured when the run starts, kept here so that a resumed run's results.json still says it
    vector_coverage: VectorCoverage | None = None

    def finished(self, cfg: TrainConfig) -> bool:
        if self.epoch > resolved(cfg.epochs, "train.epochs"):
            return True
        return bool(cfg.patience and self.since_best >= cfg.patience)


def resolved(value: int | Literal["auto"], key: str) -> int:
    """The value of an `auto`-able key of a config that `llmcls.adapt.choices.resolve_auto` has resolved, as
    training resolves its config before anything else.

    Raises:
        ValueError: `key` is still `auto` (a config that did not go through `resolve_auto`).
    """
    if value == "auto":
        raise ValueError(f"{key} is auto: llmcls.adapt.choices.resolve_auto chooses it before training")
    return value


@dataclass(kw_only=True)
class TrainingParts:
    """What the loop drives, built once before the first epoch."""

    config: Config
    data: PreparedData
    step: Stepper
    scheduler: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
    sampler: BucketSampler
    run_dir: Path
    on_event: EventHandler
    epoch_thresholds: np.ndarray | None  # multi-label, while training: train.threshold (0.5 when tuned at the end)
    average: WeightAverage | None  # train.ema: what validation scores and the best checkpoint keeps
