"""One row per event id where a writer may log an event twice (docs/COMMITS.md, the idempotent
commit mode): the recorder on the real broker drops a copy at a later offset, also when the copy
comes after a restart (the window is loaded from the table), and keeps the first in the log."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.events import IntentApproved, SubmitOrder
from schemas.topics import ORDERS_DECISIONS, ORDERS_INTENTS
from services.recorder.core import BY_TABLE
from services.recorder.repeats import RecentIds, RepeatFilter
from services.recorder.shell import Recorder, RecorderConfig
from services.recorder.store import ChdbStore
from services.runtime.bus import make_producer, send_and_wait
from services.runtime.codec import encode
from services.runtime.settings import RuntimeSettings
from tests.conftest import create_topics, wait_caught_up

S = 10**9
T0 = 1_764_000_000 * S
TOPICS = (ORDERS_INTENTS, ORDERS_DECISIONS)


def intent(n: int, ts: int = T0) -> SubmitOrder:
    return SubmitOrder(id=f"intent-{n}", ts_event=ts + n, ts_ingest=ts + n, account="sim-1", strategy="ema",
                       symbol="BTCUSDT", side="Buy", order_type="Market", qty=Decimal("0.01"))


def approval(n: int) -> IntentApproved:
    i = intent(n)
    return IntentApproved(id=f"decision-{n}", ts_event=i.ts_event, ts_ingest=i.ts_ingest, intent=i)


async def produce(bootstrap: str, prefix: str, events: list[tuple[str, object]]) -> None:
    """In order, keyed by symbol: one partition per topic, the copies at later offsets."""
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        await send_and_wait(producer, [(prefix + topic, b"BTCUSDT", encode(e)) for topic, e in events])  # type: ignore[arg-type]
    finally:
        await producer.stop()


async def record(bootstrap: str, prefix: str, path: Path, topics: tuple[str, ...] = TOPICS) -> None:
    """Run a recorder of `topics` into the store at `path` until it has read all they hold."""
    recorder = Recorder(RecorderConfig(store=f"chdb://{path}", topics=topics, query_port=-1),
                        RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))
    try:
        for topic in topics:
            await wait_caught_up(bootstrap, recorder.group_id, prefix + topic)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def rows(path: Path, table: str) -> list[list[object]]:
    store = ChdbStore(path)
    try:
        return store.query(f"SELECT id, _offset FROM hean.{table} ORDER BY _offset")
    finally:
        store.close()


@pytest.mark.integration
async def test_a_repeated_event_is_one_row_also_across_a_restart(bootstrap: str, prefix: str,
                                                                  tmp_path: Path) -> None:
    await create_topics(bootstrap, prefix, TOPICS)
    path = tmp_path / "chdb"
    await produce(bootstrap, prefix, [(ORDERS_INTENTS, intent(1)), (ORDERS_INTENTS, intent(2)),
                                      (ORDERS_DECISIONS, approval(1)), (ORDERS_INTENTS, intent(1)),
                                      (ORDERS_DECISIONS, approval(1))])
    await record(bootstrap, prefix, path)
    assert rows(path, "intents") == [["intent-1", 0], ["intent-2", 1]], "the copy at offset 2 is no second row"
    assert rows(path, "decisions") == [["decision-1", 0]]

    # A copy read by a restarted recorder: its window comes from the table.
    await produce(bootstrap, prefix, [(ORDERS_INTENTS, intent(2)), (ORDERS_INTENTS, intent(3)),
                                      (ORDERS_DECISIONS, approval(1))])
    await record(bootstrap, prefix, path)
    assert rows(path, "intents") == [["intent-1", 0], ["intent-2", 1], ["intent-3", 4]]
    assert rows(path, "decisions") == [["decision-1", 0]]
    store = ChdbStore(path)
    try:
        [[count, distinct]] = store.query("SELECT count(), uniqExact(id) FROM hean.intents")
    finally:
        store.close()
    assert (count, distinct) == (3, 3)


def test_the_tables_a_repeat_can_reach_keep_one_row_per_id_and_bars_do_not() -> None:
    one_per_id = {name for name, spec in BY_TABLE.items() if spec.one_per_id}
    assert one_per_id == {"intents", "decisions", "order_events", "positions", "control", "dead_letters",
                          "algo_reports"}


def test_the_window_is_the_same_set_whatever_order_the_ids_came_in() -> None:
    """A restarted recorder loads the window from the table in the store's order, not the log's."""
    ids = [(f"e{n}", T0 + n * 7 * S) for n in range(100)]  # 700 s of event time: older ones fall out
    shuffled = random.Random(3).sample(ids, len(ids))
    one, other = RepeatFilter(), RepeatFilter()
    one.load("intents", 0, ids)
    other.load("intents", 0, shuffled)
    assert one.windows["intents", 0].buckets == other.windows["intents", 0].buckets
    kept = set().union(*one.windows["intents", 0].buckets.values())
    newest = ids[-1][1]
    assert kept == {i for i, ts in ids if ts >= RecentIds.floor(newest)}
    events = [intent(n) for n in (1, 2, 1, 3, 2)]
    fresh, offsets = RepeatFilter().fresh("intents", 0, events, [10, 11, 12, 13, 14])
    assert [e.id for e in fresh] == ["intent-1", "intent-2", "intent-3"] and offsets == [10, 11, 13]


def test_two_services_refusing_one_record_are_two_dead_letters_and_a_repeat_is_one() -> None:
    """Strategy and the recorder both dead-letter a bad md.trades record: two facts, two rows; the
    same service dead-lettering it again after a restart is a repeat, one row."""
    from types import SimpleNamespace

    from services.runtime.bus import dead_letter
    from services.runtime.codec import decode as decode_event

    record = SimpleNamespace(topic="md.trades", partition=3, offset=41, timestamp=1_764_000_000_000, value=b"\xc1")
    letters = [decode_event(dead_letter(record, service, "malformed", "bad", "dlq")[2])
               for service in ("strategy", "recorder", "strategy")]
    kept, offsets = RepeatFilter().fresh("dead_letters", 3, letters, [0, 1, 2])
    assert [d.service for d in kept] == ["strategy", "recorder"] and list(offsets) == [0, 1]
