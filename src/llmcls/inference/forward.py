"""The one call through which a network is run: a `Forward` (padded token ids -> logits), and running one over
many encoded texts in length-sorted batches. Imports no torch: the ONNX backend runs through here too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from llmcls.data.batching import BucketSampler, EncodedTexts, pad_batch


class Forward(Protocol):
    """Logits of one padded batch."""

    name: str  # the backend: torch, torch-bf16, onnx or onnx-int8
    num_outputs: int  # logits per text
    pad_index: int  # the network's padding id

    def __call__(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """token_ids [batch, max_len] int64 (padded), lengths [batch] int64 (each >= 1)
        -> logits [batch, num_outputs] float32."""


def batched_logits(
    forward: Forward,
    texts: EncodedTexts,
    *,
    batch_size: int,
    pad_index: int,
    on_batch: Callable[[int], None] | None = None,
    max_tokens: int | None = None,
) -> np.ndarray:
    """Logits of every text, in input order.

    Texts are sorted by length and cut into batches of `batch_size` (so batches hold texts of about the same
    length and little is spent on padding); the results are put back in input order.

    Args:
        on_batch: called with the number of texts of each batch once it is done (for progress bars).
        max_tokens: also at most this many padded tokens (texts x longest length) per batch; a longer text is
            run alone.

    Returns:
        [n_texts, num_outputs] float32.
    """
    out = np.empty((len(texts), forward.num_outputs), dtype=np.float32)
    for batch in BucketSampler(texts.lengths, batch_size, shuffle=False, max_tokens=max_tokens):
        token_ids, lengths = pad_batch(texts, batch, pad_index)
        out[batch] = forward(token_ids, lengths)
        if on_batch is not None:
            on_batch(len(batch))
    return out
