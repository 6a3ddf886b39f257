"""Execution's metrics: the runtime's set plus the order path and the venue's health.

Tick-to-order (origin_ts → REST request sent) is the platform's tick-to-trade figure; the REST
client's own tallies (answers by retCode, the X-Bapi-Limit headroom, the circuit breaker) are read
at scrape time, so the client stays free of metrics code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.runtime.metrics import ORIGIN_BUCKETS, ServiceMetrics
from services.venues.bybit.rest import BybitRest

__all__ = ["ExecutionMetrics"]


class _VenueCollector(Collector):
    def __init__(self, rest: BybitRest) -> None:
        self.rest = rest

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        answers = CounterMetricFamily("hean_rest_responses", "Venue REST answers, by retCode (0 = success)",
                                      labels=["service", "ret_code"])
        for code, count in sorted(self.rest.ret_codes.items()):
            answers.add_metric(["execution", str(code)], count)
        yield answers
        remaining = GaugeMetricFamily("hean_rate_limit_remaining",
                                      "Requests left in the venue's window (X-Bapi-Limit-Status), by endpoint",
                                      labels=["service", "endpoint"])
        limit = GaugeMetricFamily("hean_rate_limit", "The venue's request limit (X-Bapi-Limit), by endpoint",
                                  labels=["service", "endpoint"])
        for path, seen in sorted(self.rest.rate_limits.items()):
            remaining.add_metric(["execution", path], seen.remaining)
            limit.add_metric(["execution", path], seen.limit)
        yield remaining
        yield limit
        paced = CounterMetricFamily("hean_rest_paced_seconds",
                                    "Time requests waited to stay within the venue's rate limit",
                                    labels=["service"])
        paced.add_metric(["execution"], self.rest.paced_seconds)
        yield paced
        breaker = GaugeMetricFamily("hean_venue_breaker_open", "1 while the REST circuit breaker is open",
                                    labels=["service"])
        breaker.add_metric(["execution"], 1.0 if time.monotonic() < self.rest.open_until else 0.0)
        yield breaker


class ExecutionMetrics(ServiceMetrics):
    """The runtime's metrics plus order latencies, outcomes and venue health."""

    def __init__(self, rest: BybitRest) -> None:
        super().__init__("execution")
        r = self.registry
        self.tick_to_order = Histogram("hean_tick_to_order_seconds",
                                       "A tick's arrival at ingest (origin_ts) → the order's REST request sent",
                                       ["service"], buckets=ORIGIN_BUCKETS, registry=r).labels("execution")
        self.order_ack = Histogram("hean_order_ack_seconds", "REST order request sent → the venue's answer",
                                   ["service"], buckets=ORIGIN_BUCKETS, registry=r
                                   ).labels("execution")
        self.orders = Counter("hean_orders_total", "Order requests by outcome (placed, refused, cancel_sent)",
                              ["service", "outcome"], registry=r)
        self.order_events = Counter("hean_order_events_total", "Order events reported to orders.events, by type",
                                    ["service", "type"], registry=r)
        self.active = Gauge("hean_execution_active", "1 while this instance holds the account's lease",
                            ["service", "account"], registry=r)
        self.reconcile_failures = Counter("hean_reconcile_failures_total",
                                          "Reconciliations with the venue that failed (retried with backoff)",
                                          ["service"], registry=r).labels("execution")
        self.venue_retries = Counter("hean_venue_batch_retries_total",
                                     "Decision batches acted on again after the venue failed transiently",
                                     ["service"], registry=r).labels("execution")
        self.private_malformed = Counter("hean_ws_malformed_total", "Malformed WebSocket frames",
                                         ["service"], registry=r).labels("execution")
        self.ws_reconnects = Counter("hean_ws_reconnects_total", "Private WebSocket reconnects forced by the "
                                     "heartbeat, by cause (pong_timeout, stale)", ["service", "cause"], registry=r)
        for cause in ("pong_timeout", "stale"):
            self.ws_reconnects.labels("execution", cause)
        self.position_drift = Gauge("hean_position_drift", "The venue's position minus the reported fills' sum, "
                                    "per symbol, once it held over two checks (0: they agree)",
                                    ["service", "account", "symbol"], registry=r)
        self.drifts = Counter("hean_position_drifts_total", "Position drifts found (PositionDriftDetected)",
                              ["service"], registry=r).labels("execution")
        self.wallet_drift = Gauge("hean_wallet_drift", "The venue's wallet balance minus the one the log implies, "
                                  "per coin, once it held over two checks (0: they agree)",
                                  ["service", "account", "coin"], registry=r)
        self.wallet_drifts = Counter("hean_wallet_drifts_total", "Wallet drifts found (WalletDriftDetected)",
                                     ["service"], registry=r).labels("execution")
        for outcome in ("placed", "refused", "stale", "cancel_sent"):
            self.orders.labels("execution", outcome)
        for kind in ("OrderAcknowledged", "OrderRejected", "OrderPartiallyFilled", "OrderFilled", "OrderCancelled"):
            self.order_events.labels("execution", kind)
        r.register(_VenueCollector(rest))
