"""`train.ema`: an exponential moving average of a model's trainable weights.

Training moves the average after every optimizer step and goes on with the raw weights; validation, the saved
best weights and all that is computed from them (test scores, calibration, the export) use the average.

Why not `torch.optim.swa_utils.AveragedModel`: it keeps a deep copy of the whole module and averages every
parameter at every step, the frozen ones included: the fixed pretrained rows (`vocab.add_from_vectors`, 100,000 x 50
in configs/cr.yaml) and, with `embeddings.freeze`, the whole embedding. They never change, so their average is
themselves. `WeightAverage` keeps one tensor per trainable parameter instead, moves it with AveragedModel's own
EMA rule (`get_ema_multi_avg_fn`, a fused lerp), and puts the average into the model only while it is evaluated.
The model has no buffers (`state_dict` is its parameters), so there is nothing else to average.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn

from llmcls.errors import RunError

M = TypeVar("M", bound=torch.nn.Module)


class WeightAverage:
    """The exponential moving average of `model`'s trainable parameters.

    Up to optimizer step `start_step` the average is the weights themselves; after each later step t,
    average = decay * average + (1 - decay) * weights_t. So after step T > start_step it is
    decay^(T - start_step) * weights_start
        + sum over t = start_step + 1 .. T of (1 - decay) * decay^(T - t) * weights_t.
    """

    def __init__(self, model: torch.nn.Module, decay: float, start_step: int = 0):
        self.decay = decay
        self.start_step = start_step
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self._parameters(model)]
        self._move = get_ema_multi_avg_fn(decay)

    def _parameters(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        named = dict(model.named_parameters())
        return [named[name] for name in self.names]

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Take in `model`'s weights after optimizer step `step` (1, 2, ...). `model` is the module itself, not a
        DistributedDataParallel wrapper; its weights, hence the average, are the same in every process."""
        weights = [p.detach() for p in self._parameters(model)]
        if step <= self.start_step:
            for average, w in zip(self.average, weights):
                average.copy_(w)
        else:
            self._move(self.average, weights, step)

    @contextmanager
    def applied(self, model: M) -> Iterator[M]:
        """Inside it, `model` holds the averaged weights; on leaving (an error included), its own again, exactly."""
        parameters = self._parameters(model)
        raw = [p.detach().clone() for p in parameters]
        with torch.no_grad():
            for p, average in zip(parameters, self.average):
                p.copy_(average)
        try:
            yield model
        finally:
            with torch.no_grad():
                for p, weights in zip(parameters, raw):
                    p.copy_(weights)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The average of each trainable parameter, by its name in the model (for the checkpoint)."""
        return dict(zip(self.names, self.average))

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the average a checkpoint holds.

        Raises:
            RunError: the checkpoint's average is not of this model's trainable parameters.
        """
        if sorted(state) != sorted(self.names):
            raise RunError(
                f"the checkpoint's weight average (train.ema) has parameters {sorted(state)}, "
                f"the model {sorted(self.names)}"
            )
        for name, average in zip(self.names, self.average):
            average.copy_(state[name])
