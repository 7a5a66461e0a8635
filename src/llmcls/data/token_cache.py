"""An on-disk cache of tokenized texts, keyed by the texts themselves and every setting that shapes tokens."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

from llmcls.errors import WriteError
from llmcls.fileio import atomic_write_bytes

CACHE_VERSION = 1


def cache_key(texts: list[str], settings: dict) -> str:
    """A digest of the texts, the tokenizer settings and the versions of the code that tokenizes."""
    versions = {name: _version(name) for name in ("spacy", "spacy-lookups-data")}
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, settings, versions], sort_keys=True).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def load(cache_dir: Path, key: str):
    """The cached (table, ids, offsets) for `key`, or None when absent, unreadable or inconsistent: a damaged
    cache file (truncated, not a zip, ids past the table) is a miss, and the caller's save replaces it."""
    path = cache_dir / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            table = json.loads(saved["table"].tobytes().decode("utf-8"))
            ids, offsets = saved["ids"], saved["offsets"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # UnicodeDecodeError is a ValueError
        return None
    return (table, ids, offsets) if _consistent(table, ids, offsets) else None


def _consistent(table: object, ids: np.ndarray, offsets: np.ndarray) -> bool:
    """Whether a cached tokenization can be used as it is: ids [total] index the table, offsets [n_texts + 1]
    run from 0 to the number of ids without going back."""
    if not isinstance(table, list) or ids.ndim != 1 or offsets.ndim != 1 or len(offsets) == 0:
        return False
    if not (np.issubdtype(ids.dtype, np.integer) and np.issubdtype(offsets.dtype, np.integer)):
        return False
    in_table = len(ids) == 0 or (ids.min() >= 0 and ids.max() < len(table))
    return bool(in_table and offsets[0] == 0 and offsets[-1] == len(ids) and np.all(np.diff(offsets) >= 0))


def save(cache_dir: Path, key: str, *, table: list[str], ids: np.ndarray, offsets: np.ndarray) -> None:
    """Store a tokenization; a cache that cannot be written is no error (the next run tokenizes again)."""
    buffer = io.BytesIO()
    encoded_table = np.frombuffer(json.dumps(table, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
    np.savez(buffer, table=encoded_table, ids=ids, offsets=offsets)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache_dir / f"{key}.npz", buffer.getvalue())
    except (OSError, WriteError):  # a read-only or full cache directory only costs speed
        pass
