"""The PyTorch backend: a model as a `Forward` (llmcls.inference.forward), the logits of many texts, and their
loss as training computes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from llmcls.data.batching import EncodedTexts
from llmcls.errors import DeviceError
from llmcls.inference.forward import batched_logits
from llmcls.model import LstmClassifier, autocast, compute_loss, loss_function
from llmcls.precision import bf16_problem

if TYPE_CHECKING:
    from llmcls.encoder.bert import EncoderClassifier


class TorchForward:
    """A PyTorch model as a `Forward`: no gradients; the model should be in eval mode.

    Args:
        precision: `fp32`, or `bf16`: the forward pass under bfloat16 autocast (the float32 weights are cast on
            the fly; logits come back as float32). About twice the speed on CPUs with bf16 matrix units, with
            probabilities that differ from float32 in the second or third decimal.

    Raises:
        DeviceError: bf16 on a device that cannot run the LSTM in bfloat16 (e.g. an AVX2-only CPU).
    """

    def __init__(self, model: LstmClassifier | EncoderClassifier, device: torch.device, precision: str = "fp32"):
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision {precision!r}: expected fp32 or bf16")
        if precision == "bf16" and (problem := bf16_problem(device)) is not None:
            raise DeviceError(f"backend torch-bf16 is not available: {problem}; use backend torch")
        self.model = model
        self.device = device
        self.precision = precision
        self.name = "torch" if precision == "fp32" else "torch-bf16"
        self.num_outputs = model.args.num_outputs
        self.pad_index = model.args.pad_index

    @torch.inference_mode()
    def __call__(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(token_ids).to(self.device)
        with autocast(self.precision, self.device):
            logits = self.model(ids, torch.from_numpy(lengths))
        return logits.float().cpu().numpy()


def predict_logits(
    model: LstmClassifier | EncoderClassifier,
    texts: EncodedTexts,
    *,
    batch_size: int,
    device: torch.device,
    batch_tokens: int | None = None,
) -> torch.Tensor:
    """Logits of every text by a PyTorch model (in eval mode meanwhile), in input order, in batches of at most
    `batch_size` texts and `batch_tokens` padded tokens.

    Returns:
        [n_texts, num_outputs] float32 on the CPU.
    """
    was_training = model.training
    model.eval()
    try:
        logits = batched_logits(
            TorchForward(model, device),
            texts,
            batch_size=batch_size,
            pad_index=model.args.pad_index,
            max_tokens=batch_tokens,
        )
    finally:
        model.train(was_training)
    return torch.from_numpy(logits)


def logits_loss(logits: torch.Tensor, targets: np.ndarray, num_classes: int) -> float:
    """The mean unweighted loss of logits [n, num_outputs] against class ids [n] (multi-label: 0/1 rows), as
    training computes it: exact where probabilities would round to 0 or 1."""
    criterion = loss_function(num_classes, multi_label=targets.ndim == 2)
    return float(compute_loss(criterion, logits, torch.from_numpy(targets)))
