"""From vectors to the model's embedding matrix: how a token is looked up, the matrix (random rows for words
without a vector), and how much of the data the vectors cover."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from llmcls.embeddings.files import Vectors


def lookup_candidates(token: str) -> Iterable[str]:
    """The forms under which a token is looked up: as is, then lowercased (GloVe 6B is lowercase)."""
    yield token
    lower = token.lower()
    if lower != token:
        yield lower


def build_embedding_matrix(
    itos: list[str],
    vectors: Vectors | None,
    *,
    dim: int,
    oov_std: float,
    generator: np.random.Generator,
    pad_index: int = 0,
) -> tuple[np.ndarray, int]:
    """Rows for a vocabulary: the pretrained vector where there is one, N(0, oov_std) otherwise; `<pad>` is zero.

    Returns:
        (matrix [len(itos), dim] float32, number of tokens found in `vectors`).
    """
    matrix = generator.normal(0.0, oov_std, size=(len(itos), dim)).astype(np.float32)
    found = 0
    if vectors is not None:
        row_of = {word: i for i, word in enumerate(vectors.words)}
        for i, token in enumerate(itos):
            if i == pad_index:
                continue
            for candidate in lookup_candidates(token):
                if candidate in row_of:
                    matrix[i] = vectors.matrix[row_of[candidate]]
                    found += 1
                    break
    matrix[pad_index] = 0.0
    return matrix, found


def wanted_words(itos: Iterable[str]) -> set[str]:
    """Every form of the vocabulary's tokens that `build_embedding_matrix` may look up."""
    return {candidate for token in itos for candidate in lookup_candidates(token)}


# Below this share of training tokens with a pretrained vector, training warns. GloVe 6B covers 97.4-99.8% of the
# training tokens of the seven English benchmarks in BENCHMARKS.md ("Coverage of the pretrained vectors"), so
# English text should stay well above it; the SST-2-only subset file falls to 87.4% on TREC and 79.4% on AG News.
# Under 90%, at least one token in ten starts random: a mismatch (another language or domain, a vector file made
# for other data, cased vectors with tokenizer.lower) rather than rare words, or a vocabulary cut too short.
LOW_TOKEN_COVERAGE = 0.9


@dataclass(frozen=True)
class Coverage:
    """How much of a text collection has pretrained vectors."""

    tokens: float  # share of the token occurrences whose word has a vector
    words: float  # share of the distinct words that have one


def vector_coverage(words: list[str], counts: np.ndarray, vector_words: set[str]) -> Coverage:
    """The coverage of words that occur `counts` times by vectors of `vector_words`; a word is covered when one of
    its `lookup_candidates` has a vector, as `build_embedding_matrix` looks it up.

    Args:
        words: distinct words (e.g. `TokenizedTexts.table`).
        counts: [len(words)] occurrences of each word; words that occur 0 times are left out.
        vector_words: the words that have a vector.
    """
    covered = np.fromiter(
        (any(c in vector_words for c in lookup_candidates(w)) for w in words), dtype=bool, count=len(words)
    )
    occurring = counts > 0
    total = int(counts.sum())
    return Coverage(
        tokens=float(counts[covered].sum() / total) if total else 0.0,
        words=float(covered[occurring].mean()) if occurring.any() else 0.0,
    )
