"""Ingest's trade continuity, the I/O half (the rules are services/ingest/trades.py):

- at start, what this instance's symbols already have in md.trades, read back from the log: the
  log, not a side store, is what consumers saw, including records a SIGKILLed process had in
  flight (`read_published`);
- on every (re)connect, the venue's trades newer than those, published before any live trade
  (`TradeGapFiller.fill`): Bybit's newest page (GET /v5/market/recent-trade), Binance's aggregate
  trades from the last published id + 1 (GET /fapi/v1/aggTrades); a gap the venue's answer cannot
  cover is counted, logged and published on control as a TradeGapDetected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from aiokafka.partitioner import DefaultPartitioner

from schemas.events import TradeGapReason, TradeReceived
from schemas.topics import CONTROL, MD_TRADES
from services.ingest.trades import TradeLedger, trade_gap
from services.runtime.bus import TopicPartition, make_consumer, partitions_of, read_to_end
from services.runtime.codec import decode
from services.runtime.errors import DecodeError
from services.venues.binance.trades import AggTradesRefused
from services.venues.bybit.trades import RecentTradesRefused
from services.venues.port import TradeHistory

log = logging.getLogger(__name__)

CHUNK = 20_000  # records read back per step, newest first
SCAN_LIMIT = 2_000_000  # records per partition at most: a symbol not met by then starts from live
CONCURRENT_READS = 8  # REST requests in flight on a reconnect of many symbols (the venue's IP limit)


async def read_published(bootstrap: str, topic: str, symbols: Sequence[str], ledger: TradeLedger,
                         chunk: int = CHUNK, scan_limit: int = SCAN_LIMIT, venue: str = "bybit") -> dict[str, int]:
    """Feed `ledger` with the last published trades of `symbols` on `venue` in `topic` (md.trades
    holds every venue's trades of a symbol on one partition); returns how many of each were read.
    Reads only the partitions the symbols are keyed to (murmur2, as every producer here),
    backwards a chunk at a time, until each symbol has met a trade older than its newest (so every
    id at its newest time is known) or the partition's beginning."""
    consumer = make_consumer(bootstrap, None)
    await consumer.start()
    try:
        partitions = sorted(tp.partition for tp in await partitions_of(consumer, [topic]))
        if not partitions:
            return {}
        by_partition: dict[int, set[str]] = {}
        partitioner = DefaultPartitioner()
        for symbol in symbols:
            by_partition.setdefault(partitioner(symbol.encode(), partitions, partitions), set()).add(symbol)
        counts: dict[str, int] = dict.fromkeys(symbols, 0)
        for partition, wanted in by_partition.items():
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            for event in await _tail(consumer, tp, wanted, chunk, scan_limit, venue):
                ledger.published(event)
                counts[event.symbol] += 1
        return counts
    finally:
        await consumer.stop()


async def _tail(consumer: Any, tp: TopicPartition, wanted: set[str], chunk: int, scan_limit: int,
                venue: str) -> list[TradeReceived]:
    """The trades of `wanted` in the tail of one partition, in log order (see read_published)."""
    begin = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]
    newest: dict[str, int] = {}
    settled: set[str] = set()
    chunks: list[list[TradeReceived]] = []
    stop = end
    while stop > begin and settled != wanted and end - stop < scan_limit:
        start = max(begin, stop - chunk)
        consumer.seek(tp, start)
        found: list[TradeReceived] = []
        async for _tp, records in read_to_end(consumer, [tp], {tp: stop}):
            for record in records:
                if record.offset >= stop:
                    continue
                try:
                    event = decode(record.value)
                except DecodeError:
                    continue  # not ours to judge here: the consumers dead-letter it
                if isinstance(event, TradeReceived) and event.symbol in wanted and event.venue == venue:
                    found.append(event)
        for event in reversed(found):  # newest first: the first met per symbol is its newest
            if event.symbol not in newest:
                newest[event.symbol] = event.ts_event
            elif event.ts_event < newest[event.symbol]:
                settled.add(event.symbol)
        chunks.append(found)
        stop = start
    missing = wanted - set(newest)
    if missing and stop > begin:
        log.warning("no trade of %s in the last %s records of %s; their gap fill starts from the live stream",
                    sorted(missing), end - stop, tp)
    return [event for found in reversed(chunks) for event in found]


class TradeGapFiller:
    """On a (re)connect, the venue's trades each symbol missed, admitted through the ledger.

    `on_filled(symbol, n)` and `on_gap(symbol)` feed the shell's metrics; a failed or refused REST
    read is a gap too (nothing after the last published trade can be vouched for). Each gap is
    also a TradeGapDetected on control, unless `publish_gaps` is off (no control topic)."""

    def __init__(self, source: TradeHistory, ledger: TradeLedger, timeout: float = 10.0,
                 on_filled: Callable[[str, int], None] = lambda _s, _n: None,
                 on_gap: Callable[[str], None] = lambda _s: None, publish_gaps: bool = True) -> None:
        self.source, self.ledger, self.timeout = source, ledger, timeout
        self.on_filled, self.on_gap, self.publish_gaps = on_filled, on_gap, publish_gaps

    async def fill(self, client: httpx.AsyncClient, symbols: Sequence[str]) -> list[tuple[str, str, Any]]:
        """(topic, key, event) triples to publish now, symbol by symbol: its gap event if any, then
        its trades oldest first."""
        last = {s: t for s in symbols if (t := self.ledger.last_trade(s)) is not None}  # none: the stream starts it
        wanted = list(last)
        gate = asyncio.Semaphore(CONCURRENT_READS)

        async def read(symbol: str, last_trade_id: str) -> tuple[list[TradeReceived], bool] | None:
            async with gate:
                try:
                    return await asyncio.wait_for(
                        self.source.since(client, symbol, last_trade_id, time.time_ns()), self.timeout)
                except (httpx.HTTPError, RecentTradesRefused, AggTradesRefused, TimeoutError) as exc:
                    log.warning("trades of %s since %s not read (%s); trades since the last one published may be "
                                "lost", symbol, last_trade_id, exc or type(exc).__name__)
                    return None

        pages = await asyncio.gather(*(read(s, last[s][0]) for s in wanted))
        out: list[tuple[str, str, Any]] = []
        for symbol, answer in zip(wanted, pages, strict=True):
            if answer is None:
                out += self._gap(symbol, "read_failed", last[symbol], None)
                continue
            page, full = answer
            gap = self.ledger.fill(symbol, page, full=full)
            if gap.missing_since_ns is not None:
                reason: TradeGapReason = "fill_limit" if self.source.venue == "binance" else "page_short"
                log.warning("trades of %s may be lost between %s and %s (ns): the venue returned %s trades only",
                            symbol, gap.missing_since_ns, page[0].ts_event, len(page))
                out += self._gap(symbol, reason, last[symbol], page[0])
            admitted = self.ledger.admit((MD_TRADES, symbol, t) for t in gap.events)
            if admitted:
                self.on_filled(symbol, len(admitted))
                log.info("trades filled from the venue's REST", extra={"symbol": symbol, "trades": len(admitted)})
            out += admitted
        return out

    def _gap(self, symbol: str, reason: TradeGapReason, last: tuple[str, int],
             first: TradeReceived | None) -> list[tuple[str, str, Any]]:
        self.on_gap(symbol)
        if not self.publish_gaps:
            return []
        source = self.source
        return [(CONTROL, symbol, trade_gap(source.venue, source.category, symbol, reason, last, first,
                                            time.time_ns()))]
