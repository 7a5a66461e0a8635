"""Predicting labels of texts with a trained run.

The texts are tokenized and encoded, cut into windows when chunking is on, sorted by length into batches, and
passed through one call to the network (a `Forward`, opened by llmcls.inference.backends.open_forward): the
run's PyTorch model, or the ONNX model `llmcls export` wrote into the run (then torch is never imported).
Probabilities, chunk aggregation, top-k and multi-label thresholds are computed around that call, in NumPy.
Results come back in input order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcls.config import ChunkingConfig, TokenizerConfig, merge_chunking
from llmcls.data.batching import EncodedTexts, concatenate, truncate
from llmcls.data.encoding import TextEncoding
from llmcls.errors import ConfigError
from llmcls.events import EventHandler, Info, PredictionProgress, ignore
from llmcls.inference.backends import BACKENDS, open_forward
from llmcls.inference.chunking import aggregate, split_windows
from llmcls.inference.forward import Forward, batched_logits
from llmcls.inference.scoring import probabilities, uniform_thresholds
from llmcls.run.files import RunInfo

if TYPE_CHECKING:
    import torch

__all__ = ["BACKENDS", "Prediction", "Predictor", "PreparedTexts", "predictions_of", "probabilities"]


@dataclass
class PreparedTexts:
    """Texts encoded for one pass of the network (`Predictor.prepare`); `Predictor.score` runs it.

    Attributes:
        encoded: the sequences the network reads: the texts, or their windows.
        owner: [n_sequences] int64 the text of each window; None: one sequence per text.
        n_texts: how many texts.
        cut: how many texts were cut at `tokenizer.predict_max_tokens`.
        aggregate: how the windows' probabilities combine (chunking.aggregate).
    """

    encoded: EncodedTexts
    owner: np.ndarray | None
    n_texts: int
    cut: int
    aggregate: str

    @property
    def tokens(self) -> int:
        """Tokens the network reads for these texts (windows overlap, so this can exceed the texts' own)."""
        return len(self.encoded.ids)

    @property
    def most_windows(self) -> int:
        """The largest number of windows of any one text (1 without chunking)."""
        if self.owner is None or len(self.owner) == 0:
            return 1
        return int(np.bincount(self.owner).max())


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
        forward: the network: padded token ids -> logits (`llmcls.inference.backends.open_forward` opens one).
        batch_size: texts (or windows) per batch; default the run's `train.eval_batch_size`. A batch also holds
            at most the run's `train.eval_batch_tokens` padded tokens.
        chunking: how to treat long texts: a ChunkingConfig, or a dict that changes some keys of the run's
            `chunking` section (e.g. `{"max_tokens": 200}`; `{"max_tokens": None}` turns it off); default the
            run's section (off unless set there).
        threshold: multi-label: one threshold for every class instead of the run's (saved) per-class ones.

    Raises:
        ConfigError: a threshold for a single-label run, or out of (0, 1); invalid chunking settings.
    """

    def __init__(
        self,
        run: RunInfo,
        forward: Forward,
        *,
        batch_size: int | None = None,
        chunking: ChunkingConfig | dict[str, Any] | None = None,
        threshold: float | None = None,
    ):
        self.run = run
        self.forward = forward
        self.batch_size = batch_size or run.config.train.eval_batch_size
        self.batch_tokens = run.config.train.eval_batch_tokens
        self.multi_label = run.config.data.multi_label
        self.thresholds = self._thresholds(threshold)
        self._encodings: dict[str, TextEncoding] = {}  # by tokenizer settings; shared with `with_chunking`'s copies
        self._set_chunking(chunking if chunking is not None else run.config.chunking)

    def _set_chunking(self, chunking: ChunkingConfig | dict[str, Any]) -> None:
        if isinstance(chunking, dict):
            chunking = merge_chunking(self.run.config.chunking, chunking)
        self.chunking = chunking
        tokenizer_config, self.cut = _prediction_tokenizer(self.run.config.tokenizer, chunking)
        key = tokenizer_config.model_dump_json()
        if key not in self._encodings:
            self._encodings[key] = self.run.encoding(tokenizer_config)
        self.encoding = self._encodings[key]
        limit = self.encoding.limit
        if chunking.max_tokens is not None and limit is not None and chunking.max_tokens > limit:
            raise ConfigError(
                f"chunking.max_tokens: {chunking.max_tokens} tokens is more than this model reads at once ({limit})"
            )

    def with_chunking(self, changes: dict[str, Any]) -> Predictor:
        """This predictor with `changes` to the run's chunking section (as the `chunking` argument's dict): the
        same network and thresholds, and the tokenizer already loaded, so that it costs next to nothing.

        Raises:
            ConfigError: invalid chunking settings.
        """
        if not changes:
            return self
        other = copy.copy(self)
        other._set_chunking(changes)
        return other

    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        device: str | torch.device = "auto",
        *,
        batch_size: int | None = None,
        chunking: ChunkingConfig | dict[str, Any] | None = None,
        threshold: float | None = None,
        backend: str = "torch",
    ) -> Predictor:
        """Load a run directory for prediction; see the class for the rest.

        Args:
            device: auto, cpu, cuda or cuda:N (the PyTorch backend).
            backend: `torch` (the run's weights, on `device`), `torch-bf16` (the same under bfloat16 autocast:
                faster on CPUs with bf16 units, probabilities within about 1e-2 of float32), `onnx` or
                `onnx-int8` (the models of `llmcls export` in RUN/export, on the CPU, without torch), or `auto`:
                `onnx` when that export exists for the run's current weights, onnxruntime is installed and
                `device` is auto or cpu, else `torch`.

        Raises:
            RunError: `run_dir` is not a usable run.
            DeviceError: the device does not exist here.
            ExportError: an ONNX backend was asked for and cannot be used (the message says why).
        """
        info, forward = open_forward(run_dir, device, backend=backend)
        return cls(info, forward, batch_size=batch_size, chunking=chunking, threshold=threshold)

    @property
    def backend(self) -> str:
        """What computes the logits: torch, torch-bf16, onnx or onnx-int8."""
        return self.forward.name

    @property
    def labels(self) -> list[str]:
        """The class names; column j of `predict_proba` is `labels[j]`."""
        return self.run.labels.labels

    def _thresholds(self, threshold: float | None) -> np.ndarray | None:
        if threshold is not None:
            return uniform_thresholds(threshold, len(self.labels), multi_label=self.multi_label)
        if not self.multi_label:
            return None
        if self.run.thresholds is not None:
            return self.run.thresholds
        return np.full(len(self.labels), self.run.config.train.fixed_threshold)

    def encode(self, texts: list[str]) -> EncodedTexts:
        """Token ids of whole texts (cut at `tokenizer.max_tokens`, or else at `tokenizer.predict_max_tokens`,
        unless chunking is on). An empty text becomes a single unknown token, so that it keeps its place (its
        prediction is the model's answer to no content)."""
        return self._encode(texts)[0]

    def _encode(self, texts: list[str]) -> tuple[EncodedTexts, int]:
        """`encode`'s texts, and how many of them were cut at `tokenizer.predict_max_tokens`."""
        encoded = self.encoding.encode(texts)
        return (encoded, 0) if self.cut is None else truncate(encoded, self.cut)

    def _note_cut(self, cut: int, on_event: EventHandler) -> None:
        if cut:
            on_event(
                Info(
                    f"{cut} texts longer than {self.cut} tokens were cut to their first {self.cut} "
                    "(tokenizer.predict_max_tokens; chunking, e.g. --chunk-tokens, reads them whole)"
                )
            )

    def _blocks(self, texts: list[str], on_event: EventHandler) -> Iterator[tuple[int, list[str]]]:
        """(start, texts) blocks of the input, so that memory stays bounded and progress can be reported."""
        size = max(1024, 4 * self.batch_size)
        for start in range(0, len(texts), size):
            yield start, texts[start : start + size]
            on_event(PredictionProgress(min(start + size, len(texts)), len(texts)))

    def prepare(self, texts: list[str]) -> PreparedTexts:
        """`texts` encoded for the network (cut, or cut into windows when chunking is on); no network yet."""
        encoded, cut = self._encode(texts)
        owner = None
        if self.chunking.max_tokens is not None:  # chunking on
            encoded, owner = split_windows(encoded, self.chunking.max_tokens, self.chunking.step)
        return PreparedTexts(encoded, owner, n_texts=len(texts), cut=cut, aggregate=self.chunking.aggregate)

    def score(self, prepared: list[PreparedTexts], on_batch: Callable[[int], None] | None = None) -> list[np.ndarray]:
        """The class probabilities of each of `prepared` ([n_texts, classes] float64 each), from one pass of the
        network over all their sequences (they may come from copies with other chunking settings).

        Args:
            on_batch: called after each batch with its number of sequences; whatever it raises stops the pass.
        """
        encoded = concatenate([p.encoded for p in prepared])
        logits = batched_logits(
            self.forward,
            encoded,
            batch_size=self.batch_size,
            pad_index=self.encoding.pad_index,
            on_batch=on_batch,
            max_tokens=self.batch_tokens,
        )  # [n_seqs, num_outputs], bounded batches
        probs = probabilities(logits, self.multi_label, self.run.temperature)  # [n_seqs, classes]
        out, start = [], 0
        for part in prepared:
            rows = probs[start : start + len(part.encoded)]
            start += len(part.encoded)
            if part.owner is not None:
                rows = aggregate(
                    rows, part.owner, n_texts=part.n_texts, how=part.aggregate, exclusive=not self.multi_label
                )
            out.append(rows)
        return out

    def _probabilities(self, texts: list[str], on_event: EventHandler) -> tuple[np.ndarray, int]:
        """`class_probabilities` without the note, and how many texts were cut."""
        out = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        cut = 0
        for start, piece in self._blocks(texts, on_event):
            prepared = self.prepare(piece)
            cut += prepared.cut
            out[start : start + len(piece)] = self.score([prepared])[0]
        return out, cut

    def class_probabilities(self, texts: list[str], on_event: EventHandler = ignore) -> np.ndarray:
        """[n_texts, classes] float64 probabilities, in input order (what `predict_proba` rounds to float32)."""
        out, cut = self._probabilities(texts, on_event)
        self._note_cut(cut, on_event)
        return out

    def predict_proba(self, texts: list[str] | str, on_event: EventHandler = ignore) -> np.ndarray:
        """Class probabilities: [n_texts, classes] float32, column j is `labels[j]`; for a single string, [classes].

        Single-label rows sum to 1; multi-label columns are each class's own probability.
        """
        if isinstance(texts, str):
            return self.predict_proba([texts], on_event)[0]
        return self.class_probabilities(list(texts), on_event).astype(np.float32)

    def predict(
        self, texts: list[str] | str, top_k: int = 1, on_event: EventHandler = ignore
    ) -> list[Prediction] | Prediction:
        """The prediction of each text (see `Prediction`), in input order; for a single string, one Prediction.

        Args:
            texts: the texts (any iterable of strings), or one string.
            top_k: how many of the most probable labels to list in `Prediction.top`.
            on_event: receives `PredictionProgress` events.
        """
        if isinstance(texts, str):
            return predictions_of(
                [texts],
                self.class_probabilities([texts], on_event),
                labels=self.labels,
                top_k=top_k,
                thresholds=self.thresholds,
            )[0]
        texts = list(texts)
        probs = self.class_probabilities(texts, on_event)
        return predictions_of(texts, probs, labels=self.labels, top_k=top_k, thresholds=self.thresholds)

    def predict_blocks(
        self, blocks: Iterable[list[str]], top_k: int = 1, on_event: EventHandler = ignore
    ) -> Iterator[list[Prediction]]:
        """The predictions of texts that come in blocks (`llmcls.data.inputs.input_blocks`), a list per block,
        in input order: memory is bounded by a block, whatever the input's size.

        Args:
            blocks: lists of texts, read as they are needed.
            top_k: how many of the most probable labels to list in `Prediction.top`.
            on_event: receives a `PredictionProgress` after each block (its total is None: not known ahead) and,
                at the end, the note on texts that were cut.
        """
        done = cut = 0
        for texts in blocks:
            probs, n_cut = self._probabilities(texts, ignore)
            cut += n_cut
            done += len(texts)
            on_event(PredictionProgress(done, None))
            yield predictions_of(texts, probs, labels=self.labels, top_k=top_k, thresholds=self.thresholds)
        self._note_cut(cut, on_event)


def predictions_of(
    texts: list[str],
    probs: np.ndarray,
    *,
    labels: list[str],
    top_k: int = 1,
    thresholds: np.ndarray | None = None,
) -> list[Prediction]:
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


def _prediction_tokenizer(config: TokenizerConfig, chunking: ChunkingConfig) -> tuple[TokenizerConfig, int | None]:
    """The run's tokenizer settings for prediction, and where the Predictor cuts texts itself (counted; None: it
    does not, because the run has a length limit of its own, or chunking reads every token in windows)."""
    cut = None if chunking.enabled or config.max_tokens is not None else config.predict_max_tokens
    if chunking.enabled:  # every token is needed: the windows cover the whole text
        config = config.model_copy(update={"max_tokens": None})
    elif cut is not None:  # one token more than kept, so that a text that was cut can be told apart
        config = config.model_copy(update={"max_tokens": cut + 1})
    return config, cut
