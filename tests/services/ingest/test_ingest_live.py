"""Simulator ↔ ingest ↔ Kafka over real sockets: publishing, book continuity, every fault case."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import pytest

from schemas.events import BookDeltaReceived, BookSnapshotReceived, DeadLettered, TickerUpdated, TradeReceived
from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES
from services.exchange_sim.server import SimConfig, Simulator
from services.ingest.shell import Ingest, IngestConfig
from services.runtime.codec import decode
from services.runtime.settings import RuntimeSettings
from tests.conftest import create_topics, read_topic, sim_get

pytestmark = pytest.mark.integration
SYMBOLS = ("BTCUSDT", "ETHUSDT")


@asynccontextmanager
async def stack(bootstrap: str, prefix: str, **ingest: object) -> AsyncIterator[tuple[Simulator, Ingest]]:
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ))
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=100, symbols=SYMBOLS, seed=3))
    port = await sim.start()
    config = IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=SYMBOLS,
                          backoff_initial=0.05, **ingest)  # type: ignore[arg-type]
    service = Ingest(config, RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.connected.wait(), 10)
        yield sim, service
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await sim.stop()


async def fault(sim: Simulator, kind: str, **params: str) -> None:
    response = await sim_get(sim, "/sim/fault", kind=kind, **params)
    assert response.status_code == 200, response.text


def fold_books(events: list) -> dict[str, tuple[int, dict[Decimal, Decimal], dict[Decimal, Decimal]]]:
    """Fold published book events blindly; any discontinuity fails (ingest must never publish one)."""
    books: dict[str, tuple[int, dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
    for event in events:
        if isinstance(event, BookSnapshotReceived):
            books[event.symbol] = (event.update_id, dict(event.bids), dict(event.asks))
        elif isinstance(event, BookDeltaReceived):
            update_id, bids, asks = books[event.symbol]
            assert event.update_id == update_id + 1, f"{event.symbol}: {update_id} → {event.update_id}"
            for side, levels in ((bids, event.bids), (asks, event.asks)):
                for price, size in levels:
                    if size == 0:
                        side.pop(price, None)
                    else:
                        side[price] = size
            assert not bids or not asks or max(bids) < min(asks), "a crossed book was published"
            books[event.symbol] = (event.update_id, bids, asks)
    return books


async def events_of(bootstrap: str, topic: str) -> list:
    return [decode(r.value) for r in await read_topic(bootstrap, topic)]


async def settle(sim: Simulator, ingest: Ingest) -> None:
    """Freeze the market and let ingest publish what it received."""
    sim.stalled_until = float("inf")
    await asyncio.sleep(0.5)


async def test_publishes_continuous_books_trades_and_tickers(bootstrap: str, prefix: str) -> None:
    async with stack(bootstrap, prefix) as (sim, ingest):
        await asyncio.sleep(2.5)
        await settle(sim, ingest)
        books = fold_books(await events_of(bootstrap, prefix + MD_BOOK))
        for symbol in SYMBOLS:
            stream = sim.books[("linear", symbol, 50)]
            update_id, bids, asks = books[symbol]
            inst = stream.market.instrument
            assert update_id == stream.update_id
            assert bids == {inst.tick_size * p: inst.qty_step * q for p, q in stream.bids.items()}
            assert asks == {inst.tick_size * p: inst.qty_step * q for p, q in stream.asks.items()}
    trades = await events_of(bootstrap, prefix + MD_TRADES)
    assert trades and all(isinstance(t, TradeReceived) for t in trades)
    assert len({t.id for t in trades}) == len(trades)
    tickers = await events_of(bootstrap, prefix + MD_TICKERS)
    assert tickers and all(isinstance(t, TickerUpdated) and t.mark_price is not None for t in tickers)


async def test_gap_and_restart_faults_keep_published_books_continuous(bootstrap: str, prefix: str) -> None:
    async with stack(bootstrap, prefix) as (sim, ingest):
        await asyncio.sleep(0.5)
        await fault(sim, "gap", symbol="BTCUSDT")
        await asyncio.sleep(0.5)
        await fault(sim, "reset", symbol="ETHUSDT")
        await asyncio.sleep(0.5)
        await settle(sim, ingest)
        gaps = ingest.metrics.base.registry.get_sample_value("hean_book_gaps_total",
                                                            {"service": "ingest", "symbol": "BTCUSDT"})
    assert gaps and gaps >= 1
    events = await events_of(bootstrap, prefix + MD_BOOK)
    fold_books(events)  # continuity holds across the gap and the restart
    btc_snapshots = [e for e in events if isinstance(e, BookSnapshotReceived) and e.symbol == "BTCUSDT"]
    assert len(btc_snapshots) >= 2, "the gap must be healed by a fresh snapshot"
    assert any(isinstance(e, BookSnapshotReceived) and e.symbol == "ETHUSDT" and e.update_id == 1 for e in events)


async def test_disconnect_and_stall_reconnect(bootstrap: str, prefix: str) -> None:
    async with stack(bootstrap, prefix, stale_after=1.0) as (sim, ingest):
        await asyncio.sleep(0.3)
        await fault(sim, "disconnect")
        await asyncio.sleep(1.0)
        await asyncio.wait_for(ingest.connected.wait(), 10)
        await fault(sim, "stall", seconds="2.5")
        await asyncio.sleep(3.5)
        await asyncio.wait_for(ingest.connected.wait(), 10)
        before = ingest.published
        await asyncio.sleep(0.5)
        assert ingest.published > before, "data flows again after reconnecting"
        registry = ingest.metrics.base.registry
        closed = registry.get_sample_value("hean_ws_reconnects_total", {"service": "ingest", "cause": "closed"})
        stale = registry.get_sample_value("hean_ws_reconnects_total", {"service": "ingest", "cause": "stale"})
    assert closed and closed >= 1
    assert stale and stale >= 1
    fold_books(await events_of(bootstrap, prefix + MD_BOOK))


async def test_unanswered_pings_reconnect_while_data_still_flows(bootstrap: str, prefix: str) -> None:
    """A venue that keeps streaming but stops answering pings is a half-dead session: ingest
    reconnects on the pong deadline (not the data silence watchdog, which never fires here)."""
    async with stack(bootstrap, prefix, ping_interval=0.2, pong_timeout=0.6, stale_after=30.0) as (sim, ingest):
        await asyncio.sleep(0.5)
        registry = ingest.metrics.base.registry
        cause = {"service": "ingest", "cause": "pong_timeout"}
        assert registry.get_sample_value("hean_ws_reconnects_total", cause) == 0, "pongs answered: no reconnect"
        await fault(sim, "mute_pongs", seconds="1.5")
        for _ in range(40):
            await asyncio.sleep(0.1)
            if registry.get_sample_value("hean_ws_reconnects_total", cause):
                break
        assert registry.get_sample_value("hean_ws_reconnects_total", cause) >= 1
        assert sim.stats["pings_unanswered"] >= 1
        await asyncio.sleep(1.5)  # the fault is over: the new session's pings are answered
        await asyncio.wait_for(ingest.connected.wait(), 10)
        reconnects = registry.get_sample_value("hean_ws_reconnects_total", cause)
        before = ingest.published
        await asyncio.sleep(1.0)
        assert ingest.published > before, "data flows on the new session"
        assert registry.get_sample_value("hean_ws_reconnects_total", cause) == reconnects
        assert registry.get_sample_value("hean_ws_reconnects_total", {"service": "ingest", "cause": "stale"}) == 0
        await settle(sim, ingest)
    fold_books(await events_of(bootstrap, prefix + MD_BOOK))


async def test_malformed_frame_is_counted_dead_lettered_and_skipped(bootstrap: str, prefix: str) -> None:
    async with stack(bootstrap, prefix) as (sim, ingest):
        await asyncio.sleep(0.3)
        await fault(sim, "malformed", symbol="BTCUSDT")
        await asyncio.sleep(0.5)
        before = ingest.published
        await asyncio.sleep(0.3)
        assert ingest.published > before
        malformed = ingest.metrics.base.registry.get_sample_value("hean_ws_malformed_total", {"service": "ingest"})
    assert malformed and malformed >= 1
    letters = [decode(r.value) for r in await read_topic(bootstrap, prefix + DLQ)]
    assert letters and all(isinstance(x, DeadLettered) and x.reason == "malformed_frame" for x in letters)
    assert letters[0].source_topic == "bybit.ws.linear" and letters[0].payload.startswith(b'{"topic"')


async def test_a_record_the_broker_refuses_stops_ingest_instead_of_passing_unseen(bootstrap: str, prefix: str) -> None:
    """md.book takes at most 512-byte batches here, so the broker refuses every book snapshot.
    Before the fix ingest dropped the send futures and ran on with no books in the log; now the
    first refused delivery is counted and ends the run with DeliveryFailed (the process exits
    non-zero and its supervisor restarts it)."""
    from aiokafka.admin import NewTopic

    from services.runtime.bus import make_admin
    from services.runtime.errors import DeliveryFailed

    admin = make_admin(bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(prefix + MD_BOOK, 6, 1, topic_configs={"max.message.bytes": "512"})])
    finally:
        await admin.close()
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_TICKERS, DLQ))
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=SYMBOLS, seed=3))
    port = await sim.start()
    service = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=SYMBOLS),
                     RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    try:
        with pytest.raises(DeliveryFailed, match="not delivered"):
            await asyncio.wait_for(service.run(stop), 30)
    finally:
        stop.set()
        await sim.stop()
    failed = service.metrics.base.registry.get_sample_value("hean_produce_failures_total", {"service": "ingest"})
    assert failed and failed >= 1
