import pytest

from llmcls.config import TokenizerConfig
from llmcls.data.tokenize import Tokenizer
from llmcls.errors import ConfigError


def tok(text, **options):
    return next(iter(Tokenizer(TokenizerConfig(**options))([text])))


def test_spacy_rules_and_lowercase_by_default():
    assert tok("It's a GREAT film, isn't it?") == ["it", "'s", "a", "great", "film", ",", "is", "n't", "it", "?"]


def test_case_kept_when_asked():
    assert tok("Great Film", lower=False) == ["Great", "Film"]


def test_max_tokens_truncates():
    assert tok("one two three four five", max_tokens=3) == ["one", "two", "three"]


def test_max_tokens_auto_is_refused_until_chosen():
    with pytest.raises(ConfigError, match="tokenizer.max_tokens: auto is chosen when training starts"):
        tok("one two", max_tokens="auto")


def test_stopword_removal():
    assert tok("this is not the best film of the year", remove_stopwords=True) == ["best", "film", "year"]


def test_lookup_lemmatizer():
    assert tok("The cats were running", lemmatize=True) == ["the", "cat", "be", "run"]


def test_whitespace_and_empty_texts():
    t = Tokenizer(TokenizerConfig())
    assert list(t(["", "  \n ", "a  b"])) == [[], [], ["a", "b"]]


def test_batches_keep_order():
    texts = [f"text number {i}" for i in range(2500)]
    out = list(Tokenizer(TokenizerConfig())(texts))
    assert [o[-1] for o in out] == [str(i) for i in range(2500)]


def test_compact_form_equals_token_lists():
    from llmcls.data.readers import read_examples
    from support.paths import FIXTURES

    texts = read_examples(FIXTURES / "sst2_train.csv").texts + ["", "   "]
    t = Tokenizer(TokenizerConfig())
    many = t.tokenize_many(texts)
    assert [many.tokens(i) for i in range(len(many))] == list(t(texts))
    assert many.ids.dtype.name == "int32" and len(set(many.table)) == len(many.table)


def test_cache_hit_skips_spacy_and_keys_on_texts_and_settings(tmp_path):
    texts = ["A fine film.", "", "Dull, dull, dull!"]
    first = Tokenizer(TokenizerConfig(), cache_dir=tmp_path).tokenize_many(texts)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again = Tokenizer(TokenizerConfig(), cache_dir=tmp_path)
    cached = again.tokenize_many(texts)
    assert not again.spacy_loaded  # served from disk
    assert [cached.tokens(i) for i in range(3)] == [first.tokens(i) for i in range(3)]
    cased = Tokenizer(TokenizerConfig(lower=False), cache_dir=tmp_path)
    assert cased.tokenize_many(texts).tokens(0) == ["A", "fine", "film", "."]
    other = Tokenizer(TokenizerConfig(), cache_dir=tmp_path)
    other.tokenize_many(texts + ["more"])
    assert other.spacy_loaded and len(list(tmp_path.glob("*.npz"))) == 3


def test_damaged_cache_is_ignored(tmp_path):
    texts = ["good", "bad"]
    Tokenizer(TokenizerConfig(), cache_dir=tmp_path).tokenize_many(texts)
    for path in tmp_path.glob("*.npz"):
        path.write_bytes(b"garbage")
    t = Tokenizer(TokenizerConfig(), cache_dir=tmp_path)
    assert t.tokenize_many(texts).tokens(1) == ["bad"] and t.spacy_loaded


def test_a_pickled_tokenizer_leaves_spacy_behind():
    """Sent to another training process, a tokenizer carries its settings, not the loaded spaCy pipeline."""
    import pickle

    t = Tokenizer(TokenizerConfig(lower=False))
    before = list(t(["Great Film!"]))
    assert t.spacy_loaded
    copy = pickle.loads(pickle.dumps(t))
    assert t.spacy_loaded and not copy.spacy_loaded
    assert list(copy(["Great Film!"])) == before == [["Great", "Film", "!"]]
