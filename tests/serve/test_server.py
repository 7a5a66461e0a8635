"""`llmcls serve`: a real uvicorn server in a subprocess on a free port, spoken to over HTTP with httpx.

Answers equal `llmcls predict`'s; every bad request gets its status and a message naming the field or the limit;
1,000 concurrent requests all succeed; SIGTERM while requests are in flight loses none of them.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
import httpx
from typer.testing import CliRunner

from llmcls.cli import app
from llmcls.data.readers import read_examples
from support.paths import FIXTURES
from support.serving import running_server

TEXTS = read_examples(FIXTURES / "sst2_valid.csv").texts[:60] + ["", "x", "an été à Paris — 東京 ✓"]
LIMITS = ("--max-texts", "100", "--max-bytes", "300000", "--max-text-chars", "300")


@pytest.fixture(scope="module")
def server(trained_sst2, tmp_path_factory):
    with running_server(trained_sst2.run_dir, *LIMITS, log_dir=tmp_path_factory.mktemp("serve")) as running:
        yield running


def post(server, body, **kwargs) -> httpx.Response:
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(f"{server.url}/v1/predict", content=body, headers=headers, timeout=30, **kwargs)


def test_the_served_onnx_session_does_not_spin_and_runs_small_batches(trained_sst2):
    from llmcls.serve.server import ONNX_BATCH_SIZE, load_predictor
    from llmcls.serve.settings import ServeSettings

    predictor = load_predictor(trained_sst2.run_dir, ServeSettings(device="cpu"))
    assert predictor.backend == "onnx" and predictor.batch_size == ONNX_BATCH_SIZE
    options = predictor.forward.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert load_predictor(trained_sst2.run_dir, ServeSettings(device="cpu", batch_size=3)).batch_size == 3
    torch_predictor = load_predictor(trained_sst2.run_dir, ServeSettings(backend="torch", device="cpu"))
    assert torch_predictor.batch_size == torch_predictor.run.config.train.eval_batch_size != ONNX_BATCH_SIZE


def test_answers_equal_llmcls_predict(server, trained_sst2, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "predictions.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(trained_sst2.run_dir),
            "--input",
            str(path),
            "--format",
            "jsonl",
            "--top-k",
            "2",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    expected = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    response = post(server, {"texts": TEXTS, "top_k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["backend"] == "onnx"  # the export training wrote
    got = body["predictions"]
    assert len(got) == len(TEXTS) == len(expected)
    for answer, line in zip(got, expected):
        assert answer["label"] == line["label"]
        assert answer["probability"] == pytest.approx(line["probability"], abs=1e-6)
        assert [t["label"] for t in answer["top_k"]] == [t["label"] for t in line["top_k"]]
        assert sum(t["probability"] for t in answer["top_k"]) == pytest.approx(1.0)


def test_input_order_is_kept_under_concurrency(server):
    """Requests batched together each get their own rows back."""
    alone = {text: post(server, {"texts": [text]}).json()["predictions"][0] for text in TEXTS[:8]}

    async def all_at_once():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(
                *(client.post("/v1/predict", json={"texts": [t, *TEXTS[:8]]}) for t in reversed(TEXTS[:8]))
            )

    for text, response in zip(reversed(TEXTS[:8]), asyncio.run(all_at_once())):
        rows = response.json()["predictions"]
        assert rows[0]["probability"] == pytest.approx(alone[text]["probability"], abs=1e-6)
        assert [r["label"] for r in rows[1:]] == [alone[t]["label"] for t in TEXTS[:8]]


@pytest.mark.parametrize(
    "body, status, message, where",
    [
        (b'{"texts": ["a", ', 422, "body: malformed JSON", {"field": "body"}),
        ({"texts": []}, 422, "texts: must not be empty", {"field": "texts"}),
        ({"texts": "a film"}, 422, "texts: Input should be a valid list", {"field": "texts"}),
        ({"texts": ["ok", 3]}, 422, "texts.1: Input should be a valid string", {"field": "texts.1"}),
        ({"text": ["a film"]}, 422, "required field is missing", {}),
        ({"texts": ["a"], "colour": "red"}, 422, "colour: unknown field", {"field": "colour"}),
        ({"texts": ["a"], "top_k": 0}, 422, "top_k: Input should be greater than or equal to 1", {"field": "top_k"}),
        ({"texts": ["a"], "top_k": "two"}, 422, "top_k: Input should be a valid integer", {"field": "top_k"}),
        (
            {"texts": ["a"], "chunk_aggregate": "median"},
            422,
            "chunk_aggregate: Input should be 'mean' or 'max'",
            {"field": "chunk_aggregate"},
        ),
        (
            {"texts": ["a"], "threshold": 0.3},
            422,
            "threshold: applies to multi-label runs only",
            {"field": "threshold"},
        ),
        ([1, 2], 422, "body: expected a JSON object", {"field": "body"}),
        ({"texts": ["a"] * 101}, 413, "too many texts: 101 > max_texts 100", {"limit": "max_texts", "field": "texts"}),
        (
            {"texts": ["a", "b" * 301]},
            413,
            "texts.1: 301 characters > max_text_chars 300",
            {"limit": "max_text_chars", "field": "texts.1"},
        ),
        (
            {"texts": ["word " * 50] * 90, "pad": "x" * 300_000},
            413,
            "request body too large: 3",
            {"limit": "max_bytes"},
        ),
        (
            b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            422,
            "body: JSON nested too deeply",
            {"field": "body"},
        ),
        (
            b'{"texts": ["a"], "top_k": ' + b"9" * 5000 + b"}",
            422,
            "body: a JSON number too large to read",
            {"field": "body"},
        ),
        (
            b'{"texts": ["ok", "a \\ud800 film"]}',
            422,
            "texts.1: not valid Unicode (surrogates not allowed at character 2)",
            {"field": "texts.1"},
        ),
    ],
)
def test_bad_requests_get_status_and_message(server, body, status, message, where):
    response = post(server, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and message in error["message"]
    for key, value in where.items():
        assert error[key] == value


def test_other_methods_on_predict_get_405_in_the_error_shape(server):
    response = httpx.get(f"{server.url}/v1/predict", timeout=10)
    assert response.status_code == 405 and response.json()["error"]["status"] == 405
    assert response.headers["allow"] == "POST"


def test_a_body_not_declared_as_json_is_explained(server):
    response = httpx.post(
        f"{server.url}/v1/predict", content=b'{"texts": ["a"]}', timeout=10, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 422
    assert "Content-Type: application/json" in response.json()["error"]["message"]


def test_chunking_options_change_the_answer_of_long_texts(server):
    long = " ".join(TEXTS[:12])[:290]  # under max_text_chars
    whole = post(server, {"texts": [long]}).json()["predictions"][0]
    chunked = post(server, {"texts": [long], "chunk_tokens": 8, "chunk_aggregate": "max"}).json()["predictions"][0]
    assert whole["probability"] != pytest.approx(chunked["probability"], abs=1e-6)
    again = post(server, {"texts": [long]}).json()["predictions"][0]  # the run's own settings are untouched
    assert again == whole


def test_info_health_ready_schema(server, trained_sst2):
    info = httpx.get(f"{server.url}/v1/info").json()
    assert info["labels"] == ["negative", "positive"] and info["backend"] == "onnx"
    assert info["metrics"]["valid"]["accuracy"] == pytest.approx(trained_sst2.valid["accuracy"])
    assert info["best_epoch"] == trained_sst2.best_epoch and info["config"]["model"]["hidden_size"] == 32
    assert info["limits"] == {
        "max_texts": 100,
        "max_bytes": 300000,
        "max_text_chars": 300,
        "max_request_tokens": 262_144,
        "max_windows_per_text": 256,
        "request_timeout_s": 30.0,
    }
    assert "data" not in info["config"] and "cache_dir" not in info["config"]["tokenizer"]
    assert str(trained_sst2.run_dir.parent) not in json.dumps(info)  # no local paths
    assert set(info["plots"]) == {"curves.png", "confusion_matrix.png"}
    plot = httpx.get(f"{server.url}/v1/plots/curves.png")
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
    assert httpx.get(f"{server.url}/v1/plots/..%2Fmodel.safetensors").status_code == 404
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/ready").json() == {"ready": True, "backend": "onnx"}
    assert httpx.get(f"{server.url}/docs").status_code == 404  # Swagger UI would load scripts from a CDN
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert "texts" in schema["components"]["schemas"]["PredictRequest"]["properties"]
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and "/static/page.js" in page.text and "http" not in page.text.split("<body>")[1]


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus' text format."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    found = re.findall(pattern, text, re.MULTILINE)
    assert found, f"{name} {labels} not in the metrics"
    return float(found[0])


def test_thousand_concurrent_requests_then_healthy(server):
    before = httpx.get(f"{server.url}/metrics").text
    ok_before = metric(before, "llmcls_requests_total", route="/v1/predict", status="200")
    rounds_before = metric(before, "llmcls_batch_texts_count")

    async def hammer():
        gate = asyncio.Semaphore(64)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:

            async def one(i):
                async with gate:
                    texts = [TEXTS[i % len(TEXTS)], TEXTS[(7 * i) % len(TEXTS)]][: 1 + i % 2]
                    response = await client.post("/v1/predict", json={"texts": texts})
                    return response.status_code, len(response.json()["predictions"]), len(texts)

            return await asyncio.gather(*(one(i) for i in range(1000)))

    results = asyncio.run(hammer())
    assert [status for status, _, _ in results] == [200] * 1000
    assert all(got == sent for _, got, sent in results)
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    after = httpx.get(f"{server.url}/metrics").text
    assert metric(after, "llmcls_requests_total", route="/v1/predict", status="200") - ok_before == 1000
    rounds = metric(after, "llmcls_batch_texts_count") - rounds_before
    assert rounds < 1000  # concurrent requests shared rounds of the model
    for name in ("llmcls_request_seconds_bucket", "llmcls_request_errors_total", "llmcls_requests_in_flight"):
        assert name in after


def test_sigterm_answers_every_accepted_request(trained_sst2, tmp_path):
    """Requests in flight when SIGTERM comes are all answered before the server exits: the one the model is on
    with 200, the queued ones at once with 503 and Retry-After (they had not started)."""
    # the longest gathering window keeps the requests waiting inside the server until the signal arrives; the
    # signal is sent once the server counts all 30 in flight (plus the /metrics request that asks), or once the first
    # is answered on a machine too loaded for that, rather than after a fixed sleep
    with running_server(
        trained_sst2.run_dir, "--batch-wait-ms", "1000", "--graceful-timeout", "10", log_dir=tmp_path
    ) as server:

        async def in_flight_then_sigterm():
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                requests = [
                    asyncio.create_task(client.post("/v1/predict", json={"texts": TEXTS[: 1 + i]})) for i in range(30)
                ]
                while not any(r.done() for r in requests):
                    metrics = (await client.get("/metrics")).text
                    if "llmcls_requests_in_flight 31.0" in metrics:
                        break
                    await asyncio.sleep(0.02)
                server.process.terminate()
                return await asyncio.gather(*requests, return_exceptions=True)

        start = time.monotonic()
        results = asyncio.run(in_flight_then_sigterm())
        assert all(isinstance(r, httpx.Response) for r in results), [r for r in results if isinstance(r, Exception)]
        statuses = [r.status_code for r in results]
        assert set(statuses) <= {200, 503} and 200 in statuses
        for i, response in enumerate(results):
            if response.status_code == 200:
                assert len(response.json()["predictions"]) == i + 1
            else:
                assert response.headers["retry-after"] == "1" and "shutting down" in response.json()["error"]["message"]
        assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
        assert time.monotonic() - start < 10 + 5
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/health", timeout=2)


def test_bearer_token(trained_sst2, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    with running_server(
        trained_sst2.run_dir, "--token-file", str(token_file), "--workers", "2", log_dir=tmp_path
    ) as server:
        for path in ("/v1/info", "/metrics"):
            refused = httpx.get(server.url + path)
            assert refused.status_code == 401 and "bearer token" in refused.json()["error"]["message"]
            assert refused.headers["www-authenticate"] == "Bearer"
        wrong = post(server, {"texts": ["a"]}, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        good = post(server, {"texts": ["a gripping film"]}, headers={"authorization": "Bearer s3cret-token"})
        assert good.status_code == 200 and good.json()["predictions"][0]["label"] in ("negative", "positive")
        assert httpx.get(server.url + "/health").status_code == 200  # liveness stays open for probes


def test_serve_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "no such run directory" in result.output and "Traceback" not in result.output


def test_unreadable_token_file_is_one_line(trained_sst2, tmp_path):
    result = CliRunner().invoke(app, ["serve", str(trained_sst2.run_dir), "--token-file", str(tmp_path / "none")])
    assert result.exit_code == 1 and "--token-file" in result.output and "cannot read" in result.output
