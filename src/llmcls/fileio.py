"""Writing files so that a crash, a kill or a full disk never leaves a half-written one. Every layer writes through
here: the data layer (token cache, vocabulary), the run directory, and the CLI (`predict --output`)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from llmcls.errors import LlmclsError, WriteError

# `.NAME.PID.HEX8.tmp`: the temporary file of an atomic write of NAME, left behind only when the write was killed
_TEMPORARY = re.compile(r"\.(.+)\.[0-9]+\.[0-9a-f]{8}\.tmp")


def temporary_of(name: str) -> str | None:
    """The name of the file whose atomic write made the temporary file `name`, or None when `name` is not the
    name of such a temporary file."""
    match = _TEMPORARY.fullmatch(name)
    return match.group(1) if match else None


@contextmanager
def atomic_open(path: Path, error: type[LlmclsError] = WriteError, *, text: bool = False) -> Iterator[IO]:
    """A file to write that appears at `path` only once the block ends without an error (temp file, fsync,
    rename): a crash leaves either the old file or the new one, never a mix.

    Args:
        error: the error type raised when the file cannot be written: RunError for a file of a run directory.
        text: a text file (UTF-8, line endings as written) instead of a binary one.

    Raises:
        WriteError (or `error`): the file cannot be written (no space left, no permission, ...); the old file is
            untouched.
    """
    if path.exists() and not path.is_file():  # /dev/null, a named pipe: written in place, never replaced
        yield from _write_in_place(path, error, text)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # as _TEMPORARY matches
    try:
        # created with the usual permissions (umask), unlike mkstemp's 0600
        with open(tmp, "x", encoding="utf-8", newline="") if text else open(tmp, "xb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        kept = " (the previous version is kept)" if path.exists() else ""
        raise error(f"{path}: cannot write: {exc.strerror or exc}{kept}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_in_place(path: Path, error: type[LlmclsError], text: bool) -> Iterator[IO]:
    try:
        with open(path, "w", encoding="utf-8", newline="") if text else open(path, "wb") as fh:
            yield fh
    except OSError as exc:
        raise error(f"{path}: cannot write: {exc.strerror or exc}") from None


def atomic_write_bytes(path: Path, data: bytes, error: type[LlmclsError] = WriteError) -> None:
    """Write `data` to `path` through `atomic_open`: a crash leaves either the old file or the new one."""
    with atomic_open(path, error) as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str, error: type[LlmclsError] = WriteError) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), error)
