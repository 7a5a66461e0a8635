"""An ASGI middleware around the whole app: counts and times every request, refuses a Host that is not allowed,
and for POST /v1/predict checks, in this order and before any of the body is parsed, the bearer token, the number
of requests in the server, the time the body takes and its size; then hands it straight to the predict endpoint."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute

from llmcls.serve.metrics import ServeMetrics
from llmcls.serve.responses import CLIENT_GONE, RETRY_AFTER_S, RequestRefused, error_body
from llmcls.serve.settings import ServeSettings

T = TypeVar("T")
PREDICT_PATH = "/v1/predict"  # the route whose requests the guard checks and hands to the predict endpoint


@dataclass(frozen=True)
class Routes:
    """The names requests are counted and timed under: a route's own path; for a path under a folder (a route
    with a path parameter, such as /v1/plots/{name}, or a mount such as /static) the folder; else "other".

    Attributes:
        paths: the routes' own paths.
        folders: the folders, without their trailing slash.
    """

    paths: frozenset[str]
    folders: tuple[str, ...] = ()

    @classmethod
    def of(cls, app: Starlette) -> Routes:
        """The routes of a Starlette (or FastAPI) app, as it has them now: the one list of the server's routes."""
        paths, folders = set(), []
        for route in app.routes:
            if isinstance(route, Mount):
                folders.append(route.path)
            elif isinstance(route, (Route, WebSocketRoute)) and "{" in route.path:
                folders.append(route.path[: route.path.index("{")].rstrip("/"))
            elif isinstance(route, (Route, WebSocketRoute)):
                paths.add(route.path)
        return cls(frozenset(paths), tuple(folders))

    def name(self, path: str) -> str:
        """What a request for `path` is counted under."""
        if path in self.paths:
            return path
        return next((folder for folder in self.folders if path.startswith(folder + "/")), "other")


class Guard:
    """Wraps an ASGI app.

    Args:
        app: the app.
        routes: what requests are counted and timed under: `app`'s routes (`Routes.of`).
        metrics: where requests are counted and timed.
        settings: the Host allow-list, max_concurrent, read_timeout_s and max_bytes.
        predict: the ASGI app that answers POST /v1/predict (`llmcls.serve.predict_endpoint`), called without
            going through `app`.
        authorize: raises RequestRefused(401) unless the Authorization header's value (or None) lets a request in.
        drain: called when the server starts shutting down (see `drain`).
    """

    def __init__(
        self,
        app,
        *,
        routes: Routes,
        metrics: ServeMetrics,
        settings: ServeSettings,
        predict,
        authorize: Callable[[str | None], None],
        drain: Callable[[], None],
    ):
        self.app, self.routes, self.metrics, self.settings, self.predict = app, routes, metrics, settings, predict
        self.authorize, self._drain = authorize, drain
        self.hosts = settings.hosts()
        self.predicting = 0  # POST /v1/predict requests past the token check and not yet answered
        self._series: dict[tuple[str, int], tuple] = {}  # see _record

    def drain(self) -> None:
        """The server is shutting down (SIGTERM): queued requests are answered 503 at once, the running ones
        within the graceful timeout, new ones 503."""
        self._drain()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = self.routes.name(scope["path"])
        status = {"code": 500}

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            unanswered = await self._dispatch(scope, receive, counting_send)
            if unanswered is not None:
                status["code"] = unanswered
        except RequestRefused as exc:
            await _refuse(counting_send, exc)
        finally:
            self.metrics.in_flight.dec()
            self._record(route, status["code"], time.perf_counter() - start)

    async def _dispatch(self, scope, receive, send) -> int | None:
        """Answer the request; or return the status to count it under when there is nobody left to answer."""
        headers = dict(scope["headers"])
        self._check_host(headers.get(b"host"))
        if scope["path"] != PREDICT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return None
        authorization = headers.get(b"authorization")
        self.authorize(authorization.decode("latin-1") if authorization is not None else None)
        if self.predicting >= self.settings.max_concurrent:
            raise RequestRefused(
                503,
                f"too many requests in the server (max_concurrent {self.settings.max_concurrent}); try again shortly",
                limit="max_concurrent",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.predicting += 1
        try:
            replay = await self._limited_body(headers, receive)
            if replay is None:  # the client left during its body: nothing to answer
                return CLIENT_GONE
            await self.predict(scope, replay, send)
            return None
        finally:
            self.predicting -= 1

    def _check_host(self, host: bytes | None) -> None:
        """Refuse a Host header not on the allow-list (a page on another site reaching this server through DNS
        rebinding names its own host there)."""
        if self.hosts is None or host is None:
            return
        name = _host_name(host.decode("latin-1"))
        if name not in self.hosts:
            raise RequestRefused(400, f"Host {name[:100]!r} is not allowed (llmcls serve --allow-host adds it)")

    def _record(self, route: str, code: int, seconds: float) -> None:
        """Count and time one answered request. The labelled series of each (route, status) are looked up once
        and kept (a few dozen at most: the routes are fixed), since prometheus_client's `labels` costs as much
        as the rest of the bookkeeping of a request."""
        series = self._series.get((route, code))
        if series is None:
            kind = {
                401: "unauthorized",
                404: "not_found",
                405: "method",
                408: "timeout",
                413: "too_large",
                422: "invalid",
                499: "client_gone",
                503: "unavailable",
                504: "deadline",
            }.get(code, "server" if code >= 500 else "client")
            series = self._series[(route, code)] = (
                self.metrics.requests.labels(route, str(code)),
                self.metrics.latency.labels(route),
                self.metrics.errors.labels(route, kind) if code >= 400 else None,
            )
        requests, latency, errors = series
        requests.inc()
        latency.observe(seconds)
        if errors is not None:
            errors.inc()

    async def _limited_body(self, headers: dict[bytes, bytes], receive):
        """A `receive` that replays the body once it is known to fit and to have come within read_timeout_s,
        or None when the client went away.

        Raises:
            RequestRefused: 413 past max_bytes, 408 past read_timeout_s.
        """
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.settings.max_bytes:
            raise _too_large(int(declared), self.settings.max_bytes)
        try:
            body = await _within(self._read(receive), self.settings.read_timeout_s)
        except TimeoutError:
            raise RequestRefused(
                408,
                f"the request body did not arrive within {self.settings.read_timeout_s:g} s (read_timeout_s)",
                limit="read_timeout_s",
                headers={"Connection": "close"},
            ) from None
        if body is None:
            return None
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: wait for the disconnect as the app expects
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    async def _read(self, receive) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.settings.max_bytes:
                raise _too_large(size, self.settings.max_bytes)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _within(work: Awaitable[T], seconds: float) -> T:
    """`work`'s result, or TimeoutError (and `work` cancelled) once `seconds` have passed."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):  # no task of its own, unlike wait_for before 3.12
            return await work
    try:
        return await asyncio.wait_for(work, seconds)
    except asyncio.TimeoutError:  # not yet the builtin TimeoutError on 3.10
        raise TimeoutError from None


def _host_name(value: str) -> str:
    """The host of a Host header, lower case, without the port: "[::1]:8000" -> "::1", "a.b:80" -> "a.b"."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _too_large(size: int, limit: int) -> RequestRefused:
    return RequestRefused(
        413,
        f"request body too large: {size} bytes > max_bytes {limit}",
        limit="max_bytes",
        headers={"Connection": "close"},
    )


async def _refuse(send, exc: RequestRefused) -> None:
    body = json.dumps(error_body(exc.status, exc.message, field=exc.field, limit=exc.limit)).encode()
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})
