"""POST /v1/predict's ASGI endpoint in-process, with the real tiny run: a model failure is answered 500 in the
one error shape and the next request is answered; a bad token is refused before the body is checked."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("fastapi")

from llmcls.inference.predict import Predictor  # noqa: E402
from llmcls.serve.app import _bearer  # noqa: E402
from llmcls.serve.batcher import Batcher  # noqa: E402
from llmcls.serve.metrics import ServeMetrics  # noqa: E402
from llmcls.serve.predict_endpoint import PredictEndpoint  # noqa: E402
from llmcls.serve.settings import ServeSettings  # noqa: E402
from support.serving import FailingPredictor  # noqa: E402


def call(endpoint: PredictEndpoint, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, dict, dict]:
    """(status, JSON answer, headers) of one request sent straight to the ASGI endpoint, in the fixture's loop."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/predict",
             "headers": [(b"content-type", b"application/json"), *headers]}
    endpoint.loop.run_until_complete(endpoint(scope, receive, send))
    start, body_message = sent
    answer = json.loads(body_message["body"])
    assert dict(start["headers"])[b"content-length"] == str(len(body_message["body"])).encode()
    return start["status"], answer, dict(start["headers"])


@pytest.fixture()
def endpoint(trained_sst2):
    base = Predictor.load(trained_sst2.run_dir, backend="auto")
    batcher = Batcher(0.0, 1024)

    async def start():
        batcher.start()  # in the loop that runs it

    endpoint = PredictEndpoint(FailingPredictor(base.run, base.forward, base.batch_size), ServeSettings(), batcher,
                               ServeMetrics(), _bearer("s3cret"))
    endpoint.loop = asyncio.new_event_loop()
    endpoint.loop.run_until_complete(start())
    yield endpoint
    endpoint.loop.run_until_complete(batcher.stop())
    endpoint.loop.close()


def test_a_failing_model_is_answered_500_and_the_next_request_200(endpoint):
    auth = [(b"authorization", b"Bearer s3cret")]
    status, answer, _ = call(endpoint, {"texts": ["a fine film", "boom"]}, auth)
    assert status == 500 and answer["error"] == {"status": 500, "message": "internal error: RuntimeError: boom"}
    status, answer, _ = call(endpoint, {"texts": ["a fine film"]}, auth)
    assert status == 200 and answer["predictions"][0]["label"] in ("negative", "positive")
    assert endpoint.metrics.texts._value.get() == 1  # the failed request's texts are not counted as answered


def test_a_wrong_token_is_refused_before_the_body_is_checked(endpoint):
    status, answer, headers = call(endpoint, {"texts": "not even a list"}, [(b"authorization", b"Bearer nope")])
    assert status == 401 and "bearer token" in answer["error"]["message"]
    assert headers[b"www-authenticate"] == b"Bearer"
