"""Starting `llmcls serve` as a real uvicorn server in a subprocess on a free port (used by test_serve*.py), and a
predictor that fails on demand (a stand-in for a model failure in the in-process serving tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from llmcls.inference.predict import Predictor

ROOT = Path(__file__).resolve().parents[2]


class FailingPredictor(Predictor):
    """A run's predictor that fails any pass holding the text "boom" (a stand-in for a model failure)."""

    def prepare(self, texts):
        prepared = super().prepare(texts)
        prepared.boom = "boom" in texts
        return prepared

    def score(self, prepared, on_batch=None):
        if any(getattr(part, "boom", False) for part in prepared):
            raise RuntimeError("boom")
        return super().score(prepared, on_batch)


class SlowPredictor(Predictor):
    """A run's predictor whose passes take `seconds_per_batch` per batch of `batches` (a stand-in for a large
    request on a slow machine); it records the texts it prepared and the batches it ran."""

    def __init__(self, *args, seconds_per_batch: float = 0.1, batches: int = 10, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds_per_batch, self.batches = seconds_per_batch, batches
        self.prepared: list[str] = []
        self.batches_run = 0

    def prepare(self, texts):
        self.prepared.extend(texts)
        return super().prepare(texts)

    def score(self, prepared, on_batch=None):
        for _ in range(self.batches):
            time.sleep(self.seconds_per_batch)
            self.batches_run += 1
            if on_batch is not None:
                on_batch(1)
        return super().score(prepared, on_batch)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A running `llmcls serve` process and its address."""

    def __init__(self, process: subprocess.Popen, url: str, log: Path):
        self.process, self.url, self.log = process, url, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code once it has drained."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@contextmanager
def running_server(run_dir: Path, *args: str, log_dir: Path, ready_within: float = 90) -> Iterator[Server]:
    """`llmcls serve RUN --port P ARGS...` until the block ends; waits for GET /ready to answer 200."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmcls",
                "serve",
                str(run_dir),
                "--port",
                str(port),
                "--log-level",
                "warning",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + ready_within
        while True:
            if process.poll() is not None:
                raise AssertionError(f"llmcls serve exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"llmcls serve not ready within {ready_within}s:\n{server.output()}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
