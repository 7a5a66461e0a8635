"""Augmentation of a transfer set for distilling a teacher into the BiLSTM student (Tang et al. 2019, "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks"): each copy of a text has some tokens masked, some
replaced by a nearby word, and is sometimes cut to one n-gram. The teacher labels the copies; the student learns
from them. Everything is vectorised over the flat token array, so 70k texts x 10 copies take seconds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmcls.data.tokenize import TokenizedTexts


@dataclass(frozen=True, kw_only=True)
class Augmentation:
    """How the copies of each text are made."""

    copies: int  # augmented copies per text (0: none)
    mask_prob: float  # each token of a copy: replaced by the mask token with this probability
    replace_prob: float  # ... else with this probability replaced by a neighbour or a same-class word
    ngram_prob: float  # each copy: with this probability cut to one random n-gram of it
    max_ngram: int  # n drawn uniformly from 1..max_ngram (at most the text's length)

    def __post_init__(self):
        if self.copies < 0:
            raise ValueError(f"copies must be >= 0, got {self.copies}")
        for name in ("mask_prob", "replace_prob", "ngram_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mask_prob + self.replace_prob > 1.0 + 1e-9:
            raise ValueError(f"mask_prob + replace_prob must be <= 1, got {self.mask_prob + self.replace_prob}")
        if self.max_ngram < 1:
            raise ValueError(f"max_ngram must be >= 1, got {self.max_ngram}")


def _checked_inputs(tokens: TokenizedTexts, classes: np.ndarray, neighbours: np.ndarray):
    """`classes` and `neighbours` as int64 arrays; ValueError when they do not fit `tokens`."""
    classes = np.asarray(classes, dtype=np.int64)
    neighbours = np.asarray(neighbours, dtype=np.int64)
    if classes.shape != (len(tokens),):
        raise ValueError(f"classes has shape {classes.shape}, expected ({len(tokens)},)")
    if neighbours.ndim != 2 or len(neighbours) != len(tokens.table):
        raise ValueError(f"neighbours has shape {neighbours.shape}, expected ({len(tokens.table)}, k)")
    return classes, neighbours


def augment(
    tokens: TokenizedTexts,
    *,
    classes: np.ndarray,
    neighbours: np.ndarray,
    settings: Augmentation,
    mask_token: str,
    seed: int,
) -> tuple[TokenizedTexts, np.ndarray]:
    """`settings.copies` augmented copies of every text.

    Each token of a copy draws u ~ U[0, 1): u < mask_prob masks it; mask_prob <= u < mask_prob + replace_prob
    replaces it by one of its neighbours chosen uniformly, or, when it has none, by a token drawn uniformly from
    the token positions of all texts of the same class (of all texts when the class is -1). Then, with
    probability ngram_prob, the copy is cut to one random n-gram, n uniform in 1..min(max_ngram, length). (The
    window is drawn first and only its tokens are masked or replaced: the same distribution, less work.)

    Args:
        tokens: the texts.
        classes: [n_texts] int64 class of each text, or -1 where none is known (multi-label or unlabelled).
        neighbours: [len(tokens.table), k] int64 table indices of each token's nearest neighbours, -1 where
            none (k may be 0).
        settings: how many copies and how they are changed.
        mask_token: the token that masks; appended to the table when it is not in it.
        seed: the copies depend only on the inputs and this seed.

    Returns:
        The copies, whose table is `tokens.table` (plus `mask_token` when it was absent), and source
        [n_copies] int64, the index of the text each copy comes from. The copies of text i are consecutive,
        in order i = 0..n-1.

    Raises:
        ValueError: `classes` or `neighbours` does not fit `tokens`.
    """
    n_texts = len(tokens)
    classes, neighbours = _checked_inputs(tokens, classes, neighbours)
    table, mask_id = _with_mask_token(tokens.table, mask_token)
    rng = np.random.default_rng(seed)
    source = np.repeat(np.arange(n_texts, dtype=np.int64), settings.copies)  # [n_copies]
    lengths = np.diff(tokens.offsets)[source]  # [n_copies]
    starts, kept = _ngram_windows(lengths, settings=settings, rng=rng)
    offsets = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)  # [n_copies + 1]
    # position j of the copies comes from old position j + (window start - new start) of its copy's text
    shift = tokens.offsets[source] + starts - offsets[:-1]  # [n_copies]
    ids = tokens.ids[np.repeat(shift, kept) + np.arange(offsets[-1])].astype(np.int32)  # [total_copy_tokens]
    u = rng.random(len(ids))  # [total_copy_tokens]
    replace = np.flatnonzero((u >= settings.mask_prob) & (u < settings.mask_prob + settings.replace_prob))
    copy_of = np.searchsorted(offsets, replace, side="right") - 1  # [n_replaced] the copy of each
    ids[replace] = _replacements(
        ids[replace],
        classes=classes[source[copy_of]],
        neighbours=neighbours,
        pools=_class_pools(tokens, classes),
        rng=rng,
    )
    ids[u < settings.mask_prob] = mask_id
    return TokenizedTexts(table, ids, offsets), source


def _with_mask_token(table: list[str], mask_token: str) -> tuple[list[str], int]:
    """The table with the mask token (appended only when absent), and its index."""
    try:
        return list(table), table.index(mask_token)
    except ValueError:
        return [*table, mask_token], len(table)


def _ngram_windows(
    lengths: np.ndarray, *, settings: Augmentation, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The window of each copy that is kept: the whole text, or with probability ngram_prob one n-gram.

    Returns:
        starts [n_copies] int64 (within the text), kept lengths [n_copies] int64 (0 only for an empty text).
    """
    cut = rng.random(len(lengths)) < settings.ngram_prob  # [n_copies]
    longest = np.minimum(lengths, settings.max_ngram)
    n = np.minimum(1 + (rng.random(len(lengths)) * longest).astype(np.int64), longest)  # in 1..longest
    room = lengths - n + 1  # possible starts of an n-gram
    start = np.minimum((rng.random(len(lengths)) * room).astype(np.int64), np.maximum(room - 1, 0))
    return np.where(cut, start, 0), np.where(cut, n, lengths)


def _replacements(
    ids: np.ndarray,
    *,
    classes: np.ndarray,
    neighbours: np.ndarray,
    pools: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """A replacement for each of `ids` [m]: one of its neighbours uniformly, else a same-class word.

    Args:
        ids: [m] table indices of the tokens to replace.
        classes: [m] class of the text of each token, -1 for none.
        neighbours: [table, k] int64, -1 where none.
        pools: the same-class words, as `_class_pools` returns them.
        rng: draws one uniform number per token.

    Returns:
        [m] int32 table indices.
    """
    r = rng.random(len(ids))  # [m]
    # each row's valid neighbours first, so that drawing among the first `count` is uniform over them
    order = np.argsort(neighbours < 0, axis=1, kind="stable")
    packed = np.take_along_axis(neighbours, order, axis=1)  # [table, k]
    count = (neighbours >= 0).sum(axis=1)[ids]  # [m]
    out = np.empty(len(ids), dtype=np.int32)
    has = count > 0
    pick = np.minimum((r[has] * count[has]).astype(np.int64), count[has] - 1)
    out[has] = packed[ids[has], pick]
    none = ~has
    out[none] = _same_class_words(classes[none], r[none], pools=pools)
    return out


def _class_pools(tokens: TokenizedTexts, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every token position of the texts, grouped by the class of its text.

    Returns:
        position classes [total_tokens] int64 sorted ascending, and the token at each [total_tokens] int32.
    """
    position_classes = np.repeat(classes, np.diff(tokens.offsets))  # [total_tokens]
    order = np.argsort(position_classes, kind="stable")
    return position_classes[order], tokens.ids[order].astype(np.int32)


def _same_class_words(classes: np.ndarray, r: np.ndarray, *, pools: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Tokens drawn uniformly from the token positions of all texts of each class (of all texts for -1).

    Args:
        classes: [m] the class to draw from, per draw.
        r: [m] uniform numbers in [0, 1), one per draw.
        pools: sorted position classes and their tokens, from `_class_pools`.

    Returns:
        [m] int32 table indices.
    """
    sorted_classes, pooled = pools
    lo = np.searchsorted(sorted_classes, classes, side="left")  # [m]
    hi = np.searchsorted(sorted_classes, classes, side="right")
    unknown = classes < 0
    lo[unknown], hi[unknown] = 0, len(pooled)
    # a draw's own token is in its class's pool, so no pool is empty
    size = hi - lo
    return pooled[lo + np.minimum((r * size).astype(np.int64), size - 1)]


def nearest_neighbours(vectors: np.ndarray, *, valid: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """Each row's k nearest other rows by cosine similarity, among the `valid` rows.

    Similarities are computed for `block` rows at a time, so memory stays O(block * n). A zero vector has
    similarity 0 to every row.

    Args:
        vectors: [n, dim] float.
        valid: [n] bool, the rows that may be neighbours and get neighbours.
        k: neighbours per row.
        block: rows per block.

    Returns:
        [n, k] int64 row indices, nearest first; -1 for rows that are not valid and where fewer than k valid
        other rows exist.
    """
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (len(vectors),):
        raise ValueError(f"valid has shape {valid.shape}, expected ({len(vectors)},)")
    out = np.full((len(vectors), k), -1, dtype=np.int64)
    rows = np.flatnonzero(valid)  # [m]
    found = min(k, len(rows) - 1)
    if found <= 0:
        return out
    unit = np.asarray(vectors[rows], dtype=np.result_type(vectors.dtype, np.float32))  # [m, dim]
    norms = np.linalg.norm(unit, axis=1, keepdims=True)
    unit = unit / np.where(norms > 0, norms, 1)
    for start in range(0, len(rows), block):
        out[rows[start : start + block], :found] = rows[_top_k(unit, start=start, block=block, k=found)]
    return out


def _top_k(unit: np.ndarray, *, start: int, block: int, k: int) -> np.ndarray:
    """[rows, k] indices into `unit` of the k most similar other rows of rows start..start + block, nearest first
    (equal similarities: lower index first among those chosen)."""
    sims = unit[start : start + block] @ unit.T  # [rows, m]
    rows = np.arange(len(sims))
    sims[rows, start + rows] = -np.inf  # never a row's own neighbour
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # [rows, k] unordered (k < m: self is never needed)
    top_sims = np.take_along_axis(sims, top, axis=1)
    order = np.lexsort((top, -top_sims), axis=1)
    return np.take_along_axis(top, order, axis=1)[:, :k]
