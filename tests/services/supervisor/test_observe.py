"""The live view's arithmetic: quantiles from histogram buckets, as Prometheus computes them."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from services.supervisor.observe import histogram_quantile, parse


def test_quantile_interpolates_within_the_bucket() -> None:
    buckets = [(0.001, 0.0), (0.002, 50.0), (0.004, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.002)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.0015)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.003)


def test_quantile_in_the_open_bucket_is_its_lower_bound_and_empty_is_none() -> None:
    assert histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 10.0)]) == 0.1
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.5, []) is None


def test_parsed_scrape_sums_label_sets_and_buckets() -> None:
    registry = CollectorRegistry()
    latency = Histogram("demo_seconds", "demo", ["service"], buckets=(0.01, 0.1), registry=registry)
    for value, service in ((0.005, "a"), (0.05, "a"), (0.05, "b"), (0.5, "b")):
        latency.labels(service).observe(value)
    samples = parse(generate_latest(registry).decode())
    assert samples.buckets("demo_seconds") == [(0.01, 1.0), (0.1, 3.0), (math.inf, 4.0)]
    assert samples.total("demo_seconds_count") == 4
    assert samples.total("demo_seconds_count", service="b") == 2
    assert histogram_quantile(0.5, samples.buckets("demo_seconds")) == pytest.approx(0.055)
