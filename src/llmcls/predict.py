"""Predicting labels of texts with a trained run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from llmcls.artifacts import LoadedRun, load_run
from llmcls.data.prepare import encode_texts
from llmcls.data.tokenize import Tokenizer
from llmcls.device import resolve_device
from llmcls.inference import predict_logits
from llmcls.model import probabilities


@dataclass
class Prediction:
    text: str
    label: str
    probability: float
    top: list[tuple[str, float]]  # the top-k (label, probability) pairs, most probable first


class Predictor:
    """A loaded run, ready to classify texts."""

    def __init__(self, run: LoadedRun, device: torch.device, batch_size: int | None = None):
        self.run = run
        self.device = device
        self.batch_size = batch_size or run.config.train.eval_batch_size
        self.tokenizer = Tokenizer(run.config.tokenizer)

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "auto",
             batch_size: int | None = None) -> "Predictor":
        device = device if isinstance(device, torch.device) else resolve_device(device)
        return cls(load_run(run_dir, device), device, batch_size)

    @property
    def labels(self) -> list[str]:
        return self.run.labels.labels

    def logits(self, texts: list[str]) -> torch.Tensor:
        """[n_texts, num_outputs] logits on the CPU, in input order."""
        encoded = encode_texts(self.tokenizer, self.run.vocab, texts)
        return predict_logits(self.run.model, encoded, self.batch_size, self.device)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """[n_texts, n_classes] class probabilities; column j is `labels[j]`."""
        return probabilities(self.logits(texts)).numpy()

    def predict(self, texts: list[str], top_k: int = 1) -> list[Prediction]:
        """The most probable label of each text, with its probability and the `top_k` best labels."""
        probs = self.predict_proba(texts)
        k = max(1, min(top_k, len(self.labels)))
        out = []
        for text, row in zip(texts, probs):
            best = np.argsort(-row, kind="stable")[:k]
            top = [(self.labels[j], float(row[j])) for j in best]
            out.append(Prediction(text, top[0][0], top[0][1], top))
        return out
