from collections import Counter

import numpy as np

from llmcls.data.tokenize import TokenizedTexts
from llmcls.data.vocab import PAD, UNK, LabelMap, Vocab


def vocab_of(token_lists, max_size=25_000, min_freq=1) -> Vocab:
    return Vocab.build_from(TokenizedTexts.from_lists(token_lists), max_size, min_freq)


def plain_vocab(token_lists, max_size=25_000, min_freq=1) -> list[str]:
    """The oracle: the vocabulary's tokens counted with a Counter over token lists."""
    counts = Counter(token for tokens in token_lists for token in tokens if token not in (PAD, UNK))
    ranked = sorted((item for item in counts.items() if item[1] >= min_freq), key=lambda tf: (-tf[1], tf[0]))
    return [PAD, UNK] + [token for token, _ in ranked[:max_size]]


def plain_encoding(vocab: Vocab, token_lists) -> tuple[list[int], list[int]]:
    """The oracle: ids and offsets encoded one token at a time (an empty text is one <unk>)."""
    ids, offsets = [], [0]
    for tokens in token_lists:
        ids.extend([vocab.stoi.get(t, vocab.unk_index) for t in tokens] or [vocab.unk_index])
        offsets.append(len(ids))
    return ids, offsets


def test_order_limits_and_specials():
    v = vocab_of([["b", "a", "c", "a"], ["b", "d", "a"], ["<unk>"]], max_size=3, min_freq=1)
    assert v.itos == [PAD, UNK, "a", "b", "c"]  # a:3, b:2, then c/d tie (1) broken alphabetically
    assert (v.pad_index, v.unk_index) == (0, 1)
    assert vocab_of([["x", "x", "y"]], min_freq=2).itos == [PAD, UNK, "x"]


def test_encode_unknowns_and_empty():
    v = vocab_of([["good", "film"]])
    ids, offsets = v.encode_tokenized(TokenizedTexts.from_lists([["good", "bad", "film"], [], ["film", "film"]]))
    assert offsets.tolist() == [0, 3, 4, 6]
    assert ids.tolist() == [v.stoi["good"], 1, v.stoi["film"], 1, v.stoi["film"], v.stoi["film"]]
    assert ids.dtype == np.int64 and offsets.dtype == np.int64


def test_json_round_trip(tmp_path):
    v = vocab_of([["é", "日本", "a"]])
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
    v = vocab_of([["good", "film"]]).extend(["film", "superb", "dire", "superb"])
    assert v.itos == [PAD, UNK, "film", "good", "superb", "dire"]
    assert v.trainable == 4 and len(v) == 6
    v.save(tmp_path / "v.json")
    loaded = Vocab.load(tmp_path / "v.json")
    assert (loaded.itos, loaded.trainable) == (v.itos, 4)


def test_compact_build_and_encode_equal_the_list_based_oracle():
    from llmcls.config import TokenizerConfig
    from llmcls.data.readers import read_examples
    from llmcls.data.tokenize import Tokenizer
    from support.paths import FIXTURES

    texts = read_examples(FIXTURES / "sst2_train.csv").texts + ["", "zzzz unseen", ""]
    t = Tokenizer(TokenizerConfig())
    lists, many = list(t(texts)), t.tokenize_many(texts)
    for max_size, min_freq in ((25_000, 1), (100, 1), (25_000, 3)):
        compact = Vocab.build_from(t.tokenize_many(texts[:-3]), max_size, min_freq)
        assert compact.itos == plain_vocab(lists[:-3], max_size, min_freq)
    ids, offsets = compact.encode_tokenized(many)
    expected_ids, expected_offsets = plain_encoding(compact, lists)
    assert ids.tolist() == expected_ids and offsets.tolist() == expected_offsets
