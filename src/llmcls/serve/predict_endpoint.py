"""POST /v1/predict as a bare ASGI app: the one route whose cost per request decides throughput under load.

`Guard` hands it every POST /v1/predict directly, past FastAPI's and Starlette's middleware, router and request
objects, which took about half of the event loop's time for a request of one text (BENCHMARKS.md, "Serving").
It is also mounted as the app's route for the path, so that other methods get Starlette's 405, and FastAPI's
OpenAPI schema documents it (`llmcls.serve.app`). It answers its own errors in the app's one error shape.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Callable

import numpy as np

from llmcls.errors import ConfigError
from llmcls.inference.predict import Predictor, rank
from llmcls.serve.batcher import Batcher
from llmcls.serve.metrics import ServeMetrics
from llmcls.serve.responses import RequestRefused, error_body
from llmcls.serve.schemas import PredictRequest, read_predict_request
from llmcls.serve.settings import ServeSettings

MAX_CHUNKING_VARIANTS = 16  # predictors kept for requests with their own chunking options
JSON_HEADERS = ((b"content-type", b"application/json"),)
log = logging.getLogger("llmcls.serve")


class PredictEndpoint:
    """Answers POST /v1/predict (ASGI).

    Args:
        predictor: the loaded run.
        settings: the limits.
        batcher: gathers requests into rounds of the model.
        metrics: where texts per request and texts answered are counted.
        authorize: raises RequestRefused(401) unless the Authorization header's value (or None) lets a request in.
    """

    def __init__(self, predictor: Predictor, settings: ServeSettings, batcher: Batcher, metrics: ServeMetrics,
                 authorize: Callable[[str | None], None]):
        self.predictor, self.settings, self.batcher, self.metrics = predictor, settings, batcher, metrics
        self.authorize = authorize
        self.variants = _Variants(predictor)

    async def __call__(self, scope, receive, send) -> None:
        headers: tuple = ()
        try:
            answer, status = await self.answer(dict(scope["headers"]), await _body(receive)), 200
        except RequestRefused as exc:
            status, answer = exc.status, error_body(exc.status, exc.message, exc.field, exc.limit)
            headers = tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items())
        except ConfigError as exc:  # chunking options the run cannot take
            status, answer = 422, error_body(422, str(exc))
        except Exception as exc:  # a failed request must not take the server down; the log keeps the traceback
            log.exception("POST /v1/predict failed")
            status, answer = 500, error_body(500, f"internal error: {type(exc).__name__}: {exc}")
        payload = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [*JSON_HEADERS, (b"content-length", str(len(payload)).encode()), *headers]})
        await send({"type": "http.response.body", "body": payload})

    async def answer(self, headers: dict[bytes, bytes], body: bytes) -> dict:
        """The JSON answer to one request (documented by `llmcls.serve.schemas.PredictResponse`).

        Raises:
            RequestRefused: not authorized, an invalid body, or a limit exceeded (401, 413, 422).
            ConfigError: invalid chunking options.
        """
        authorization = headers.get(b"authorization")
        self.authorize(authorization.decode("latin-1") if authorization is not None else None)
        content_type = headers.get(b"content-type")
        request = read_predict_request(body, content_type.decode("latin-1") if content_type is not None else None)
        _check_texts(request, self.settings)
        predictor = self.predictor
        chosen = self.variants.get(request.chunking())
        thresholds = _thresholds(predictor, request.threshold)
        self.metrics.request_texts.observe(len(request.texts))
        probs = await self.batcher.probabilities(chosen, request.texts)
        self.metrics.texts.inc(len(request.texts))
        predictions = rank(request.texts, probs, predictor.labels, request.top_k, thresholds)
        return {"predictions": [_as_json(p, predictor.multi_label) for p in predictions],
                "backend": predictor.backend}


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
        raise RequestRefused(413, f"too many texts: {len(body.texts)} > max_texts {settings.max_texts}",
                             "texts", "max_texts")
    for i, text in enumerate(body.texts):
        if len(text) > settings.max_text_chars:
            raise RequestRefused(413, f"texts.{i}: {len(text)} characters > max_text_chars "
                                      f"{settings.max_text_chars}", f"texts.{i}", "max_text_chars")
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise RequestRefused(422, f"texts.{i}: not valid Unicode ({exc.reason} at character {exc.start})",
                                     f"texts.{i}") from None


def _thresholds(predictor: Predictor, threshold: float | None) -> np.ndarray | None:
    if threshold is None:
        return predictor.thresholds
    if not predictor.multi_label:
        raise RequestRefused(422, "threshold: applies to multi-label runs only; this run has one label per text",
                             "threshold")
    return np.full(len(predictor.labels), threshold)


def _as_json(prediction, multi_label: bool) -> dict:
    """One prediction as `llmcls predict --format jsonl` writes it, without the text."""
    row: dict = ({"labels": prediction.labels, "probabilities": prediction.probabilities} if multi_label else
                 {"label": prediction.label, "probability": prediction.probability})
    row["top_k"] = [{"label": label, "probability": p} for label, p in prediction.top]
    return row


class _Variants:
    """The run's predictor, and predictors for requests that change its chunking (they share its network)."""

    def __init__(self, base: Predictor):
        self.base = base
        self._cache: OrderedDict[tuple, Predictor] = OrderedDict()

    def get(self, chunking: dict) -> Predictor:
        """The predictor for these changes to the run's chunking.

        Raises:
            ConfigError: invalid chunking settings (answered 422).
        """
        if not chunking:
            return self.base
        key = tuple(sorted(chunking.items()))
        if key not in self._cache:
            base = self.base
            self._cache[key] = Predictor(base.run, base.forward, base.batch_size, chunking)
            if len(self._cache) > MAX_CHUNKING_VARIANTS:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]
