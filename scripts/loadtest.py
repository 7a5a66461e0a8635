#!/usr/bin/env python
"""Drive a running `llmcls serve` with real HTTP requests (httpx, asyncio) and report what it sustains.

Closed loop (the default): C clients, each sending its next request as soon as the last one is answered, for S
seconds. Open loop (--rate R): R requests a second at fixed intervals, whatever the answers, for S seconds (the
latency a user sees at a moderate load). Overload (--overload): many more clients than the server admits (each
on its own connection, sending again as soon as it is answered), beside one polite client sending a request a
second; it reports answered (200), refused (503) and failed requests, the latencies of each kind, the polite
client's, and the server's peak RSS (--pid). Texts come from a dataset column, taken in turn.

    llmcls serve runs/sst2 &
    python scripts/loadtest.py --url http://127.0.0.1:8000 --data data/sst2/test.csv --clients 64 --seconds 20
    python scripts/loadtest.py --url http://127.0.0.1:8000 --data data/sst2/test.csv --rate 50 --seconds 20
    python scripts/loadtest.py --url http://127.0.0.1:8000 --data data/sst2/test.csv --overload --clients 2000 \
        --seconds 30 --pid $(pgrep -f "llmcls serve")
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

    return [t for t in read(path, column=column) if t.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summary(latencies: list[float], texts: int, errors: dict[str, int], seconds: float) -> dict:
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "texts_per_s": round(texts / seconds, 1),
        **{f"p{int(q * 100)}_ms": round(1000 * percentile(latencies, q), 2) for q in (0.5, 0.95, 0.99)},
    }


async def run_load(
    url: str, texts: list[str], clients: int, per_request: int, seconds: float, rate: float | None, token: str | None
) -> dict:
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


async def run_overload(
    url: str,
    texts: list[str],
    clients: int,
    seconds: float,
    token: str | None,
    pid: int | None,
    ignore_retry_after: bool = False,
) -> dict:
    """`clients` closed-loop clients, one connection each, and a polite client (a request a second), for
    `seconds`; statuses, latencies and the server's RSS. A refused client waits as Retry-After says, unless
    `ignore_retry_after` (then it sends again at once: the worst case).

    The clients speak HTTP/1.1 over asyncio streams themselves: thousands of httpx clients would spend more of
    the machine's CPU than the server they measure."""
    from urllib.parse import urlsplit

    address = urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    crowd: dict[str, list[float]] = {}
    polite: dict[str, list[float]] = {}
    end = time.perf_counter() + seconds

    def request(text: str) -> bytes:
        body = json.dumps({"texts": [text]}).encode()
        return (
            f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def loop(i: int, into: dict[str, list[float]], pause: float) -> None:
        n, connection = 0, None
        while time.perf_counter() < end:
            start, wait = time.perf_counter(), pause
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                status, headers = await _exchange(*connection, request(texts[(i + n * clients) % len(texts)]))
                kind = str(status)
                if status == 503 and not ignore_retry_after:
                    wait = max(pause, float(headers.get("retry-after", 0)))
                if headers.get("connection") == "close":
                    connection[1].close()
                    connection = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                kind, connection = type(exc).__name__, None
            into.setdefault(kind, []).append(time.perf_counter() - start)
            n += 1
            await asyncio.sleep(wait)
        if connection is not None:
            connection[1].close()

    rss = asyncio.create_task(_sample_rss(pid, end)) if pid else None
    began = time.perf_counter()
    await asyncio.gather(*(loop(i, crowd, 0.0) for i in range(clients)), loop(0, polite, 1.0))
    elapsed = time.perf_counter() - began
    result = {
        "clients": clients,
        "seconds": round(elapsed, 1),
        **_statuses("crowd", crowd, elapsed),
        **_statuses("polite", polite, elapsed),
    }
    if rss is not None:
        result.update(await rss)
    return result


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes
) -> tuple[int, dict[str, str]]:
    """Send one request; read its answer's status line, headers and body (by Content-Length)."""
    writer.write(message)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers


def _statuses(who: str, kinds: dict[str, list[float]], seconds: float) -> dict:
    """Per status (or error type): count, and p50/p99 latency in ms; answered texts/s."""
    out: dict = {f"{who}_{kind}": len(times) for kind, times in sorted(kinds.items())}
    for kind in ("200", "503"):
        times = kinds.get(kind, [])
        if times:
            out[f"{who}_{kind}_p50_ms"] = round(1000 * percentile(times, 0.5), 1)
            out[f"{who}_{kind}_p99_ms"] = round(1000 * percentile(times, 0.99), 1)
    out[f"{who}_answered_per_s"] = round(len(kinds.get("200", [])) / seconds, 1)
    return out


async def _sample_rss(pid: int, end: float) -> dict:
    """The server's largest RSS seen during the load (sampled every 0.1 s), and its peak since it started."""

    def status(field: str) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    before, largest = status("VmRSS"), 0.0
    while time.perf_counter() < end:
        largest = max(largest, status("VmRSS"))
        await asyncio.sleep(0.1)
    return {
        "server_rss_before_mb": round(before),
        "server_rss_max_mb": round(largest),
        "server_peak_rss_mb": round(status("VmHWM")),
    }


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
    return {
        "backend": predictor.backend,
        "texts": done,
        "seconds": round(elapsed, 2),
        "texts_per_s": round(done / elapsed, 1),
    }


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
    parser.add_argument(
        "--overload",
        action="store_true",
        help="--clients closed-loop clients of one text each, beside a polite one (a request a second)",
    )
    parser.add_argument("--pid", type=int, default=None, help="--overload: the server's process, for its RSS")
    parser.add_argument(
        "--ignore-retry-after",
        action="store_true",
        help="--overload: a refused client sends again at once instead of waiting as told",
    )
    parser.add_argument(
        "--offline",
        type=Path,
        default=None,
        metavar="RUN",
        help="instead: time offline batch predict of RUN on the same texts",
    )
    parser.add_argument("--backend", default="auto", help="--offline: the predict backend")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    texts = read_texts(args.data, column=args.column)
    if args.offline is not None:
        result = {"mode": "offline", **offline(args.offline, texts, args.seconds, args.backend)}
    elif args.overload:
        result = {
            "mode": "overload",
            **asyncio.run(
                run_overload(args.url, texts, args.clients, args.seconds, args.token, args.pid, args.ignore_retry_after)
            ),
        }
    else:
        result = asyncio.run(
            run_load(args.url, texts, args.clients, args.texts_per_request, args.seconds, args.rate, args.token)
        )
        result = {
            "mode": f"rate {args.rate}/s" if args.rate else f"{args.clients} clients",
            "texts_per_request": args.texts_per_request,
            **result,
        }
    if args.json:
        print(json.dumps(result))
    else:
        print("  ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
