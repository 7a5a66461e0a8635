"""`llmcls serve` against hostile and overloading clients, each case against a real server process: the stated
status, and the server alive and answering afterwards, with its memory bounded.

Slow headers and bodies, a token checked before the body is read, a foreign Host, a symlinked plot, too many
requests at once, a full queue, a deadline, the worst chunking a client may ask for, and SIGTERM during a long pass.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
import httpx

from support.serving import ROOT, running_server

OK = {"texts": ["a gripping , funny film"]}


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


RSS_GROWTH_MB = 400  # what a case may add to the server's memory (bodies of at most --max-bytes, the windows)


def still_serving(server) -> None:
    """The server answers a plain request, and its memory has not grown past RSS_GROWTH_MB since it started."""
    response = httpx.post(f"{server.url}/v1/predict", json=OK, timeout=30, headers=server.headers)
    assert response.status_code == 200, response.text
    assert httpx.get(f"{server.url}/health", timeout=10).json() == {"status": "ok"}
    assert rss_mb(server.process.pid) - server.rss_at_start < RSS_GROWTH_MB


@pytest.fixture(scope="module")
def guarded(trained_sst2, tmp_path_factory):
    """A server with short read deadlines, a token, and its plot replaced by a symlink to another file."""
    folder = tmp_path_factory.mktemp("hostile")
    run = folder / "run"
    shutil.copytree(trained_sst2.run_dir, run, symlinks=True)
    secret = folder / "secret.txt"
    secret.write_text("not for the web\n")
    (run / "plots" / "curves.png").unlink()
    (run / "plots" / "curves.png").symlink_to(secret)
    (folder / "token").write_text("s3cret\n")
    with running_server(
        run, "--read-timeout", "1", "--token-file", str(folder / "token"), "--max-bytes", "100000", log_dir=folder
    ) as server:
        server.headers = {"authorization": "Bearer s3cret"}
        server.rss_at_start = rss_mb(server.process.pid)
        yield server


def test_a_symlinked_plot_is_not_served(guarded):
    info = httpx.get(f"{guarded.url}/v1/info", headers=guarded.headers).json()
    assert info["plots"] == ["confusion_matrix.png"]
    response = httpx.get(f"{guarded.url}/v1/plots/curves.png", headers=guarded.headers)
    assert response.status_code == 404 and b"not for the web" not in response.content


def test_the_token_is_checked_before_the_body_is_read(guarded):
    """A client without the token is refused at once, even with a body too large or one that never comes."""
    port = int(guarded.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 50000\r\n\r\n{"texts": ['
        )  # the rest never comes
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401")
    huge = httpx.post(f"{guarded.url}/v1/predict", content=b"x" * 200_000, timeout=30)
    assert huge.status_code == 401
    still_serving(guarded)


def test_slow_headers_are_cut_off_and_a_slow_body_gets_408(guarded):
    port = int(guarded.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
        start = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server
        assert time.monotonic() - start < 5
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        start = time.monotonic()
        assert sock.recv(1024) == b""  # a connection that sends nothing is closed too
        assert time.monotonic() - start < 5
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"texts": ['
        )
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 408") and '"limit":"read_timeout_s"' in answer.replace(" ", "")
    still_serving(guarded)


def test_only_allowed_hosts_are_answered(guarded):
    rebound = httpx.get(f"{guarded.url}/health", headers={"host": "attacker.example"})
    assert rebound.status_code == 400 and "--allow-host" in rebound.json()["error"]["message"]
    predict = httpx.post(
        f"{guarded.url}/v1/predict", json=OK, headers={"host": "attacker.example:80", **guarded.headers}
    )
    assert predict.status_code == 400
    port = guarded.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]"):
        assert httpx.get(f"{guarded.url}/health", headers={"host": host}).status_code == 200


def test_errors_carry_no_exception_text_and_docs_are_off(guarded):
    assert httpx.get(f"{guarded.url}/docs").status_code == 404
    deep = httpx.post(
        f"{guarded.url}/v1/predict",
        content=b"[" * 50_000 + b"]" * 50_000,
        timeout=30,
        headers={"content-type": "application/json", **guarded.headers},
    )
    assert deep.status_code == 422 and "Recursion" not in deep.text and "Traceback" not in guarded.output()


@pytest.fixture(scope="module")
def crowded(trained_sst2, tmp_path_factory):
    """A server that admits 3 requests at a time and queues 10 texts, and whose rounds wait a second for company
    (so that requests stay inside it long enough to crowd it)."""
    with running_server(
        trained_sst2.run_dir,
        "--max-concurrent",
        "3",
        "--max-texts",
        "10",
        "--max-queue-texts",
        "10",
        "--batch-wait-ms",
        "1000",
        log_dir=tmp_path_factory.mktemp("crowded"),
    ) as server:
        server.headers = {}
        server.rss_at_start = rss_mb(server.process.pid)
        yield server


def test_past_max_concurrent_requests_get_503_with_retry_after(crowded):
    async def burst():
        async with httpx.AsyncClient(base_url=crowded.url, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/predict", json=OK) for _ in range(12)))

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 503} and statuses.count(200) <= 3
    refused = [r for r in responses if r.status_code == 503]
    assert all(r.headers["retry-after"] == "1" and r.json()["error"]["limit"] == "max_concurrent" for r in refused)
    still_serving(crowded)


def test_a_full_queue_gets_503(crowded):
    async def two():
        async with httpx.AsyncClient(base_url=crowded.url, timeout=60) as client:
            first = asyncio.ensure_future(client.post("/v1/predict", json={"texts": ["a"] * 6}))
            await asyncio.sleep(0.3)  # inside the first request's 1 s gathering window
            second = await client.post("/v1/predict", json={"texts": ["b"] * 6})
            return await first, second

    first, second = asyncio.run(two())
    assert first.status_code == 200
    assert second.status_code == 503 and second.json()["error"]["limit"] == "max_queue_texts"
    still_serving(crowded)


def test_a_request_past_its_deadline_gets_503_before_it_starts(trained_sst2, tmp_path):
    with running_server(
        trained_sst2.run_dir, "--request-timeout", "0.3", "--batch-wait-ms", "1000", log_dir=tmp_path
    ) as server:
        response = httpx.post(f"{server.url}/v1/predict", json=OK, timeout=30)
        assert response.status_code == 503 and response.json()["error"]["limit"] == "request_timeout_s"
        assert "still queued" in response.json()["error"]["message"]


def test_the_worst_chunking_a_client_may_send_is_bounded(trained_sst2, tmp_path):
    """Texts at max_text_chars with the smallest windows and stride: refused (413/422) or answered within the
    deadline, and the server's memory stays bounded."""
    text = " ".join(["word"] * 4000)  # 19,999 characters, 4,000 tokens
    with running_server(trained_sst2.run_dir, "--request-timeout", "20", log_dir=tmp_path) as server:
        server.headers = {}
        server.rss_at_start = rss_mb(server.process.pid)
        cases = [
            ({"chunk_tokens": 1, "chunk_stride": 1}, 413),
            ({"chunk_tokens": 8, "chunk_stride": 1}, 422),
            ({"chunk_tokens": 16, "chunk_stride": 4}, 413),
            ({"chunk_tokens": 64, "chunk_stride": 16}, 413),
        ]
        for options, status in cases:
            response = httpx.post(f"{server.url}/v1/predict", json={"texts": [text] * 40, **options}, timeout=60)
            assert response.status_code == status, (options, response.text)
        start = time.monotonic()  # the heaviest request the limits admit: 15 texts x 250 windows x 64 tokens
        heavy = httpx.post(
            f"{server.url}/v1/predict", json={"texts": [text] * 15, "chunk_tokens": 64, "chunk_stride": 16}, timeout=60
        )
        assert heavy.status_code in (200, 504) and time.monotonic() - start < 20 + 5
        still_serving(server)


def test_sigterm_during_a_long_pass_exits_within_the_graceful_timeout(trained_sst2, tmp_path):
    """The running request is answered (504) before the graceful timeout, and the process is gone soon after,
    though the pass it was on would have run much longer."""
    text = " ".join(["word"] * 20_000)
    args = (
        "--graceful-timeout",
        "3",
        "--max-bytes",
        "50000000",
        "--max-texts",
        "500",
        "--max-queue-texts",
        "500",
        "--max-text-chars",
        "200000",
        "--max-request-tokens",
        "100000000",
        "--max-windows-per-text",
        "100000",
        "--request-timeout",
        "600",
    )
    with running_server(trained_sst2.run_dir, *args, log_dir=tmp_path) as server:

        async def long_pass_then_sigterm():
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
                request = asyncio.ensure_future(
                    client.post("/v1/predict", json={"texts": [text] * 50, "chunk_tokens": 8, "chunk_stride": 2})
                )
                while "llmcls_requests_in_flight 2.0" not in (await client.get("/metrics")).text:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # well into the pass (tens of seconds of windows on this tiny model)
                server.process.terminate()
                signalled = time.monotonic()
                response = await request
                return response, time.monotonic() - signalled

        response, answered_after = asyncio.run(long_pass_then_sigterm())
        assert response.status_code == 504 and answered_after < 3
        signalled = time.monotonic() - answered_after
        server.process.wait(30)
        assert time.monotonic() - signalled < 3 + 3
        assert json.loads(response.text)["error"]["limit"] == "request_timeout_s"


def test_loadtest_overload_mode_reports_answered_and_refused(crowded, tmp_path):
    """scripts/loadtest.py --overload against a server admitting 3 requests: only 200s and 503s, counted, with
    the server's RSS."""
    data = tmp_path / "texts.csv"
    data.write_text("text\n" + "".join(f"text number {i}\n" for i in range(50)))
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "loadtest.py"),
            "--url",
            crowded.url,
            "--data",
            str(data),
            "--overload",
            "--clients",
            "20",
            "--seconds",
            "3",
            "--pid",
            str(crowded.process.pid),
            "--ignore-retry-after",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    kinds = {key.split("_")[1] for key in report if key.startswith("crowd_") and key.split("_")[1].isalnum()}
    assert kinds <= {"200", "503", "answered"} and report["crowd_200"] > 0 and report["crowd_503"] > 0
    assert report["server_rss_max_mb"] > 0 and "crowd_200_p99_ms" in report
    polite = {key.split("_")[1] for key in report if key.startswith("polite_") and key.split("_")[1].isdigit()}
    assert polite and polite <= {"200", "503"}, report
    still_serving(crowded)


def test_a_client_that_disconnects_is_not_computed(crowded):
    """A request whose client goes away while it waits is dropped: counted as 499, its texts never classified."""

    def texts_classified() -> float:
        metrics = httpx.get(f"{crowded.url}/metrics").text
        return float(next(line.split()[1] for line in metrics.splitlines() if line.startswith("llmcls_texts_total ")))

    before = texts_classified()
    port = int(crowded.url.rsplit(":", 1)[1])
    body = json.dumps({"texts": ["gone"] * 7}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        time.sleep(0.3)  # inside the round's 1 s gathering window
    time.sleep(1.5)
    metrics = httpx.get(f"{crowded.url}/metrics").text
    assert 'llmcls_requests_total{route="/v1/predict",status="499"} 1.0' in metrics
    assert texts_classified() == before
    still_serving(crowded)
