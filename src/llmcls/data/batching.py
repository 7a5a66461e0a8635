"""Batching texts of similar length, so that little compute is spent on padding."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported by collate only: prediction with an exported model runs without torch
    import torch


@dataclass
class EncodedTexts:
    """Token ids of many texts, stored flat: text i is `ids[offsets[i]:offsets[i + 1]]`."""

    ids: np.ndarray  # [total_tokens] int64
    offsets: np.ndarray  # [n_texts + 1] int64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:  # [n_texts]
        return np.diff(self.offsets)


def truncate(texts: EncodedTexts, max_len: int) -> tuple[EncodedTexts, int]:
    """Texts cut to their first `max_len` tokens, and how many were cut (the same object when none is longer)."""
    lengths = texts.lengths
    cut = int((lengths > max_len).sum())
    if not cut:
        return texts, 0
    kept = np.minimum(lengths, max_len)  # [n_texts]
    offsets = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)
    # position j of the new ids comes from old position j + (old start - new start) of its text
    ids = texts.ids[np.repeat(texts.offsets[:-1] - offsets[:-1], kept) + np.arange(offsets[-1])]
    return EncodedTexts(ids, offsets), cut


def concatenate(parts: list[EncodedTexts]) -> EncodedTexts:
    """The texts of `parts`, one after another, as one EncodedTexts."""
    if len(parts) == 1:
        return parts[0]
    ids = np.concatenate([part.ids for part in parts]) if parts else np.zeros(0, dtype=np.int64)
    lengths = np.concatenate([part.lengths for part in parts]) if parts else np.zeros(0, dtype=np.int64)
    return EncodedTexts(ids.astype(np.int64, copy=False), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


# Training cuts texts far longer than the rest even when tokenizer.max_tokens is null: one text of a million tokens
# (a whole file pasted into one cell) would otherwise ask for gigabytes in its batch's backward pass. The cut is
# LONG_TEXT_FACTOR times the 99th percentile of the training texts' lengths, kept within LONG_TEXT_FLOOR ..
# LONG_TEXT_CEILING tokens: data without such outliers is not cut, and no text costs more than LONG_TEXT_CEILING
# tokens whatever the data (the cut eval and predict apply by default, tokenizer.predict_max_tokens, is the same).
LONG_TEXT_FACTOR = 4
LONG_TEXT_FLOOR = 1_000
LONG_TEXT_CEILING = 10_000


def long_text_cut(lengths: np.ndarray) -> int:
    """Where training cuts texts when tokenizer.max_tokens is null (see LONG_TEXT_FACTOR): `lengths` [n_texts]
    in tokens (lengths beyond LONG_TEXT_CEILING need not be exact)."""
    # "lower": a length the data has, not one interpolated towards the longest text (in under 100 texts, the
    # interpolated 99th percentile is mostly the longest text's length itself)
    p99 = int(np.percentile(lengths, 99, method="lower")) if len(lengths) else 0
    return min(LONG_TEXT_CEILING, max(LONG_TEXT_FLOOR, LONG_TEXT_FACTOR * p99))


class BucketSampler:
    """Yields batches of indices whose texts have similar lengths.

    Each epoch: shuffle all indices, cut them into pools of `pool_batches * batch_size`, sort each pool by length
    (stable, so equal lengths stay shuffled), cut pools into batches, and shuffle the order of all batches.
    The order depends only on (seed, epoch), so an epoch can be replayed.

    A batch holds at most `batch_size` texts and, with `max_tokens`, at most `max_tokens` padded tokens (texts x
    the longest text's length), so memory is bounded by the settings rather than by the longest input: a text
    longer than `max_tokens` makes a batch of its own. When the budget never binds, the batches are exactly
    those of `batch_size` alone.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        *,
        pool_batches: int = 100,
        seed: int = 0,
        shuffle: bool = True,
        max_tokens: int | None = None,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.pool_size = batch_size * pool_batches
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        if not self.shuffle:
            return cut_batches(
                np.argsort(self.lengths, kind="stable"),
                self.lengths,
                batch_size=self.batch_size,
                max_tokens=self.max_tokens,
            )
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        batches = []
        for start in range(0, n, self.pool_size):
            pool = order[start : start + self.pool_size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += cut_batches(pool, self.lengths, batch_size=self.batch_size, max_tokens=self.max_tokens)
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches())

    def batch_counts(self, epochs: Iterable[int]) -> list[int]:
        """The number of batches of each of `epochs` (the sampler's own epoch is left as it is)."""
        current = self.epoch
        try:
            counts = []
            for epoch in epochs:
                self.epoch = epoch
                counts.append(len(self))
            return counts
        finally:
            self.epoch = current

    def __len__(self) -> int:
        """Batches in the current epoch (with a token budget, the count may differ a little between epochs)."""
        if self.max_tokens is not None:
            return len(self.batches())
        pools, rest = divmod(len(self.lengths), self.pool_size)
        return pools * -(-self.pool_size // self.batch_size) + -(-rest // self.batch_size)


def cut_batches(
    order: np.ndarray, lengths: np.ndarray, *, batch_size: int, max_tokens: int | None = None
) -> list[np.ndarray]:
    """Cut `order` (indices sorted by ascending length) into consecutive batches of at most `batch_size` texts
    and, with `max_tokens`, at most `max_tokens` padded tokens (texts x the batch's longest length). A text longer
    than `max_tokens` is a batch of its own.

    Returns:
        The batches, each an array of indices, in the order of `order`.
    """
    if max_tokens is None or len(order) == 0 or int(lengths[order].max()) * batch_size <= max_tokens:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    start = 0
    sorted_lengths = lengths[order].tolist()
    for i, length in enumerate(sorted_lengths):
        # sorted ascending, so adding text i makes it the longest: the batch would pad to (size + 1) x length
        if i > start and (i - start == batch_size or (i - start + 1) * max(length, 1) > max_tokens):
            batches.append(order[start:i])
            start = i
    batches.append(order[start:])
    return batches


def padding_fraction(batches: list[np.ndarray], lengths: np.ndarray) -> float:
    """Share of the padded [batch, max_len] cells that are padding, over all batches."""
    real = sum(int(lengths[b].sum()) for b in batches)
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - real / padded if padded else 0.0


def pad_batch(texts: EncodedTexts, indices: np.ndarray, pad_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad the texts at `indices` into one array.

    Returns:
        token_ids [batch, max_len] int64, lengths [batch] int64.
    """
    starts = texts.offsets[indices]
    lengths = texts.offsets[indices + 1] - starts
    out = np.full((len(indices), int(lengths.max())), pad_index, dtype=np.int64)
    for row, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist())):
        out[row, :length] = texts.ids[start : start + length]
    return out, lengths


def collate(texts: EncodedTexts, indices: np.ndarray, pad_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad the texts at `indices` into one tensor.

    Returns:
        token_ids [batch, max_len] int64, lengths [batch] int64 (on the CPU, as packing wants).
    """
    import torch

    token_ids, lengths = pad_batch(texts, indices, pad_index)
    return torch.from_numpy(token_ids), torch.from_numpy(lengths)
