"""llmcls.serve.schemas.read_predict_request: the body of POST /v1/predict parsed and checked without FastAPI's
per-request machinery, yet with FastAPI's refusals and messages (checked against a real FastAPI route taking the
same model), plus what FastAPI cannot say: a body nested too deeply, a number too large to read, bytes that are
not UTF-8. JSON is read only when the Content-Type says JSON (application/json or a +json subtype)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmcls.serve.responses import RequestRefused, install_error_handlers
from llmcls.serve.schemas import PredictRequest, read_predict_request

JSON = "application/json"
NOT_AN_OBJECT = 'body: expected a JSON object such as {"texts": ["..."]}, sent as Content-Type: application/json'


def refusal(body: bytes, content_type: str | None = JSON) -> tuple[int, str, str | None]:
    with pytest.raises(RequestRefused) as caught:
        read_predict_request(body, content_type)
    return caught.value.status, caught.value.message, caught.value.field


@pytest.fixture(scope="module")
def fastapi_route():
    """A FastAPI route taking a PredictRequest body, with the server's error handlers: the reference."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/predict")
    def predict(request: PredictRequest) -> dict:
        return {"request": request.model_dump()}

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b'{"texts": ["a", ', JSON),  # malformed
        (b'{"texts": ["a"], "colour": "red"}', JSON),  # an unknown field
        (b'{"texts": ["a"], "colour": 1, "size": 2}', JSON),  # two
        (b"{}", JSON),
        (b'{"texts": []}', JSON),
        (b'{"texts": "a film"}', JSON),
        (b'{"texts": ["ok", 3, 4]}', JSON),
        (b'{"texts": ["a"], "top_k": 0}', JSON),
        (b'{"texts": ["a"], "top_k": 1e400}', JSON),
        (b'{"texts": ["a"], "threshold": 1.0}', JSON),
        (b'{"texts": ["a"], "chunk_stride": 0}', JSON),
        (b'{"texts": ["a"], "chunk_aggregate": "median"}', JSON),
        (b"[1, 2]", JSON),
        (b"null", JSON),
        (b'"texts"', JSON),
        (b"", JSON),
        (b"", None),
        (b'{"texts": ["a"]}', "text/plain"),
        (b'{"texts": ["a"]}', None),
        (b'{"texts": ["a"]}', "text/json"),
        (b'{"texts": ["a"]}', "application/jsonx"),
        (b'{"texts": ["a"]}', "application/vnd.api+json"),
        (b'{"texts": ["a"]}', "Application/JSON; charset=utf-8"),
        (b'{"texts": ["a", "b"], "top_k": 2, "chunk_tokens": 0, "chunk_aggregate": "max"}', JSON),
    ],
)
def test_refusals_and_messages_are_fastapis(fastapi_route, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    reference = fastapi_route.post("/v1/predict", content=body, headers=headers)
    try:
        request = read_predict_request(body, content_type)
    except RequestRefused as exc:
        error = {"status": exc.status, "message": exc.message, **({"field": exc.field} if exc.field else {})}
        assert (reference.status_code, reference.json()) == (exc.status, {"error": error})
    else:
        assert reference.status_code == 200 and reference.json() == {"request": request.model_dump()}


def test_malformed_json_names_what_is_wrong():
    assert refusal(b'{"texts": ["a", ') == (422, "body: malformed JSON (Expecting value)", "body")
    quoted = "body: malformed JSON (Expecting property name enclosed in double quotes)"
    assert refusal(b"{'texts': ['a']}") == (422, quoted, "body")


def test_deep_nesting_and_huge_integers_are_refused_in_one_line():
    deep = b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert refusal(deep) == (422, "body: JSON nested too deeply", "body")
    huge = b'{"texts": ["a"], "top_k": ' + b"9" * 5000 + b"}"
    assert refusal(huge) == (422, "body: a JSON number too large to read", "body")
    nested_huge = b'{"texts": ["a"], "colour": [[' + b"1" * 10_000 + b"]]}"  # anywhere in the body
    assert refusal(nested_huge) == (422, "body: a JSON number too large to read", "body")


def test_bytes_that_are_not_utf8_are_a_bad_request():
    assert refusal(b'{"texts": ["caf\xe9"]}') == (400, "body: not UTF-8 text", None)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/merge-patch+json",
        "application/vnd.llmcls.v1+json; charset=utf-8",
    ],
)
def test_json_and_its_plus_json_subtypes_are_read(content_type):
    request = read_predict_request(b'{"texts": ["a fine film"], "top_k": 2}', content_type)
    assert request.texts == ["a fine film"] and request.top_k == 2


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/json",
        "application/jsonx",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json+xml",
        "json",
    ],
)
def test_a_body_not_declared_as_json_is_not_parsed(content_type):
    assert refusal(b'{"texts": ["a"]}', content_type) == (422, NOT_AN_OBJECT, "body")
    # nor is a body that would be refused as JSON: it is never parsed
    assert refusal(b"[" * 100_000, content_type) == (422, NOT_AN_OBJECT, "body")


def test_unknown_fields_are_refused_by_name_and_counted():
    assert refusal(b'{"texts": ["a"], "colour": "red"}') == (422, "colour: unknown field", "colour")
    assert refusal(b'{"texts": ["a"], "b": 1, "a": 2}') == (422, "b: unknown field (and 1 more)", "b")
    assert refusal(b'{"text": ["a"]}') == (422, "texts: required field is missing (and 1 more)", "texts")


def test_texts_must_be_strings_not_numbers_or_nulls():
    assert refusal(b'{"texts": ["ok", 3]}') == (422, "texts.1: Input should be a valid string", "texts.1")
    assert refusal(b'{"texts": [null]}') == (422, "texts.0: Input should be a valid string", "texts.0")


def test_the_options_and_their_chunking_changes():
    request = read_predict_request(b'{"texts": ["a", ""]}', JSON)
    assert (request.top_k, request.threshold, request.chunking()) == (1, None, {})
    request = read_predict_request(b'{"texts": ["a"], "chunk_tokens": 0}', JSON)
    assert request.chunking() == {"max_tokens": None}  # 0: no chunking
    request = read_predict_request(
        b'{"texts": ["a"], "chunk_tokens": 64, "chunk_stride": 32, "chunk_aggregate": "max", "threshold": 0.3}', JSON
    )
    assert request.chunking() == {"max_tokens": 64, "stride": 32, "aggregate": "max"} and request.threshold == 0.3
    for bad, field in [
        (b'"threshold": 0', "threshold"),
        (b'"threshold": 1', "threshold"),
        (b'"chunk_tokens": -1', "chunk_tokens"),
        (b'"top_k": 2.5', "top_k"),
    ]:
        assert refusal(b'{"texts": ["a"], ' + bad + b"}")[2] == field
