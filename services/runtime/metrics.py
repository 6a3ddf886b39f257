"""Prometheus metrics every service exports from its first line of output.

Each service process owns one registry (so tests can run several runtimes in one process) and
serves it on `/metrics` at its own port. Names are shared across services and told apart by
the `service` label, so one dashboard panel covers the whole platform.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.runtime.service import Reading

__all__ = ["ORIGIN_BUCKETS", "ServiceMetrics", "metrics_address"]

LATENCY_BUCKETS = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0,
)

# Latency from a tick's arrival (origin_ts) to a later stage: sub-millisecond to seconds.
ORIGIN_BUCKETS = (
    2.5e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 7.5e-3, 1e-2, 1.5e-2, 2e-2, 3e-2, 5e-2, 7.5e-2, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
)


def metrics_address() -> str:
    """Where /metrics listens: loopback by default; HEAN_METRICS_ADDR=0.0.0.0 in containers."""
    return os.environ.get("HEAN_METRICS_ADDR", "127.0.0.1")


class _Readings(Collector):
    """Gauges computed from live state at scrape time (see ServiceDef.gauges)."""

    def __init__(self, read: Callable[[], Iterable[Reading]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for reading in self.read():
            family = families.get(reading.name)
            if family is None:
                family = families[reading.name] = GaugeMetricFamily(reading.name, reading.help,
                                                                    labels=sorted(reading.labels))
            family.add_metric([reading.labels[k] for k in sorted(reading.labels)], reading.value)
        yield from families.values()


class ServiceMetrics:
    """The runtime's metrics for one service instance."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("hean_events_in_total", "Records consumed, by input topic",
                                 ["service", "topic"], registry=r)
        self.events_out = Counter("hean_events_out_total", "Events produced, by output topic",
                                  ["service", "topic"], registry=r)
        # One observation per partition batch (the batch's mean per record): observing every
        # record cost as much as decoding it.
        self.apply_seconds = Histogram("hean_apply_seconds", "Mean time to decode and apply a record, per batch",
                                       ["service"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_seconds = Histogram("hean_batch_seconds", "Time to process and commit one batch",
                                       ["service"], registry=r)
        self.consumer_lag = Gauge("hean_consumer_lag", "Records behind the end of each input partition",
                                  ["service", "topic", "partition"], registry=r)
        self.snapshot_age = Gauge("hean_snapshot_age_seconds", "Seconds since the last snapshot was saved",
                                  ["service"], registry=r)
        self.snapshots = Counter("hean_snapshots_total", "Snapshots saved", ["service"], registry=r)
        self.dlq = Counter("hean_dlq_total", "Records sent to the dead-letter topic, by reason",
                           ["service", "reason"], registry=r)
        self.replayed = Counter("hean_replayed_total",
                                "Records re-applied during recovery with outputs suppressed",
                                ["service"], registry=r)
        self.up = Gauge("hean_up", "1 while the service loop is live", ["service"], registry=r)
        self.ready = Gauge("hean_ready", "1 once the service can act on what arrives: it holds its input partitions "
                           "(execution: also its lease; ingest: connected and subscribed)", ["service"], registry=r)
        self.outputs = Counter("hean_outputs_total", "Committed outputs by the service's own classification",
                               ["service", "kind"], registry=r)
        self.task_failures = Counter("hean_task_failures_total",
                                     "Background tasks that ended with an error (then restarted, or the process "
                                     "exited), by task", ["service", "task"], registry=r)
        self.produce_failures = Counter("hean_produce_failures_total",
                                        "Produced records the broker did not acknowledge", ["service"], registry=r)
        self.tick_to_emit = Histogram("hean_tick_to_emit_seconds",
                                      "A tick's arrival at ingest (origin_ts) → this service's output committed "
                                      "(strategy: tick to signal; risk: tick to decision)",
                                      ["service"], buckets=ORIGIN_BUCKETS, registry=r)
        # Every series a dashboard reads exists from the first scrape (at 0), so a panel or an
        # alert on "no DLQ yet" sees 0 rather than no data.
        for reason in ("malformed", "invalid", "unsupported_version", "apply_failed"):
            self.dlq.labels(service, reason)
        for series in (self.replayed, self.snapshots, self.batch_seconds, self.tick_to_emit, self.produce_failures):
            series.labels(service)
        self.up.labels(service).set(0)
        self.ready.labels(service).set(0)
        self._last_snapshot = time.monotonic()
        self.snapshot_age.labels(service).set_function(lambda: time.monotonic() - self._last_snapshot)
        self.apply_hist = self.apply_seconds.labels(service)
        self.gc_pause = Histogram("hean_gc_pause_seconds", "Time the garbage collector stopped the process, per "
                                  "collection and generation: a full collection over a large state looks like a "
                                  "slow hop", ["service", "generation"], buckets=LATENCY_BUCKETS, registry=r)
        self._gc_started = 0.0

    def watch_gc(self) -> Callable[[], None]:
        """Time every collection into hean_gc_pause_seconds; returns the call that stops it."""
        series = [self.gc_pause.labels(self.service, str(g)) for g in range(3)]

        def timed(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                self._gc_started = time.perf_counter()
            else:
                series[info["generation"]].observe(time.perf_counter() - self._gc_started)
        gc.callbacks.append(timed)
        return lambda: gc.callbacks.remove(timed)

    def mark_snapshot(self) -> None:
        """Reset the snapshot-age clock after a snapshot was stored."""
        self._last_snapshot = time.monotonic()
        self.snapshots.labels(self.service).inc()

    def read_gauges(self, read: Callable[[], Iterable[Reading]]) -> None:
        """Export the readings `read` returns at each scrape (state-derived gauges)."""
        self.registry.register(_Readings(read))

    def serve(self, port: int) -> int:
        """Serve /metrics on `port` (0 = pick a free one); returns the bound port."""
        server, _thread = start_http_server(port, addr=metrics_address(), registry=self.registry)
        return int(server.server_address[1])
