"""A text far longer than the rest (a million tokens: a whole file pasted into one cell) trains with the default
config in bounded memory: training cuts such texts when tokenizer.max_tokens is null, and says so once; validation
and test texts are cut as eval and predict cut them."""

from __future__ import annotations

import csv
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from llmcls.data.prepare import prepare_data
from llmcls.data.readers import read_examples
from support.configs import small_config
from support.paths import FIXTURES, ROOT, SHIPPED_GLOVE

CUT_NOTE = (
    "1 of 601 training texts, far longer than the rest, were cut to their first 1,000 tokens (4 x the 99th "
    "percentile of the lengths, within 1,000 .. 10,000); tokenizer.max_tokens sets a cut of your own"
)


def with_long_text(source: Path, out: Path, tokens: int, tail: str = "") -> Path:
    """`source`'s rows plus one text of `tokens` words of its own vocabulary (then `tail`), labelled as the first."""
    examples = read_examples(source)
    words = " ".join(examples.texts).split()
    rng = np.random.default_rng(0)
    long_text = " ".join(words[i] for i in rng.integers(0, len(words), tokens)) + tail
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(zip(examples.texts + [long_text], examples.labels + [examples.labels[0]]))
    return out


def test_a_text_far_longer_than_the_rest_is_cut_once_and_said(tmp_path):
    train = with_long_text(FIXTURES / "sst2_train.csv", tmp_path / "train.csv", 5_000, tail=" zzzbeyondthecut")
    valid = with_long_text(FIXTURES / "sst2_valid.csv", tmp_path / "valid.csv", 300)
    config = small_config(
        tmp_path, data={"train": str(train), "valid": str(valid)}, tokenizer={"predict_max_tokens": 100}
    )
    events = []
    data = prepare_data(config, events.append)
    assert [e.message for e in events if "far longer" in e.message] == [CUT_NOTE]
    assert data.train.texts.lengths.max() == 1_000 and data.train.texts.lengths[-1] == 1_000
    assert "zzzbeyondthecut" not in data.vocab.stoi  # the vocabulary is that of the texts the model trains on
    assert data.valid.texts.lengths.max() == 100  # cut where eval cuts it: tokenizer.predict_max_tokens
    assert data.tokenizer.config.max_tokens == 1_000  # distillation tokenizes the training texts again, alike


def test_a_cut_of_ones_own_replaces_the_default(tmp_path):
    train = with_long_text(FIXTURES / "sst2_train.csv", tmp_path / "train.csv", 5_000, tail=" zzzbeyondthecut")
    events = []
    data = prepare_data(
        small_config(tmp_path, data={"train": str(train)}, tokenizer={"max_tokens": 6_000}), events.append
    )
    assert not [e for e in events if "far longer" in e.message]
    assert 5_000 < data.train.texts.lengths.max() < 6_000 and "zzzbeyondthecut" in data.vocab.stoi


def limit_memory() -> None:
    three_gb = 3 << 30
    resource.setrlimit(resource.RLIMIT_AS, (three_gb, three_gb))


def test_a_million_token_text_trains_under_3_gb_with_the_default_config(tmp_path):
    """The issue's case, through the real CLI in a process limited to 3 GB of address space: a million-token text
    among the training texts and another among the validation texts. Only the model is made small and one epoch
    short, for the suite's time; the tokenizer and batching keys keep their defaults."""
    train = with_long_text(FIXTURES / "sst2_train.csv", tmp_path / "train.csv", 1_000_000)
    valid = with_long_text(FIXTURES / "sst2_valid.csv", tmp_path / "valid.csv", 1_000_000)
    config = {
        "name": "long",
        "output_dir": str(tmp_path / "runs"),
        "data": {"train": str(train), "valid": str(valid)},
        "embeddings": {"source": str(SHIPPED_GLOVE)},
        "vocab": {"add_from_vectors": 0},
        "model": {"hidden_size": 32, "num_layers": 1},
        "train": {"epochs": 1, "threads": 1, "plots": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "llmcls", "train", "--config", str(path), "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        preexec_fn=limit_memory,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert output.count("far longer than the rest, were cut to their first 1,000 tokens") == 1
    assert "tokenizer.max_tokens sets a cut of your own" in output
    assert (tmp_path / "runs" / "long" / "model.safetensors").is_file()
