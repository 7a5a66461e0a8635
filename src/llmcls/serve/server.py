"""Running the app with uvicorn: one process holding the model, or N worker processes each holding a copy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmcls.inference.backends import open_forward
from llmcls.inference.onnx_forward import OnnxClassifier
from llmcls.inference.predict import Predictor
from llmcls.serve.settings import ServeSettings

# How the parent hands the run and the settings to worker processes (each calls `app_from_environment`).
RUN_ENV, SETTINGS_ENV = "LLMCLS_SERVE_RUN", "LLMCLS_SERVE_SETTINGS"
# Texts per ONNX forward pass unless --batch-size says otherwise: a round of requests (a few dozen texts of mixed
# lengths) cut into length-sorted batches of 16 pads far less than one batch of the run's eval batch size (256);
# measured on the SST-2 network, rounds of 64 texts ran 1.5-1.9x faster (BENCHMARKS.md, "Serving").
ONNX_BATCH_SIZE = 16


def load_predictor(run_dir: str | Path, settings: ServeSettings) -> Predictor:
    """The run, loaded as `settings` say (backend, device, batch size). An ONNX session does not spin, so that
    its idle threads leave the CPU to the event loop: measured on 2 shared cores, served texts/s rose by about a
    fifth; and its batches hold ONNX_BATCH_SIZE texts unless `settings.batch_size` is given.

    Raises:
        RunError, DeviceError, ExportError: as `Predictor.load`.
    """
    info, forward = open_forward(run_dir, settings.device, backend=settings.backend, spinning=False)
    batch_size = settings.batch_size
    if batch_size is None and isinstance(forward, OnnxClassifier):
        batch_size = ONNX_BATCH_SIZE
    return Predictor(info, forward, batch_size=batch_size)


def serve(
    run_dir: str | Path, settings: ServeSettings, *, predictor: Predictor | None = None, log_level: str = "info"
) -> None:
    """Serve a run over HTTP until SIGINT or SIGTERM; then stop taking connections, let the requests in flight
    finish (for up to `settings.graceful_timeout_s`), and return.

    Args:
        run_dir: the run directory.
        settings: where to listen and how to answer.
        predictor: the run already loaded (one process only); default: loaded here.
        log_level: uvicorn's log level (its startup lines and errors go to its own loggers).

    Raises:
        RunError, DeviceError, ExportError: the run cannot be loaded.
        ConfigError: the token file cannot be read.
    """
    import uvicorn

    from llmcls.serve.app import create_app
    from llmcls.serve.connections import HeaderDeadlineProtocol

    # timeout_keep_alive is also the deadline of a request's headers (HeaderDeadlineProtocol)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
        "http": HeaderDeadlineProtocol,
        "timeout_keep_alive": settings.read_timeout_s,
    }
    if settings.workers == 1:
        app = create_app(predictor or load_predictor(run_dir, settings), settings)
        uvicorn.Server(uvicorn.Config(app, **common)).run()
        return
    settings.read_token()  # refuse a bad token file here, not in every worker
    if predictor is None:
        load_predictor(run_dir, settings)  # likewise a run that cannot be loaded
    os.environ[RUN_ENV], os.environ[SETTINGS_ENV] = str(run_dir), settings.to_json()
    uvicorn.run("llmcls.serve.server:app_from_environment", factory=True, workers=settings.workers, **common)


def app_from_environment():
    """The app of one worker process, from what `serve` put in the environment."""
    from llmcls.serve.app import create_app

    settings = ServeSettings.from_json(os.environ[SETTINGS_ENV])
    return create_app(load_predictor(os.environ[RUN_ENV], settings), settings)
