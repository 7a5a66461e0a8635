"""`llmcls serve`: a run over HTTP."""

from __future__ import annotations

from pathlib import Path

import typer

from llmcls.cli.common import (
    DEVICE_HELP,
    app,
    load_tokenizer_without_torch,
    user_errors,
)


def _note_hosts(settings) -> None:
    """Say which Host names a server bound beyond this machine answers, when the user has not named them."""
    hosts = settings.hosts()
    if hosts is not None and not settings.allowed_hosts and settings.host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(
            f"note: only requests naming Host {', '.join(sorted(hosts))} are answered; add the names "
            "clients use with --allow-host NAME",
            err=True,
        )


# the options whose name differs from ServeSettings' field
_RENAMED = {
    "request_timeout": "request_timeout_s",
    "read_timeout": "read_timeout_s",
    "graceful_timeout": "graceful_timeout_s",
    "allow_host": "allowed_hosts",
}


def _settings(params: dict):
    """ServeSettings from the command's options (each named as its field, or as _RENAMED says)."""
    from dataclasses import fields

    from llmcls.serve.settings import ServeSettings

    values = {_RENAMED.get(name, name): value for name, value in params.items()}
    values["allowed_hosts"] = tuple(values["allowed_hosts"])
    known = {field.name for field in fields(ServeSettings)}
    return ServeSettings(**{name: value for name, value in values.items() if name in known})


_SERVE_BACKEND = typer.Option(
    "auto", "--backend", "-b", help="As for predict: auto, torch, torch-bf16, onnx, onnx-int8."
)
_SERVE_BATCH_SIZE = typer.Option(
    None, min=1, help="Texts per forward pass (default: 16 with an ONNX backend, else the run's)."
)
_SERVE_BATCH_WAIT_MS = typer.Option(
    2.0, min=0, max=1000, help="How long a request waits for others to share its round of the model."
)
_SERVE_MAX_REQUEST_TOKENS = typer.Option(
    262_144, min=1, help="Tokens the model reads for one request, chunking windows included (more: 413)."
)
_SERVE_REQUEST_TIMEOUT = typer.Option(
    30.0, min=0.001, help="Seconds a predict request may take (then 503 if still queued, 504 if computing)."
)
_SERVE_READ_TIMEOUT = typer.Option(
    10.0, min=0.001, help="Seconds a client may take to send a request's headers, and then its body."
)
_SERVE_ALLOW_HOST = typer.Option(
    [], "--allow-host", help="A Host header to answer (repeat for more; default: --host and localhost; * for any)."
)
_SERVE_TOKEN_FILE = typer.Option(
    None,
    "--token-file",
    help="Require `Authorization: Bearer TOKEN` on /v1 and /metrics, TOKEN read from "
    "this file (default: no authentication).",
)


@app.command()
def serve(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run directory written by `llmcls train`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Server processes, each with a copy of the model."),
    backend: str = _SERVE_BACKEND,
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    batch_size: int | None = _SERVE_BATCH_SIZE,
    batch_wait_ms: float = _SERVE_BATCH_WAIT_MS,
    max_batch_texts: int = typer.Option(1024, min=1, help="Texts gathered into one round at most."),
    max_texts: int = typer.Option(256, min=1, help="Texts per request at most (more: 413)."),
    max_bytes: int = typer.Option(1_000_000, min=1, help="Bytes of a request body at most (more: 413)."),
    max_text_chars: int = typer.Option(20_000, min=1, help="Characters of one text at most (more: 413)."),
    max_request_tokens: int = _SERVE_MAX_REQUEST_TOKENS,
    max_windows_per_text: int = typer.Option(256, min=1, help="Chunking windows of one text at most (more: 413)."),
    max_concurrent: int = typer.Option(128, min=1, help="Predict requests in the server at once (more: 503)."),
    max_queue_texts: int = typer.Option(4096, min=1, help="Texts waiting for the model at most (more: 503)."),
    request_timeout: float = _SERVE_REQUEST_TIMEOUT,
    read_timeout: float = _SERVE_READ_TIMEOUT,
    allow_host: list[str] = _SERVE_ALLOW_HOST,
    token_file: Path | None = _SERVE_TOKEN_FILE,
    graceful_timeout: float = typer.Option(30.0, min=0, help="On SIGTERM, seconds in-flight requests may take."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
) -> None:
    """Serve a run over HTTP (FastAPI on uvicorn): POST /v1/predict, GET /v1/info, /health, /ready, /metrics,
    /openapi.json and a page to try the model at /; limits and statuses in docs/serving.md. Stops on Ctrl-C or
    SIGTERM, answering the requests in flight first. Needs pip install 'llmcls[serve]'."""
    with user_errors(ctx):
        try:
            from llmcls.serve.server import load_predictor
            from llmcls.serve.server import serve as serve_run
        except ImportError as exc:
            raise typer.BadParameter(f"{exc.name} is not installed; pip install 'llmcls[serve]'") from None

        settings = _settings(ctx.params)
        predictor = None
        if workers == 1:
            predictor = load_predictor(run, settings)
            if not predictor.backend.startswith("torch"):
                load_tokenizer_without_torch(predictor)
        typer.echo(
            f"serving {run} ({predictor.backend if predictor else backend} backend, {workers} worker"
            f"{'s' if workers > 1 else ''}) at http://{host}:{port}/",
            err=True,
        )
        _note_hosts(settings)
        serve_run(run, settings, predictor=predictor, log_level=log_level)
