"""Binance USDⓈ-M futures market data over real sockets: the simulator's Binance dialect ↔ ingest
↔ Kafka. Books are synchronised by Binance's rules (REST snapshot + pu-chained diffs); a gap
(a dropped depth event) makes ingest resync from a new snapshot, and the book it publishes is
never crossed and, folded from md.book, equals the venue's book."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from schemas.events import BookDeltaReceived, BookSnapshotReceived, DeadLettered, TickerUpdated, TradeReceived
from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES
from services.exchange_sim.server import SimConfig, Simulator
from services.ingest.binance import BinanceIngest
from services.ingest.shell import IngestConfig
from services.runtime.codec import decode
from services.runtime.settings import RuntimeSettings
from tests.conftest import create_topics, read_topic

pytestmark = pytest.mark.integration
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def fold(events: list) -> dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]]:
    """Fold binance book events blindly, as any consumer would; a crossed book fails."""
    books: dict[str, tuple[int, dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
    for event in events:
        if isinstance(event, BookSnapshotReceived):
            books[event.symbol] = (event.update_id, dict(event.bids), dict(event.asks))
        elif isinstance(event, BookDeltaReceived):
            last, bids, asks = books[event.symbol]  # a delta before any snapshot fails here
            assert event.update_id >= last, f"{event.symbol}: update id {event.update_id} after {last}"
            for side, levels in ((bids, event.bids), (asks, event.asks)):
                for price, size in levels:
                    if size == 0:
                        side.pop(price, None)
                    else:
                        side[price] = size
            books[event.symbol] = (event.update_id, bids, asks)
        else:
            continue
        _, bids, asks = books[event.symbol]
        assert not bids or not asks or max(bids) < min(asks), f"a crossed {event.symbol} book was published"
    return {s: (b, a) for s, (_, b, a) in books.items()}


async def test_books_sync_by_snapshot_and_pu_and_a_gap_resyncs(bootstrap: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ))
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=SYMBOLS, seed=5, binance=True))
    port = await sim.start()
    config = IngestConfig(venue="binance", url=f"ws://127.0.0.1:{port}/stream", symbols=SYMBOLS, depth=1000,
                          backoff_initial=0.05)  # depth snapshots from the stream host's REST twin
    ingest = BinanceIngest(config, RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    try:
        await asyncio.wait_for(ingest.connected.wait(), 10)
        await asyncio.sleep(1.5)
        assert ingest.snapshots_fetched == len(SYMBOLS), "one snapshot per symbol to start"
        async with httpx.AsyncClient() as http:  # a dropped depth event: pu no longer chains
            response = await http.get(f"http://127.0.0.1:{port}/sim/fault", params={"kind": "gap", "symbol": "BTCUSDT"})
            assert response.status_code == 200
        await asyncio.sleep(1.5)
        sim.stalled_until = float("inf")  # freeze the venue, let ingest publish what it has
        await asyncio.sleep(0.5)
        gaps = ingest.metrics.base.registry.get_sample_value("hean_book_gaps_total",
                                                             {"service": "ingest", "symbol": "BTCUSDT"})
        assert gaps and gaps >= 1
        assert sim.binance is not None and sim.binance.stats["depth_dropped"] >= 1
        venue = {s: (dict(m.bids), dict(m.asks), m.instrument) for s, m in sim.binance.markets.items()}
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await sim.stop()
    book_events = [decode(r.value) for r in await read_topic(bootstrap, prefix + MD_BOOK)]
    assert {e.venue for e in book_events} == {"binance"}
    books = fold(book_events)
    btc_snapshots = [e for e in book_events if isinstance(e, BookSnapshotReceived) and e.symbol == "BTCUSDT"]
    assert len(btc_snapshots) >= 2, "the gap is healed by a fresh snapshot"
    for symbol, (bids, asks, inst) in venue.items():  # the published book is the venue's, level for level
        assert books[symbol][0] == {inst.tick_size * p: inst.qty_step * q for p, q in bids.items()}, symbol
        assert books[symbol][1] == {inst.tick_size * p: inst.qty_step * q for p, q in asks.items()}, symbol
    trades = [decode(r.value) for r in await read_topic(bootstrap, prefix + MD_TRADES)]
    assert trades and all(isinstance(t, TradeReceived) and t.venue == "binance" for t in trades)
    assert len({t.id for t in trades}) == len(trades)
    tickers = [decode(r.value) for r in await read_topic(bootstrap, prefix + MD_TICKERS)]
    assert tickers and all(isinstance(t, TickerUpdated) and t.bid1_price < t.ask1_price for t in tickers)
    letters = [decode(r.value) for r in await read_topic(bootstrap, prefix + DLQ)]
    assert not [letter for letter in letters if isinstance(letter, DeadLettered)]


async def test_a_trade_connection_that_goes_quiet_is_reconnected_while_the_books_flow(bootstrap: str,
                                                                                      prefix: str) -> None:
    """The venue stops sending aggTrade on /market while /public's depth keeps coming: the /market
    connection is judged by its own frames, goes stale, and both reconnect (cause stale)."""
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ))
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=("BTCUSDT",), seed=5, binance=True))
    port = await sim.start()
    assert sim.binance is not None
    send = sim.binance._send
    sim.binance._send = lambda name, payload: None if name.endswith("@aggTrade") else send(name, payload)  # type: ignore[method-assign]
    config = IngestConfig(venue="binance", url=f"ws://127.0.0.1:{port}", symbols=("BTCUSDT",), depth=1000,
                          backoff_initial=0.05, stale_after=1.5)
    ingest = BinanceIngest(config, RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    try:
        await asyncio.wait_for(ingest.connected.wait(), 10)
        for _ in range(60):
            if ingest.metrics.reconnects.labels("ingest", "stale")._value.get() >= 1:
                break
            await asyncio.sleep(0.1)
        assert ingest.metrics.reconnects.labels("ingest", "stale")._value.get() >= 1, "the quiet /market was noticed"
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await sim.stop()
    assert [decode(r.value) for r in await read_topic(bootstrap, prefix + MD_BOOK)], "the books flowed meanwhile"
