"""Prometheus metrics (`/metrics`): a registry per app so tests and embedded hubs never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ingested = Counter(
            "omnihub_ingest_total", "Interactions ingested", ["channel", "outcome"], registry=self.registry
        )
        self._ingested_children: dict[tuple[str, bool], Counter] = {}
        self.ingest_seconds = Histogram(
            "omnihub_ingest_seconds", "Time from request to durable commit", registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
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
        # labels() takes a lock and builds a key on every call; the ingest path counts each request.
        key = (channel, created)
        child = self._ingested_children.get(key)
        if child is None:
            child = self._ingested_children[key] = self.ingested.labels(channel, "created" if created else "repeat")
        child.inc()
