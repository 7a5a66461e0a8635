"""Running a model over many encoded texts in length-sorted batches."""

from __future__ import annotations

import numpy as np
import torch

from llmcls.data.batching import BucketSampler, EncodedTexts, collate
from llmcls.metrics import classification_report
from llmcls.model import LstmClassifier, compute_loss, loss_function


@torch.inference_mode()
def predict_logits(model: LstmClassifier, texts: EncodedTexts, batch_size: int,
                   device: torch.device) -> torch.Tensor:
    """Logits of every text, in input order.

    Texts are batched by length (little padding) and the results put back in input order.

    Returns:
        [n_texts, num_outputs] float32 on the CPU.
    """
    was_training = model.training
    model.eval()
    out = torch.empty(len(texts), model.args.num_outputs)
    for batch in BucketSampler(texts.lengths, batch_size, shuffle=False):
        token_ids, lengths = collate(texts, batch, model.args.pad_index)
        out[torch.from_numpy(batch)] = model(token_ids.to(device), lengths).float().cpu()
    model.train(was_training)
    return out


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """Class ids [batch] from logits [batch, num_outputs]; one logit means class 1 when positive."""
    return (logits[:, 0] > 0).long() if logits.size(1) == 1 else logits.argmax(1)


def report_from_logits(logits: torch.Tensor, targets: np.ndarray, labels: list[str]) -> dict:
    """The classification report (llmcls.metrics) of logits [n, num_outputs] against class ids [n],
    with the mean loss under "loss"."""
    report = classification_report(targets, predicted_classes(logits).numpy(), labels)
    report["loss"] = float(compute_loss(loss_function(len(labels)), logits, torch.from_numpy(targets)))
    return report
