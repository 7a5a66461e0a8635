"""The pretrained vectors of a new run's vocabulary (`embeddings.source`), and how much of the training data they
cover."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from llmcls.config import Config
from llmcls.data.tokenize import TokenizedTexts
from llmcls.data.vocab import Vocab
from llmcls.embeddings import (
    LOW_TOKEN_COVERAGE,
    PACKAGED_GLOVE,
    Coverage,
    DownloadLimits,
    Vectors,
    load_vectors,
    vector_coverage,
    wanted_words,
)
from llmcls.errors import EmbeddingsError
from llmcls.events import DownloadProgress, EventHandler, Info, ignore


def load_config_vectors(config: Config, vocab: Vocab, on_event: EventHandler = ignore) -> Vectors | None:
    """The pretrained vectors of the vocabulary's words (plus `vocab.add_from_vectors` others), or None."""
    emb = config.embeddings
    if emb.source == "none":
        return None
    cache = Path(emb.cache_dir) if emb.cache_dir else None
    t0 = time.perf_counter()
    vectors = load_vectors(
        emb.source,
        wanted=wanted_words(vocab.itos),
        dim=emb.dim,
        cache_dir=cache,
        on_progress=lambda done, total: on_event(DownloadProgress(emb.source, done, total)),
        extra=config.vocab.add_from_vectors,
        limits=DownloadLimits(
            sha256=emb.sha256, max_bytes=emb.download_max_mb << 20, total_timeout=emb.download_timeout
        ),
    )
    if not vectors.words:
        raise EmbeddingsError(
            f"{emb.source}: none of the {len(vocab)} vocabulary words has a vector; "
            "check tokenizer.lower and the vector file"
        )
    on_event(
        Info(
            f"vectors: {emb.source} ({vectors.dim}d, {len(vectors.words)} rows read) in {time.perf_counter() - t0:.1f}s"
        )
    )
    return vectors


def report_coverage(
    source: str, train_tokens: TokenizedTexts, *, vectors: Vectors | None, on_event: EventHandler = ignore
) -> Coverage | None:
    """How much of the training data `vectors` cover, said in an Info event and warned about when it is low
    (`LOW_TOKEN_COVERAGE`); without vectors (embeddings.source none), a warning and None.

    Only the vocabulary's words were looked up, so a word left out of it (vocab.max_size, vocab.min_freq) counts
    as uncovered, as it is for the model: it becomes `<unk>`.
    """
    if vectors is None:
        on_event(
            Info(
                f"warning: embeddings.source is none: every word vector starts random ({PACKAGED_GLOVE} "
                "or a vector file would give them pretrained values)"
            )
        )
        return None
    counts = np.bincount(train_tokens.ids, minlength=len(train_tokens.table))
    coverage = vector_coverage(train_tokens.table, counts, set(vectors.words))
    on_event(
        Info(
            f"vectors: {coverage.tokens:.1%} of training tokens, {coverage.words:.1%} of distinct words "
            f"have a pretrained vector ({source})"
        )
    )
    if coverage.tokens < LOW_TOKEN_COVERAGE:
        on_event(
            Info(
                f"warning: only {coverage.tokens:.1%} of training tokens have a pretrained vector in {source} "
                f"(under {LOW_TOKEN_COVERAGE:.0%}); the others start random: check embeddings.source, "
                "tokenizer.lower and the vocabulary's size"
            )
        )
    return coverage
