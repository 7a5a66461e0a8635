"""Long texts: cut a text's token ids into overlapping windows, and aggregate the windows' probabilities.

A model trained on texts cut at `tokenizer.max_tokens` tokens has never seen a longer input, and without chunking
a long document is judged by its head alone. With chunking, every window of `max_tokens` tokens (starting every
`stride` tokens, the last one ending at the text's end) is classified, and the text gets the windows' mean or
maximum probability per class.
"""

from __future__ import annotations

import numpy as np

from llmcls.data.batching import EncodedTexts


def window_starts(length: int, max_tokens: int, stride: int) -> list[int]:
    """Start positions of the windows of a text of `length` tokens: 0, stride, 2 * stride, ..., and a last
    window that ends at the text's end; one window when the text fits."""
    if length <= max_tokens:
        return [0]
    starts = list(range(0, length - max_tokens + 1, stride))
    if starts[-1] + max_tokens < length:
        starts.append(length - max_tokens)
    return starts


def split_windows(texts: EncodedTexts, max_tokens: int, stride: int) -> tuple[EncodedTexts, np.ndarray]:
    """Cut every text into windows of at most `max_tokens` tokens.

    Returns:
        (the windows, owner [n_windows] int64: the text each window comes from); the windows of a text are
        consecutive and in order.
    """
    if len(texts) == 0 or texts.lengths.max() <= max_tokens:  # the common case: nothing to cut
        return texts, np.arange(len(texts), dtype=np.int64)
    pieces: list[np.ndarray] = []
    owner: list[int] = []
    lengths: list[int] = []
    for i, (start, end) in enumerate(zip(texts.offsets[:-1].tolist(), texts.offsets[1:].tolist())):
        for s in window_starts(end - start, max_tokens, stride):
            window = texts.ids[start + s : start + min(s + max_tokens, end - start)]
            pieces.append(window)
            lengths.append(len(window))
            owner.append(i)
    ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
    return EncodedTexts(ids, offsets), np.asarray(owner, dtype=np.int64)


def aggregate(probs: np.ndarray, owner: np.ndarray, *, n_texts: int, how: str, exclusive: bool) -> np.ndarray:
    """Per-text probabilities from per-window ones.

    Args:
        probs: [n_windows, classes] the windows' class probabilities.
        owner: [n_windows] the text of each window (every text has at least one).
        how: `mean` (each class's average over the windows) or `max` (each class's largest probability: a label
            that any part of the text asserts strongly).
        exclusive: the classes exclude each other (single-label), so `max` is renormalised to sum to 1;
            multi-label probabilities are each class's own and are left as they are.

    Returns:
        [n_texts, classes] float64.
    """
    out = np.zeros((n_texts, probs.shape[1]), dtype=np.float64)
    if how == "mean":
        np.add.at(out, owner, probs)
        out /= np.bincount(owner, minlength=n_texts)[:, None]
    else:
        np.maximum.at(out, owner, probs)
        if exclusive:
            out /= out.sum(1, keepdims=True)
    return out
