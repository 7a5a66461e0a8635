"""Opening text files (gzipped or not), and turning what goes wrong while reading one into a DataError that names
the file, and the line where bytes are not in the expected encoding."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from llmcls.errors import DataError


def open_text(path: Path, encoding: str) -> IO[str]:
    """The file as text (a `.gz` file decompressed on the fly), with line endings as written.

    Raises:
        DataError: the file does not exist, or is a directory.
    """
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file")
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


@contextmanager
def reading_errors(path: Path, encoding: str) -> Iterator[None]:
    """Turn what can go wrong while reading `path` (bad bytes, an unknown encoding, I/O) into a DataError
    naming it."""
    try:
        yield
    except UnicodeDecodeError:
        raise DataError(describe_decode_error(path, encoding)) from None
    except LookupError:
        raise DataError(f"{path}: unknown encoding '{encoding}'") from None
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data: {exc}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def describe_decode_error(path: Path, encoding: str, data: bytes | None = None) -> str:
    """Where a file stops being valid `encoding`: the exact byte offset and line (decoding the whole file again,
    since the text reader only knows the offset inside its current chunk; `data`: its bytes, if already read)."""
    if data is None:
        opener = gzip.open if path.suffix.lower() == ".gz" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (
            f"{path}, line {line}: bytes that are not {encoding} at byte offset {exc.start} "
            f"({data[exc.start : exc.start + 4]!r}); set data.encoding (for example latin-1 or cp1252)"
        )
    return f"{path}: not valid {encoding}; set data.encoding"


SNIFF_CHARS = 1 << 16  # of the first line, enough to see how it starts


def first_line_starts_with(path: Path, prefix: str, encoding: str) -> bool:
    """Whether the first non-blank line of a text file starts with `prefix` (False when it cannot be read as
    text: the reader that is chosen instead reports why)."""
    try:
        with open_text(path, encoding) as fh:
            for _ in range(100):  # a few blank lines may come first
                line = fh.readline(SNIFF_CHARS)
                if not line:
                    return False
                if line.strip():
                    return line.lstrip().startswith(prefix)
    except (DataError, UnicodeDecodeError, LookupError, gzip.BadGzipFile, zlib.error, EOFError, OSError):
        return False
    return False
