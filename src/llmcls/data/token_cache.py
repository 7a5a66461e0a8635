"""An on-disk cache of tokenized texts, keyed by the texts themselves and every setting that shapes tokens."""

from __future__ import annotations

import hashlib
import io
import json
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
    """The cached (table, ids, offsets) for `key`, or None when absent or unreadable."""
    path = cache_dir / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            table = json.loads(saved["table"].tobytes().decode("utf-8"))
            return table, saved["ids"], saved["offsets"]
    except (OSError, ValueError, KeyError):
        return None


def save(cache_dir: Path, key: str, table: list[str], ids: np.ndarray, offsets: np.ndarray) -> None:
    """Store a tokenization; a cache that cannot be written is no error (the next run tokenizes again)."""
    buffer = io.BytesIO()
    encoded_table = np.frombuffer(json.dumps(table, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
    np.savez(buffer, table=encoded_table, ids=ids, offsets=offsets)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache_dir / f"{key}.npz", buffer.getvalue())
    except (OSError, WriteError):  # a read-only or full cache directory only costs speed
        pass
