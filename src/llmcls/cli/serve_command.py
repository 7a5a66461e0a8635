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


@app.command()
def serve(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run directory written by `llmcls train`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Server processes, each with a copy of the model."),
    backend: str = typer.Option(
        "auto", "--backend", "-b", help="As for predict: auto, torch, torch-bf16, onnx, onnx-int8."
    ),
    device: str = typer.Option("auto", "--device", "-d", help=DEVICE_HELP),
    batch_size: int | None = typer.Option(
        None, min=1, help="Texts per forward pass (default: 16 with an ONNX backend, else the run's)."
    ),
    batch_wait_ms: float = typer.Option(
        2.0, min=0, max=1000, help="How long a request waits for others to share its round of the model."
    ),
    max_batch_texts: int = typer.Option(1024, min=1, help="Texts gathered into one round at most."),
    max_texts: int = typer.Option(256, min=1, help="Texts per request at most (more: 413)."),
    max_bytes: int = typer.Option(1_000_000, min=1, help="Bytes of a request body at most (more: 413)."),
    max_text_chars: int = typer.Option(20_000, min=1, help="Characters of one text at most (more: 413)."),
    max_request_tokens: int = typer.Option(
        262_144, min=1, help="Tokens the model reads for one request, chunking windows included (more: 413)."
    ),
    max_windows_per_text: int = typer.Option(256, min=1, help="Chunking windows of one text at most (more: 413)."),
    max_concurrent: int = typer.Option(128, min=1, help="Predict requests in the server at once (more: 503)."),
    max_queue_texts: int = typer.Option(4096, min=1, help="Texts waiting for the model at most (more: 503)."),
    request_timeout: float = typer.Option(
        30.0, min=0.001, help="Seconds a predict request may take (then 503 if still queued, 504 if computing)."
    ),
    read_timeout: float = typer.Option(
        10.0, min=0.001, help="Seconds a client may take to send a request's headers, and then its body."
    ),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", help="A Host header to answer (repeat for more; default: --host and localhost; * for any)."
    ),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="Require `Authorization: Bearer TOKEN` on /v1 and /metrics, TOKEN read from "
        "this file (default: no authentication).",
    ),
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
            from llmcls.serve.settings import ServeSettings
        except ImportError as exc:
            raise typer.BadParameter(f"{exc.name} is not installed; pip install 'llmcls[serve]'") from None

        settings = ServeSettings(
            host=host,
            port=port,
            workers=workers,
            backend=backend,
            device=device,
            batch_size=batch_size,
            batch_wait_ms=batch_wait_ms,
            max_batch_texts=max_batch_texts,
            max_texts=max_texts,
            max_bytes=max_bytes,
            max_text_chars=max_text_chars,
            max_request_tokens=max_request_tokens,
            max_windows_per_text=max_windows_per_text,
            max_concurrent=max_concurrent,
            max_queue_texts=max_queue_texts,
            request_timeout_s=request_timeout,
            read_timeout_s=read_timeout,
            allowed_hosts=tuple(allow_host),
            token_file=token_file,
            graceful_timeout_s=graceful_timeout,
        )
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
