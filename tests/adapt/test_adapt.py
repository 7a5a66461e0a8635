"""Defaults that adapt to the data: the profile of real training files, the settings it suggests, the commented
config `llmcls init` writes, and `auto` values resolved when training starts."""

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from llmcls.adapt import choices as adapt
from llmcls.adapt.choices import choose, resolve_auto
from llmcls.adapt.profile import DataProfile, EncoderFacts, profile_data
from llmcls.adapt.render import default_name, init_config
from llmcls.cli import app
from llmcls.config import load_config, validate_config
from llmcls.data.prepare import prepare_data
from llmcls.errors import ConfigError
from llmcls.events import Info
from llmcls.run.config_file import resume_config
from llmcls.training.loop import train
from support.configs import small_config
from support.paths import FIXTURES, ROOT

SST2 = ROOT / "data" / "sst2"
IMDB = FIXTURES / "imdb_train.csv"  # 60 real IMDB reviews (tests/fixtures/README.md)


def config_for(**data):
    return validate_config({"data": {key: str(value) for key, value in data.items()}}, "test")


def chosen(profile) -> dict:
    return {choice.key: choice.value for choice in choose(profile)}


@pytest.fixture(scope="module")
def sst2_profile():
    return profile_data(config_for(train=SST2 / "train.csv", valid=SST2 / "valid.csv"))


def test_profile_counts_every_row_and_samples_the_lengths(sst2_profile):
    p = sst2_profile
    assert (p.texts, p.train_texts, p.sampled) == (67_349, 67_349, 5_000)  # valid is a file: nothing held out
    assert p.class_counts == {"positive": 37_569, "negative": 29_780} and not p.multi_label
    assert p.percentiles[50] < p.percentiles[90] <= p.percentiles[95] <= p.percentiles[99] <= p.max_tokens < 100
    assert p.tokens_per_epoch == round(p.mean_tokens * 67_349)
    assert p.valid_median > 2 * p.percentiles[50]  # SST-2 trains on labelled phrases and validates on sentences


def test_short_phrases_get_no_cut_final_states_no_wide_branch_and_about_the_token_budget(sst2_profile):
    assert chosen(sst2_profile) == {
        "tokenizer.max_tokens": None,
        "model.pooling": "last",
        "model.wide": False,
        "train.epochs": round(adapt.TOKEN_BUDGET / sst2_profile.tokens_per_epoch),
        "train.patience": 3,
        "train.lr": 1e-3,
        "train.batch_size": 64,
    }
    assert 3 < chosen(sst2_profile)["train.epochs"] < 20
    reason = {c.key: c.reason for c in choose(sst2_profile)}["model.wide"]
    assert reason == (
        f"no n-gram branch: training holds fragments (median {sst2_profile.valid_median} validation "
        f"tokens, {sst2_profile.percentiles[50]} training; >= 2x)"
    )


def test_long_reviews_get_a_round_cut_near_p95_and_max_pooling():
    p = profile_data(config_for(train=IMDB))
    assert (p.texts, p.train_texts, p.sampled) == (60, 54, 60)  # 10% held out for validation, as training does
    assert p.percentiles[50] > adapt.LONG_P50 and p.percentiles[99] > adapt.SHORT_P99
    values = chosen(p)
    assert values["tokenizer.max_tokens"] % 50 == 0
    assert p.percentiles[95] <= values["tokenizer.max_tokens"] < p.percentiles[95] + 50
    assert values["model.pooling"] == "last_max" and values["model.wide"] is True and p.valid_median is None
    assert (values["train.epochs"], values["train.lr"], values["train.batch_size"]) == (20, 2e-3, 32)  # small data
    reason = {c.key: c.reason for c in choose(p)}["tokenizer.max_tokens"]
    assert reason.startswith(f"95% of 60 sampled training texts have at most {p.percentiles[95]} tokens")


def test_small_question_set_trains_the_most_epochs_with_early_stopping():
    p = profile_data(config_for(train=FIXTURES / "trec_train.csv"))
    assert (p.texts, p.classes, p.class_counts["ABBR"]) == (500, 6, 3)
    assert chosen(p) == {
        "tokenizer.max_tokens": None,
        "model.pooling": "last",
        "model.wide": True,
        "train.epochs": 20,
        "train.patience": 3,
        "train.lr": 2e-3,
        "train.batch_size": 32,
    }


def test_a_validation_file_of_texts_like_the_training_texts_keeps_the_wide_branch():
    p = profile_data(config_for(train=FIXTURES / "trec_train.csv", valid=FIXTURES / "trec_test.csv"))
    assert p.train_texts == 500 and 0.5 * p.percentiles[50] <= p.valid_median <= 1.5 * p.percentiles[50]
    wide = next(c for c in choose(p) if c.key == "model.wide")
    assert wide.value is True and wide.reason.startswith(f"the n-gram branch (texts alike: median {p.valid_median} ")


def test_json_lists_are_profiled_as_label_sets():
    p = profile_data(config_for(train=FIXTURES / "trec_multi_test.jsonl", label_column="labels"))
    assert p.multi_label and p.texts == 150
    assert sum(p.class_counts.values()) > 150  # a text counts once for each of its labels


def test_the_sample_is_bounded_and_seeded():
    config = config_for(train=FIXTURES / "trec_train.csv")
    a, b = profile_data(config, sample=100), profile_data(config, sample=100)
    assert a.sampled == 100 and a.texts == 500 and a == b


def test_thresholds_are_the_named_constants(sst2_profile):
    at = dataclasses.replace(sst2_profile, percentiles={**sst2_profile.percentiles, 99: adapt.SHORT_P99})
    assert chosen(at)["tokenizer.max_tokens"] is None
    over = dataclasses.replace(at, percentiles={50: 41, 90: 300, 95: 301, 99: adapt.SHORT_P99 + 1})
    assert chosen(over)["tokenizer.max_tokens"] == 350 and chosen(over)["model.pooling"] == "last_max"
    assert chosen(dataclasses.replace(at, valid_median=2 * at.percentiles[50]))["model.wide"] is False
    assert chosen(dataclasses.replace(at, valid_median=2 * at.percentiles[50] - 1))["model.wide"] is True
    huge = dataclasses.replace(sst2_profile, mean_tokens=1_000.0)
    assert chosen(huge)["train.epochs"] == adapt.MIN_EPOCHS


def test_default_names():
    assert default_name("tests/fixtures/trec_train.csv") == "trec"
    assert default_name(str(SST2 / "train.csv")) == "sst2"
    assert default_name("reviews.jsonl.gz") == "reviews"


def test_init_writes_a_commented_config_that_loads(tmp_path):
    out = tmp_path / "imdb.yaml"
    result = init_config({"train": str(IMDB), "test": str(FIXTURES / "sst2_valid.csv")}, out)
    text = out.read_text()
    config = load_config(out)
    assert config.name == "imdb" and config.data.train == str(IMDB) and config.data.test.endswith("sst2_valid.csv")
    values = {c.key: c.value for c in result.choices}
    assert config.tokenizer.max_tokens == values["tokenizer.max_tokens"] and config.model.pooling == "last_max"
    assert (config.train.epochs, config.train.patience, config.train.lr, config.train.batch_size) == (20, 3, 2e-3, 32)
    assert text.startswith("# Written by `llmcls init`") and "60 texts (54 to train on, 6 held out" in text
    assert "2 classes (single-label): positive 36, negative 24." in text
    max_tokens_line = next(line for line in text.splitlines() if line.strip().startswith("max_tokens:"))
    assert f"# 95% of 60 sampled training texts have at most {result.profile.percentiles[95]} tokens" in max_tokens_line
    assert "pooling: last_max" in text and "# long texts (median" in text and config.model.wide is True
    assert set(yaml.safe_load(text)) == {"name", "data", "tokenizer", "model", "train"}  # other keys: defaults


def test_init_refuses_to_overwrite_unless_forced(tmp_path):
    out = tmp_path / "trec.yaml"
    out.write_text("mine\n")
    data = {"train": str(FIXTURES / "trec_train.csv")}
    with pytest.raises(ConfigError, match="already exists; give --force"):
        init_config(data, out)
    assert out.read_text() == "mine\n"
    init_config(data, out, name="questions", force=True)
    assert load_config(out).name == "questions"


def test_init_marks_json_lists_as_multi_label(tmp_path):
    out = tmp_path / "multi.yaml"
    init_config({"train": str(FIXTURES / "trec_multi_test.jsonl"), "label_column": "labels"}, out)
    config = load_config(out)
    assert config.data.multi_label and config.train.select_metric == "micro_f1"
    assert "# the labels are lists" in out.read_text()


def test_init_names_a_bad_data_key(tmp_path):
    with pytest.raises(ConfigError, match="data.format"):
        init_config({"train": str(IMDB), "format": "xml"}, tmp_path / "x.yaml")
    assert not (tmp_path / "x.yaml").exists()


def test_auto_values_are_resolved_and_logged():
    config = config_for(train=FIXTURES / "trec_train.csv")
    for key in ("tokenizer.max_tokens", "model.pooling", "model.wide", "train.epochs"):
        section, leaf = key.split(".")
        setattr(getattr(config, section), leaf, "auto")
    events = []
    resolved = resolve_auto(config, events.append)
    assert (resolved.tokenizer.max_tokens, resolved.model.pooling, resolved.model.wide, resolved.train.epochs) == (
        None,
        "last",
        True,
        20,
    )
    assert resolved.train.patience == 3 and resolved.auto_keys() == [] and config.train.epochs == "auto"
    lines = [e.message for e in events if isinstance(e, Info)]
    assert any(line.startswith("train.epochs: 20 (about 6,000,000 training tokens") for line in lines)
    assert any(line.startswith("tokenizer.max_tokens: null (no cut") for line in lines)
    assert "model.wide: true (the n-gram branch (validation is held out of the training texts))" in lines
    with pytest.raises(ConfigError, match="tokenizer.max_tokens, model.pooling, model.wide, train.epochs: auto must"):
        prepare_data(config)


def test_a_patience_that_is_set_stays():
    config = validate_config(
        {"data": {"train": str(FIXTURES / "trec_train.csv")}, "train": {"epochs": "auto", "patience": None}}, "test"
    )
    resolved = resolve_auto(config)
    assert resolved.train.epochs == 20 and resolved.train.patience is None
    concrete = config_for(train=IMDB)
    assert resolve_auto(concrete) is concrete  # nothing to choose: the data is not even read


def test_training_saves_the_resolved_values_and_resume_keeps_them(tmp_path):
    config = small_config(
        tmp_path,
        data={"train": str(IMDB), "valid": str(IMDB)},
        tokenizer={"max_tokens": "auto"},
        model={"pooling": "auto"},
        train={"epochs": 1},
    )
    events = []
    result = train(config, device="cpu", on_event=events.append)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    cut = saved["tokenizer"]["max_tokens"]
    assert isinstance(cut, int) and cut % 50 == 0 and saved["model"]["pooling"] == "last_max"
    assert any(isinstance(e, Info) and e.message.startswith(f"tokenizer.max_tokens: {cut} (95% of") for e in events)
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump({**config.to_dict(), "tokenizer": {"max_tokens": "auto"}}))
    resumed = resume_config(result.run_dir, ["train.epochs=2"], path)  # `auto` keeps what the run chose
    assert (resumed.tokenizer.max_tokens, resumed.model.pooling, resumed.train.epochs) == (cut, "last_max", 2)


# `llmcls init --encoder`: a config that fine-tunes a pretrained model, its settings from WordPiece lengths.

TINY_LIMIT = 128  # write_tiny_bert's 130 positions less [CLS] and [SEP]
ENCODER_TRAIN_KEYS = {"epochs", "patience", "lr", "batch_size", "warmup_fraction"}

# What `llmcls init` wrote for the TREC fixture before --encoder existed: without it, the output stays this.
TREC_INIT = """\
# Written by `llmcls init` from tests/fixtures/trec_train.csv: 500 texts (450 to train on, 50 held out for validation).
# 6 classes (single-label): HUM 116, ENTY 114, DESC 111, NUM 79, LOC 77, ABBR 3.
# Tokens per text in 500 sampled texts: p50 10, p90 17, p95 19, p99 25, max 34; about 4,874 tokens per epoch.
# The keys below were chosen from these figures (the comments say why); every other key has its default
# (docs/configuration.md). Paths are relative to the directory you run llmcls from. Edit freely.
name: trec
data:
  train: tests/fixtures/trec_train.csv
  test: tests/fixtures/trec_test.csv
tokenizer:
  max_tokens: null          # no cut: 99% of 500 sampled training texts have at most 25 tokens (<= 128; p50 10, p99 25, max 34)
model:
  pooling: last             # short texts (median 10 tokens <= 40): the final states
  wide: true                # the n-gram branch (validation is held out of the training texts)
train:
  epochs: 20                # about 6,000,000 training tokens at ~4,874 tokens per epoch, kept within [3, 20]
  patience: 3               # stop when 3 epochs in a row bring no better validation score
  lr: 0.002                 # 450 training texts (< 10,000)
  batch_size: 32            # 450 training texts (< 5,000)
"""


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    pytest.importorskip("tokenizers")
    pytest.importorskip("safetensors")
    from support.tiny_bert import write_tiny_bert

    return write_tiny_bert(tmp_path_factory.mktemp("encoder") / "tiny_bert")


def wordpiece_lengths(folder, path) -> np.ndarray:
    """The WordPiece content tokens of every text of a fixture, counted apart from the profile."""
    from llmcls.data.wordpiece import WordPieceEncoding

    with open(path, encoding="utf-8", newline="") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    return WordPieceEncoding(folder / "tokenizer.json", max_tokens=None, limit=TINY_LIMIT).encode(texts).lengths


def encoder_profile(train_texts: int, p99: int = 100, hidden: int = 384, limit: int = 510) -> DataProfile:
    """A synthetic profile measured for an encoder: `train_texts` texts whose p99 is `p99` WordPiece tokens."""
    return DataProfile(
        path="x.csv",
        texts=train_texts,
        train_texts=train_texts,
        class_counts={"a": 2, "b": 1},
        multi_label=False,
        sampled=min(train_texts, 5_000),
        percentiles={50: max(p99 // 4, 1), 90: max(p99 // 2, 1), 95: max(p99 - 1, 1), 99: p99},
        max_tokens=2 * p99,
        mean_tokens=p99 / 4,
        encoder=EncoderFacts(spec="minilm", limit=limit, hidden_size=hidden, layers=6),
    )


def encoder_chosen(profile) -> dict:
    return {c.key: c.value for c in choose(profile)}


@pytest.mark.parametrize("train, valid", [("sst2_train.csv", "sst2_valid.csv"), ("trec_train.csv", None)])
def test_init_with_an_encoder_writes_a_fine_tuning_config_from_wordpiece_lengths(tmp_path, tiny_bert, train, valid):
    data = {"train": str(FIXTURES / train), **({"valid": str(FIXTURES / valid)} if valid else {})}
    out = tmp_path / "encoder.yaml"
    result = init_config(data, out, encoder=str(tiny_bert))
    lengths = wordpiece_lengths(tiny_bert, FIXTURES / train)
    p99 = int(np.ceil(np.percentile(lengths, 99)))
    assert result.profile.sampled == len(lengths) and result.profile.percentiles[99] == p99
    assert result.profile.max_tokens == lengths.max() and result.profile.encoder.limit == TINY_LIMIT
    config = load_config(out)
    assert config.uses_encoder and config.model.encoder == str(tiny_bert) and config.model.encoder_pooling == "mean"
    cut = config.tokenizer.max_tokens
    assert cut == min(max(math.ceil(p99 / 32) * 32, 32), TINY_LIMIT)
    assert 32 <= cut <= TINY_LIMIT and cut >= min(p99, TINY_LIMIT)  # 99% of the texts are whole, if the model allows
    train_texts = result.profile.train_texts  # under 2,000: 5 epochs, batches of 16, MiniLM's small-data step
    assert train_texts < adapt.TINY_DATA_TEXTS and (valid is None) == (train_texts < result.profile.texts)
    assert (
        config.train.epochs,
        config.train.patience,
        config.train.lr,
        config.train.batch_size,
        config.train.warmup_fraction,
        config.train.optimizer,
    ) == (5, 3, 1e-4, 16, 0.1, "adamw")
    assert {c.key: c.value for c in result.choices}["tokenizer.max_tokens"] == cut
    written = yaml.safe_load(out.read_text())
    assert set(written) == {"name", "data", "tokenizer", "model", "train"}  # no embeddings, vocab
    assert set(written["tokenizer"]) == {"max_tokens"} and set(written["model"]) == {"encoder", "encoder_pooling"}
    assert set(written["train"]) == ENCODER_TRAIN_KEYS


def test_the_encoder_config_comments_state_the_figures(tmp_path, tiny_bert):
    out = tmp_path / "trec.yaml"
    result = init_config({"train": str(FIXTURES / "trec_train.csv")}, out, encoder=str(tiny_bert))
    p = result.profile.percentiles
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0] == (
        f"# Written by `llmcls init --encoder {tiny_bert}` from {FIXTURES / 'trec_train.csv'}: "
        "500 texts (450 to train on, 50 held out for validation)."
    )
    assert lines[2] == (
        f"# WordPiece tokens per text (the encoder's, without [CLS] and [SEP]) in 500 sampled texts: "
        f"p50 {p[50]}, p90 {p[90]}, p95 {p[95]}, p99 {p[99]}, max {result.profile.max_tokens}; "
        "the model reads at most 128."
    )
    comment = {line.split(":")[0].strip(): line.split(" # ", 1)[1] for line in lines if " # " in line}
    assert comment["max_tokens"].startswith(
        f"99% of 500 sampled training texts have at most {p[99]} WordPiece tokens "
        f"(p50 {p[50]}, p95 {p[95]}, p99 {p[99]}, max {result.profile.max_tokens})"
    )
    assert "read whole at prediction with chunking" in comment["max_tokens"]
    assert (
        comment["encoder"] == "the pretrained model to fine-tune (2 layers, hidden size 32, at most 128 WordPiece "
        "tokens a text)"
    )
    assert comment["epochs"] == "450 training texts (< 5,000): small data takes a few more passes"
    assert comment["lr"] == "450 training texts (< 50,000), hidden size 32 (<= 384, MiniLM's)"
    assert comment["batch_size"] == "450 training texts (< 2,000): more, smaller steps"
    assert comment["warmup_fraction"].startswith("warm up over the first 10% of the steps")


def test_encoder_epochs_lr_and_batch_change_at_their_thresholds():
    def at(n, hidden=384):
        values = encoder_chosen(encoder_profile(n, hidden=hidden))
        return values["train.epochs"], values["train.lr"], values["train.batch_size"]

    assert at(adapt.TINY_DATA_TEXTS - 1) == (5, 1e-4, 16)
    assert at(adapt.TINY_DATA_TEXTS) == (5, 1e-4, 32)
    assert at(adapt.FEW_TEXTS - 1)[0] == 5 and at(adapt.FEW_TEXTS)[0] == 4
    assert at(adapt.SOME_TEXTS - 1)[0] == 4 and at(adapt.SOME_TEXTS)[0] == 3
    assert at(adapt.LARGE_DATA_TEXTS - 1) == (3, 1e-4, 32) and at(adapt.LARGE_DATA_TEXTS) == (3, 5e-5, 32)
    assert at(1_000, hidden=768)[1] == 5e-5 and at(adapt.LARGE_DATA_TEXTS, hidden=768)[1] == 2.5e-5
    reasons = {c.key: c.reason for c in choose(encoder_profile(adapt.FEW_TEXTS))}
    assert reasons["train.epochs"] == "5,000 training texts (>= 5,000, < 20,000)"
    wide = {c.key: c.reason for c in choose(encoder_profile(adapt.LARGE_DATA_TEXTS, hidden=768))}["train.lr"]
    assert wide == "50,000 training texts (>= 50,000), hidden size 768 (> 384, MiniLM's: x0.5 for a wider model)"


def test_the_encoder_cut_is_a_multiple_of_32_from_32_to_the_model_limit():
    def cut(p99, limit=510):
        return encoder_chosen(encoder_profile(1_000, p99=p99, limit=limit))["tokenizer.max_tokens"]

    assert (cut(1), cut(32), cut(33), cut(100), cut(480), cut(481)) == (32, 32, 64, 128, 480, 510)
    assert cut(5_000) == 510 and cut(40, limit=20) == 20  # the model reads no more
    over = {c.key: c.reason for c in choose(encoder_profile(1_000, p99=5_000))}["tokenizer.max_tokens"]
    assert over.startswith("99% of 1,000 sampled training texts have at most 5,000 WordPiece tokens")
    assert ": the model's limit, 510; longer texts are cut" in over
    short = {c.key: c.reason for c in choose(encoder_profile(1_000, p99=3))}["tokenizer.max_tokens"]
    assert "rounded up to a multiple of 32 (at least 32)" in short


def test_an_encoder_profile_chooses_no_bilstm_keys():
    keys = [c.key for c in choose(encoder_profile(1_000))]
    assert keys == [
        "tokenizer.max_tokens",
        "model.encoder",
        "model.encoder_pooling",
        "train.epochs",
        "train.patience",
        "train.lr",
        "train.batch_size",
        "train.warmup_fraction",
    ]


def test_auto_values_of_an_encoder_config_are_chosen_from_wordpiece_lengths(tiny_bert):
    config = validate_config(
        {
            "data": {"train": str(FIXTURES / "trec_train.csv")},
            "model": {"encoder": str(tiny_bert), "pooling": "auto", "wide": "auto"},
            "train": {"epochs": "auto"},
        },
        "test",
    )
    assert config.tokenizer.max_tokens == "auto"  # an encoder run's default
    events = []
    resolved = resolve_auto(config, events.append)
    p99 = int(np.ceil(np.percentile(wordpiece_lengths(tiny_bert, FIXTURES / "trec_train.csv"), 99)))
    assert resolved.tokenizer.max_tokens == min(max(math.ceil(p99 / 32) * 32, 32), TINY_LIMIT)
    assert (resolved.train.epochs, resolved.train.patience, resolved.model.wide) == (5, 3, False)
    assert resolved.auto_keys() == []
    lines = [e.message for e in events if isinstance(e, Info)]
    assert any(
        line.startswith(
            f"tokenizer.max_tokens: {resolved.tokenizer.max_tokens} (99% of 500 sampled "
            f"training texts have at most {p99} WordPiece tokens"
        )
        for line in lines
    )
    prepare_data(resolved)  # nothing left `auto`


def test_init_without_encoder_writes_what_it_wrote_before(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "trec.yaml"
    result = CliRunner().invoke(
        app,
        [
            "init",
            "--train",
            "tests/fixtures/trec_train.csv",
            "--test",
            "tests/fixtures/trec_test.csv",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == TREC_INIT


def test_the_shipped_cr_config_is_still_what_init_writes(tmp_path, monkeypatch):
    cr = ROOT.parent / "shared" / "data" / "cr"
    if not (cr / "train.csv").is_file():
        pytest.skip("needs ../shared/data/cr")
    monkeypatch.chdir(ROOT)
    shipped = (ROOT / "configs" / "cr.yaml").read_text()
    data = {
        "train": "../shared/data/cr/train.csv",
        "valid": "../shared/data/cr/valid.csv",
        "test": "../shared/data/cr/test.csv",
    }
    init_config(data, tmp_path / "cr.yaml", name="cr")
    written = (tmp_path / "cr.yaml").read_text()
    assert shipped.endswith(written) and shipped[: -len(written)].count("\n") == 4  # under 4 lines of its own


@pytest.mark.parametrize(
    "model, message",
    [
        (None, "no such folder"),
        ({"model_type": "gpt2"}, "model_type 'gpt2' is not a BERT-family model"),
    ],
)
def test_init_with_a_bad_encoder_says_so_in_one_line(tmp_path, model, message):
    pytest.importorskip("tokenizers")
    folder = tmp_path / "model"
    if model is not None:
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(model))
    out = tmp_path / "c.yaml"
    result = CliRunner().invoke(
        app, ["init", "--train", str(FIXTURES / "trec_train.csv"), "--encoder", str(folder), "--out", str(out)]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: model.encoder: {folder}") and message in lines[0]
    assert not out.exists()


def test_an_encoder_config_is_named_apart_from_the_bilstm_one(tmp_path, tiny_bert, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = {"train": str(FIXTURES / "sst2_train.csv")}
    bilstm = init_config(data)
    backbone = init_config(data, encoder=str(tiny_bert))
    assert (bilstm.path.name, backbone.path.name) == ("sst2.yaml", "sst2-lm.yaml")
    names = [load_config(result.path).name for result in (bilstm, backbone)]
    assert names == ["sst2", "sst2-lm"]  # runs/sst2 and runs/sst2-lm
