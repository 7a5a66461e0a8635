"""Small configs over the checked-in samples that train in seconds: the BiLSTM's and the tiny encoder's."""

from __future__ import annotations

from pathlib import Path

from llmcls.config import Config, validate_config
from support.paths import FIXTURES, SHIPPED_GLOVE


def small_config(tmp_path: Path, dataset: str = "sst2", **sections) -> Config:
    """A config over a checked-in sample that trains in a few seconds on 2 cores."""
    data = {
        "sst2": {"train": str(FIXTURES / "sst2_train.csv"), "valid": str(FIXTURES / "sst2_valid.csv")},
        "trec": {"train": str(FIXTURES / "trec_train.csv"), "test": str(FIXTURES / "trec_test.csv")},
    }[dataset]
    raw = {
        "name": f"tiny-{dataset}",
        "seed": 7,
        "output_dir": str(tmp_path / "runs"),
        "data": data,
        "embeddings": {"source": str(SHIPPED_GLOVE)},
        "vocab": {"add_from_vectors": 0},
        # one layer keeps the suite fast; the wide branch (on by default) stays on, so every path runs through it
        "model": {"hidden_size": 32, "num_layers": 1, "dropout": 0.2, "embedding_dropout": 0.1},
        "train": {"epochs": 8, "batch_size": 16, "lr": 0.005, "threads": 1},
    }
    return validate_config(_updated(raw, sections), "test")


def encoder_config(tmp_path: Path, encoder: Path, dataset: str = "sst2", **sections) -> Config:
    """A config that fine-tunes the tiny BERT on a checked-in sample in a few seconds."""
    raw = small_config(tmp_path, dataset).to_dict()
    for key in ("embeddings", "vocab", "model", "tokenizer", "train"):  # the BiLSTM's settings
        raw.pop(key)
    raw["name"] = f"tiny-lm-{dataset}"
    defaults = {
        "model": {"encoder": str(encoder)},
        "tokenizer": {"max_tokens": 64},
        "train": {"epochs": 4, "lr": 2e-3, "batch_size": 16, "threads": 1, "warmup_fraction": 0.0},
    }
    return validate_config(_updated(_updated(raw, defaults), sections), "test")


def _updated(raw: dict, sections: dict) -> dict:
    """`raw` with each section's keys updated by `sections` (a value that is no mapping replaces the key)."""
    for section, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return raw


def alias_bomb(levels: int) -> str:
    """Ten aliases to ten aliases to ... ten strings: `levels` lines that expand to 10**levels strings (7 levels:
    the issue's 339 bytes)."""
    names = "abcdefghijklmnop"
    lines = ["a: &a [" + ", ".join(['"x"'] * 10) + "]"]
    lines += [f"{names[i]}: &{names[i]} [{', '.join(['*' + names[i - 1]] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"
