"""Prometheus metrics of one app: each app has its own registry, so two apps (or tests) never share counts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class ServeMetrics:
    """Requests, latency, batch sizes and errors of one app, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llmcls_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "llmcls_request_errors",
            "HTTP requests answered with a 4xx or 5xx status, by kind",
            ["route", "kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "llmcls_request_seconds",
            "Time from request to response, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.request_texts = Histogram(
            "llmcls_request_texts", "Texts per /v1/predict request", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.batch_texts = Histogram(
            "llmcls_batch_texts",
            "Texts per round of the model (dynamic batches)",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.texts = Counter("llmcls_texts", "Texts classified", registry=self.registry)
        self.in_flight = Gauge("llmcls_requests_in_flight", "Requests being answered", registry=self.registry)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
