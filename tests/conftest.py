"""Shared fixtures: paths of the checked-in data, and small configs that train in seconds."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from llmcls.config import Config, validate_config

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHIPPED_GLOVE = ROOT / "data" / "glove.6B.50d.sst2.txt.gz"
SHARED_DATA = ROOT.parent / "shared" / "data"



def alias_bomb(levels: int) -> str:
    """Ten aliases to ten aliases to ... ten strings: `levels` lines that expand to 10**levels strings (7 levels:
    the issue's 339 bytes)."""
    names = "abcdefghijklmnop"
    lines = ["a: &a [" + ", ".join(['"x"'] * 10) + "]"]
    lines += [f"{names[i]}: &{names[i]} [{', '.join(['*' + names[i - 1]] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def cpu_runs_bf16() -> bool:
    """Whether oneDNN runs the LSTM in bfloat16 on this CPU (not on AVX2-only CPUs, or under
    ONEDNN_MAX_CPU_ISA=AVX2): the bf16 tests check the bf16 path there, and its refusal elsewhere."""
    import torch

    from llmcls.precision import bf16_problem

    return bf16_problem(torch.device("cpu")) is None


# Caches (tokens, downloads) go to a directory of this test session, never to the user's ~/.cache.
os.environ["LLMCLS_CACHE"] = tempfile.mkdtemp(prefix="llmcls-test-cache-")


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


def _updated(raw: dict, sections: dict) -> dict:
    """`raw` with each section's keys updated by `sections` (a value that is no mapping replaces the key)."""
    for section, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return raw


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BERT folder (tests/support/tiny_bert.py): a valid `model.encoder`."""
    pytest.importorskip("tokenizers")
    from support.tiny_bert import write_tiny_bert

    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def encoder_config(tmp_path: Path, encoder: Path, dataset: str = "sst2", **sections) -> Config:
    """A config that fine-tunes the tiny BERT on a checked-in sample in a few seconds."""
    raw = small_config(tmp_path, dataset).to_dict()
    for key in ("embeddings", "vocab", "model", "tokenizer", "train"):  # the BiLSTM's settings
        raw.pop(key)
    raw["name"] = f"tiny-lm-{dataset}"
    defaults = {"model": {"encoder": str(encoder)},
                "tokenizer": {"max_tokens": 64},
                "train": {"epochs": 4, "lr": 2e-3, "batch_size": 16, "threads": 1, "warmup_fraction": 0.0}}
    return validate_config(_updated(_updated(raw, defaults), sections), "test")


@pytest.fixture(scope="session")
def trained_encoder(tmp_path_factory, tiny_bert):
    """One tiny encoder run on the SST-2 sample, shared by the tests that only read a run directory."""
    from llmcls.training.loop import train

    tmp = tmp_path_factory.mktemp("encoder-run")
    return train(encoder_config(tmp, tiny_bert), device="cpu")


@pytest.fixture(scope="session")
def trained_sst2(tmp_path_factory):
    """One tiny SST-2 run shared by the tests that only read a run directory."""
    from llmcls.training.loop import train

    tmp = tmp_path_factory.mktemp("sst2run")
    return train(small_config(tmp), device="cpu")


def cold_predict(args: list[str]):
    """`llmcls predict ARGS` in a fresh Python process; returns the finished process, whose last line of output
    says whether torch was imported (`torch imported: False` on the ONNX path)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from llmcls.cli import app\n"
            "try:\n"
            f"    app(['predict', *{args!r}], standalone_mode=False)\n"
            "finally:\n"
            "    print('torch imported:', sys.modules.get('torch') is not None)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
