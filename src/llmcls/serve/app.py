"""The HTTP app: a FastAPI app over one loaded `Predictor`, made by `create_app`.

Routes: POST /v1/predict, GET /v1/info, GET /v1/plots/{name}, GET /health, GET /ready, GET /metrics, the page at
GET / (llmcls/serve/page), and FastAPI's OpenAPI docs at /docs. See docs/serving.md for each one's JSON.
"""

from __future__ import annotations

import hmac
import json
from collections import OrderedDict
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from llmcls import __version__
from llmcls.inference.predict import Predictor, rank
from llmcls.run.layout import PLOTS_DIR
from llmcls.serve.batcher import Batcher
from llmcls.serve.guard import Guard
from llmcls.serve.info import PLOTS, run_info
from llmcls.serve.metrics import ServeMetrics
from llmcls.serve.responses import RequestRefused, install_error_handlers
from llmcls.serve.schemas import ErrorResponse, PredictRequest, PredictResponse, read_predict_request
from llmcls.serve.settings import ServeSettings

PAGE_DIR = Path(__file__).parent / "page"
MAX_CHUNKING_VARIANTS = 16  # predictors kept for requests with their own chunking options
ERRORS = {status: {"model": ErrorResponse} for status in (401, 413, 422)}


def create_app(predictor: Predictor, settings: ServeSettings) -> FastAPI:
    """The app serving `predictor` (warmed up and batching once its lifespan has started).

    Args:
        predictor: the loaded run.
        settings: limits, batching and authentication (host, port and workers are the server's business).

    Raises:
        ConfigError: the token file cannot be read.
    """
    check_token = _bearer(settings.read_token())
    authorized = [Depends(check_token)]
    service = _Service(predictor, settings, check_token)
    app = FastAPI(title="llmcls", version=__version__, lifespan=service.lifespan,
                  description=f"Text classification with the llmcls run {predictor.run.run_dir.name!r}.")
    install_error_handlers(app)
    app.router.add_route("/v1/predict", service.predict, methods=["POST"])  # a plain Starlette route: see predict
    app.openapi = _openapi_with_predict(app)
    app.add_api_route("/v1/info", service.get_info, methods=["GET"], responses=ERRORS, dependencies=authorized)
    app.add_api_route("/v1/plots/{name}", service.plot, methods=["GET"], responses=ERRORS, dependencies=authorized)
    app.add_api_route("/health", service.health, methods=["GET"])
    app.add_api_route("/ready", service.ready, methods=["GET"])
    app.add_api_route("/metrics", service.prometheus, methods=["GET"], responses=ERRORS, dependencies=authorized)
    app.add_api_route("/", service.page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=PAGE_DIR), name="static")
    app.add_middleware(Guard, metrics=service.metrics, max_bytes=settings.max_bytes)
    app.state.metrics = service.metrics
    return app


class _Service:
    """What the routes share: the predictor, the batcher, the metrics; each route is one method."""

    def __init__(self, predictor: Predictor, settings: ServeSettings, check_token):
        self.predictor, self.settings, self.check_token = predictor, settings, check_token
        self.metrics = ServeMetrics()
        self.batcher = Batcher(settings.batch_wait_ms / 1000, settings.max_batch_texts,
                               self.metrics.batch_texts.observe)
        self.variants = _Variants(predictor)
        self.info = run_info(predictor, settings)
        self.is_ready = False

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        self.batcher.start()
        await self.batcher.probabilities(self.predictor, ["warm up"])  # loads the tokenizer before /ready says yes
        self.is_ready = True
        yield
        self.is_ready = False
        await self.batcher.stop()  # uvicorn has let in-flight requests finish by now

    async def predict(self, request: Request) -> Response:
        """POST /v1/predict (documented by `_predict_schema`). A plain Starlette route, without FastAPI's
        dependency solving, body validation and response handling, which cost more than the model for a request
        of one text (BENCHMARKS.md, "Serving"); `read_predict_request` checks the body as FastAPI did."""
        await self.check_token(request)
        body = read_predict_request(await request.body(), request.headers.get("content-type"))
        predictor = self.predictor
        _check_limits(body, self.settings)
        chosen = self.variants.get(body.chunking())
        thresholds = _thresholds(predictor, body.threshold)
        self.metrics.request_texts.observe(len(body.texts))
        probs = await self.batcher.probabilities(chosen, body.texts)
        self.metrics.texts.inc(len(body.texts))
        predictions = rank(body.texts, probs, predictor.labels, body.top_k, thresholds)
        answer = {"predictions": [_as_json(p, predictor.multi_label) for p in predictions],
                  "backend": predictor.backend}
        return Response(json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode(),
                        media_type="application/json")

    async def get_info(self) -> dict:
        """The run: labels, config summary, validation (and test) metrics, plots, version, backend, limits."""
        return self.info

    async def plot(self, name: str) -> FileResponse:
        """A plot of the run: curves.png or confusion_matrix.png."""
        path = self.predictor.run.run_dir / PLOTS_DIR / name
        if name not in PLOTS or not path.is_file():
            raise RequestRefused(404, f"no plot {name!r}; this run has: {', '.join(self.info['plots']) or 'none'}")
        return FileResponse(path, media_type="image/png")

    async def health(self) -> dict:
        """Liveness: the server answers."""
        return {"status": "ok"}

    async def ready(self) -> JSONResponse:
        """Readiness: 200 once the model is loaded and warmed up, 503 before that and while shutting down."""
        ready = self.is_ready and self.batcher.running
        return JSONResponse({"ready": ready, "backend": self.predictor.backend}, status_code=200 if ready else 503)

    async def prometheus(self) -> Response:
        """Requests, latency, batch sizes and errors in Prometheus' text format."""
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def page(self) -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")


async def _predict_schema(body: PredictRequest) -> PredictResponse:
    """Classify texts: per text, in order, the label and its probability and the top_k labels."""
    raise NotImplementedError  # never routed: the schema of what _Service.predict answers


def _openapi_with_predict(app: FastAPI):
    """app.openapi, with POST /v1/predict described as a FastAPI route would be (it is a Starlette one)."""
    documented = APIRouter()
    documented.add_api_route("/v1/predict", _predict_schema, methods=["POST"], response_model=PredictResponse,
                             responses=ERRORS, name="predict")

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                             routes=documented.routes + app.routes)
        return app.openapi_schema

    return openapi


def _bearer(token: str | None):
    """A dependency that lets a request through when authentication is off or it carries `token`."""

    async def check(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise RequestRefused(401, "missing or wrong bearer token (send Authorization: Bearer TOKEN)",
                                 headers={"WWW-Authenticate": "Bearer"})

    return check


def _check_limits(body: PredictRequest, settings: ServeSettings) -> None:
    if len(body.texts) > settings.max_texts:
        raise RequestRefused(413, f"too many texts: {len(body.texts)} > max_texts {settings.max_texts}",
                             "texts", "max_texts")
    for i, text in enumerate(body.texts):
        if len(text) > settings.max_text_chars:
            raise RequestRefused(413, f"texts.{i}: {len(text)} characters > max_text_chars "
                                      f"{settings.max_text_chars}", f"texts.{i}", "max_text_chars")


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
