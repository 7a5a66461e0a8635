from llmcls.data.vocab import PAD, UNK, LabelMap, Vocab


def test_order_limits_and_specials():
    v = Vocab.build([["b", "a", "c", "a"], ["b", "d", "a"], ["<unk>"]], max_size=3, min_freq=1)
    assert v.itos == [PAD, UNK, "a", "b", "c"]  # a:3, b:2, then c/d tie (1) broken alphabetically
    assert (v.pad_index, v.unk_index) == (0, 1)
    assert Vocab.build([["x", "x", "y"]], min_freq=2).itos == [PAD, UNK, "x"]


def test_encode_unknowns_and_empty():
    v = Vocab.build([["good", "film"]])
    assert v.encode(["good", "bad", "film"]) == [v.stoi["good"], 1, v.stoi["film"]]
    assert v.encode([]) == [1]
    ids, offsets = v.encode_all([["good"], [], ["film", "film"]])
    assert offsets.tolist() == [0, 1, 2, 4]
    assert ids.tolist() == [v.stoi["good"], 1, v.stoi["film"], v.stoi["film"]]


def test_json_round_trip(tmp_path):
    v = Vocab.build([["é", "日本", "a"]])
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == v.itos
    labels = LabelMap.build(["pos", "neg", "pos"])
    labels.save(tmp_path / "l.json")
    assert LabelMap.load(tmp_path / "l.json").labels == ["neg", "pos"]


def test_label_map():
    labels = LabelMap.build(["NUM", "HUM", "LOC", "HUM"])
    assert labels.labels == ["HUM", "LOC", "NUM"]
    assert labels.encode(["LOC", "HUM"]).tolist() == [1, 0]
    assert labels.unknown(["LOC", "ABBR", "XYZ"]) == ["ABBR", "XYZ"]


def test_extend_appends_pretrained_words_after_training_tokens(tmp_path):
    v = Vocab.build([["good", "film"]]).extend(["film", "superb", "dire", "superb"])
    assert v.itos == [PAD, UNK, "film", "good", "superb", "dire"]
    assert v.trainable == 4 and len(v) == 6
    v.save(tmp_path / "v.json")
    loaded = Vocab.load(tmp_path / "v.json")
    assert (loaded.itos, loaded.trainable) == (v.itos, 4)


def test_compact_build_and_encode_equal_the_plain_ones():
    from conftest import FIXTURES
    from llmcls.config import TokenizerConfig
    from llmcls.data.readers import read_examples
    from llmcls.data.tokenize import Tokenizer

    texts = read_examples(FIXTURES / "sst2_train.csv").texts + ["", "zzzz unseen", ""]
    t = Tokenizer(TokenizerConfig())
    lists, many = t.tokenize(texts), t.tokenize_many(texts)
    for max_size, min_freq in ((25_000, 1), (100, 1), (25_000, 3)):
        plain = Vocab.build(lists[:-3], max_size, min_freq)
        compact = Vocab.build_from(t.tokenize_many(texts[:-3]), max_size, min_freq)
        assert compact.itos == plain.itos
    ids, offsets = plain.encode_tokenized(many)
    expected_ids, expected_offsets = plain.encode_all(lists)
    assert ids.tolist() == expected_ids.tolist() and offsets.tolist() == expected_offsets.tolist()
