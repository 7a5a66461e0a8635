"""Property-based tests: whatever bytes or text come in, the readers, the tokenizer and prediction either work
or raise the project's own error, never anything else."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmcls.config import TokenizerConfig
from llmcls.data.readers import Examples, read_examples
from llmcls.data.targets import single_labels
from llmcls.data.tokenize import Tokenizer
from llmcls.errors import DataError, LlmclsError
from llmcls.inference.predict import Predictor

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

csv_like = st.lists(
    st.lists(
        st.sampled_from(
            [
                "text",
                "label",
                "pos",
                "neg",
                "a b",
                '"',
                '""',
                ",",
                "\t",
                "\n",
                "\r\n",
                "é",
                "\x00",
                "\xff",
                "日本",
                "{",
                "}",
                ":",
                "[",
                "]",
            ]
        ),
        max_size=12,
    ),
    max_size=8,
).map(lambda rows: "".join("".join(r) + "\n" for r in rows))


def _read(tmp_path, suffix, content: bytes):
    path = tmp_path / f"f{suffix}"
    path.write_bytes(content)
    try:
        result = read_examples(path)
    except LlmclsError:
        return None
    assert isinstance(result, Examples)
    assert len(result.texts) == len(result.labels) > 0
    assert all(isinstance(t, str) for t in result.texts)
    # A JSONL label may be a list (multi-label data): then it is a list of strings.
    assert all(
        isinstance(label, str)
        or (suffix == ".jsonl" and isinstance(label, list) and all(isinstance(v, str) for v in label))
        for label in result.labels
    )
    return result


@SETTINGS
@given(content=st.binary(max_size=300))
def test_random_bytes_never_crash_the_readers(tmp_path, content):
    for suffix in (".csv", ".tsv", ".jsonl"):
        _read(tmp_path, suffix, b"text,label\n" + content if suffix == ".csv" else content)


@SETTINGS
@given(content=csv_like)
def test_csv_like_text_never_crashes_the_readers(tmp_path, content):
    for suffix in (".csv", ".tsv"):
        _read(tmp_path, suffix, ("text,label\n" + content).replace(",", "\t" if suffix == ".tsv" else ",").encode())


@SETTINGS
@given(
    records=st.lists(
        st.one_of(
            st.dictionaries(
                st.sampled_from(["text", "label", "x"]),
                st.one_of(st.text(max_size=20), st.integers(), st.none(), st.lists(st.integers(), max_size=2)),
            ),
            st.integers(),
            st.text(max_size=10),
        ),
        max_size=6,
    )
)
def test_random_jsonl_records(tmp_path, records):
    content = "\n".join(json.dumps(r) for r in records).encode()
    result = _read(tmp_path, ".jsonl", content)
    if result is not None:
        assert len(result) == sum(isinstance(r, dict) and isinstance(r.get("text"), str) for r in records)
        lists = [r["label"] for r in records if isinstance(r, dict) and isinstance(r.get("label"), list)]
        if lists:  # single-label preparation refuses them with the project's error, naming the fix
            with pytest.raises(DataError, match="data.multi_label"):
                single_labels(result, "f.jsonl")


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(TokenizerConfig(max_tokens=40))


@SETTINGS
@given(text=st.text(max_size=400))
def test_tokenizer_on_any_text(tokenizer, text):
    tokens = next(iter(tokenizer([text])))
    assert len(tokens) <= 40
    assert all(isinstance(t, str) and t and not t.isspace() for t in tokens)
    assert all(t == t.lower() for t in tokens)


@pytest.fixture(scope="module")
def predictor(trained_sst2):
    return Predictor.load(trained_sst2.run_dir, "cpu")


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(max_size=200), min_size=1, max_size=5))
def test_predict_on_any_text(predictor, texts):
    predictions = predictor.predict(texts, top_k=2)
    assert [p.text for p in predictions] == texts
    for p in predictions:
        assert p.label in {"negative", "positive"}
        assert np.isclose(sum(prob for _, prob in p.top), 1.0, atol=1e-5)
