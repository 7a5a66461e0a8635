"""What `llmcls serve` is told: where to listen, how to batch, what to refuse. One frozen dataclass, checked once."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from llmcls.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """Settings of one server.

    Attributes:
        host: the address to bind; 127.0.0.1 (this machine only) unless told otherwise.
        port: the TCP port.
        workers: server processes, each with its own copy of the model (and its own metrics).
        backend: what computes the logits: auto, torch, torch-bf16, onnx or onnx-int8 (see llmcls.inference.predict).
        device: auto, cpu, cuda or cuda:N (the torch backends).
        batch_size: texts per forward pass (default: 16 with an ONNX backend, else the run's eval batch size).
        batch_wait_ms: how long the batcher waits for more requests once one has arrived.
        max_batch_texts: at most this many texts are gathered into one round of the model.
        max_texts: texts per request (more: 413).
        max_bytes: bytes of a request body (more: 413).
        max_text_chars: characters of one text (more: 413).
        max_request_tokens: tokens the network reads for one request, chunking's overlapping windows included
            (more: 413).
        max_windows_per_text: chunking windows of one text (more: 413).
        max_concurrent: /v1/predict requests in the server at once, read or waiting (more: 503).
        max_queue_texts: texts waiting for the model (more: 503).
        request_timeout_s: a request not answered within this time gets 503 (still queued) or 504 (computing).
        read_timeout_s: a connection must send a request's headers, and then its body, within this time each
            (headers: the connection is closed; body: 408).
        allowed_hosts: the Host header values answered (with or without a port); empty: the bound address and
            localhost; "*": any.
        token_file: a file holding the bearer token that /v1 and /metrics require; None: no authentication.
        graceful_timeout_s: on SIGTERM/SIGINT, how long in-flight requests may take to finish.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    backend: str = "auto"
    device: str = "auto"
    batch_size: int | None = None
    batch_wait_ms: float = 2.0
    max_batch_texts: int = 1024
    max_texts: int = 256
    max_bytes: int = 1_000_000
    max_text_chars: int = 20_000
    max_request_tokens: int = 262_144
    max_windows_per_text: int = 256
    max_concurrent: int = 128
    max_queue_texts: int = 4096
    request_timeout_s: float = 30.0
    read_timeout_s: float = 10.0
    allowed_hosts: tuple[str, ...] = ()
    token_file: Path | None = None
    graceful_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        positive = (
            "port",
            "workers",
            "max_batch_texts",
            "max_texts",
            "max_bytes",
            "max_text_chars",
            "max_request_tokens",
            "max_windows_per_text",
            "max_concurrent",
            "max_queue_texts",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"serve --{name.replace('_', '-')}: must be at least 1 (got {getattr(self, name)})")
        for name in ("request_timeout_s", "read_timeout_s"):
            if not 0 < getattr(self, name) <= 3600:
                raise ConfigError(
                    f"serve --{name[:-2].replace('_', '-')}: must be between 0 and 3600 seconds "
                    f"(got {getattr(self, name)})"
                )
        if self.max_queue_texts < self.max_texts:
            raise ConfigError(
                f"serve --max-queue-texts: must be at least --max-texts ({self.max_texts}), or a full "
                f"request could never be queued (got {self.max_queue_texts})"
            )
        object.__setattr__(self, "allowed_hosts", tuple(host.lower() for host in self.allowed_hosts))
        if not 0 <= self.batch_wait_ms <= 1000:
            raise ConfigError(f"serve --batch-wait-ms: must be between 0 and 1000 (got {self.batch_wait_ms})")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"serve --batch-size: must be at least 1 (got {self.batch_size})")

    def read_token(self) -> str | None:
        """The bearer token from `token_file`, or None when authentication is off.

        Raises:
            ConfigError: the file cannot be read or is empty.
        """
        if self.token_file is None:
            return None
        try:
            token = Path(self.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"--token-file {self.token_file}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"--token-file {self.token_file}: not UTF-8 text") from None
        if not token or any(c.isspace() for c in token):
            raise ConfigError(f"--token-file {self.token_file}: expected one token (no spaces) on one line")
        return token

    def to_json(self) -> str:
        """The settings as JSON, to hand to worker processes."""
        return json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        values = json.loads(text)
        known = {f.name for f in fields(cls)}
        if values.get("token_file") is not None:
            values["token_file"] = Path(values["token_file"])
        values["allowed_hosts"] = tuple(values.get("allowed_hosts", ()))
        return cls(**{k: v for k, v in values.items() if k in known})

    def limits(self) -> dict[str, float]:
        """The request limits, as /v1/info reports them."""
        names = (
            "max_texts",
            "max_bytes",
            "max_text_chars",
            "max_request_tokens",
            "max_windows_per_text",
            "request_timeout_s",
        )
        return {name: getattr(self, name) for name in names}

    def hosts(self) -> frozenset[str] | None:
        """The Host names answered (lower case, without port); None: any."""
        if "*" in self.allowed_hosts:
            return None
        return frozenset(self.allowed_hosts or (self.host.lower(), "localhost", "127.0.0.1", "::1"))
