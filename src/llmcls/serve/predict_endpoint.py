"""POST /v1/predict as a bare ASGI app: the one route whose cost per request decides throughput under load.

`Guard` hands it every POST /v1/predict directly, past FastAPI's and Starlette's middleware, router and request
objects, which took about half of the event loop's time for a request of one text (BENCHMARKS.md, "Serving").
It is also mounted as the app's route for the path, so that other methods get Starlette's 405, and FastAPI's
OpenAPI schema documents it (`llmcls.serve.app`). It answers its own errors in the app's one error shape.
"""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np

from llmcls.errors import ConfigError
from llmcls.inference.predict import Predictor, PreparedTexts, predictions_of
from llmcls.inference.rows import prediction_row
from llmcls.inference.scoring import uniform_thresholds
from llmcls.serve.batcher import Batcher, DeadlineExceeded, Overloaded
from llmcls.serve.metrics import ServeMetrics
from llmcls.serve.responses import CLIENT_GONE, INTERNAL_ERROR, RETRY_AFTER_S, RequestRefused, error_body
from llmcls.serve.schemas import PredictRequest, read_predict_request
from llmcls.serve.settings import ServeSettings

# A request's windows start at least this fraction of a window apart, so that chunking reads each token at most
# 1 / MIN_STRIDE_FRACTION times.
MIN_STRIDE_FRACTION = 0.25
JSON_HEADERS = ((b"content-type", b"application/json"),)
log = logging.getLogger("llmcls.serve")


class PredictEndpoint:
    """Answers POST /v1/predict (ASGI), once `Guard` has checked the token, the load and the body's size.

    Args:
        predictor: the loaded run.
        settings: the limits.
        batcher: gathers requests into rounds of the model.
        metrics: where texts per request and texts answered are counted.
    """

    def __init__(self, predictor: Predictor, settings: ServeSettings, *, batcher: Batcher, metrics: ServeMetrics):
        self.predictor, self.settings, self.batcher, self.metrics = predictor, settings, batcher, metrics

    async def __call__(self, scope, receive, send) -> None:
        headers: tuple = ()
        try:
            answer, status = await self.answer(dict(scope["headers"]), await _body(receive), receive), 200
        except RequestRefused as exc:
            status, answer = exc.status, error_body(exc.status, exc.message, field=exc.field, limit=exc.limit)
            headers = tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items())
        except ConfigError as exc:  # chunking options the run cannot take
            status, answer = 422, error_body(422, str(exc))
        except Exception:  # a failed request must not take the server down; the log keeps the traceback
            log.exception("POST /v1/predict failed")
            status, answer = 500, error_body(500, INTERNAL_ERROR)
        if status == CLIENT_GONE:
            await send({"type": "http.response.start", "status": status, "headers": []})  # for the metrics only
            return
        payload = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(payload)).encode()), *headers],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def answer(self, headers: dict[bytes, bytes], body: bytes, receive=None) -> dict:
        """The JSON answer to one request (documented by `llmcls.serve.schemas.PredictResponse`).

        Args:
            receive: the request's ASGI receive, past the body: a disconnect drops the request's work.

        Raises:
            RequestRefused: an invalid body, a limit exceeded, the server overloaded or out of time (413, 422,
                503, 504).
            ConfigError: invalid chunking options.
        """
        content_type = headers.get(b"content-type")
        request = read_predict_request(body, content_type.decode("latin-1") if content_type is not None else None)
        _check_texts(request, self.settings)
        predictor = self.predictor
        chosen = _chunked(predictor, request)
        thresholds = _thresholds(predictor, request.threshold)
        self.metrics.request_texts.observe(len(request.texts))
        probs = await self._probabilities(chosen, request.texts, receive)
        self.metrics.texts.inc(len(request.texts))
        predictions = predictions_of(
            request.texts, probs, labels=predictor.labels, top_k=request.top_k, thresholds=thresholds
        )
        rows = [prediction_row(p, predictor.multi_label) for p in predictions]
        return {"predictions": rows, "backend": predictor.backend}

    async def _probabilities(self, predictor: Predictor, texts: list[str], receive) -> np.ndarray:
        """The batcher's answer, as the API's refusals; dropped if the client disconnects first."""
        work = asyncio.ensure_future(
            self.batcher.probabilities(predictor, texts, timeout_s=self.settings.request_timeout_s)
        )
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not work.done():
            work.cancel()
            raise RequestRefused(CLIENT_GONE, "the client disconnected")
        try:
            return work.result()
        except Overloaded as exc:
            raise RequestRefused(
                503, str(exc), limit=None if exc.draining else "max_queue_texts", headers=_retry_headers(exc.draining)
            ) from None
        except DeadlineExceeded as exc:
            raise RequestRefused(
                504 if exc.started else 503,
                str(exc),
                limit="request_timeout_s",
                headers=None if exc.started else _retry_headers(False),
            ) from None


def work_limits(settings: ServeSettings):
    """The check of one request's prepared texts against the server's work limits (run on the model thread,
    after tokenizing and before the network), which raises RequestRefused(413) naming the limit."""

    def admit(prepared: PreparedTexts) -> None:
        if prepared.most_windows > settings.max_windows_per_text:
            raise RequestRefused(
                413,
                f"a text makes {prepared.most_windows} windows > max_windows_per_text "
                f"{settings.max_windows_per_text} (send a larger chunk_tokens or chunk_stride)",
                field="chunk_tokens",
                limit="max_windows_per_text",
            )
        if prepared.tokens > settings.max_request_tokens:
            raise RequestRefused(
                413,
                f"the texts make {prepared.tokens} tokens for the model > max_request_tokens "
                f"{settings.max_request_tokens} (send fewer or shorter texts, or a larger "
                "chunk_stride)",
                field="texts",
                limit="max_request_tokens",
            )

    return admit


def _retry_headers(draining: bool) -> dict[str, str]:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if draining:
        headers["Connection"] = "close"
    return headers


async def _disconnected(receive) -> None:
    """Returns when the client disconnects (never, for a `receive` that has nothing more to say)."""
    if receive is None:
        await asyncio.Event().wait()
    message = await receive()
    if message["type"] != "http.disconnect":
        await asyncio.Event().wait()


def _chunked(predictor: Predictor, request: PredictRequest) -> Predictor:
    """The predictor for the request's chunking options, refusing windows that start too close together.

    Raises:
        ConfigError: chunking options the run cannot take.
        RequestRefused: 422, a stride under MIN_STRIDE_FRACTION of the window.
    """
    chosen = predictor.with_chunking(request.chunking())
    chunking, window = chosen.chunking, chosen.chunking.max_tokens  # window None: chunking is off
    if chosen is not predictor and window is not None and chunking.step < MIN_STRIDE_FRACTION * window:
        least = -(-window // round(1 / MIN_STRIDE_FRACTION))
        raise RequestRefused(
            422,
            f"chunk_stride: {chunking.step} is under a quarter of the window ({window} tokens); send at least {least}",
            field="chunk_stride",
        )
    return chosen


async def _body(receive) -> bytes:
    """The request body, however many messages it came in."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            raise RequestRefused(400, "the client disconnected before sending the whole body")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _check_texts(body: PredictRequest, settings: ServeSettings) -> None:
    """Refuse too many or too long texts (413), and texts that are not valid Unicode (422): JSON's escapes can
    spell a lone surrogate, which no tokenizer takes."""
    if len(body.texts) > settings.max_texts:
        raise RequestRefused(
            413,
            f"too many texts: {len(body.texts)} > max_texts {settings.max_texts}",
            field="texts",
            limit="max_texts",
        )
    for i, text in enumerate(body.texts):
        if len(text) > settings.max_text_chars:
            raise RequestRefused(
                413,
                f"texts.{i}: {len(text)} characters > max_text_chars {settings.max_text_chars}",
                field=f"texts.{i}",
                limit="max_text_chars",
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise RequestRefused(
                    422, f"texts.{i}: not valid Unicode ({exc.reason} at character {exc.start})", field=f"texts.{i}"
                ) from None


def _thresholds(predictor: Predictor, threshold: float | None) -> np.ndarray | None:
    """The thresholds of a request: its one threshold for every class, or else the predictor's.

    Raises:
        RequestRefused: 422, a threshold for a single-label run.
    """
    if threshold is None:
        return predictor.thresholds
    try:
        return uniform_thresholds(threshold, len(predictor.labels), multi_label=predictor.multi_label)
    except ConfigError as exc:
        raise RequestRefused(422, str(exc), field="threshold") from None
