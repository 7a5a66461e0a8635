"""Predicting labels of texts with a trained run.

The texts are tokenized and encoded, cut into windows when chunking is on, sorted by length into batches, and
passed through one call to the network (a `Forward`, llmcls.data.batching): the run's PyTorch model, or the
ONNX model `llmcls export` wrote into the run (then torch is never imported). Probabilities, chunk aggregation,
top-k and multi-label thresholds are computed around that call, in NumPy. Results come back in input order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from llmcls.artifacts import RunInfo, load_run, load_run_info
from llmcls.chunking import aggregate, split_windows
from llmcls.config import ChunkingConfig, merge_chunking
from llmcls.data.batching import EncodedTexts, Forward, batched_logits
from llmcls.data.prepare import encode_texts
from llmcls.data.tokenize import Tokenizer
from llmcls.errors import ConfigError, ExportError
from llmcls.events import EventHandler, PredictionProgress, ignore

if TYPE_CHECKING:
    import torch

BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")


def probabilities(logits: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Class probabilities [n, classes] float64 from logits [n, num_outputs] (as llmcls.model.probabilities):
    one logit means two classes; multi-label: a sigmoid per class."""
    logits = logits.astype(np.float64)
    if multi_label or logits.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-logits))
        return positive if multi_label else np.concatenate([1.0 - positive, positive], axis=1)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclass
class Prediction:
    """What the model says about one text.

    Attributes:
        text: the text, as given.
        label: single-label: the most probable label; multi-label: None (see `labels`).
        probability: the probability of `label`; multi-label: None.
        labels: single-label: `[label]`; multi-label: every label whose probability reaches its threshold, most
            probable first (possibly none).
        probabilities: the probabilities of `labels`, in the same order.
        top: the `top_k` most probable (label, probability) pairs, most probable first, whatever the thresholds.
    """

    text: str
    label: str | None
    probability: float | None
    top: list[tuple[str, float]]
    labels: list[str]
    probabilities: list[float]


class Predictor:
    """A trained run, ready to classify texts: `predict` (labels) and `predict_proba` (probabilities).

    Args:
        run: the loaded run (config, vocabulary, labels, saved thresholds).
        forward: the network: padded token ids -> logits (default: the run's PyTorch model on the CPU).
        batch_size: texts (or windows) per batch; default the run's `train.eval_batch_size`.
        chunking: how to treat long texts: a ChunkingConfig, or a dict that changes some keys of the run's
            `chunking` section (e.g. `{"max_tokens": 200}`; `{"max_tokens": None}` turns it off); default the
            run's section (off unless set there).
        threshold: multi-label: one threshold for every class instead of the run's (saved) per-class ones.

    Raises:
        ConfigError: a threshold for a single-label run, or out of (0, 1); invalid chunking settings.
    """

    def __init__(self, run: RunInfo, forward: Forward | None = None, batch_size: int | None = None,
                 chunking: ChunkingConfig | dict[str, Any] | None = None, threshold: float | None = None):
        self.run = run
        if forward is None:
            from llmcls.inference import TorchForward

            forward = TorchForward(run.model, next(run.model.parameters()).device)
        self.forward = forward
        self.batch_size = batch_size or run.config.train.eval_batch_size
        if isinstance(chunking, dict):
            chunking = merge_chunking(run.config.chunking, chunking)
        self.chunking = chunking if chunking is not None else run.config.chunking
        self.multi_label = run.config.data.multi_label
        self.thresholds = self._thresholds(threshold)
        tokenizer_config = run.config.tokenizer
        if self.chunking.enabled:  # every token is needed: the windows cover the whole text
            tokenizer_config = tokenizer_config.model_copy(update={"max_tokens": None})
        self.tokenizer = Tokenizer(tokenizer_config)

    @classmethod
    def load(cls, run_dir: str | Path, device: "str | torch.device" = "auto", batch_size: int | None = None,
             chunking: ChunkingConfig | dict[str, Any] | None = None, threshold: float | None = None,
             backend: str = "torch") -> "Predictor":
        """Load a run directory for prediction; see the class for the rest.

        Args:
            device: auto, cpu, cuda or cuda:N (the PyTorch backend).
            backend: `torch` (the run's weights, on `device`), `torch-bf16` (the same under bfloat16 autocast:
                faster on CPUs with bf16 units, probabilities within about 1e-2 of float32), `onnx` or
                `onnx-int8` (the models of `llmcls export` in RUN/export, on the CPU, without torch), or `auto`: `onnx` when that export
                exists for the run's current weights, onnxruntime is installed and `device` is auto or cpu,
                else `torch`.

        Raises:
            RunError: `run_dir` is not a usable run.
            DeviceError: the device does not exist here.
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
                forward = OnnxClassifier.from_run(run_dir, "onnx" if backend == "auto" else backend)
                return cls(info, forward, batch_size, chunking, threshold)
            except ExportError:
                if backend != "auto":
                    raise  # auto falls back to the run's PyTorch model
        import torch

        from llmcls.device import resolve_device
        from llmcls.inference import TorchForward

        device = device if isinstance(device, torch.device) else resolve_device(device)
        run = load_run(run_dir, device)
        precision = "bf16" if backend == "torch-bf16" else "fp32"
        return cls(run, TorchForward(run.model, device, precision), batch_size, chunking, threshold)

    @property
    def backend(self) -> str:
        """What computes the logits: torch, torch-bf16, onnx or onnx-int8."""
        return getattr(self.forward, "name", "torch")

    @property
    def labels(self) -> list[str]:
        """The class names; column j of `predict_proba` is `labels[j]`."""
        return self.run.labels.labels

    def _thresholds(self, threshold: float | None) -> np.ndarray | None:
        if threshold is not None:
            if not self.multi_label:
                raise ConfigError("a threshold applies to multi-label runs only; this run has one label per text")
            if not 0.0 < threshold < 1.0:
                raise ConfigError(f"threshold: must be between 0 and 1 (got {threshold})")
            return np.full(len(self.labels), float(threshold))
        if not self.multi_label:
            return None
        if self.run.thresholds is not None:
            return self.run.thresholds
        fixed = self.run.config.train.threshold
        return np.full(len(self.labels), 0.5 if isinstance(fixed, str) else float(fixed))

    def encode(self, texts: list[str]) -> EncodedTexts:
        """Token ids of whole texts (cut at `tokenizer.max_tokens` unless chunking is on). An empty text becomes
        a single unknown token, so that it keeps its place (its prediction is the model's answer to no content)."""
        return encode_texts(self.tokenizer, self.run.vocab, texts)

    def _blocks(self, texts: list[str], on_event: EventHandler) -> Iterator[tuple[int, list[str]]]:
        """(start, texts) blocks of the input, so that memory stays bounded and progress can be reported."""
        size = max(1024, 4 * self.batch_size)
        for start in range(0, len(texts), size):
            yield start, texts[start:start + size]
            on_event(PredictionProgress(min(start + size, len(texts)), len(texts)))

    def _class_probabilities(self, texts: list[str], on_event: EventHandler) -> np.ndarray:
        """[n_texts, classes] float64 probabilities, in input order."""
        out = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        for start, piece in self._blocks(texts, on_event):
            encoded = self.encode(piece)
            owner = None
            if self.chunking.enabled:
                encoded, owner = split_windows(encoded, self.chunking.max_tokens, self.chunking.step)
            logits = batched_logits(self.forward, encoded, self.batch_size, self.run.vocab.pad_index)
            probs = probabilities(logits, self.multi_label)  # [n_seqs, classes]
            if owner is not None:
                probs = aggregate(probs, owner, len(piece), self.chunking.aggregate, exclusive=not self.multi_label)
            out[start:start + len(piece)] = probs
        return out

    def logits(self, texts: list[str], on_event: EventHandler = ignore) -> "torch.Tensor":
        """[n_texts, num_outputs] float32 logits on the CPU, in input order. With chunking, the logits whose
        probabilities are the aggregated ones (so that a loss can be computed on them)."""
        import torch

        from llmcls.model import logits_from_probabilities

        if self.chunking.enabled:
            probs = torch.from_numpy(self._class_probabilities(texts, on_event))
            return logits_from_probabilities(probs, self.forward.num_outputs, self.multi_label)
        out = np.empty((len(texts), self.forward.num_outputs), dtype=np.float32)
        for start, piece in self._blocks(texts, on_event):
            out[start:start + len(piece)] = batched_logits(self.forward, self.encode(piece), self.batch_size,
                                                           self.run.vocab.pad_index)
        return torch.from_numpy(out)

    def class_probabilities(self, texts: list[str]) -> np.ndarray:
        """[n_texts, classes] float64 probabilities in input order: those `predict` ranks (`predict_proba` gives
        them as float32)."""
        return self._class_probabilities(list(texts), ignore)

    def predict_proba(self, texts: list[str] | str, on_event: EventHandler = ignore) -> np.ndarray:
        """Class probabilities: [n_texts, classes] float32, column j is `labels[j]`; for a single string, [classes].

        Single-label rows sum to 1; multi-label columns are each class's own probability.
        """
        if isinstance(texts, str):
            return self.predict_proba([texts], on_event)[0]
        return self._class_probabilities(list(texts), on_event).astype(np.float32)

    def predict(self, texts: list[str] | str, top_k: int = 1,
                on_event: EventHandler = ignore) -> list[Prediction] | Prediction:
        """The prediction of each text (see `Prediction`), in input order; for a single string, one Prediction.

        Args:
            texts: the texts (any iterable of strings), or one string.
            top_k: how many of the most probable labels to list in `Prediction.top`.
            on_event: receives `PredictionProgress` events.
        """
        if isinstance(texts, str):
            return self.predict([texts], top_k, on_event)[0]
        texts = list(texts)
        return rank(texts, self._class_probabilities(texts, on_event), self.labels, top_k, self.thresholds)


def rank(texts: list[str], probs: np.ndarray, labels: list[str], top_k: int = 1,
         thresholds: np.ndarray | None = None) -> list[Prediction]:
    """The `Prediction` of each text from its class probabilities.

    Args:
        texts: the texts, in the order of the rows of `probs`.
        probs: [n_texts, classes] probabilities; column j is `labels[j]`.
        labels: the class names.
        top_k: how many of the most probable labels to list in `Prediction.top`.
        thresholds: multi-label: the probability each class needs [classes]; None for a single-label run.
    """
    k = max(1, min(top_k, len(labels)))
    out = []
    for text, row in zip(texts, probs):
        order = np.argsort(-row, kind="stable")
        top = [(labels[j], float(row[j])) for j in order[:k]]
        if thresholds is not None:
            chosen = [j for j in order if row[j] >= thresholds[j]]
            out.append(Prediction(text, None, None, top, [labels[j] for j in chosen], [float(row[j]) for j in chosen]))
        else:
            best = int(order[0])
            out.append(Prediction(text, labels[best], float(row[best]), top, [labels[best]], [float(row[best])]))
    return out
