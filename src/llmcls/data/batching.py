"""Batching texts of similar length, so that little compute is spent on padding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

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


class BucketSampler:
    """Yields batches of indices whose texts have similar lengths.

    Each epoch: shuffle all indices, cut them into pools of `pool_batches * batch_size`, sort each pool by length
    (stable, so equal lengths stay shuffled), cut pools into batches, and shuffle the order of all batches.
    The order depends only on (seed, epoch), so an epoch can be replayed.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, pool_batches: int = 100, seed: int = 0,
                 shuffle: bool = True):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.pool_size = batch_size * pool_batches
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            return [order[i:i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        batches = []
        for start in range(0, n, self.pool_size):
            pool = order[start:start + self.pool_size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[i:i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches())

    def __len__(self) -> int:
        pools, rest = divmod(len(self.lengths), self.pool_size)
        return pools * -(-self.pool_size // self.batch_size) + -(-rest // self.batch_size)


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
        out[row, :length] = texts.ids[start:start + length]
    return out, lengths


def collate(texts: EncodedTexts, indices: np.ndarray, pad_index: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Pad the texts at `indices` into one tensor.

    Returns:
        token_ids [batch, max_len] int64, lengths [batch] int64 (on the CPU, as packing wants).
    """
    import torch

    token_ids, lengths = pad_batch(texts, indices, pad_index)
    return torch.from_numpy(token_ids), torch.from_numpy(lengths)


class Forward(Protocol):
    """Logits of one padded batch."""

    num_outputs: int

    def __call__(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """token_ids [batch, max_len] int64 (padded), lengths [batch] int64 (each >= 1)
        -> logits [batch, num_outputs] float32."""


def batched_logits(forward: Forward, texts: EncodedTexts, batch_size: int, pad_index: int,
                   on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Logits of every text, in input order.

    Texts are sorted by length and cut into batches of `batch_size` (so batches hold texts of about the same
    length and little is spent on padding); the results are put back in input order.

    Args:
        on_batch: called with the number of texts of each batch once it is done (for progress bars).

    Returns:
        [n_texts, num_outputs] float32.
    """
    out = np.empty((len(texts), forward.num_outputs), dtype=np.float32)
    for batch in BucketSampler(texts.lengths, batch_size, shuffle=False):
        token_ids, lengths = pad_batch(texts, batch, pad_index)
        out[batch] = forward(token_ids, lengths)
        if on_batch is not None:
            on_batch(len(batch))
    return out
