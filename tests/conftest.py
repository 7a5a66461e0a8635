"""Shared fixtures: trained tiny runs and a tiny BERT folder, built once per session. Constants and helpers the
tests import live in tests/support (paths, configs, cpu, cold)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from support.configs import encoder_config, small_config

# Caches (tokens, downloads) go to a directory of this test session, never to the user's ~/.cache.
os.environ["LLMCLS_CACHE"] = tempfile.mkdtemp(prefix="llmcls-test-cache-")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BERT folder (tests/support/tiny_bert.py): a valid `model.encoder`."""
    pytest.importorskip("tokenizers")
    from support.tiny_bert import write_tiny_bert

    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


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
