"""An ASGI middleware around the whole app: counts and times every request, refuses a predict request whose
body is larger than allowed before any of it is parsed, and hands the others straight to the predict endpoint."""

from __future__ import annotations

import json
import time

from llmcls.serve.metrics import ServeMetrics

ROUTES = frozenset({"/", "/health", "/ready", "/metrics", "/v1/predict", "/v1/info", "/docs", "/openapi.json"})
LIMITED = "/v1/predict"


class Guard:
    """Wraps an ASGI app.

    Args:
        app: the app.
        metrics: where requests are counted and timed (by route; unknown paths count as "other").
        max_bytes: the largest body /v1/predict accepts; larger ones get 413 naming max_bytes.
        predict: the ASGI app that answers POST /v1/predict (`llmcls.serve.predict_endpoint`), called without
            going through `app`.
    """

    def __init__(self, app, metrics: ServeMetrics, max_bytes: int, predict):
        self.app, self.metrics, self.max_bytes, self.predict = app, metrics, max_bytes, predict
        self._series: dict[tuple[str, int], tuple] = {}  # see _record

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in ROUTES else ("/v1/plots" if path.startswith("/v1/plots/") else
                                             "/static" if path.startswith("/static/") else "other")
        status = {"code": 500}

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            if path == LIMITED and scope["method"] == "POST":
                receive = await self._limited_body(scope, receive, counting_send)
                if receive is not None:
                    await self.predict(scope, receive, counting_send)
            else:
                await self.app(scope, receive, counting_send)
        finally:
            self.metrics.in_flight.dec()
            self._record(route, status["code"], time.perf_counter() - start)

    def _record(self, route: str, code: int, seconds: float) -> None:
        """Count and time one answered request. The labelled series of each (route, status) are looked up once
        and kept (a few dozen at most: the routes are fixed), since prometheus_client's `labels` costs as much
        as the rest of the bookkeeping of a request."""
        series = self._series.get((route, code))
        if series is None:
            kind = {401: "unauthorized", 404: "not_found", 405: "method", 413: "too_large",
                    422: "invalid"}.get(code, "server" if code >= 500 else "client")
            series = self._series[(route, code)] = (
                self.metrics.requests.labels(route, str(code)), self.metrics.latency.labels(route),
                self.metrics.errors.labels(route, kind) if code >= 400 else None)
        requests, latency, errors = series
        requests.inc()
        latency.observe(seconds)
        if errors is not None:
            errors.inc()

    async def _limited_body(self, scope, receive, send):
        """A `receive` that replays the body once it is known to fit, or None after answering 413."""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send, int(declared))
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._too_large(send, size)
                return None
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: wait for the disconnect as the app expects
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    async def _too_large(self, send, size: int) -> None:
        body = json.dumps({"error": {"status": 413, "limit": "max_bytes",
                                     "message": f"request body too large: {size} bytes > max_bytes {self.max_bytes}"}})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body.encode()})
