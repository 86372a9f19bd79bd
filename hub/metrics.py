"""Prometheus metrics (`/metrics`): a registry per app so tests and embedded hubs never collide."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Counted on every ingest (count_ingested, ingests.observe): see _IngestMetrics.
        self.ingests = _IngestMetrics(INGEST_SECONDS_BUCKETS)
        self.registry.register(self.ingests)
        self.events_published = Counter(
            "omnihub_events_published_total", "Outbox events confirmed by the broker", registry=self.registry
        )
        self.events_returned = Counter(
            "omnihub_events_returned_total", "Events the broker returned as unroutable", registry=self.registry
        )
        self.outbox_pending = Gauge(
            "omnihub_outbox_pending", "Outbox events not yet published", registry=self.registry
        )
        self.outbox_lag_seconds = Gauge(
            "omnihub_outbox_lag_seconds", "Age of the oldest unpublished outbox event", registry=self.registry
        )
        # --- adapters (issue 4) ---
        self.webhooks_refused = Counter(
            "omnihub_webhooks_refused_total", "Webhooks refused by the authenticity check", ["adapter"],
            registry=self.registry,
        )
        self.messages_sent = Counter(
            "omnihub_messages_total", "Outbound messages by final dispatch outcome", ["channel", "outcome"],
            registry=self.registry,
        )

    def count_ingested(self, channel: str, created: bool) -> None:
        self.ingests.count(channel, created)


INGEST_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class _IngestMetrics(Collector):
    """omnihub_ingest_total{channel,outcome} and the omnihub_ingest_seconds histogram, as plain counts.

    prometheus_client's Counter and Histogram take a lock for every increment, and a histogram
    observation walks its buckets in Python: 3-5% of the hub's CPU per interaction under
    bench/ingest.py (paired runs with and without them). Every ingest is counted on the event
    loop's thread, where Pipeline.ingest runs, so plain integers are enough; the registry reads
    them through the library's custom-collector API when /metrics is scraped.
    """

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self._bounds = (*buckets, math.inf)
        self._buckets = [0] * len(self._bounds)
        self._sum = 0.0
        self._counts: dict[tuple[str, bool], int] = {}

    def count(self, channel: str, created: bool) -> None:
        key = (channel, created)
        self._counts[key] = self._counts.get(key, 0) + 1

    def observe(self, seconds: float) -> None:
        self._buckets[bisect.bisect_left(self._bounds, seconds)] += 1  # the first bound >= seconds
        self._sum += seconds

    def collect(self) -> Iterator[Metric]:
        total = CounterMetricFamily("omnihub_ingest", "Interactions ingested", labels=["channel", "outcome"])
        for (channel, created), n in sorted(self._counts.items()):
            total.add_metric([channel, "created" if created else "repeat"], n)
        yield total
        seconds = HistogramMetricFamily("omnihub_ingest_seconds", "Time from request to durable commit")
        cumulative = itertools.accumulate(self._buckets)
        buckets = [(floatToGoString(bound), n) for bound, n in zip(self._bounds, cumulative, strict=True)]
        seconds.add_metric([], buckets, sum_value=self._sum)
        yield seconds
