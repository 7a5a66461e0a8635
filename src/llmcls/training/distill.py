"""Distillation: a BiLSTM student learns a trained teacher run's logits (the config's `distill` section, which
`llmcls distill` fills in).

The transfer set is the training texts, `distill.copies` augmented copies of each (llmcls.data.augment: word
masking, replacement by a GloVe neighbour or a word of a same-class text, n-gram sampling) and the texts of
`distill.unlabelled`. The teacher's logits over it are computed once, when the run starts, and kept in
RUN/distill/transfer.npz, so that a resumed run reuses them. The student's training split becomes the transfer set
and its targets the teacher's logits beside the labels (which only `distill.label_weight` uses); validation,
selection, calibration and export are those of any run, so the student serves as any BiLSTM does.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from llmcls.config import Config, DistillConfig, validate_config
from llmcls.data.augment import Augmentation, augment, nearest_neighbours
from llmcls.data.batching import EncodedTexts
from llmcls.data.inputs import read_input, read_labelled
from llmcls.data.prepare import PreparedData, Split
from llmcls.data.targets import build_label_map
from llmcls.data.tokenize import TokenizedTexts
from llmcls.data.vocab import Vocab
from llmcls.errors import ConfigError, DataError
from llmcls.events import EventHandler, Info
from llmcls.inference.forward import batched_logits
from llmcls.model import LstmClassifier, compute_loss, loss_function
from llmcls.precision import fast_bf16
from llmcls.run.files import RunInfo, load_run_info, read_transfer, write_transfer
from llmcls.training.state import resolved

NEIGHBOURS = 10  # a replaced word becomes one of its this many nearest GloVe neighbours among the training words
NO_CLASS = -1  # the class of a text without a label (an augmented copy, an unlabelled text)


DISTILLED_SUFFIX = "-distilled"  # a student's default run directory: OUTPUT_DIR/NAME-distilled


def distilled_config(config: Config, *, teacher: str | Path, unlabelled: str | Path | None = None) -> Config:
    """The student's config with `distill.teacher` (and `distill.unlabelled`) set, validated again, and the
    teacher checked against the student's training labels.

    Raises:
        ConfigError: the student is not a BiLSTM config (it sets model.encoder), or the result is invalid.
        RunError: the teacher is not a trained run.
        DataError: the teacher's labels differ from the student's training data, or that cannot be read.
    """
    if config.uses_encoder:
        raise ConfigError(
            f"the student must be a BiLSTM config; this one fine-tunes model.encoder "
            f"{config.model.encoder!r} (distillation carries an encoder's accuracy into the BiLSTM)"
        )
    raw = config.to_dict()
    raw["distill"] = {
        **raw["distill"],
        "teacher": str(teacher),
        **({"unlabelled": str(unlabelled)} if unlabelled is not None else {}),
    }
    distilled = validate_config(raw, "the distilled config")
    train, _ = read_labelled(distilled, distilled.data.train)  # checked now, before anything is written or loaded
    load_teacher(distilled, build_label_map(train, distilled.data.train, distilled.data).labels)
    return distilled


def load_teacher(config: Config, labels: list[str]) -> RunInfo:
    """The teacher run of `distill.teacher`, checked against the student's data.

    Raises:
        RunError: it is not a trained run.
        DataError: its labels (or being multi-label) differ from the student's training data.
    """
    teacher = load_run_info(str(config.distill.teacher))
    if teacher.labels.labels != labels or teacher.config.data.multi_label != config.data.multi_label:
        raise DataError(
            f"distill.teacher {teacher.run_dir}: its labels ({', '.join(teacher.labels.labels)}"
            f"{', multi-label' if teacher.config.data.multi_label else ''}) differ from the student's "
            f"training data {config.data.train} ({', '.join(labels)}"
            f"{', multi-label' if config.data.multi_label else ''}); a teacher must be trained on the "
            "same labels"
        )
    return teacher


def teacher_record(teacher: RunInfo) -> dict:
    """What a distilled run's meta.json says of its teacher (hashing its weights: once, when the run starts)."""
    from llmcls.run.exports import weights_digest

    return {
        "teacher": {
            "run": str(teacher.run_dir.resolve()),
            "model_family": teacher.family,
            "weights_sha256": weights_digest(teacher.run_dir),
            "llmcls_version": (teacher.meta or {}).get("llmcls_version"),
        }
    }


@dataclass
class TransferTexts:
    """The transfer set before the teacher has read it: the student's ids, the teacher's texts, the labels."""

    student: EncodedTexts
    teacher_texts: list[str]
    labels: np.ndarray  # [n] class ids, NO_CLASS where none; multi-label: [n, classes], NaN rows where none


def transfer_split(
    config: Config,
    data: PreparedData,
    *,
    model: LstmClassifier,
    teacher: RunInfo | None,
    run_dir: Path,
    device: torch.device,
    on_event: EventHandler,
) -> Split:
    """The student's training split: the transfer set with the teacher's logits, from the run's cache or, when
    the run starts, computed (and cached). `teacher`: the checked teacher run (`load_teacher`), read when None."""
    cached = read_transfer(run_dir)
    if cached is None:
        teacher = teacher or load_teacher(config, data.labels.labels)
        texts = transfer_texts(config, data, model=model, mask_token=_mask_token(teacher), on_event=on_event)
        logits = teacher_logits(teacher, texts.teacher_texts, device=device, on_event=on_event)
        labels = texts.labels.reshape(len(logits), -1).astype(np.float32)
        cached = {
            "ids": texts.student.ids,
            "offsets": texts.student.offsets,
            "targets": np.concatenate([logits, labels], axis=1),
        }
        write_transfer(run_dir, cached)
    else:
        on_event(
            Info(
                f"distill: the transfer set and the teacher's logits of {len(cached['offsets']) - 1:,} texts "
                "from the run's cache"
            )
        )
    return Split(EncodedTexts(cached["ids"], cached["offsets"]), cached["targets"])


def _mask_token(teacher: RunInfo) -> str:
    """The teacher's mask token ([MASK] for a BERT tokenizer; a BiLSTM teacher reads it as an unknown word)."""
    return getattr(teacher.encoding(), "mask_token", "<unk>")


def transfer_texts(
    config: Config, data: PreparedData, *, model: LstmClassifier, mask_token: str, on_event: EventHandler
) -> TransferTexts:
    """The training texts, their augmented copies and the unlabelled texts, as the student and the teacher read
    them (the teacher reads the student's tokens joined by spaces, the mask token where a word was masked)."""
    assert data.tokenizer is not None and data.vocab is not None and data.train_texts is not None
    d, t0 = config.distill, time.perf_counter()
    tokens = data.tokenizer.tokenize_many(data.train_texts)
    targets = data.train.targets
    classes = targets if targets.ndim == 1 else np.full(len(targets), NO_CLASS)
    settings = Augmentation(
        copies=resolved(d.copies, "distill.copies"),
        mask_prob=d.mask_prob,
        replace_prob=d.replace_prob,
        ngram_prob=d.ngram_prob,
        max_ngram=d.max_ngram,
    )
    neighbours = word_neighbours(
        tokens.table, data.vocab, model=model, with_vectors=data.vectors.words if data.vectors else []
    )
    copies, source = augment(
        tokens, classes=classes, neighbours=neighbours, settings=settings, mask_token=mask_token, seed=config.seed
    )
    parts = [tokens, copies]
    if d.unlabelled:
        parts.append(data.tokenizer.tokenize_many(read_input(d.unlabelled, config.data)))
    labels = _transfer_labels(targets, source, len(parts[-1]) if d.unlabelled else 0)
    student = _concat([EncodedTexts(*data.vocab.encode_tokenized(part)) for part in parts])
    teacher_texts = [text for part in parts for text in _joined(part)]
    on_event(
        Info(
            f"distill: transfer set of {len(teacher_texts):,} texts ({len(tokens):,} training texts, "
            f"{len(copies):,} augmented copies, {len(parts[2]) if d.unlabelled else 0:,} unlabelled) in "
            f"{time.perf_counter() - t0:.1f}s"
        )
    )
    return TransferTexts(student, teacher_texts, labels)


def _transfer_labels(targets: np.ndarray, source: np.ndarray, unlabelled: int) -> np.ndarray:
    """The labels of the transfer set: the training texts' own; none for copies (masking or an n-gram may change
    the label) and unlabelled texts."""
    none_rows = len(source) + unlabelled
    if targets.ndim == 1:
        return np.concatenate([targets, np.full(none_rows, NO_CLASS)]).astype(np.int64)
    return np.concatenate([targets, np.full((none_rows, targets.shape[1]), np.nan, dtype=np.float32)])


def _joined(tokens: TokenizedTexts) -> list[str]:
    table, ids, offsets = tokens.table, tokens.ids.tolist(), tokens.offsets.tolist()
    return [" ".join(table[j] for j in ids[a:b]) for a, b in itertools.pairwise(offsets)]


def _concat(parts: list[EncodedTexts]) -> EncodedTexts:
    ids = np.concatenate([p.ids for p in parts])
    lengths = np.concatenate([p.lengths for p in parts])
    return EncodedTexts(ids, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


def word_neighbours(table: list[str], vocab: Vocab, *, model: LstmClassifier, with_vectors: list[str]) -> np.ndarray:
    """[len(table), NEIGHBOURS] table indices of each word's nearest words by the cosine of their pretrained
    vectors (the student's initial embedding rows); -1 for a word without one."""
    has_vector = set(with_vectors)
    ids = torch.tensor([vocab.stoi.get(word, vocab.unk_index) for word in table], dtype=torch.int64)
    valid = np.array([word in has_vector and vocab.stoi.get(word) is not None for word in table], dtype=bool)
    with torch.no_grad():
        vectors = model.embed(ids[None])[0].float().numpy()  # [len(table), emb]
    return nearest_neighbours(vectors, valid=valid, k=NEIGHBOURS)


def teacher_backend(device: torch.device) -> str:
    """How the teacher runs: in bfloat16 where the device has fast bf16 units (2.6x ONNX's float32 speed for
    MiniLM on an AMX CPU; logits within about 0.04), else its ONNX export on the CPU (or float32 torch on a GPU)."""
    if fast_bf16(device) is not None:
        return "torch-bf16"
    return "auto" if device.type == "cpu" else "torch"


def teacher_logits(teacher: RunInfo, texts: list[str], *, device: torch.device, on_event: EventHandler) -> np.ndarray:
    """The teacher's logits [n, num_outputs] of `texts` (`teacher_backend` decides how it runs)."""
    from llmcls.inference.backends import open_forward

    t0 = time.perf_counter()
    info, forward = open_forward(teacher.run_dir, device, backend=teacher_backend(device))
    encoding = info.encoding()
    encoded = encoding.encode(texts)
    done, step = [0, 0], max(1, len(texts) // 10)

    def progress(n: int) -> None:
        done[0] += n
        if done[0] >= done[1] + step:
            done[1] = done[0]
            on_event(Info(f"distill: teacher logits {done[0]:,}/{len(texts):,} ({time.perf_counter() - t0:.0f}s)"))

    logits = batched_logits(
        forward,
        encoded,
        batch_size=info.config.train.eval_batch_size,
        pad_index=encoding.pad_index,
        on_batch=progress,
        max_tokens=info.config.train.eval_batch_tokens,
    )
    on_event(
        Info(
            f"distill: the teacher ({getattr(forward, 'name', 'torch')}) read {len(texts):,} texts in "
            f"{time.perf_counter() - t0:.0f}s"
        )
    )
    return logits


class DistillationLoss(nn.Module):
    """The student's loss on a transfer batch: the distance to the teacher's logits (MSE, or cross-entropy to
    its probabilities at a temperature, scaled by T^2), plus `label_weight` x the ordinary loss on the texts
    that have a label.

    Targets [batch, num_outputs + label columns]: the teacher's logits, then the class id (NO_CLASS: none) or,
    multi-label, the 0/1 row (NaN: none).
    """

    def __init__(self, settings: DistillConfig, *, num_classes: int, num_outputs: int, multi_label: bool):
        super().__init__()
        self.settings = settings
        self.num_outputs = num_outputs
        self.multi_label = multi_label
        self.labels_loss = loss_function(num_classes, multi_label=multi_label)

    def teacher_loss(self, logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """[batch] the distance of each text's logits [batch, outputs] to the teacher's."""
        if self.settings.loss == "mse":
            return ((logits - teacher) ** 2).mean(1)
        t = self.settings.temperature
        if self.multi_label or self.num_outputs == 1:  # each output its own sigmoid
            soft = torch.sigmoid(teacher / t)
            return nn.functional.binary_cross_entropy_with_logits(logits / t, soft, reduction="none").mean(1) * t * t
        soft = torch.softmax(teacher / t, dim=1)
        return -(soft * torch.log_softmax(logits / t, dim=1)).sum(1) * t * t

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.reshape(len(targets), self.num_outputs)
        teacher, labels = targets[:, : self.num_outputs], targets[:, self.num_outputs :]
        loss = self.teacher_loss(logits, teacher).mean()
        weight = self.settings.label_weight
        if not weight:
            return loss
        known = ~torch.isnan(labels).any(1) if self.multi_label else labels[:, 0] != NO_CLASS
        if not known.any():
            return (1 - weight) * loss
        label_targets = labels[known] if self.multi_label else labels[known, 0].long()
        return (1 - weight) * loss + weight * compute_loss(self.labels_loss, logits[known], label_targets)
