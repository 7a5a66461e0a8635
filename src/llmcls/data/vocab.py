"""Token vocabulary and label map: string <-> id tables, saved as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llmcls.errors import RunError
from llmcls.fileio import atomic_write_text

if TYPE_CHECKING:
    from llmcls.data.tokenize import TokenizedTexts

PAD = "<pad>"
UNK = "<unk>"


class Vocab:
    """Token <-> id table with `<pad>` at 0 and `<unk>` at 1.

    The first `trainable` tokens come from the training data; any after them were added from pretrained vectors
    (`Vocab.extend`), so that words never seen in training still map to their pretrained vector.
    """

    pad_index = 0
    unk_index = 1

    def __init__(self, tokens: list[str], trainable: int | None = None):
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD} and {UNK}")
        self.itos = tokens
        self.stoi = {token: i for i, token in enumerate(tokens)}
        self.trainable = len(tokens) if trainable is None else trainable

    def extend(self, words: Iterable[str]) -> Vocab:
        """A vocabulary with `words` that are not already in it appended after the training tokens."""
        added = [w for w in dict.fromkeys(words) if w not in self.stoi]
        return Vocab(self.itos + added, self.trainable)

    @classmethod
    def build_from(cls, tokenized: TokenizedTexts, max_size: int = 25_000, min_freq: int = 1) -> Vocab:
        """Keep the `max_size` most frequent tokens seen at least `min_freq` times; ties broken alphabetically.
        (One bincount over the compact form counts them.)"""
        counts = np.bincount(tokenized.ids, minlength=len(tokenized.table))
        ranked = sorted(
            (i for i in range(len(tokenized.table)) if counts[i] >= min_freq and tokenized.table[i] not in (PAD, UNK)),
            key=lambda i: (-counts[i], tokenized.table[i]),
        )
        return cls([PAD, UNK] + [tokenized.table[i] for i in ranked[:max_size]])

    def __len__(self) -> int:
        return len(self.itos)

    def encode_tokenized(self, tokenized: TokenizedTexts) -> tuple[np.ndarray, np.ndarray]:
        """Ids of many tokenized texts, one id lookup per distinct token; unknown tokens map to `<unk>`, and an
        empty text becomes one `<unk>`.

        Returns:
            (ids [total_tokens] int64, offsets [n_texts + 1] int64); text i is ids[offsets[i]:offsets[i+1]].
        """
        unk = self.unk_index
        lookup = np.asarray([self.stoi.get(token, unk) for token in tokenized.table] or [unk], dtype=np.int64)
        ids = lookup[tokenized.ids]
        lengths = np.diff(tokenized.offsets)
        empty = np.flatnonzero(lengths == 0)
        if len(empty):
            ids = np.insert(ids, tokenized.offsets[empty], unk)
            lengths = np.maximum(lengths, 1)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return ids, offsets

    def save(self, path: Path) -> None:
        atomic_write_text(
            path, json.dumps({"tokens": self.itos, "trainable": self.trainable}, ensure_ascii=False), RunError
        )  # a run's vocab.json

    @classmethod
    def load(cls, path: Path) -> Vocab:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return cls(saved["tokens"], saved.get("trainable"))


def num_outputs(num_classes: int, multi_label: bool = False) -> int:
    """Logits the head needs: one for two exclusive classes, else one per class (here, beside the labels, so
    that a run's labels are checked against its network without torch)."""
    return num_classes if multi_label or num_classes > 2 else 1


class LabelMap:
    """Label string <-> class id, in sorted order of the training labels."""

    def __init__(self, labels: list[str]):
        self.labels = list(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def build(cls, labels: Iterable[str]) -> LabelMap:
        return cls(sorted(set(labels)))

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, labels: list[str]) -> np.ndarray:
        """Class ids of `labels` (all must be known). Returns [n] int64."""
        return np.asarray([self.index[label] for label in labels], dtype=np.int64)

    def encode_sets(self, label_sets: list[list[str]]) -> np.ndarray:
        """Multi-hot rows of label sets (all labels must be known). Returns [n, classes] float32."""
        out = np.zeros((len(label_sets), len(self.labels)), dtype=np.float32)
        for row, labels in enumerate(label_sets):
            out[row, [self.index[label] for label in labels]] = 1.0
        return out

    def unknown(self, labels: Iterable[str]) -> list[str]:
        return sorted(set(labels) - set(self.index))

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps({"labels": self.labels}, ensure_ascii=False), RunError)

    @classmethod
    def load(cls, path: Path) -> LabelMap:
        return cls(json.loads(path.read_text(encoding="utf-8"))["labels"])
