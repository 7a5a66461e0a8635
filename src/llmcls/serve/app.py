"""The HTTP app: a FastAPI app over one loaded `Predictor`, made by `create_app`.

Routes: POST /v1/predict, GET /v1/info, GET /v1/plots/{name}, GET /health, GET /ready, GET /metrics, the page at
GET / (llmcls/serve/page), and the OpenAPI schema at /openapi.json (no /docs: Swagger UI would load its scripts from
a CDN into the origin that holds the page's token). See docs/serving.md for each one's JSON.
"""

from __future__ import annotations

import asyncio
import hmac
import signal
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from llmcls import __version__
from llmcls.inference.predict import Predictor
from llmcls.run.artifacts import PLOTS, read_plot
from llmcls.serve.batcher import Batcher
from llmcls.serve.guard import PREDICT_PATH, Guard, Routes
from llmcls.serve.info import run_info
from llmcls.serve.metrics import ServeMetrics
from llmcls.serve.predict_endpoint import PredictEndpoint, work_limits
from llmcls.serve.responses import RequestRefused, install_error_handlers
from llmcls.serve.schemas import ErrorResponse, PredictRequest, PredictResponse
from llmcls.serve.settings import ServeSettings

PAGE_DIR = Path(__file__).parent / "page"
DRAIN_MARGIN_S = 1.0  # running requests are answered this long before uvicorn's graceful timeout cancels them
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in (400, 401, 413, 422)}
PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 408, 413, 422, 503, 504)
}


def create_app(predictor: Predictor, settings: ServeSettings) -> Guard:
    """The ASGI app serving `predictor` (warmed up and batching once its lifespan has started): the FastAPI app
    inside `Guard`, which counts every request and hands POST /v1/predict to its endpoint directly, past the
    middleware that FastAPI puts around its own app.

    Args:
        predictor: the loaded run.
        settings: limits, batching and authentication (host, port and workers are the server's business).

    Raises:
        ConfigError: the token file cannot be read.
    """
    authorize = _bearer(settings.read_token())

    async def check_token(request: Request) -> None:
        authorize(request.headers.get("authorization"))

    authorized = [Depends(check_token)]
    service = _Service(predictor, settings)
    app = FastAPI(
        title="llmcls",
        version=__version__,
        lifespan=service.lifespan,
        docs_url=None,
        redoc_url=None,
        description=f"Text classification with the llmcls run {predictor.run.run_dir.name!r}.",
    )
    install_error_handlers(app)
    # an ASGI app as the endpoint, which Starlette's Route takes but does not declare; here for 405s: Guard calls it
    app.router.add_route(PREDICT_PATH, service.predict, methods=["POST"])  # type: ignore[arg-type]
    app.openapi = _openapi_with_predict(app)  # type: ignore[method-assign]  # FastAPI's way to extend the schema
    app.add_api_route("/v1/info", service.get_info, methods=["GET"], responses=ERRORS, dependencies=authorized)
    app.add_api_route("/v1/plots/{name}", service.plot, methods=["GET"], responses=ERRORS, dependencies=authorized)
    app.add_api_route("/health", service.health, methods=["GET"])
    app.add_api_route("/ready", service.ready, methods=["GET"])
    app.add_api_route("/metrics", service.prometheus, methods=["GET"], responses=ERRORS, dependencies=authorized)
    app.add_api_route("/", service.page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=PAGE_DIR), name="static")
    return Guard(
        app,
        routes=Routes.of(app),
        metrics=service.metrics,
        settings=settings,
        predict=service.predict,
        authorize=authorize,
        drain=service.drain,
    )


class _Service:
    """What the routes share: the predictor, the batcher, the metrics; each route is one method."""

    def __init__(self, predictor: Predictor, settings: ServeSettings):
        self.predictor, self.settings = predictor, settings
        self.metrics = ServeMetrics()
        self.batcher = Batcher(
            wait_s=settings.batch_wait_ms / 1000,
            max_texts=settings.max_batch_texts,
            max_queue_texts=settings.max_queue_texts,
            admit=work_limits(settings),
            on_round=self.metrics.batch_texts.observe,
        )
        self.predict = PredictEndpoint(predictor, settings, batcher=self.batcher, metrics=self.metrics)
        self.info = run_info(predictor, settings)
        self.is_ready = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        self._loop = asyncio.get_running_loop()
        self.batcher.start()
        # loads the tokenizer before /ready says yes
        await self.batcher.probabilities(
            self.predictor, ["warm up"], timeout_s=max(600.0, self.settings.request_timeout_s)
        )
        self.is_ready = True
        restore = _before_shutdown_signals(self.drain)
        try:
            yield
        finally:
            restore()
            self.is_ready = False
            await self.batcher.stop()  # what was still running past the graceful timeout is not waited for

    def drain(self) -> None:
        """Start shutting down (called from the signal handler, in the loop's thread): the batcher refuses new and
        queued requests and answers the running ones before uvicorn's graceful timeout cancels them."""
        if self._loop is not None and not self._loop.is_closed():
            grace = max(0.0, self.settings.graceful_timeout_s - DRAIN_MARGIN_S)
            self._loop.call_soon_threadsafe(self.batcher.drain, grace)

    async def get_info(self) -> dict:
        """The run: labels, config summary, validation (and test) metrics, plots, version, backend, limits."""
        return self.info

    async def plot(self, name: str) -> Response:
        """A plot of the run: curves.png or confusion_matrix.png (a symlink there is not followed)."""
        image = read_plot(self.predictor.run.run_dir, name) if name in PLOTS else None
        if image is None:
            raise RequestRefused(
                404, f"no plot {name[:100]!r}; this run has: {', '.join(self.info['plots']) or 'none'}"
            )
        return Response(image, media_type="image/png")

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
    documented.add_api_route(
        PREDICT_PATH,
        _predict_schema,
        methods=["POST"],
        response_model=PredictResponse,
        responses=PREDICT_ERRORS,
        name="predict",
    )

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=documented.routes + app.routes
            )
        return app.openapi_schema

    return openapi


def _before_shutdown_signals(callback: Callable[[], None]) -> Callable[[], None]:
    """Have SIGTERM and SIGINT call `callback` before the handler in place (uvicorn's, which stops taking
    connections and waits for the open ones); returns what puts the old handlers back. Nothing is changed outside
    the main thread (an app run in-process by a test), where signals cannot be handled."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(sig, frame):
        callback()
        old = previous[sig]
        if callable(old):
            old(sig, frame)

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _bearer(token: str | None):
    """A check of an Authorization header's value (None: no header) that raises RequestRefused(401) unless
    authentication is off or the value is "Bearer TOKEN"."""

    def authorize(given: str | None) -> None:
        if token is None:
            return
        scheme, _, value = (given or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise RequestRefused(
                401,
                "missing or wrong bearer token (send Authorization: Bearer TOKEN)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return authorize
