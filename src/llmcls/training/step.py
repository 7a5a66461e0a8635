"""One optimizer step: the forward and backward passes of its batches, gradient clipping and the update. Training
runs it over the epochs; `llmcls profile` times it."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from llmcls.data.batching import EncodedTexts, collate
from llmcls.errors import TrainingError
from llmcls.model import Classifier, autocast, compute_loss
from llmcls.training.distributed import no_sync, shard_share, sum_over_processes
from llmcls.training.world import SINGLE, World


@dataclass(kw_only=True)
class Stepper:
    """What one optimizer step needs.

    Attributes:
        model: the weights that are clipped and updated.
        forward: what computes the logits: `model`, or its DistributedDataParallel wrapper.
        texts: the training texts; targets: their class ids [n] (multi-label: 0/1 rows [n, classes]).
        loss_weights: [n] each example's weight in the loss of its batch (its class weight, or 1).
    """

    model: Classifier
    forward: torch.nn.Module
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    texts: EncodedTexts
    targets: torch.Tensor
    loss_weights: np.ndarray
    device: torch.device
    precision: str = "fp32"
    grad_clip: float | None = None
    world: World = SINGLE


def train_step(
    stepper: Stepper,
    group: list[np.ndarray],
    *,
    on_batch: Callable[[np.ndarray, float], None],
    epoch: int = 0,
    done: int = 0,
) -> None:
    """One optimizer step over the global batches of `group` (train.accumulate of them, or fewer at the end of an
    epoch); each process computes its slice of each batch.

    Args:
        on_batch: called after each batch's backward pass with its indices and the loss of the global batch.
        epoch, done: where the step is (the batches of the epoch done before it), for the error messages.

    Raises:
        TrainingError: the loss or the gradient norm is not finite.
    """
    stepper.optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(group):
        # this process's examples, and their share of the loss of the global batch
        part, share = shard_share(batch, stepper.loss_weights, stepper.world)
        with nullcontext() if i == len(group) - 1 else no_sync(stepper.forward):  # gradients sync once a step
            token_ids, lengths = collate(stepper.texts, part, stepper.model.args.pad_index)
            with autocast(stepper.precision, stepper.device):
                logits = stepper.forward(token_ids.to(stepper.device, non_blocking=True), lengths)
            loss = compute_loss(
                stepper.criterion, logits.float(), stepper.targets[part].to(stepper.device, non_blocking=True)
            )
            batch_loss = sum_over_processes(loss.detach() * share, stepper.world)  # the loss of the global batch
            if not math.isfinite(batch_loss):
                raise TrainingError(
                    f"the training loss became {batch_loss} at epoch {epoch}, batch {done + i + 1}; "
                    "stopped with the last checkpoint kept. Try a lower train.lr or set "
                    "train.grad_clip"
                )
            # DistributedDataParallel averages the processes' gradients, hence x world.size; and the step's
            # batches count alike
            (loss * (share * stepper.world.size / len(group))).backward()
        on_batch(batch, batch_loss)
    # without grad_clip the norm is only measured (an infinite max_norm scales the gradients by exactly 1)
    norm = torch.nn.utils.clip_grad_norm_(stepper.model.parameters(), stepper.grad_clip or math.inf)
    if not torch.isfinite(norm):
        raise TrainingError(
            f"the gradient became {float(norm)} at epoch {epoch}, batch {done + len(group)}; "
            "stopped with the last checkpoint kept. Try a lower train.lr"
        )
    stepper.optimizer.step()
