"""Synthetic trades for the demo, the tests and the benchmarks: deterministic for a seed.

A per-symbol random walk on a tick grid with exact Decimal prices, so every consumer of the
same seed sees the same trades (and the same ids) in every run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal

from aiokafka import AIOKafkaProducer

from schemas.events import TradeReceived, derive_id
from services.runtime.bus import DeliveryWatch
from services.runtime.codec import encode

DEFAULT_SYMBOLS = {"BTCUSDT": (Decimal("65000.0"), Decimal("0.1")),
                   "ETHUSDT": (Decimal("3200.00"), Decimal("0.01")),
                   "SOLUSDT": (Decimal("150.000"), Decimal("0.001"))}
QTY_STEP = Decimal("0.001")


def synthetic_trades(count: int, seed: int = 7, start_ns: int = 1_700_000_000_000_000_000,
                     symbols: dict[str, tuple[Decimal, Decimal]] = DEFAULT_SYMBOLS) -> Iterator[TradeReceived]:
    """`count` trades cycling through `symbols`, 1 ms apart, prices moving a few ticks per trade."""
    rng = random.Random(seed)
    prices = {s: p for s, (p, _) in symbols.items()}
    names = list(symbols)
    for i in range(count):
        symbol = names[rng.randrange(len(names))]
        tick = symbols[symbol][1]
        prices[symbol] = max(tick, prices[symbol] + tick * rng.randint(-3, 3))
        ts = start_ns + i * 1_000_000
        yield TradeReceived(
            id=derive_id("synthetic", seed, i), ts_event=ts, ts_ingest=ts, origin_ts=ts,
            symbol=symbol, trade_id=f"{seed}-{i}", side="Buy" if rng.random() < 0.5 else "Sell",
            price=prices[symbol], qty=QTY_STEP * rng.randint(1, 2000),
        )


async def produce_trades(bootstrap: str, topic: str, trades: list[TradeReceived] | Iterator[TradeReceived],
                         extra: list[tuple[int, bytes]] | None = None) -> int:
    """Produce trades keyed by symbol; `extra` inserts raw (position, bytes) records, e.g. poison."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    poison = dict(extra or [])
    delivery = DeliveryWatch()
    n = 0
    try:
        for i, trade in enumerate(trades):
            if i in poison:
                delivery.watch(await producer.send(topic, poison[i], key=trade.symbol.encode()))
                n += 1
            delivery.watch(await producer.send(topic, encode(trade), key=trade.symbol.encode()))
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    delivery.check()  # the count returned is of delivered records
    return n
