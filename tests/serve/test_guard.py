"""llmcls.serve.guard.Guard as an ASGI app in-process, around an app and a predict endpoint that record what reaches
them, with the server's own bearer check: the Host allow-list, then for POST /v1/predict the token (before any of
the body is read), max_concurrent (503 with Retry-After), the body's deadline (408) and size (413, declared or
streamed); what passes is handed on with its body replayed; every request is counted and timed by route and
status."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import pytest

pytest.importorskip("fastapi")

from llmcls.serve.app import _bearer
from llmcls.serve.guard import Guard, Routes, _host_name
from llmcls.serve.metrics import ServeMetrics
from llmcls.serve.settings import ServeSettings

TOKEN = "t0ken"
BODY = b'{"texts": ["a fine film"]}'


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    receives: int  # how many times the guard (or what it handed on to) asked for the body

    @property
    def error(self) -> dict:
        return json.loads(self.body)["error"]


@dataclass
class Harness:
    guard: Guard
    metrics: ServeMetrics
    reached_app: list = field(default_factory=list)  # paths the inner app answered
    predicted: list = field(default_factory=list)  # (body, what came after it) the predict endpoint received
    drained: list = field(default_factory=list)

    def count(self, route: str, status: int) -> float:
        return (
            self.metrics.registry.get_sample_value("llmcls_requests_total", {"route": route, "status": str(status)})
            or 0.0
        )

    def errors(self, route: str, kind: str) -> float:
        return (
            self.metrics.registry.get_sample_value("llmcls_request_errors_total", {"route": route, "kind": kind}) or 0.0
        )

    def timed(self, route: str) -> float:
        return self.metrics.registry.get_sample_value("llmcls_request_seconds_count", {"route": route}) or 0.0


def harness(**settings) -> Harness:
    h = Harness(guard=None, metrics=ServeMetrics())

    async def app(scope, receive, send):
        h.reached_app.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    async def predict(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        after = await receive()
        h.predicted.append((body, after["type"]))
        answer = json.dumps({"bytes": len(body)}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    h.guard = Guard(
        app,
        routes=Routes(frozenset({"/health", "/v1/predict"}), ("/v1/plots", "/static")),
        metrics=h.metrics,
        settings=ServeSettings(**settings),
        predict=predict,
        authorize=_bearer(TOKEN),
        drain=lambda: h.drained.append(True),
    )
    return h


async def send_request(
    guard: Guard,
    *,
    method: str = "POST",
    path: str = "/v1/predict",
    host: bytes | None = b"127.0.0.1:8000",
    token: str | None = TOKEN,
    headers: list | None = None,
    chunks=(BODY,),
    then: str = "end",
    gate: asyncio.Event | None = None,
) -> Answer:
    """One request. `chunks` arrive one a receive; then the body ends ("end"), never finishes ("hang") or the
    client leaves ("gone"). With `gate`, the first chunk waits for it."""
    sent, calls = [], [0]
    base = [(b"content-type", b"application/json")]
    if host is not None:
        base.append((b"host", host))
    if token is not None:
        base.append((b"authorization", f"Bearer {token}".encode()))
    scope = {"type": "http", "method": method, "path": path, "headers": base + list(headers or [])}

    async def receive():
        calls[0] += 1
        i = calls[0] - 1
        if i == 0 and gate is not None:
            await gate.wait()
        if i < len(chunks):
            return {"type": "http.request", "body": chunks[i], "more_body": i < len(chunks) - 1 or then != "end"}
        if then == "hang":
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await guard(scope, receive, send)
    if not sent:
        return Answer(0, {}, b"", calls[0])
    start, body = sent
    return Answer(start["status"], dict(start["headers"]), body["body"], calls[0])


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_request_that_passes_reaches_the_endpoint_with_its_body_replayed():
    h = harness()
    answer = run(send_request(h.guard, chunks=(BODY[:5], BODY[5:12], BODY[12:])))
    assert answer.status == 200 and json.loads(answer.body) == {"bytes": len(BODY)}
    assert h.predicted == [(BODY, "http.disconnect")]  # the whole body at once, then the client's own receive
    assert h.reached_app == [] and h.guard.predicting == 0


def test_other_routes_and_methods_go_to_the_app_unchecked_but_the_host():
    h = harness(max_bytes=10)
    for method, path in [("GET", "/v1/predict"), ("POST", "/health"), ("GET", "/v1/info")]:
        answer = run(send_request(h.guard, method=method, path=path, token=None, chunks=(b"x" * 100,)))
        assert answer.status == 200 and answer.body == b"app" and answer.receives == 0
    assert h.reached_app == ["/v1/predict", "/health", "/v1/info"] and h.predicted == []
    refused = run(send_request(h.guard, method="GET", path="/health", host=b"evil.example"))
    assert refused.status == 400 and len(h.reached_app) == 3


@pytest.mark.parametrize(
    "host", [b"127.0.0.1:8000", b"LOCALHOST", b"localhost:1", b"[::1]:8000", b"[::1]", b"::1", b"127.0.0.1"]
)
def test_the_default_hosts_are_answered(host):
    assert run(send_request(harness().guard, host=host)).status == 200


@pytest.mark.parametrize(
    "host, name",
    [
        (b"evil.example", "evil.example"),
        (b"Evil.Example:8000", "evil.example"),
        (b"127.0.0.1.nip.io", "127.0.0.1.nip.io"),
        (b"[::2]:80", "::2"),
        (b"localhost.:8000", "localhost."),
    ],
)
def test_another_host_is_refused_before_the_token_or_the_body(host, name):
    h = harness()
    answer = run(send_request(h.guard, host=host, token=None))
    assert answer.status == 400 and answer.receives == 0 and h.predicted == []
    assert answer.error == {
        "status": 400,
        "message": f"Host {name!r} is not allowed (llmcls serve --allow-host adds it)",
    }


def test_allowed_hosts_replace_the_defaults_and_a_star_answers_any():
    listed = harness(allowed_hosts=("api.example.org",))
    assert run(send_request(listed.guard, host=b"API.example.org:443")).status == 200
    assert run(send_request(listed.guard, host=b"localhost")).status == 400
    assert run(send_request(harness(allowed_hosts=("*",)).guard, host=b"anything.example")).status == 200
    assert run(send_request(harness().guard, host=None)).status == 200  # no Host (HTTP/1.0): nothing to check


def test_the_long_host_of_a_refusal_is_cut():
    answer = run(send_request(harness().guard, host=b"a" * 5000))
    assert answer.status == 400 and len(answer.error["message"]) < 200


@pytest.mark.parametrize(
    "value, name",
    [("[::1]:8000", "::1"), ("a.b:80", "a.b"), ("A.B", "a.b"), ("::1", "::1"), (" host ", "host"), ("[::1", "[::1")],
)
def test_host_names_lose_their_port_and_case(value, name):
    assert _host_name(value) == name


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x"])
def test_a_missing_or_wrong_token_is_refused_before_the_body_is_read(token):
    h = harness(max_bytes=10)
    answer = run(send_request(h.guard, token=token, headers=[(b"content-length", b"50000")], then="hang"))
    assert answer.status == 401 and answer.receives == 0 and h.predicted == []  # no 413, no 408: not even asked
    assert answer.headers[b"www-authenticate"] == b"Bearer"
    assert answer.error == {
        "status": 401,
        "message": "missing or wrong bearer token (send Authorization: Bearer TOKEN)",
    }


def test_a_declared_length_past_max_bytes_is_413_before_the_body_is_read():
    h = harness(max_bytes=1000)
    answer = run(send_request(h.guard, headers=[(b"content-length", b"1001")], then="hang"))
    assert answer.status == 413 and answer.receives == 0
    assert answer.error == {
        "status": 413,
        "message": "request body too large: 1001 bytes > max_bytes 1000",
        "limit": "max_bytes",
    }
    assert answer.headers[b"connection"] == b"close" and answer.headers[b"content-type"] == b"application/json"
    assert answer.headers[b"content-length"] == str(len(answer.body)).encode()
    fits = run(send_request(h.guard, headers=[(b"content-length", b"1000")], chunks=(b"x" * 1000,)))
    assert fits.status == 200 and h.predicted[-1][0] == b"x" * 1000


def test_a_streamed_body_past_max_bytes_is_413_at_the_chunk_that_crosses_it():
    h = harness(max_bytes=1000)
    chunks = (b"x" * 400,) * 10  # no Content-Length (chunked): counted as it comes
    answer = run(send_request(h.guard, chunks=chunks))
    assert answer.status == 413 and answer.receives == 3  # 400, 800, 1200: stopped there
    assert answer.error["message"] == "request body too large: 1200 bytes > max_bytes 1000"
    lying = run(send_request(h.guard, headers=[(b"content-length", b"10")], chunks=chunks))  # a declared length
    assert lying.status == 413 and lying.receives == 3  # is not trusted
    odd = run(send_request(h.guard, headers=[(b"content-length", b"99999x")], chunks=chunks))
    assert odd.status == 413 and odd.receives == 3 and h.predicted == []


def test_a_body_that_does_not_arrive_in_time_is_408():
    h = harness(read_timeout_s=0.2)
    start = time.monotonic()
    answer = run(send_request(h.guard, chunks=(b'{"texts": [',), then="hang"))
    assert 0.15 < time.monotonic() - start < 2
    assert answer.status == 408 and answer.headers[b"connection"] == b"close" and h.predicted == []
    assert answer.error == {
        "status": 408,
        "message": "the request body did not arrive within 0.2 s (read_timeout_s)",
        "limit": "read_timeout_s",
    }
    assert h.guard.predicting == 0 and h.errors("/v1/predict", "timeout") == 1


def test_past_max_concurrent_a_request_gets_503_with_retry_after_and_its_slot_comes_back():
    h = harness(max_concurrent=2)

    async def crowd():
        gate = asyncio.Event()
        held = [asyncio.ensure_future(send_request(h.guard, gate=gate)) for _ in range(2)]
        await asyncio.sleep(0.05)  # both inside, waiting for their bodies
        assert h.guard.predicting == 2
        unauthorized = await send_request(h.guard, token="wrong")  # the token first: no slot taken or refused
        third = await send_request(h.guard)
        gate.set()
        first, second = await asyncio.gather(*held)
        fourth = await send_request(h.guard)
        return unauthorized, third, first, second, fourth

    unauthorized, third, first, second, fourth = run(crowd())
    assert unauthorized.status == 401
    assert third.status == 503 and third.receives == 0 and third.headers[b"retry-after"] == b"1"
    assert third.error == {
        "status": 503,
        "message": "too many requests in the server (max_concurrent 2); try again shortly",
        "limit": "max_concurrent",
    }
    assert (first.status, second.status, fourth.status) == (200, 200, 200) and len(h.predicted) == 3
    assert h.guard.predicting == 0


def test_slots_come_back_after_every_refusal():
    h = harness(max_concurrent=1, max_bytes=10, read_timeout_s=0.05)
    assert run(send_request(h.guard, chunks=(b"x" * 11,))).status == 413
    assert run(send_request(h.guard, chunks=(b"x",), then="hang")).status == 408
    assert run(send_request(h.guard, chunks=(b"x",), then="gone")).status == 0
    assert h.guard.predicting == 0 and run(send_request(h.guard, chunks=(b"{}",))).status == 200


def test_every_request_is_counted_and_timed_by_route_and_status():
    h = harness(max_bytes=100)
    run(send_request(h.guard))
    run(send_request(h.guard))
    run(send_request(h.guard, token=None))
    run(send_request(h.guard, chunks=(b"x" * 101,)))
    run(send_request(h.guard, method="GET", path="/v1/plots/curves.png"))
    run(send_request(h.guard, method="GET", path="/static/page.js"))
    run(send_request(h.guard, method="GET", path="/wp-admin/setup.php"))
    run(send_request(h.guard, method="GET", path="/health", host=b"evil.example"))
    assert h.count("/v1/predict", 200) == 2 and h.count("/v1/predict", 401) == 1 and h.count("/v1/predict", 413) == 1
    assert h.errors("/v1/predict", "unauthorized") == 1 and h.errors("/v1/predict", "too_large") == 1
    assert h.count("/v1/plots", 200) == 1 and h.count("/static", 200) == 1 and h.count("other", 200) == 1
    assert h.count("/health", 400) == 1 and h.errors("/health", "client") == 1
    assert h.timed("/v1/predict") == 4 and h.errors("/v1/predict", "server") == 0
    assert h.metrics.registry.get_sample_value("llmcls_requests_in_flight") == 0


def test_the_route_names_are_the_apps_own_routes():
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from llmcls.serve.app import PAGE_DIR

    app = FastAPI(docs_url=None, redoc_url=None)
    app.add_api_route("/health", lambda: {}, methods=["GET"])
    app.add_api_route("/v1/plots/{name}", lambda name: {}, methods=["GET"])
    app.mount("/static", StaticFiles(directory=PAGE_DIR), name="static")
    routes = Routes.of(app)
    assert routes == Routes(frozenset({"/health", "/openapi.json"}), ("/v1/plots", "/static"))
    names = [routes.name(path) for path in ("/health", "/v1/plots/curves.png", "/static/page.js", "/v1/plots", "/x")]
    assert names == ["/health", "/v1/plots", "/static", "other", "other"]


def test_a_non_http_scope_passes_through_uncounted_and_drain_is_handed_on():
    h = harness()
    seen = []

    async def lifespan_app(scope, receive, send):
        seen.append(scope["type"])

    h.guard.app = lifespan_app
    run(h.guard({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"] and h.timed("other") == 0
    h.guard.drain()
    assert h.drained == [True]


def test_a_client_that_leaves_during_its_body_is_counted_as_gone_not_as_a_server_error():
    h = harness()
    answer = run(send_request(h.guard, chunks=(b'{"texts": [',), then="gone"))
    assert answer.status == 0 and h.predicted == []  # nothing computed, nothing sent
    assert h.errors("/v1/predict", "server") == 0
    assert h.count("/v1/predict", 499) == 1
