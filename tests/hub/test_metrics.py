"""The ingest metrics, counted without prometheus_client's locks, expose what its own types would."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from hub.metrics import INGEST_SECONDS_BUCKETS, Metrics


def samples(registry: CollectorRegistry, prefix: str) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if line.startswith(prefix) and "_created" not in line]


@given(st.lists(st.one_of(st.sampled_from(INGEST_SECONDS_BUCKETS),
                          st.floats(0, 10, allow_nan=False, allow_infinity=False)), max_size=40),
       st.lists(st.tuples(st.sampled_from(["sms", "email", "pos"]), st.booleans()), max_size=20))
def test_ingest_metrics_read_as_prometheus_client_s_own_counter_and_histogram(seconds, ingests):
    ours = Metrics()
    library = CollectorRegistry()
    histogram = Histogram("omnihub_ingest_seconds", "Time from request to durable commit", registry=library,
                          buckets=INGEST_SECONDS_BUCKETS)
    counter = Counter("omnihub_ingest", "Interactions ingested", ["channel", "outcome"], registry=library)
    for value in seconds:
        ours.ingests.observe(value)
        histogram.observe(value)
    for channel, created in ingests:
        ours.count_ingested(channel, created)
        counter.labels(channel, "created" if created else "repeat").inc()
    # Bucket bounds are inclusive (le) and the counts agree; the sums may differ in their last digits.
    ours_seconds = samples(ours.registry, "omnihub_ingest_seconds")
    library_seconds = samples(library, "omnihub_ingest_seconds")
    assert [s for s in ours_seconds if "_sum" not in s] == [s for s in library_seconds if "_sum" not in s]
    ours_sum, library_sum = (float(next(s for s in lines if "_sum" in s).split()[-1])
                             for lines in (ours_seconds, library_seconds))
    assert math.isclose(ours_sum, library_sum, rel_tol=1e-9, abs_tol=1e-12)
    totals = "omnihub_ingest_total"
    assert sorted(samples(ours.registry, totals)) == sorted(samples(library, totals))
