"""Pretrained word vectors: GloVe/word2vec/fastText text files (plain, .gz, .zip), the packaged GloVe 6B 50d
vectors, and downloads from a URL into a local cache (`fetch`); reading them (`files`); the embedding matrix and
coverage (`matrix`). `load_vectors` is the one entry point from a config's `embeddings.source`."""

from __future__ import annotations

from pathlib import Path

from llmcls.embeddings.fetch import KNOWN_SHA256, DownloadLimits, ProgressFn, default_cache_dir, download
from llmcls.embeddings.files import PACKAGED_GLOVE, Vectors, read_packaged_glove, read_text_vectors
from llmcls.embeddings.matrix import (
    LOW_TOKEN_COVERAGE,
    Coverage,
    build_embedding_matrix,
    lookup_candidates,
    vector_coverage,
    wanted_words,
)
from llmcls.errors import EmbeddingsError

__all__ = [
    "KNOWN_SHA256",
    "LOW_TOKEN_COVERAGE",
    "PACKAGED_GLOVE",
    "Coverage",
    "DownloadLimits",
    "ProgressFn",
    "Vectors",
    "build_embedding_matrix",
    "default_cache_dir",
    "download",
    "load_vectors",
    "lookup_candidates",
    "read_packaged_glove",
    "read_text_vectors",
    "vector_coverage",
    "wanted_words",
]


def load_vectors(
    source: str,
    *,
    wanted: set[str] | None = None,
    dim: int | None = None,
    cache_dir: Path | None = None,
    on_progress: ProgressFn | None = None,
    extra: int = 0,
    limits: DownloadLimits = DownloadLimits(),
) -> Vectors:
    """Load vectors from `source`: the packaged GloVe name, an http(s) URL (downloaded within `limits`), or a
    local path.

    `wanted` and `extra` select rows as in `read_text_vectors`.

    Raises:
        EmbeddingsError: the source cannot be read, or its dimension differs from `dim`.
    """
    if source == PACKAGED_GLOVE:
        vectors = read_packaged_glove(wanted, extra)
        if dim is not None and vectors.dim != dim:
            raise EmbeddingsError(f"{source} has dimension {vectors.dim}, but embeddings.dim is {dim}")
        return vectors
    if source.startswith(("http://", "https://")):
        path = download(source, cache_dir or default_cache_dir(), on_progress=on_progress, limits=limits)
    else:
        path = Path(source).expanduser()
    return read_text_vectors(path, wanted=wanted, dim=dim, extra=extra)
