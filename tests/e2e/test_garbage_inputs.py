"""Garbage on every input topic of every service, on the real broker (issue 13 §2).

Hypothesis draws bad records of every kind a foreign or broken producer can write (random bytes,
msgpack of the wrong shape, an unknown type tag, an unknown schema major, a record near the
broker's size limit, an empty value, a null value) and interleaves them with valid events on each
input topic of a service. The real service then runs on the log, and the test checks that every bad
record is dead-lettered with its source position and a reason, counted in hean_dlq_total, and that
every valid record, before and after the garbage, was applied: the state is the fold of exactly
the valid records. Few examples per service, because each one is a real run on the broker.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schemas.events import (
    AccountUpdated,
    BookSnapshotReceived,
    DeadLettered,
    Event,
    IntentApproved,
    IntentRejected,
    OrderAcknowledged,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
    TickerUpdated,
    TradeReceived,
    TradingHalted,
    TradingResumed,
    event_tag,
)
from schemas.topics import (
    ACCOUNTING_POSITIONS,
    CONTROL,
    DLQ,
    MD_BOOK,
    MD_TICKERS,
    MD_TRADES,
    ORDERS_DECISIONS,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
    REF_INSTRUMENTS,
)
from services.accounting.shell import definition as accounting_definition
from services.recorder.core import BY_TOPIC
from services.recorder.shell import Recorder, RecorderConfig
from services.recorder.store import ChdbStore
from services.risk.shell import definition as risk_definition
from services.runtime.bus import DLQ_PAYLOAD_LIMIT, make_producer
from services.runtime.codec import decode, decode_as, encode, encode_sorted
from services.runtime.errors import NotAccepted
from services.runtime.run import ServiceRunner
from services.runtime.service import ServiceDef
from services.runtime.settings import RuntimeSettings
from services.strategy.config import StrategyConfig
from services.strategy.shell import definition as strategy_definition
from tests.conftest import create_topics, read_topic, wait_caught_up, wait_consumed
from tests.samples import instrument_defined

pytestmark = pytest.mark.integration

D = Decimal
T0 = 1_700_000_000_000_000_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
ACCOUNT = "acc"
VALID_PER_TOPIC = 12
# The broker's default record limit (message.max.bytes) is 1 MiB + 12 bytes for the whole batch:
# this is about the largest single record an input topic takes. Its dead letter is larger still.
OVERSIZED = 1024 * 1024 - 256
KNOWN_TAGS = frozenset(event_tag(t) for t in (TradeReceived, BookSnapshotReceived, TickerUpdated, SubmitOrder,
                                              IntentApproved, IntentRejected, OrderAcknowledged, OrderFilled,
                                              AccountUpdated, TradingHalted, TradingResumed, DeadLettered))
EXAMPLES = settings(max_examples=2, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),
                    suppress_health_check=(HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large))


# ---------------------------------------------------------------------- valid events, per topic


def _submit(i: int, symbol: str) -> SubmitOrder:
    return SubmitOrder(id=f"intent-{i}", ts_event=T0 + i, ts_ingest=T0 + i, account=ACCOUNT, strategy="ema",
                       symbol=symbol, side="Buy" if i % 2 else "Sell", order_type="Limit", qty=D("0.001"),
                       price=D(65_000) + i)


def valid_event(topic: str, i: int, symbol: str) -> Event:
    """The i-th valid event of `topic`: one each service's core takes without complaint."""
    env: dict[str, Any] = {"id": f"{topic}-{symbol}-{i}", "ts_event": T0 + i, "ts_ingest": T0 + i}
    price = D(65_000) + i
    if topic == MD_TRADES:
        return TradeReceived(**env, symbol=symbol, trade_id=str(i), side="Buy" if i % 3 else "Sell", price=price,
                             qty=D("0.001") * (i + 1))
    if topic == MD_BOOK:
        bid, ask = (price - 1, D(1)), (price + 1, D(2))
        return BookSnapshotReceived(**env, symbol=symbol, depth=50, update_id=i + 1, seq=i + 1, bids=[bid], asks=[ask],
                                    best_bid=bid, best_ask=ask)
    if topic == MD_TICKERS:
        return TickerUpdated(**env, symbol=symbol, last_price=price, mark_price=price + D("0.5"))
    if topic == ORDERS_EVENTS:
        order = {"account": ACCOUNT, "symbol": symbol, "intent_id": f"intent-{i}", "order_link_id": f"link-{i}",
                 "order_id": f"o-{i}"}
        if i % 2 == 0:
            return OrderAcknowledged(**env, **order, side="Buy", order_type="Limit", qty=D("0.002"), price=price)
        return OrderFilled(**env, **order, exec_id=f"x-{i}", side="Buy" if i % 4 == 1 else "Sell",
                           fill_qty=D("0.002"), fill_price=price, fee=D("0.01"), is_maker=True, cum_qty=D("0.002"))
    if topic == ORDERS_INTENTS:
        return replace_id(_submit(i, symbol), env["id"])
    if topic == ORDERS_DECISIONS:
        if i % 3 == 0:
            return IntentRejected(**env, intent=_submit(i, symbol), rule="max_notional", detail="too big")
        return IntentApproved(**env, intent=_submit(i, symbol))
    if topic == ACCOUNTING_POSITIONS:
        return AccountUpdated(**env, account=ACCOUNT, equity=D(10_000) + i, realized_pnl=D(i), unrealized_pnl=D(0),
                              fees=D("0.1"), gross_exposure=D(100) * i)
    if topic == CONTROL:
        if i % 2 == 0:
            return TradingHalted(**env, account=ACCOUNT, reason="test", actor="ops", kill_switch=False)
        return TradingResumed(**env, account=ACCOUNT, reason="test", actor="ops")
    if topic == REF_INSTRUMENTS:
        return msgspec.structs.replace(instrument_defined(symbol, T0 + i), id=env["id"])
    raise AssertionError(f"no valid events for {topic}")


def replace_id(event: Event, new_id: str) -> Event:
    return msgspec.structs.replace(event, id=new_id)


# ---------------------------------------------------------------------- bad records


class Bad:
    """A bad record: its kind (for the expected reason) and its value (None: a null value)."""

    __slots__ = ("kind", "value")

    def __init__(self, kind: str, value: bytes | None) -> None:
        self.kind = kind
        self.value = value

    def __repr__(self) -> str:  # a falsifying example stays readable with a 1 MiB value in it
        shown = self.value if self.value is None or len(self.value) <= 200 else self.value[:60] + b"..."
        return f"Bad({self.kind!r}, {shown!r}, {0 if self.value is None else len(self.value)} bytes)"


def _fields(topic: str) -> dict[str, Any]:
    """A valid event of `topic` as a plain map, to corrupt one thing at a time."""
    return msgspec.to_builtins(valid_event(topic, 1, SYMBOLS[0]))


def _pack(value: Any) -> bytes:
    return msgspec.msgpack.encode(value)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=20),
                     st.binary(max_size=20))
# A non-empty map of str → int is valid for no field of any event (no event has a dict field).
_ints = st.integers(-(2**63), 2**63 - 1)
_wrong_value = st.one_of(st.dictionaries(st.text(max_size=5), _ints, min_size=1, max_size=3),
                         st.lists(st.dictionaries(st.text(max_size=3), _ints, min_size=1, max_size=3), min_size=1,
                                  max_size=2))


def bad_records(topic: str) -> dict[str, st.SearchStrategy[Bad]]:
    """One strategy per kind of bad record, shaped after `topic`'s own events."""
    fields = _fields(topic)

    def wrong_field(draw: Any) -> Bad:
        name = draw(st.sampled_from(sorted(fields)))
        return Bad("wrong_field_type", _pack({**fields, name: draw(_wrong_value)}))

    return {
        "random_bytes": st.binary(min_size=1, max_size=200).map(lambda b: Bad("random_bytes", b)),
        "wrong_field_type": st.composite(lambda draw: wrong_field(draw))(),
        "array": st.lists(_scalars, max_size=6).map(lambda v: Bad("array", _pack(v))),
        "scalar": _scalars.map(lambda v: Bad("scalar", _pack(v))),
        "unknown_type": st.text(min_size=1, max_size=30).filter(lambda t: t not in KNOWN_TAGS).map(
            lambda t: Bad("unknown_type", _pack({**fields, "type": t}))),
        "unknown_version": _ints.filter(lambda v: v != 1).map(
            lambda v: Bad("unknown_version", _pack({**fields, "version": v}))),
        "oversized": st.just(Bad("oversized", _oversized(fields["type"]))),
        "empty": st.just(Bad("empty", b"")),
        "null": st.just(Bad("null", None)),
    }


def _oversized(tag: str) -> bytes:
    """Valid msgpack of OVERSIZED bytes: a map with the topic's tag, no event fields, and padding."""
    head = len(_pack({"type": tag, "padding": ""}))
    value = _pack({"type": tag, "padding": "x" * (OVERSIZED - head - 4)})  # a str32 header is 4 bytes longer
    assert len(value) == OVERSIZED
    return value


EXPECTED_REASON: dict[str, set[str]] = {
    "random_bytes": {"malformed", "invalid"}, "wrong_field_type": {"invalid"}, "array": {"invalid"},
    "scalar": {"invalid"}, "unknown_type": {"invalid"}, "unknown_version": {"unsupported_version"},
    "oversized": {"invalid"}, "empty": {"malformed"}, "null": {"malformed"},
}


# ---------------------------------------------------------------------- one topic's log


@dataclass
class Planned:
    """A record to produce, then where it landed."""

    topic: str
    key: bytes
    value: bytes | None
    bad: Bad | None = None
    event: Event | None = None
    partition: int = -1
    offset: int = -1


def draw_log(data: st.DataObject, topic: str, extra_bad: int = 3) -> list[Planned]:
    """Valid events of `topic` in order with bad records of every kind (and a few more) drawn in at
    random places; each symbol's last record is valid, so garbage is always followed by valid input."""
    kinds = bad_records(topic)
    bad = [data.draw(strategy, label=f"{topic} {kind}") for kind, strategy in kinds.items()]
    bad += data.draw(st.lists(st.one_of(*kinds.values()), max_size=extra_bad), label=f"{topic} extra")
    valid = [valid_event(topic, i, SYMBOLS[i % 2]) for i in range(VALID_PER_TOPIC)]
    records = [Planned(topic, e.symbol.encode() if hasattr(e, "symbol") else ACCOUNT.encode(), encode(e), event=e)
               for e in valid[:-2]]
    for b in bad:
        at = data.draw(st.integers(0, len(records)), label="position")
        key = data.draw(st.sampled_from([s.encode() for s in SYMBOLS] + [ACCOUNT.encode()]), label="key")
        records.insert(at, Planned(topic, key, b.value, bad=b))
    records += [Planned(topic, e.symbol.encode() if hasattr(e, "symbol") else ACCOUNT.encode(), encode(e), event=e)
                for e in valid[-2:]]
    # Account-keyed topics: the valid events are keyed by account, the garbage shares their partitions.
    if topic in (ACCOUNTING_POSITIONS, CONTROL):
        for r in records:
            r.key = ACCOUNT.encode()
    return records


async def produce(bootstrap: str, prefix: str, records: Sequence[Planned]) -> None:
    """Produce in order (one idempotent producer keeps each partition's order) and note positions."""
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(prefix + r.topic, r.value, key=r.key) for r in records]
        for r, future in zip(records, futures, strict=True):
            metadata = await future
            r.partition, r.offset = metadata.partition, metadata.offset
    finally:
        await producer.stop()


async def run_until(service: Coroutine[Any, Any, None], stop: asyncio.Event,
                    consumed: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a service until `consumed()` returns; a service that dies surfaces its own error."""
    task = asyncio.create_task(service)
    waiter = asyncio.create_task(consumed())
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED, timeout=60)
        if task in done:
            waiter.cancel()
            task.result()
            raise AssertionError("the service stopped before consuming its inputs")
        if waiter not in done:
            raise AssertionError("the service did not consume its inputs within 60 s")
        waiter.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


# ---------------------------------------------------------------------- the checks


async def check_dead_letters(bootstrap: str, prefix: str, service: str, records: Sequence[Planned],
                             sample: Callable[[str], float]) -> None:
    """Every bad record, and only those, is in dlq once, with its position, reason and payload, and
    hean_dlq_total{service, reason} counts them."""
    letters = [decode_as(r.value, DeadLettered) for r in await read_topic(bootstrap, prefix + DLQ)]
    by_position = {(x.source_topic, x.source_partition, x.source_offset): x for x in letters}
    assert len(by_position) == len(letters), "each bad record is dead-lettered once"
    bad = {(prefix + r.topic, r.partition, r.offset): r for r in records if r.bad is not None}
    assert set(by_position) == set(bad), (
        f"missing: {[(p, bad[p].bad.kind) for p in set(bad) - set(by_position)]}; "  # type: ignore[union-attr]
        f"valid records dead-lettered: {sorted(set(by_position) - set(bad))}")
    for position, letter in by_position.items():
        record = bad[position]
        assert record.bad is not None
        assert letter.service == service
        assert letter.reason in EXPECTED_REASON[record.bad.kind], (record.bad.kind, letter.reason, letter.error)
        assert letter.error, position
        value = record.value or b""
        if len(value) > DLQ_PAYLOAD_LIMIT:  # cut to fit the broker's record limit, and said so
            assert letter.payload == value[:DLQ_PAYLOAD_LIMIT] and "payload cut" in letter.error, position
        else:
            assert letter.payload == value, position
    for reason, count in Counter(x.reason for x in letters).items():
        assert sample(reason) == count, reason


def fold_applied(definition: ServiceDef[Any], applied: Sequence[Event], shard_of: Callable[[str], int],
                 shards: Sequence[int]) -> dict[int, Any]:
    """Each shard's state from the events the service applied, in its order: the pure reference."""
    states = {shard: definition.initial_state() for shard in shards}
    for event in applied:
        shard = shard_of(event.id)
        states[shard], _ = definition.step(states[shard], event)
    return states


async def check_runtime_service(bootstrap: str, redis_url: str, prefix: str, definition: ServiceDef[Any],
                                data: st.DataObject) -> None:
    """The shared check for a service on the runtime: garbage on each of its inputs."""
    await create_topics(bootstrap, prefix, {*definition.inputs, DLQ, ORDERS_INTENTS, ORDERS_DECISIONS,
                                            ACCOUNTING_POSITIONS, CONTROL})
    records = [r for topic in definition.inputs for r in draw_log(data, topic)]
    await produce(bootstrap, prefix, records)

    applied: list[Event] = []

    def observed_step(state: Any, event: Any) -> Any:
        applied.append(event)
        return definition.step(state, event)

    runner = ServiceRunner(replace(definition, step=observed_step),
                           RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix,
                                           snapshot_every_seconds=60))
    stop = asyncio.Event()

    async def consumed() -> None:
        for _ in range(2):  # again: what it wrote to its own inputs (risk: decisions) while we waited
            for topic in definition.inputs:
                await wait_consumed(bootstrap, runner.group_id, prefix + topic)

    await run_until(runner.run(stop), stop, consumed)

    def sample(reason: str) -> float:
        labels = {"service": definition.name, "reason": reason}
        return runner.metrics.registry.get_sample_value("hean_dlq_total", labels) or 0.0

    await check_dead_letters(bootstrap, prefix, definition.name, records, sample)

    # Every record on the inputs that is not garbage (ours, and what the service wrote to its own
    # inputs, as risk does to orders.decisions) of a type the service takes is applied once, in
    # log order per partition; nothing else is.
    bad = {(prefix + r.topic, r.partition, r.offset) for r in records if r.bad is not None}
    position: dict[str, tuple[str, int, int]] = {}
    for topic in definition.inputs:
        for record in await read_topic(bootstrap, prefix + topic):
            if (record.topic, record.partition, record.offset) in bad:
                continue
            try:
                event = decode_as(record.value, definition.accepts)
            except NotAccepted:
                continue
            position[event.id] = (record.topic, record.partition, record.offset)
    assert {r.event.id for r in records if r.event is not None} <= set(position)  # type: ignore[union-attr]
    assert sorted(e.id for e in applied) == sorted(position), "every valid record was applied once, no bad one"
    for (topic, partition), group in itertools.groupby(sorted(applied, key=lambda e: position[e.id][:2]),
                                                       key=lambda e: position[e.id][:2]):
        offsets = [position[e.id][2] for e in group]
        assert offsets == sorted(offsets), f"{topic}:{partition} applied in log order"
    expected = fold_applied(definition, applied,
                            (lambda i: position[i][1]) if definition.partitioned else (lambda i: 0),
                            sorted(runner.states))
    assert {s: encode_sorted(v) for s, v in runner.states.items()} == \
           {s: encode_sorted(v) for s, v in expected.items()}, "state = the fold of the valid records"


_examples = itertools.count()


def example_prefix(prefix: str) -> str:
    """A fresh prefix per hypothesis example, under the test's own (so its topics are cleaned up)."""
    return f"{prefix}{next(_examples)}."


# ---------------------------------------------------------------------- one test per service


@EXAMPLES
@given(data=st.data())
def test_strategy_dead_letters_garbage_and_applies_the_rest(bootstrap: str, redis_url: str, prefix: str,
                                                            data: st.DataObject) -> None:
    definition = strategy_definition(StrategyConfig(account=ACCOUNT, ema_fast=2, ema_slow=4,
                                                    maker_symbols=("BTCUSDT",)))
    asyncio.run(check_runtime_service(bootstrap, redis_url, example_prefix(prefix), definition, data))


@EXAMPLES
@given(data=st.data())
def test_risk_dead_letters_garbage_and_applies_the_rest(bootstrap: str, redis_url: str, prefix: str,
                                                        data: st.DataObject) -> None:
    asyncio.run(check_runtime_service(bootstrap, redis_url, example_prefix(prefix), risk_definition(), data))


@EXAMPLES
@given(data=st.data())
def test_accounting_dead_letters_garbage_and_applies_the_rest(bootstrap: str, redis_url: str, prefix: str,
                                                              data: st.DataObject) -> None:
    asyncio.run(check_runtime_service(bootstrap, redis_url, example_prefix(prefix), accounting_definition(), data))


@EXAMPLES
@given(data=st.data())
def test_recorder_dead_letters_garbage_and_records_the_rest(bootstrap: str, prefix: str, tmp_path: Path,
                                                            data: st.DataObject) -> None:
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "chdb"
    asyncio.run(check_recorder(bootstrap, example_prefix(prefix), path, data))


async def check_recorder(bootstrap: str, prefix: str, path: Path, data: st.DataObject) -> None:
    topics = (MD_TRADES, MD_BOOK, MD_TICKERS)
    await create_topics(bootstrap, prefix, (*topics, DLQ))
    records = [r for topic in topics for r in draw_log(data, topic)]
    await produce(bootstrap, prefix, records)
    recorder = Recorder(RecorderConfig(store=f"chdb://{path}", flush_seconds=0.1),
                        RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()

    async def consumed() -> None:
        for topic in topics:
            await wait_caught_up(bootstrap, recorder.group_id, prefix + topic)

    await run_until(recorder.run(stop), stop, consumed)

    def sample(reason: str) -> float:
        labels = {"service": "recorder", "reason": reason}
        return recorder.metrics.base.registry.get_sample_value("hean_dlq_total", labels) or 0.0

    await check_dead_letters(bootstrap, prefix, "recorder", records, sample)
    store = ChdbStore(path)
    try:
        for topic in topics:
            rows = store.query(f"SELECT _partition, _offset, id FROM hean.{BY_TOPIC[topic].name} "
                               "ORDER BY _partition, _offset")
            expected = sorted((r.partition, r.offset, r.event.id) for r in records  # type: ignore[union-attr]
                              if r.topic == topic and r.event is not None)
            assert [(int(p), int(o), i) for p, o, i in rows] == expected, f"{topic}: one row per valid record"
    finally:
        store.close()


@EXAMPLES
@given(data=st.data())
def test_execution_dead_letters_garbage_and_places_the_rest(bootstrap: str, redis_url: str, prefix: str,
                                                            data: st.DataObject) -> None:
    asyncio.run(check_execution(bootstrap, redis_url, example_prefix(prefix), data))


async def check_execution(bootstrap: str, redis_url: str, prefix: str, data: st.DataObject) -> None:
    """Garbage among the decisions: each bad record is dead-lettered with its position and reason;
    every valid approval becomes exactly one order at the venue, in log order per partition."""
    from services.domain.ids import link_id_for
    from services.exchange_sim.server import SimConfig, Simulator
    from services.execution.config import ExecutionConfig
    from services.execution.shell import Execution
    from services.runtime.settings import Secret

    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ))
    records = draw_log(data, ORDERS_DECISIONS)
    await produce(bootstrap, prefix, records)
    sim = Simulator(SimConfig(port=0, rest_port=0, symbols=SYMBOLS, seed=5, api_keys=("g-key:g-secret",)))
    await sim.start()
    execution = Execution(ExecutionConfig(account=ACCOUNT, rest_url=f"http://127.0.0.1:{sim.rest_port}",
                                          ws_url=f"ws://127.0.0.1:{sim.port}/v5/private", api_key="g-key",
                                          api_secret=Secret("g-secret")),
                          RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix))
    stop = asyncio.Event()
    try:
        await run_until(execution.run(stop), stop,
                        lambda: wait_consumed(bootstrap, execution.group_id, prefix + ORDERS_DECISIONS))
    finally:
        await sim.stop()
    await check_dead_letters(bootstrap, prefix, "execution", records,
                             lambda reason: execution.metrics.registry.get_sample_value(
                                 "hean_dlq_total", {"service": "execution", "reason": reason}) or 0.0)
    approved = [r for r in records if isinstance(r.event, IntentApproved)]
    placed = sim.private.created_link_ids
    events = [decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_EVENTS)]
    refused = [e.order_link_id for e in events if isinstance(e, OrderRejected)]
    assert len(placed) == len(set(placed)) and not set(placed) & set(refused)
    assert sorted(placed + refused) == sorted(link_id_for(r.event.intent.id) for r in approved), \
        "each approval acted on once: placed, or refused by the venue and reported"
    assert placed, "some orders reached the venue"
    for key in {r.key for r in approved}:  # one symbol's decisions in order (symbols go side by side)
        in_log = [link_id_for(r.event.intent.id) for r in sorted(approved, key=lambda r: (r.partition, r.offset))
                  if r.key == key and link_id_for(r.event.intent.id) in placed]
        assert [p for p in placed if p in in_log] == in_log, f"{key!r} placed in log order"
