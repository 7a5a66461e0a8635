"""Defaults that adapt to the data: the profile of real training files, the settings it suggests, the commented
config `llmcls init` writes, and `auto` values resolved when training starts."""

import dataclasses

import pytest
import yaml

from llmcls.adapt import choices as adapt
from llmcls.adapt.choices import choose, resolve_auto
from llmcls.adapt.profile import profile_data
from llmcls.adapt.render import default_name, init_config
from llmcls.config import load_config, resume_config, validate_config
from llmcls.data.prepare import prepare_data
from llmcls.errors import ConfigError
from llmcls.events import Info
from llmcls.training.loop import train

from conftest import FIXTURES, ROOT, small_config

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
    assert chosen(sst2_profile) == {"tokenizer.max_tokens": None, "model.pooling": "last", "model.wide": False,
                                    "train.epochs": round(adapt.TOKEN_BUDGET / sst2_profile.tokens_per_epoch),
                                    "train.patience": 3, "train.lr": 1e-3, "train.batch_size": 64}
    assert 3 < chosen(sst2_profile)["train.epochs"] < 20
    reason = {c.key: c.reason for c in choose(sst2_profile)}["model.wide"]
    assert reason == (f"no n-gram branch: training holds fragments (median {sst2_profile.valid_median} validation "
                      f"tokens, {sst2_profile.percentiles[50]} training; >= 2x)")


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
    assert chosen(p) == {"tokenizer.max_tokens": None, "model.pooling": "last", "model.wide": True,
                         "train.epochs": 20, "train.patience": 3, "train.lr": 2e-3, "train.batch_size": 32}


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
    assert (resolved.tokenizer.max_tokens, resolved.model.pooling, resolved.model.wide, resolved.train.epochs) == \
        (None, "last", True, 20)
    assert resolved.train.patience == 3 and resolved.auto_keys() == [] and config.train.epochs == "auto"
    lines = [e.message for e in events if isinstance(e, Info)]
    assert any(line.startswith("train.epochs: 20 (about 6,000,000 training tokens") for line in lines)
    assert any(line.startswith("tokenizer.max_tokens: null (no cut") for line in lines)
    assert "model.wide: true (the n-gram branch (validation is held out of the training texts))" in lines
    with pytest.raises(ConfigError, match="tokenizer.max_tokens, model.pooling, model.wide, train.epochs: auto must"):
        prepare_data(config)


def test_a_patience_that_is_set_stays():
    config = validate_config({"data": {"train": str(FIXTURES / "trec_train.csv")},
                              "train": {"epochs": "auto", "patience": None}}, "test")
    resolved = resolve_auto(config)
    assert resolved.train.epochs == 20 and resolved.train.patience is None
    concrete = config_for(train=IMDB)
    assert resolve_auto(concrete) is concrete  # nothing to choose: the data is not even read


def test_training_saves_the_resolved_values_and_resume_keeps_them(tmp_path):
    config = small_config(tmp_path, data={"train": str(IMDB), "valid": str(IMDB)},
                          tokenizer={"max_tokens": "auto"}, model={"pooling": "auto"}, train={"epochs": 1})
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
