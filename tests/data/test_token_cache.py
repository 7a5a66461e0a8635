"""A damaged token-cache file is a cache miss: the texts are tokenized again and the file is replaced."""

import io
import json

import numpy as np
import pytest

from llmcls.config import TokenizerConfig
from llmcls.data import token_cache
from llmcls.data.tokenize import Tokenizer

TEXTS = ["A fine film.", "Dull, dull, dull!"]


def cached_file(tmp_path):
    Tokenizer(TokenizerConfig(), cache_dir=tmp_path).tokenize_many(TEXTS)
    (path,) = tmp_path.glob("*.npz")
    return path


def npz(table, ids, offsets) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, table=np.frombuffer(json.dumps(table).encode(), dtype=np.uint8), ids=ids, offsets=offsets)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "damage",
    [
        "truncated zip",
        "zip of nothing",
        "ids past the table",
        "offsets past the ids",
        "offsets going back",
        "float ids",
    ],
)
def test_a_damaged_cache_file_is_a_miss_and_is_rebuilt(tmp_path, damage):
    path = cached_file(tmp_path)
    good = path.read_bytes()
    path.write_bytes(
        {
            "truncated zip": good[: len(good) // 2],  # starts like a zip: np.load raised BadZipFile
            "zip of nothing": b"PK\x05\x06" + b"\x00" * 18,
            "ids past the table": npz(["a", "b"], np.array([0, 1, 2], np.int32), np.array([0, 1, 3])),
            "offsets past the ids": npz(["a", "b"], np.array([0, 1], np.int32), np.array([0, 1, 3])),
            "offsets going back": npz(["a", "b"], np.array([0, 1], np.int32), np.array([0, 2, 1, 2])),
            "float ids": npz(["a", "b"], np.array([0.0, 1.0]), np.array([0, 1, 2])),
        }[damage]
    )
    assert token_cache.load(tmp_path, path.stem) is None
    again = Tokenizer(TokenizerConfig(), cache_dir=tmp_path)
    assert again.tokenize_many(TEXTS).tokens(1) == ["dull", ",", "dull", ",", "dull", "!"] and again.spacy_loaded
    assert path.read_bytes() == good  # rebuilt


def test_a_sound_cache_file_is_read(tmp_path):
    path = cached_file(tmp_path)
    table, ids, offsets = token_cache.load(tmp_path, path.stem)
    assert [table[j] for j in ids[offsets[0] : offsets[1]]] == ["a", "fine", "film", "."]
