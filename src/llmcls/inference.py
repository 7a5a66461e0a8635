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


class TorchBackend:
    """Logits of padded batches from a PyTorch model (the interface `llmcls.predict` uses for every backend)."""

    name = "torch"

    def __init__(self, model: LstmClassifier, device: torch.device):
        self.model = model.eval()
        self.device = device
        self.pad_index = model.args.pad_index
        self.num_outputs = model.args.num_outputs

    @torch.inference_mode()
    def logits(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Logits [batch, num_outputs] float32 of token ids [batch, seq_len] int64 and lengths [batch] int64."""
        out = self.model(torch.from_numpy(token_ids).to(self.device), torch.from_numpy(lengths))
        return out.float().cpu().numpy()


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """Class ids [batch] from logits [batch, num_outputs]; one logit means class 1 when positive."""
    return (logits[:, 0] > 0).long() if logits.size(1) == 1 else logits.argmax(1)


def report_from_logits(logits: torch.Tensor | np.ndarray, targets: np.ndarray, labels: list[str]) -> dict:
    """The classification report (llmcls.metrics) of logits [n, num_outputs] against class ids [n],
    with the mean loss under "loss"."""
    logits = torch.as_tensor(logits)  # a tensor, or the numpy array of llmcls.predict
    report = classification_report(targets, predicted_classes(logits).numpy(), labels)
    report["loss"] = float(compute_loss(loss_function(len(labels)), logits, torch.from_numpy(targets)))
    return report
