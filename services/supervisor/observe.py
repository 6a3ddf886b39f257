"""What the live view shows, gathered from where operators would look: each service's /metrics
and the log itself (end offsets, consumer-group offsets).

Nothing here reaches into a service: a dashboard built on Prometheus sees the same numbers.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from schemas.topics import TOPICS
from services.runtime.bus import StatusReader

__all__ = ["LogView", "Samples", "histogram_quantile", "scrape"]

Labels = tuple[tuple[str, str], ...]


@dataclass
class Samples:
    """One scrape: sample name → [(labels, value)]."""

    values: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)
    ok: bool = False

    def total(self, name: str, **match: str) -> float:
        return sum(v for labels, v in self.values.get(name, ()) if all(labels.get(k) == m for k, m in match.items()))

    def rows(self, name: str) -> list[tuple[dict[str, str], float]]:
        return self.values.get(name, [])

    def buckets(self, name: str) -> list[tuple[float, float]]:
        """A histogram's cumulative buckets (le, count), summed over label sets."""
        summed: dict[float, float] = {}
        for labels, value in self.values.get(f"{name}_bucket", ()):
            le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
            summed[le] = summed.get(le, 0.0) + value
        return sorted(summed.items())


def parse(text: str) -> Samples:
    samples = Samples(ok=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.values.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


async def scrape(client: httpx.AsyncClient, port: int | None) -> Samples:
    """The service's /metrics, or an empty, not-ok result when it does not answer."""
    if port is None:
        return Samples()
    try:
        response = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=1.0)
        response.raise_for_status()
    except httpx.HTTPError:
        return Samples()
    return parse(response.text)


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile on cumulative (le, count) buckets: linear within a bucket."""
    points = sorted(buckets)
    if not points or points[-1][1] <= 0:
        return None
    rank = q * points[-1][1]
    lower_le, lower_count = 0.0, 0.0
    for le, count in points:
        if count >= rank:
            if math.isinf(le):
                return lower_le
            if count == lower_count:
                return le
            return lower_le + (le - lower_le) * (rank - lower_count) / (count - lower_count)
        lower_le, lower_count = le, count
    return points[-1][0]


@dataclass
class TopicFigures:
    name: str
    end: int
    rate: float


class LogView:
    """End offsets per topic (with a rate) and lag per service's consumer group, from the broker."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.prefix = prefix
        self.reader = StatusReader(bootstrap)
        self._last: tuple[float, dict[str, int]] | None = None
        self.topics: list[TopicFigures] = []
        self.lag: dict[str, int] = {}

    async def start(self) -> None:
        await self.reader.start()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.reader.close()

    async def refresh(self) -> None:
        groups = f"{self.prefix}hean."
        known = [self.prefix + t.name for t in TOPICS if not t.name.startswith("demo.")]
        statuses = await self.reader.read(only=known, group_prefix=groups)
        per_topic = {status.name: sum(status.end_offsets.values()) for status in statuses}
        now = time.monotonic()
        previous = self._last
        self._last = (now, per_topic)
        elapsed = now - previous[0] if previous else 0.0
        self.topics = [TopicFigures(name[len(self.prefix):], end,
                                    (end - previous[1].get(name, end)) / elapsed if previous and elapsed else 0.0)
                       for name, end in sorted(per_topic.items())]
        lag: dict[str, int] = {}
        for status in statuses:
            for group, behind in status.group_lag.items():
                service = group[len(groups):].split(".", 1)[0]  # hean.execution.<account> → execution
                lag[service] = lag.get(service, 0) + behind
        self.lag = lag


def by_label(rows: Iterable[tuple[Mapping[str, str], float]], *keys: str) -> dict[tuple[str, ...], float]:
    """Rows keyed by the values of `keys` (e.g. account, symbol)."""
    return {tuple(labels.get(k, "") for k in keys): value for labels, value in rows}
