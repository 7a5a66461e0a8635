from llmcls.config import TokenizerConfig
from llmcls.data.tokenize import Tokenizer


def tok(text, **options):
    return Tokenizer(TokenizerConfig(**options)).tokenize([text])[0]


def test_spacy_rules_and_lowercase_by_default():
    assert tok("It's a GREAT film, isn't it?") == ["it", "'s", "a", "great", "film", ",", "is", "n't", "it", "?"]


def test_case_kept_when_asked():
    assert tok("Great Film", lower=False) == ["Great", "Film"]


def test_max_tokens_truncates():
    assert tok("one two three four five", max_tokens=3) == ["one", "two", "three"]


def test_stopword_removal():
    assert tok("this is not the best film of the year", remove_stopwords=True) == ["best", "film", "year"]


def test_lookup_lemmatizer():
    assert tok("The cats were running", lemmatize=True) == ["the", "cat", "be", "run"]


def test_whitespace_and_empty_texts():
    t = Tokenizer(TokenizerConfig())
    assert t.tokenize(["", "  \n ", "a  b"]) == [[], [], ["a", "b"]]


def test_batches_keep_order():
    texts = [f"text number {i}" for i in range(2500)]
    out = Tokenizer(TokenizerConfig()).tokenize(texts)
    assert [o[-1] for o in out] == [str(i) for i in range(2500)]
