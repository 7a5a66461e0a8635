"""llmcls.data.prepare: the one way a labelled file of a run is read (empty texts skipped or refused, the held-out
validation part found again), labels turned into targets with a message naming the unknown ones, the texts to
predict read from a file or standard input, and `prepare_data` on the checked-in samples: new, resumed with a
run's own tables, and refused while `auto` keys are unresolved."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from llmcls.config import DataConfig
from llmcls.data.inputs import drop_empty_texts, read_input, read_labelled
from llmcls.data.prepare import encode_labelled, make_tokenizer, prepare_data
from llmcls.data.readers import Examples, read_examples
from llmcls.data.targets import build_label_map, encode_targets, label_sets, single_labels
from llmcls.data.vocab import LabelMap
from llmcls.embeddings import default_cache_dir
from llmcls.errors import ConfigError, DataError
from llmcls.events import Info
from support.configs import encoder_config, small_config
from support.paths import FIXTURES


def data_config(**changes) -> DataConfig:
    return DataConfig(train="train.csv", **changes)


def test_empty_texts_are_skipped_and_counted_or_refused():
    examples = Examples(["good", "  ", "", "bad\t", "\n"], ["pos", "neg", "neg", "neg", "pos"])
    said = []
    kept = drop_empty_texts(examples, "f.csv", policy="skip", on_event=said.append)
    assert (kept.texts, kept.labels) == (["good", "bad\t"], ["pos", "neg"])
    assert said == [Info("f.csv: skipped 3 empty or whitespace-only texts (the first is record 2)")]
    with pytest.raises(DataError) as caught:
        drop_empty_texts(examples, "f.csv", policy="error")
    assert str(caught.value) == (
        "f.csv: 3 empty or whitespace-only texts (the first is record 2); set data.empty_texts: skip to leave them out"
    )
    with pytest.raises(DataError, match=r"^f.csv: every text is empty$"):
        drop_empty_texts(Examples([" ", ""], ["a", "b"]), "f.csv", policy="skip")


def test_nothing_empty_is_returned_as_it_is_without_a_word():
    examples = Examples(["a", "b"], ["x", "y"])
    said = []
    assert drop_empty_texts(examples, "f.csv", policy="error", on_event=said.append) is examples and said == []


def test_read_labelled_applies_the_runs_empty_text_policy(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\ngood,pos\n   ,neg\nbad,neg\n", encoding="utf-8")
    said = []
    examples, where = read_labelled(small_config(tmp_path), path, said.append)
    assert where == str(path) and examples.texts == ["good", "bad"] and examples.labels == ["pos", "neg"]
    assert [e.message for e in said] == [f"{path}: skipped 1 empty or whitespace-only texts (the first is record 2)"]
    with pytest.raises(DataError, match="1 empty or whitespace-only texts"):
        read_labelled(small_config(tmp_path, data={"empty_texts": "error"}), path)


def test_the_held_out_validation_part_is_the_one_training_validates_on(tmp_path):
    config = small_config(tmp_path, "trec")  # no valid file: a part of the training file is held out
    examples, where = read_labelled(config)
    assert where == f"{config.data.train} (the held-out validation part)"
    data = prepare_data(config)
    assert data.valid_from_train and len(examples) == len(data.valid) == 50
    again = encode_labelled(examples, where, config=config, encoding=data.encoding, labels=data.labels)
    np.testing.assert_array_equal(again.texts.ids, data.valid.texts.ids)
    np.testing.assert_array_equal(again.texts.offsets, data.valid.texts.offsets)
    np.testing.assert_array_equal(again.targets, data.valid.targets)
    everything = read_examples(FIXTURES / "trec_train.csv").texts
    assert len(everything) == len(data.train) + len(data.valid)
    assert not set(examples.texts) & set(data.train_texts)  # held out: none of them is trained on


def test_an_unknown_label_is_named_with_the_known_ones():
    labels = LabelMap.build(["negative", "positive"])
    examples = Examples(["a", "b", "c"], ["positive", "neutral", "mixed"])
    with pytest.raises(DataError) as caught:
        encode_targets(examples, "v.csv", labels=labels, data=data_config())
    assert str(caught.value) == (
        "v.csv: labels not seen in the training data: 'mixed', 'neutral' (training labels: negative, positive)"
    )
    with pytest.raises(DataError) as caught:
        encode_targets(examples, "v.csv", labels=labels, data=data_config(), for_model=True)
    assert str(caught.value) == (
        "v.csv: labels the model was not trained on: 'mixed', 'neutral' (model labels: negative, positive)"
    )
    many = Examples([str(i) for i in range(12)], [f"c{i:02d}" for i in range(12)])
    with pytest.raises(DataError) as caught:
        encode_targets(many, "v.csv", labels=labels, data=data_config())
    message = str(caught.value)
    assert message.count("'c") == 10 and "'c09' ..." in message and "c10" not in message


def test_targets_are_class_ids_or_multi_hot_rows():
    labels = LabelMap.build(["b", "a", "c"])
    assert labels.labels == ["a", "b", "c"]  # sorted
    ids = encode_targets(Examples(["x", "y", "z"], ["c", "a", "c"]), "f", labels=labels, data=data_config())
    assert ids.dtype == np.int64 and ids.tolist() == [2, 0, 2]
    multi = data_config(multi_label=True, label_separator=";")
    rows = encode_targets(Examples(["x", "y", "z"], ["c; a", "", ["b", "b"]]), "f", labels=labels, data=multi)
    assert rows.dtype == np.float32 and rows.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]


def test_lists_in_single_label_data_point_at_multi_label():
    examples = Examples(["a", "b", "c", "d"], ["x", ["x", "y"], "y", ["y"]])
    with pytest.raises(DataError) as caught:
        single_labels(examples, "f.jsonl")
    assert str(caught.value) == (
        "f.jsonl: 2 labels are lists (the first in record 2); for multi-label data set data.multi_label: true"
    )
    assert label_sets(examples, "|") == [["x"], ["x", "y"], ["y"], ["y"]]


def test_the_label_map_holds_every_label_sorted_and_at_most_max_classes():
    examples = Examples(["1", "2", "3", "4"], ["NUM", "ABBR", "NUM", "HUM"])
    assert build_label_map(examples, "f", data_config()).labels == ["ABBR", "HUM", "NUM"]
    with pytest.raises(DataError) as caught:
        build_label_map(examples, "f", data_config(max_classes=2))
    assert str(caught.value) == (
        "f: label column 'label' holds 3 distinct labels, more than data.max_classes (2); is it the right column?"
    )
    multi = Examples(["1", "2"], ["LOC|NUM", " HUM |"])
    assert build_label_map(multi, "f", data_config(multi_label=True)).labels == ["HUM", "LOC", "NUM"]


def test_texts_to_predict_from_a_file_or_standard_input(tmp_path, monkeypatch):
    data = data_config()
    path = tmp_path / "in.csv"
    path.write_text("id,text,note\n1,a fine film,x\n2,,y\n3,dull,z\n", encoding="utf-8")
    assert read_input(str(path), data) == ["a fine film", "", "dull"]  # the run's text column; empty rows kept
    assert read_input(str(path), data, column="note") == ["x", "y", "z"]
    assert read_input(str(path), data, column=0) == ["1", "2", "3"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("first line\n\nthird, with a comma\n"))
    assert read_input("-", data) == ["first line", "", "third, with a comma"]  # plain text, one text a line
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"text": "from json"}\n{"text": "again"}\n'))
    assert read_input("-", data, fmt="jsonl") == ["from json", "again"]
    with pytest.raises(DataError, match="no text column 'body'"):
        read_input(str(path), data, column="body")


def test_the_tokenizer_cache_goes_where_the_config_says(tmp_path):
    assert make_tokenizer(small_config(tmp_path, tokenizer={"cache": False})).cache_dir is None
    assert (
        make_tokenizer(small_config(tmp_path, tokenizer={"cache_dir": str(tmp_path / "c")})).cache_dir == tmp_path / "c"
    )
    assert make_tokenizer(small_config(tmp_path)).cache_dir == default_cache_dir() / "tokens"


def test_a_config_with_auto_keys_is_refused_before_any_file_is_read(tmp_path):
    config = small_config(
        tmp_path, data={"train": str(tmp_path / "missing.csv")}, model={"pooling": "auto"}, train={"epochs": "auto"}
    )
    with pytest.raises(ConfigError) as caught:
        prepare_data(config)
    assert str(caught.value).startswith("model.pooling, train.epochs: auto must be chosen from the training data first")


def test_a_new_run_builds_its_tables_and_a_resumed_one_keeps_those_given(tmp_path):
    config = small_config(tmp_path)
    new = prepare_data(config)
    assert new.labels.labels == ["negative", "positive"] and new.vectors is not None and new.coverage is not None
    assert not new.valid_from_train and new.test is None
    assert len(new.train) == len(read_examples(FIXTURES / "sst2_train.csv")) and len(new.valid) == 200
    assert set(np.unique(new.train.targets)) == {0, 1}

    said = []
    resumed = prepare_data(config, said.append, vocab=new.vocab, labels=new.labels)
    assert resumed.vocab is new.vocab and resumed.labels is new.labels
    assert resumed.vectors is None and resumed.coverage is None  # the run's weights hold its vectors
    assert not [e for e in said if "vectors:" in getattr(e, "message", "")]
    np.testing.assert_array_equal(resumed.train.texts.ids, new.train.texts.ids)
    np.testing.assert_array_equal(resumed.valid.targets, new.valid.targets)


def test_an_encoder_cut_longer_than_the_model_reads_is_refused(tmp_path, tiny_bert):
    with pytest.raises(ConfigError) as caught:
        prepare_data(encoder_config(tmp_path, tiny_bert, tokenizer={"max_tokens": 129}))
    assert str(caught.value).startswith(
        f"tokenizer.max_tokens: 129 WordPiece tokens is more than {tiny_bert.name} "
        "reads (128: its 130 positions less [CLS] and [SEP])"
    )
    data = prepare_data(encoder_config(tmp_path, tiny_bert, tokenizer={"max_tokens": None}))
    assert data.encoding.max_tokens == 128 and data.vocab is None and data.tokenizer is None
    assert data.encoder.path == tiny_bert and int(data.train.texts.lengths.max()) <= 128
