"""Predicting labels of texts with a trained run: with its PyTorch model, or with the ONNX model that
`llmcls export` wrote into it (then torch is never imported)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from llmcls.artifacts import RunInfo, load_run, load_run_info
from llmcls.data.batching import BucketSampler, EncodedTexts, pad_batch
from llmcls.data.prepare import encode_texts
from llmcls.data.tokenize import Tokenizer
from llmcls.errors import ExportError

if TYPE_CHECKING:
    import torch

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


class LogitsBackend(Protocol):
    """What computes logits: llmcls.inference.TorchBackend or llmcls.onnx_runtime.OnnxClassifier."""

    name: str
    pad_index: int
    num_outputs: int

    def logits(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """[batch, num_outputs] float32 from token ids [batch, seq_len] int64 and lengths [batch] int64."""


@dataclass
class Prediction:
    text: str
    label: str
    probability: float
    top: list[tuple[str, float]]  # the top-k (label, probability) pairs, most probable first


def batched_logits(backend: LogitsBackend, texts: EncodedTexts, batch_size: int) -> np.ndarray:
    """Logits [n_texts, num_outputs] float32 of every text, in input order; texts are batched by length so that
    little is spent on padding."""
    out = np.empty((len(texts), backend.num_outputs), dtype=np.float32)
    for batch in BucketSampler(texts.lengths, batch_size, shuffle=False):
        out[batch] = backend.logits(*pad_batch(texts, batch, backend.pad_index))
    return out


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Class probabilities [n, num_classes] from logits [n, num_outputs]; one logit means two classes."""
    logits = logits.astype(np.float64)
    if logits.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-logits))
        return np.concatenate([1.0 - positive, positive], axis=1).astype(np.float32)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


class Predictor:
    """A loaded run, ready to classify texts."""

    def __init__(self, run: RunInfo, backend: LogitsBackend, batch_size: int | None = None):
        self.run = run
        self.backend = backend
        self.batch_size = batch_size or run.config.train.eval_batch_size
        self.tokenizer = Tokenizer(run.config.tokenizer)

    @classmethod
    def load(cls, run_dir: str | Path, device: "str | torch.device" = "auto", batch_size: int | None = None,
             backend: str = "torch") -> "Predictor":
        """Load a run to predict with.

        Args:
            backend: `torch` (the run's weights, on `device`), `onnx` or `onnx-int8` (the models of
                `llmcls export` in RUN/export, on the CPU, without torch), or `auto`: `onnx` when that export
                exists for the run's current weights, onnxruntime is installed and `device` is auto or cpu,
                else `torch`.

        Raises:
            RunError: `run_dir` is not a usable run.
            ExportError: an ONNX backend was asked for and cannot be used (the message says why).
        """
        if backend not in BACKENDS:
            raise ExportError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        on_cpu = str(device).strip().lower() in ("auto", "cpu")
        if backend in ("onnx", "onnx-int8") and not on_cpu:
            raise ExportError(f"--backend {backend} runs on the CPU; use --device cpu, or --backend torch")
        if backend in ("onnx", "onnx-int8") or (backend == "auto" and on_cpu):
            from llmcls.onnx_runtime import OnnxClassifier

            info = load_run_info(run_dir)
            try:
                return cls(info, OnnxClassifier.from_run(run_dir, "onnx" if backend == "auto" else backend),
                           batch_size)
            except ExportError:
                if backend != "auto":
                    raise  # auto falls back to the run's PyTorch model
        import torch

        from llmcls.device import resolve_device
        from llmcls.inference import TorchBackend

        device = device if isinstance(device, torch.device) else resolve_device(device)
        run = load_run(run_dir, device)
        return cls(run, TorchBackend(run.model, device), batch_size)

    @property
    def labels(self) -> list[str]:
        return self.run.labels.labels

    def logits(self, texts: list[str]) -> np.ndarray:
        """[n_texts, num_outputs] float32 logits, in input order."""
        return batched_logits(self.backend, encode_texts(self.tokenizer, self.run.vocab, texts), self.batch_size)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """[n_texts, n_classes] class probabilities; column j is `labels[j]`."""
        return probabilities(self.logits(texts))

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

