"""InputMerge, pure: records of a shard's partitions come out by record time, never reordering a
partition; the merge waits for records known to exist, and not for records that may never come."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition

from services.runtime.merge import InputMerge

TRADES, BOOK, EVENTS = TopicPartition("md.trades", 0), TopicPartition("md.book", 0), TopicPartition("orders.events", 0)
OTHER_SHARD = TopicPartition("md.trades", 1)


@dataclass(frozen=True)
class Record:
    offset: int
    timestamp: int


def merge(targets: dict[TopicPartition, int] | None = None) -> InputMerge:
    m = InputMerge(lambda tp: tp.partition, ["md.trades", "md.book", "orders.events"])
    for tp in (TRADES, BOOK, EVENTS, OTHER_SHARD):
        m.reset(tp, target=(targets or {}).get(tp, 0))
    return m


def order(out: list[tuple[TopicPartition, Record]]) -> list[tuple[str, int]]:
    return [(tp.topic, r.offset) for tp, r in out]


def test_live_records_come_out_by_time_ties_by_input_order_and_partitions_keep_their_order() -> None:
    m = merge()
    m.add(TRADES, [Record(0, 10), Record(1, 30)])
    m.add(BOOK, [Record(0, 20), Record(1, 30)])
    m.add(EVENTS, [Record(0, 25), Record(1, 5)])  # a timestamp going back stays behind its predecessor
    assert order(m.ready({})) == [("md.trades", 0), ("md.book", 0), ("orders.events", 0), ("orders.events", 1),
                                  ("md.trades", 1), ("md.book", 1)]
    assert not m.holding()


def test_records_known_to_exist_are_waited_for_then_merged_exactly() -> None:
    m = merge({TRADES: 2, EVENTS: 1})  # recovery: two trades and one event exist below the committed offsets
    m.add(TRADES, [Record(0, 10), Record(1, 40)])
    assert m.waiting_on() == [EVENTS] and m.ready({EVENTS: 0}) == [], "the event at t=20 is not fetched yet"
    m.add(OTHER_SHARD, [Record(0, 50)])
    assert [(tp, r.offset) for tp, r in m.ready({EVENTS: 0})] == [(OTHER_SHARD, 0)], "another shard does not wait"
    m.add(EVENTS, [Record(0, 20)])
    assert order(m.ready({})) == [("md.trades", 0), ("orders.events", 0), ("md.trades", 1)]


def test_a_position_past_the_target_without_records_releases_the_shard() -> None:
    m = merge({BOOK: 3})  # the last offsets below the target were a commit marker and an aborted record
    m.add(BOOK, [Record(0, 10)])
    m.add(TRADES, [Record(0, 30)])
    assert order(m.ready({BOOK: 1})) == [("md.book", 0)], "records up to the gap are safe; then it waits"
    assert order(m.ready({BOOK: 3})) == [("md.trades", 0)]


def test_dropped_partitions_are_forgotten() -> None:
    m = merge({TRADES: 5})
    m.add(BOOK, [Record(0, 10)])
    assert m.ready({TRADES: 0}) == []
    m.drop([TRADES])
    assert order(m.ready({})) == [("md.book", 0)]
