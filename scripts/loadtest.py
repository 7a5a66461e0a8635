#!/usr/bin/env python
"""Drive a running `llmcls serve` with real HTTP requests (httpx, asyncio) and report what it sustains.

Closed loop (the default): C clients, each sending its next request as soon as the last one is answered, for S
seconds. Open loop (--rate R): R requests a second at fixed intervals, whatever the answers, for S seconds (the
latency a user sees at a moderate load). Texts come from a dataset column, taken in turn.

    llmcls serve runs/sst2 &
    python scripts/loadtest.py --url http://127.0.0.1:8000 --data data/sst2/test.csv --clients 64 --seconds 20
    python scripts/loadtest.py --url http://127.0.0.1:8000 --data data/sst2/test.csv --rate 50 --seconds 20
    # and offline batch `predict` on the same texts, for the ratio (run it while the server is idle):
    python scripts/loadtest.py --offline runs/sst2 --data data/sst2/test.csv --seconds 10

Prints requests/s, texts/s, p50/p95/p99 latency and errors (--json: the same as JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path


def read_texts(path: Path, column: str) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llmcls.data.readers import read_texts as read

    return [t for t in read(path, column, "auto") if t.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summary(latencies: list[float], texts: int, errors: dict[str, int], seconds: float) -> dict:
    return {"requests": len(latencies), "errors": errors, "seconds": round(seconds, 2),
            "requests_per_s": round(len(latencies) / seconds, 1), "texts_per_s": round(texts / seconds, 1),
            **{f"p{int(q * 100)}_ms": round(1000 * percentile(latencies, q), 2) for q in (0.5, 0.95, 0.99)}}


async def run_load(url: str, texts: list[str], clients: int, per_request: int, seconds: float,
                   rate: float | None, token: str | None) -> dict:
    import httpx

    headers = {"authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    done_texts = 0
    position = 0
    # one connection per simulated client: httpx's shared pool gets slow with many connections
    connections = [httpx.AsyncClient(base_url=url, timeout=60, headers=headers) for _ in range(clients)]
    idle = asyncio.Queue()
    for connection in connections:
        idle.put_nowait(connection)

    async def one() -> None:
        nonlocal done_texts, position
        batch = [texts[(position + i) % len(texts)] for i in range(per_request)]
        position += per_request
        start = time.perf_counter()  # waiting for a free connection counts too
        client = await idle.get()
        try:
            response = await client.post("/v1/predict", json={"texts": batch})
            ok, kind = response.status_code == 200, str(response.status_code)
        except httpx.HTTPError as exc:
            ok, kind = False, type(exc).__name__
        finally:
            idle.put_nowait(client)
        if ok:
            latencies.append(time.perf_counter() - start)
            done_texts += per_request
        else:
            errors[kind] = errors.get(kind, 0) + 1

    try:
        await asyncio.gather(*(one() for _ in range(clients)))  # warm up: connections and the server
        latencies.clear()
        errors.clear()
        done_texts = 0
        began, cpu = time.perf_counter(), time.process_time()
        end = began + seconds
        if rate is None:
            async def client_loop() -> None:
                while time.perf_counter() < end:
                    await one()
            await asyncio.gather(*(client_loop() for _ in range(clients)))
        else:
            pending = []
            n = 0
            while (due := began + n / rate) < end:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                pending.append(asyncio.create_task(one()))
                n += 1
            await asyncio.gather(*pending)
        result = summary(latencies, done_texts, errors, time.perf_counter() - began)
        result["client_cpu_s"] = round(time.process_time() - cpu, 1)  # this client's own share of the CPUs
        return result
    finally:
        for connection in connections:
            await connection.aclose()


def offline(run: Path, texts: list[str], seconds: float, backend: str) -> dict:
    """Texts/s of offline batch prediction (`Predictor.predict`, tokenization included) on the same texts."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llmcls.inference.predict import Predictor

    predictor = Predictor.load(run, backend=backend)
    predictor.predict(texts[:256])  # warm-up
    done, began = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - began < seconds:
        predictor.predict(texts)
        done += len(texts)
    elapsed = time.perf_counter() - began
    return {"backend": predictor.backend, "texts": done, "seconds": round(elapsed, 2),
            "texts_per_s": round(done / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--data", type=Path, required=True, help="CSV/TSV/JSONL/txt file with the texts")
    parser.add_argument("--column", default="text", help="text column of a CSV/TSV/JSONL file")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (closed loop)")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests per second")
    parser.add_argument("--token", default=None, help="bearer token, if the server wants one")
    parser.add_argument("--offline", type=Path, default=None, metavar="RUN",
                        help="instead: time offline batch predict of RUN on the same texts")
    parser.add_argument("--backend", default="auto", help="--offline: the predict backend")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    texts = read_texts(args.data, args.column)
    if args.offline is not None:
        result = {"mode": "offline", **offline(args.offline, texts, args.seconds, args.backend)}
    else:
        result = asyncio.run(run_load(args.url, texts, args.clients, args.texts_per_request, args.seconds,
                                      args.rate, args.token))
        result = {"mode": f"rate {args.rate}/s" if args.rate else f"{args.clients} clients",
                  "texts_per_request": args.texts_per_request, **result}
    if args.json:
        print(json.dumps(result))
    else:
        print("  ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
