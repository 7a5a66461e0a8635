"""POST /v1/predict's ASGI endpoint in-process, with the real tiny run: a model failure is answered 500 in the
one error shape, without the exception's text, and the next request is answered; the work limits refuse with 413
and the stride's floor with 422."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("fastapi")

from llmcls.inference.predict import Predictor
from llmcls.serve.batcher import Batcher
from llmcls.serve.metrics import ServeMetrics
from llmcls.serve.predict_endpoint import PredictEndpoint, work_limits
from llmcls.serve.settings import ServeSettings
from support.serving import FailingPredictor


def call(endpoint: PredictEndpoint, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, dict, dict]:
    """(status, JSON answer, headers) of one request sent straight to the ASGI endpoint, in the fixture's loop."""
    sent = []

    messages = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive():
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/predict",
        "headers": [(b"content-type", b"application/json"), *headers],
    }
    endpoint.loop.run_until_complete(endpoint(scope, receive, send))
    start, body_message = sent
    answer = json.loads(body_message["body"])
    assert dict(start["headers"])[b"content-length"] == str(len(body_message["body"])).encode()
    return start["status"], answer, dict(start["headers"])


@pytest.fixture()
def endpoint(trained_sst2):
    base = Predictor.load(trained_sst2.run_dir, backend="auto")
    settings = ServeSettings(max_request_tokens=80, max_windows_per_text=5)
    batcher = Batcher(wait_s=0.0, max_texts=1024, max_queue_texts=1024, admit=work_limits(settings))

    async def start():
        batcher.start()  # in the loop that runs it

    endpoint = PredictEndpoint(
        FailingPredictor(base.run, base.forward, batch_size=base.batch_size),
        settings,
        batcher=batcher,
        metrics=ServeMetrics(),
    )
    endpoint.loop = asyncio.new_event_loop()
    endpoint.loop.run_until_complete(start())
    yield endpoint
    endpoint.loop.run_until_complete(batcher.stop())
    endpoint.loop.close()


def test_a_failing_model_is_answered_500_and_the_next_request_200(endpoint):
    status, answer, _ = call(endpoint, {"texts": ["a fine film", "boom"]})
    assert status == 500 and answer["error"] == {
        "status": 500,
        "message": "internal error (the server's log has the details)",
    }
    status, answer, _ = call(endpoint, {"texts": ["a fine film"]})
    assert status == 200 and answer["predictions"][0]["label"] in ("negative", "positive")
    assert endpoint.metrics.texts._value.get() == 1  # the failed request's texts are not counted as answered


@pytest.mark.parametrize(
    "body, status, limit, message",
    [
        (
            {"texts": ["word " * 40], "chunk_tokens": 8, "chunk_stride": 1},
            422,
            None,
            "chunk_stride: 1 is under a quarter of the window (8 tokens); send at least 2",
        ),
        (
            {"texts": ["word " * 40], "chunk_tokens": 8},
            413,
            "max_windows_per_text",
            "a text makes 9 windows > max_windows_per_text 5",
        ),
        (
            {"texts": ["word " * 20] * 5},
            413,
            "max_request_tokens",
            "the texts make 100 tokens for the model > max_request_tokens 80",
        ),
    ],
)
def test_work_limits_refuse_before_the_network_runs(endpoint, body, status, limit, message):
    status_got, answer, _ = call(endpoint, body)
    assert status_got == status and message in answer["error"]["message"]
    assert answer["error"].get("limit") == limit
    ok, answer, _ = call(endpoint, {"texts": ["word " * 40], "chunk_tokens": 16})  # 4 windows: within the limits
    assert ok == 200 and len(answer["predictions"]) == 1
