"""A NaN or an Infinity in an amount is a bad record, not a poison pill (real broker, chDB): the
recorder dead-letters it with the field named and records everything around it. Inserted, it would
fail the INSERT (no Decimal column takes it), and since the offsets are stored with the rows, every
restart would read it again and stop again: no table would ever move on."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from schemas.events import SubmitOrder, TradeReceived
from schemas.topics import DLQ, MD_TRADES, ORDERS_INTENTS
from services.recorder.store import ChdbStore
from services.runtime.bus import make_producer, send_and_wait
from services.runtime.codec import decode, encode
from tests.conftest import create_topics, read_topic
from tests.services.recorder.test_repeats import record

pytestmark = pytest.mark.integration
S = 10**9
T0 = 1_764_000_000 * S
TOPICS = (MD_TRADES, ORDERS_INTENTS)


def trade(n: int, price: str = "65000.1") -> TradeReceived:
    return TradeReceived(id=f"t{n}", ts_event=T0 + n * S, ts_ingest=T0 + n * S, symbol="BTCUSDT", trade_id=str(n),
                         side="Buy", price=Decimal(price), qty=Decimal("0.01"))


def intent(n: int, qty: str = "0.01") -> SubmitOrder:
    return SubmitOrder(id=f"i{n}", ts_event=T0 + n * S, ts_ingest=T0 + n * S, account="sim-1", strategy="ema",
                       symbol="BTCUSDT", side="Buy", order_type="Market", qty=Decimal(qty))


def float_price(event: TradeReceived) -> bytes:
    """A foreign producer's msgpack float NaN where the price goes (the codec reads floats as Decimals)."""
    raw = msgspec.msgpack.decode(encode(event))
    raw["price"] = float("nan")
    return msgspec.msgpack.encode(raw)


async def test_nan_and_infinity_are_dead_lettered_and_the_rest_recorded(bootstrap: str, prefix: str,
                                                                        tmp_path: Path) -> None:
    await create_topics(bootstrap, prefix, (*TOPICS, DLQ))
    records = [(MD_TRADES, encode(trade(1))), (MD_TRADES, encode(trade(2, "NaN"))), (MD_TRADES, float_price(trade(3))),
               (MD_TRADES, encode(trade(4, "-Infinity"))), (MD_TRADES, encode(trade(5))),
               (ORDERS_INTENTS, encode(intent(1))), (ORDERS_INTENTS, encode(intent(2, "Infinity"))),
               (ORDERS_INTENTS, encode(intent(3)))]
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        await send_and_wait(producer, [(prefix + topic, b"BTCUSDT", value) for topic, value in records])
    finally:
        await producer.stop()
    path = tmp_path / "store"
    await record(bootstrap, prefix, path, TOPICS)
    store = ChdbStore(path)
    try:
        assert store.query("SELECT id FROM hean.trades ORDER BY id") == [["t1"], ["t5"]]
        assert store.query("SELECT id FROM hean.intents ORDER BY id") == [["i1"], ["i3"]]
    finally:
        store.close()
    letters = [decode(r.value) for r in await read_topic(bootstrap, prefix + DLQ)]
    assert sorted((d.source_offset, d.source_topic.removeprefix(prefix)) for d in letters) == \
        [(1, MD_TRADES), (1, ORDERS_INTENTS), (2, MD_TRADES), (3, MD_TRADES)]
    assert all("not a finite number" in d.error and d.service == "recorder" for d in letters), letters
