"""Downloading a vector file from a URL into a local cache: size and time limits, a SHA-256 check (built in for the
official GloVe archives), and a note so that an unchanged cached copy is not hashed again."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from llmcls.errors import EmbeddingsError

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


@dataclass(frozen=True, kw_only=True)
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


def default_cache_dir() -> Path:
    return Path(os.environ.get("LLMCLS_CACHE", Path.home() / ".cache" / "llmcls"))


def download(
    url: str, cache_dir: Path, *, on_progress: ProgressFn | None = None, limits: DownloadLimits = DownloadLimits()
) -> Path:
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
            raise EmbeddingsError(
                f"{url}: {total} bytes, more than the limit of {limits.max_bytes} (embeddings.download_max_mb)"
            )
        done = 0
        # read1: at most one read of the socket, so that a server trickling bytes cannot outlast the deadline
        while chunk := response.read1(1 << 20):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if done > limits.max_bytes:
                raise EmbeddingsError(
                    f"{url}: more than the limit of {limits.max_bytes} bytes (embeddings.download_max_mb)"
                )
            if time.monotonic() > deadline:
                raise EmbeddingsError(
                    f"{url}: download took longer than {limits.total_timeout:g} s "
                    f"(embeddings.download_timeout); {done} bytes received"
                )
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
