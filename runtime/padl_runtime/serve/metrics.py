"""The server's Prometheus metrics, in a registry of their own (one per server, no global state).

=================================  =========  =================================================
``padl_requests_total``            counter    requests by ``endpoint`` and HTTP ``status``
``padl_item_errors_total``         counter    items that failed, by ``stage``
``padl_queue_depth``               gauge      items accepted and not yet in a forward batch
``padl_batch_size``                histogram  items per forward batch
``padl_request_seconds``           histogram  request latency, by ``endpoint``
``padl_stage_seconds``             histogram  per batch, by ``stage``: ``queue`` (the first
                                              item's wait), ``preprocess``, ``forward``,
                                              ``postprocess``
=================================  =========  =================================================
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_SECONDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The metrics of one server; :meth:`render` is the ``GET /metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "padl_requests",
            "HTTP requests served, by endpoint and status code.",
            ("endpoint", "status"),
            registry=self.registry,
        )
        self.item_errors = Counter(
            "padl_item_errors",
            "Items that failed, by the stage that raised.",
            ("stage",),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "padl_queue_depth",
            "Items accepted and not yet in a forward batch.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "padl_batch_size", "Items per forward batch.", buckets=_SIZES, registry=self.registry
        )
        self.request_seconds = Histogram(
            "padl_request_seconds",
            "Request latency in seconds, by endpoint.",
            ("endpoint",),
            buckets=_SECONDS,
            registry=self.registry,
        )
        stage = Histogram(
            "padl_stage_seconds",
            "Seconds per batch in each stage (queue: the first item's wait for its batch).",
            ("stage",),
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.queue_seconds = stage.labels("queue")
        self.preprocess_seconds = stage.labels("preprocess")
        self.forward_seconds = stage.labels("forward")
        self.postprocess_seconds = stage.labels("postprocess")

    def render(self) -> bytes:
        return generate_latest(self.registry)
