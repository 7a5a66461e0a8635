"""llmcls.serve.responses: the one error shape, pydantic's errors said in the API's words, and the handlers that
answer every failure of a real FastAPI app in that shape: refused requests with their headers, invalid bodies,
bad options, HTTP errors, and unexpected exceptions without their text."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from llmcls.errors import ConfigError
from llmcls.serve.responses import (
    INTERNAL_ERROR,
    RETRY_AFTER_S,
    RequestRefused,
    error_body,
    install_error_handlers,
    validation_message,
)

SECRET = "/home/alice/runs/model.safetensors: permission denied"  # what an exception may say, never a client


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr]
    top_k: int = 1


def errors_of(value) -> list[dict]:
    with pytest.raises(ValidationError) as caught:
        Body.model_validate(value)
    return caught.value.errors()


def test_the_error_body_holds_field_and_limit_only_when_there_are_some():
    assert error_body(404, "no such plot") == {"error": {"status": 404, "message": "no such plot"}}
    assert error_body(413, "too many", field="texts", limit="max_texts") == {
        "error": {"status": 413, "message": "too many", "field": "texts", "limit": "max_texts"}
    }
    assert error_body(503, "busy", limit="max_concurrent") == {
        "error": {"status": 503, "message": "busy", "limit": "max_concurrent"}
    }


def test_a_refusal_carries_what_was_at_fault():
    refused = RequestRefused(
        503, "too many requests", limit="max_concurrent", headers={"Retry-After": str(RETRY_AFTER_S)}
    )
    assert (refused.status, refused.message, refused.field, refused.limit) == (
        503,
        "too many requests",
        None,
        "max_concurrent",
    )
    assert str(refused) == "too many requests" and refused.headers == {"Retry-After": "1"}


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"texts": ["a"], "colour": "red"}, ("colour", "colour: unknown field")),
        ({}, ("texts", "texts: required field is missing")),
        ({"texts": []}, None),  # a list may be empty in this model: no error
        ({"texts": ["a", 2]}, ("texts.1", "texts.1: Input should be a valid string")),
        ({"texts": [1, 2, 3], "top_k": "x"}, ("texts.0", "texts.0: Input should be a valid string (and 3 more)")),
    ],
)
def test_pydantic_errors_in_the_apis_words(value, expected):
    if expected is None:
        Body.model_validate(value)
        return
    assert validation_message(errors_of(value)) == expected


def test_fastapis_body_prefix_is_dropped_and_its_json_errors_name_the_cause():
    assert validation_message([{"type": "missing", "loc": ("body", "texts"), "msg": "Field required"}]) == (
        "texts",
        "texts: required field is missing",
    )
    invalid = {
        "type": "json_invalid",
        "loc": ("body", 12),
        "msg": "JSON decode error",
        "ctx": {"error": "Expecting value"},
    }
    assert validation_message([invalid]) == ("body", "body: malformed JSON (Expecting value)")
    assert validation_message(
        [
            {
                "type": "too_short",
                "loc": ("body", "texts"),
                "msg": "List should have at least 1 item after validation, not 0",
            }
        ]
    ) == ("texts", "texts: must not be empty")
    assert validation_message([{"type": "something_new", "loc": (), "msg": "Odd"}]) == ("body", "body: Odd")
    for kind in ("model_attributes_type", "dict_type"):  # a body that is no object, or not sent as JSON
        assert validation_message([{"type": kind, "loc": ("body",), "msg": "Input should be a valid dictionary"}]) == (
            "body",
            'body: expected a JSON object such as {"texts": ["..."]}, sent as Content-Type: application/json',
        )


@pytest.fixture(scope="module")
def client():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/refused")
    def refused():
        raise RequestRefused(503, "busy; try again shortly", limit="max_concurrent", headers={"Retry-After": "1"})

    @app.get("/option")
    def option():
        raise ConfigError("chunking.stride: must be at most chunking.max_tokens")

    @app.get("/teapot")
    def teapot():
        raise HTTPException(418, "short and stout", headers={"X-Why": "tea"})

    @app.get("/crash")
    def crash():
        raise PermissionError(SECRET)

    @app.post("/body")
    def body(request: Body):
        return request.model_dump()

    return TestClient(app, raise_server_exceptions=False)


def test_a_refused_request_keeps_its_status_limit_and_headers(client):
    response = client.get("/refused")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json() == {
        "error": {"status": 503, "message": "busy; try again shortly", "limit": "max_concurrent"}
    }


def test_an_invalid_body_is_422_naming_the_field(client):
    response = client.post("/body", json={"texts": ["a", 5]})
    assert response.status_code == 422
    assert response.json() == {
        "error": {"status": 422, "message": "texts.1: Input should be a valid string", "field": "texts.1"}
    }


def test_a_bad_option_is_422_and_http_errors_keep_their_status_and_headers(client):
    assert client.get("/option").json() == {
        "error": {"status": 422, "message": "chunking.stride: must be at most chunking.max_tokens"}
    }
    teapot = client.get("/teapot")
    assert teapot.status_code == 418 and teapot.headers["x-why"] == "tea"
    assert teapot.json() == {"error": {"status": 418, "message": "short and stout"}}
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json() == {"error": {"status": 404, "message": "Not Found"}}
    method = client.delete("/refused")
    assert method.status_code == 405 and method.json()["error"]["status"] == 405


def test_an_unexpected_failure_is_500_without_the_exceptions_text(client):
    response = client.get("/crash")
    assert response.status_code == 500
    assert response.json() == {"error": {"status": 500, "message": INTERNAL_ERROR}}
    assert "alice" not in response.text and "PermissionError" not in response.text
