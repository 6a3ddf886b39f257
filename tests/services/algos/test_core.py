"""The algos core on hand-made event streams: schedules by market time, sizes, the participation
cap, iceberg replenishment, rejections, the report's figures, and a replay giving the same children."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import msgspec
import pytest

from schemas.events import (
    AlgoCompleted,
    AlgoProgressed,
    BookSnapshotReceived,
    Event,
    IntentRejected,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    SubmitAlgo,
    SubmitOrder,
    TradeReceived,
)
from services.algos.core import AlgoParams, AlgoState, initial_state, step, target
from services.domain.ids import algo_child_id
from services.runtime.service import Emit
from tests.samples import instrument_defined

S = 10**9
T0 = 1_000 * S
PARAMS = AlgoParams()
D = Decimal


def book(ts: int, bid: str = "100.0", ask: str = "100.2") -> BookSnapshotReceived:
    return BookSnapshotReceived(id=f"b{ts}", ts_event=ts, ts_ingest=ts, symbol="BTCUSDT", depth=1, update_id=ts,
                                seq=ts, bids=[(D(bid), D(1))], asks=[(D(ask), D(1))],
                                best_bid=(D(bid), D(1)), best_ask=(D(ask), D(1)))


def trade(ts: int, qty: str, price: str = "100.1") -> TradeReceived:
    return TradeReceived(id=f"t{ts}", ts_event=ts, ts_ingest=ts, symbol="BTCUSDT", trade_id=str(ts), side="Buy",
                         price=D(price), qty=D(qty))


def parent(kind: str = "twap", **fields: object) -> SubmitAlgo:
    base: dict[str, object] = {"qty": D("0.010"), "side": "Buy"}
    if kind == "iceberg":
        base |= {"limit_price": D("100.0"), "display_qty": D("0.004")}
    else:
        base |= {"duration_s": 60, "slices": 0 if kind == "vwap" else 4}
    return SubmitAlgo(id="p1", ts_event=T0, ts_ingest=T0, account="acc", strategy="operator", symbol="BTCUSDT",
                      kind=kind, **(base | fields))  # type: ignore[arg-type]


def fill(child: SubmitOrder, qty: str, price: str, whole: bool = True, n: int = 0) -> Event:
    common = {"id": f"f-{child.id}-{n}", "ts_event": child.ts_event, "ts_ingest": child.ts_event, "account": "acc",
              "symbol": "BTCUSDT", "intent_id": child.id, "order_link_id": "h-x", "exec_id": f"x{n}",
              "side": child.side, "fill_qty": D(qty), "fill_price": D(price), "fee": D("0.01"), "is_maker": False,
              "cum_qty": D(qty)}
    if whole:
        return OrderFilled(**common)  # type: ignore[arg-type]
    return OrderPartiallyFilled(**common, leaves_qty=child.qty - D(qty))  # type: ignore[arg-type]


def run(events: Iterable[Event], state: AlgoState | None = None,
        params: AlgoParams = PARAMS) -> tuple[AlgoState, list[Emit]]:
    state = state or initial_state()
    out: list[Emit] = []
    for event in events:
        state, emits = step(state, event, params)
        out += emits
    return state, out


def children(emits: list[Emit]) -> list[SubmitOrder]:
    return [e.event for e in emits if isinstance(e.event, SubmitOrder)]


def reports(emits: list[Emit]) -> list[Event]:
    return [e.event for e in emits if isinstance(e.event, AlgoProgressed | AlgoCompleted)]


def test_twap_slices_fall_due_by_market_time_and_complete() -> None:
    state, out = run([instrument_defined(), book(T0), parent()])
    assert children(out) == [], "slot 1 is one interval (15 s of market time) after the start"
    state, out = run([book(T0 + 14 * S)], state)
    assert children(out) == []
    state, out = run([book(T0 + 15 * S)], state)
    [first] = children(out)
    assert first.id == algo_child_id("p1", 0) and first.qty == D("0.002"), "0.010 * 1/4 on the 0.001 lot grid"
    assert first.time_in_force == "IOC" and first.price == D("100.4"), "0.2 % through the ask, on the tick grid"
    state, out = run([fill(first, "0.002", "100.2")], state)
    assert [type(r) for r in reports(out)] == [AlgoProgressed]
    filled = D("0.002")
    for k in (2, 3, 4):
        state, out = run([book(T0 + 15 * k * S)], state)
        [child] = children(out)
        assert child.qty == target(parent(), k, PARAMS).quantize(D("0.001"), "ROUND_FLOOR") - filled
        filled += child.qty
        state, out = run([fill(child, str(child.qty), "100.2")], state)
    done = reports(out)[-1]
    assert isinstance(done, AlgoCompleted) and done.status == "completed" and done.filled_qty == D("0.010")
    assert done.children == 4 and not state.parents and state.finished == ("p1",)


def test_missed_slots_are_caught_up_and_an_unfilled_remainder_expires() -> None:
    state, _ = run([instrument_defined(), book(T0), parent()])
    state, out = run([book(T0 + 31 * S)], state)  # slots 1 and 2 passed at once: one child for both
    [child] = children(out)
    assert child.qty == D("0.005")
    state, out = run([OrderCancelled(id="c", ts_event=T0 + 31 * S, ts_ingest=0, account="acc", symbol="BTCUSDT",
                                     intent_id=child.id, order_link_id="h-x", reason="EC_NoImmediateQtyToFill")],
                     state)
    assert [r.status for r in reports(out)] == ["working"], "an IOC that found nothing is a normal end"
    state, out = run([book(T0 + 61 * S)], state)
    [last] = children(out)
    assert last.qty == D("0.010"), "the last slot asks for all that is left"
    state, out = run([fill(last, "0.004", "100.2", whole=False), OrderCancelled(
        id="c2", ts_event=T0 + 61 * S, ts_ingest=0, account="acc", symbol="BTCUSDT", intent_id=last.id,
        order_link_id="h-x", reason="EC_NoImmediateQtyToFill")], state)
    done = reports(out)[-1]
    assert isinstance(done, AlgoCompleted) and done.status == "expired" and done.filled_qty == D("0.004")


def test_participation_caps_a_slice_at_the_volume_since_the_last() -> None:
    state, _ = run([instrument_defined(), book(T0), parent(participation=D("0.1"))])
    state, out = run([trade(T0 + 5 * S, "0.012"), book(T0 + 15 * S)], state)
    [child] = children(out)
    assert child.qty == D("0.001"), "10 % of 0.012 traded, down to the lot"
    state, out = run([fill(child, "0.001", "100.2"), book(T0 + 30 * S)], state)
    assert children(out) == [], "no volume since the last slice: nothing to take part in"


def test_a_sell_child_stays_at_or_above_the_limit() -> None:
    _, out = run([instrument_defined(), book(T0), parent(side="Sell", limit_price=D("99.9")), book(T0 + 15 * S)])
    [child] = children(out)
    assert child.side == "Sell" and child.price == D("99.9"), "0.2 % under the bid would be 99.8"


def test_vwap_sizes_slices_by_the_configured_curve() -> None:
    params = AlgoParams(vwap_curve=(D(1), D(3)))
    _, out = run([instrument_defined(), book(T0), parent("vwap", qty=D("0.008")), book(T0 + 30 * S)],
                 params=params)
    [child] = children(out)
    assert child.qty == D("0.002"), "a quarter of the volume in the first half"


def test_iceberg_shows_the_display_qty_and_replenishes_on_fills() -> None:
    state, out = run([instrument_defined(), book(T0), parent("iceberg")])
    [first] = children(out)
    assert (first.qty, first.price, first.time_in_force) == (D("0.004"), D("100.0"), "GTC")
    state, out = run([fill(first, "0.001", "100.0", whole=False), book(T0 + S)], state)
    assert children(out) == [], "only one child shows at a time"
    state, out = run([fill(first, "0.003", "100.0", n=1)], state)
    [second] = children(out)
    assert second.qty == D("0.004") and second.id == algo_child_id("p1", 1)
    state, out = run([fill(second, "0.004", "100.0")], state)
    [third] = children(out)
    assert third.qty == D("0.002"), "what is left"
    state, out = run([trade(T0 + 2 * S, "1", "100.0"), fill(third, "0.002", "100.0")], state)
    done = reports(out)[-1]
    assert isinstance(done, AlgoCompleted) and done.status == "completed"
    assert done.avg_price == D("100.00000000") and done.fees == D("0.04")
    assert done.arrival_price == D("100.1")
    # Bought 0.010 at 100.0 against an arrival mid of 100.1: 0.001 saved, plus 0.04 of fees (four fills),
    # 0.039 on an arrival notional of 1.001: 389.61 bps.
    assert done.shortfall == D("0.03900000") and done.shortfall_bps == D("389.61")


def test_an_iceberg_child_cancelled_by_someone_else_ends_the_parent() -> None:
    state, out = run([instrument_defined(), book(T0), parent("iceberg")])
    [child] = children(out)
    state, out = run([OrderCancelled(id="c", ts_event=T0, ts_ingest=0, account="acc", symbol="BTCUSDT",
                                     intent_id=child.id, order_link_id="h-x", reason="CancelByUser")], state)
    assert [r.status for r in reports(out)] == ["working", "cancelled"] and not state.parents


def test_children_rejected_by_risk_are_retried_then_the_parent_fails() -> None:
    state, out = run([instrument_defined(), book(T0), parent("iceberg")])
    statuses = []
    for n in range(PARAMS.max_rejects):
        [child] = children(out)
        state, out = run([IntentRejected(id=f"r-{child.id}", ts_event=T0, ts_ingest=0, intent=child,
                                         rule="max_notional", detail="too big")], state)
        statuses += [r.status for r in reports(out)]
        if n < PARAMS.max_rejects - 1:
            assert children(out) == [], "not again at once: order_rate counts the last second"
            state, out = run([book(T0 + (n + 1) * S - 1)], state)
            assert children(out) == []
            state, out = run([book(T0 + (n + 1) * S)], state)
    assert statuses[-1] == "failed" and statuses.count("working") == PARAMS.max_rejects
    done = reports(out)[-1]
    assert "max_notional" in done.detail and done.children == PARAMS.max_rejects


def test_a_parent_waits_for_the_first_book_and_a_repeated_parent_starts_nothing() -> None:
    state, out = run([instrument_defined(), parent("iceberg")])
    assert children(out) == [] and state.parents["p1"].started == 0
    state, out = run([book(T0 + 5 * S)], state)
    assert len(children(out)) == 1 and state.parents["p1"].started == T0 + 5 * S
    state, out = run([parent("iceberg")], state)
    assert out == [], "the same parent id read again (a re-sent record) is the same parent"


def test_a_parent_starts_when_market_time_reaches_its_own() -> None:
    """A service that folds the market late sees the parent before the books of its time: the start
    and the arrival price are the market's at the parent's time, not older."""
    state, out = run([instrument_defined(), book(T0 - 20 * S, "90.0", "90.2"), parent()])
    assert state.parents["p1"].started == 0
    state, out = run([book(T0 - 5 * S, "95.0", "95.2"), book(T0 + S)], state)
    assert state.parents["p1"].started == T0 + S and state.parents["p1"].arrival == D("100.1")
    assert children(out) == [], "slot 1 is 15 s after the start, not after the older books"


def test_folding_the_same_log_twice_gives_the_same_children_and_state() -> None:
    """What a restart relies on: the fold is the state, so the same records give the same children."""
    log: list[Event] = [instrument_defined(), book(T0), parent(participation=D("0.5"))]
    state, out = run(log)
    for k in range(1, 6):
        log += [trade(T0 + 15 * k * S - S, "0.003"), book(T0 + 15 * k * S)]
        state, out = run(log[-2:], state)
        log += [fill(c, str(c.qty), "100.2") for c in children(out)]
        state, _ = run(log[-len(children(out)):], state) if children(out) else (state, [])
    again, out_again = run(log)
    assert msgspec.msgpack.encode(again) == msgspec.msgpack.encode(state)
    assert [c.id for c in children(out_again)] == [algo_child_id("p1", n) for n in range(len(children(out_again)))]


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "twap", "duration_s": 60, "slices": 0}, "1-1000 slices"),
    ({"kind": "twap", "duration_s": 0, "slices": 3}, "positive duration_s"),
    ({"kind": "iceberg", "limit_price": D(1)}, "needs limit_price and display_qty"),
    ({"kind": "iceberg", "limit_price": D(1), "display_qty": D(2)}, "exceeds qty"),
    ({"kind": "twap", "duration_s": 60, "slices": 3, "participation": D("1.5")}, "participation in (0, 1]"),
    ({"kind": "vwap", "duration_s": 60, "slices": 3}, "configured curve"),
])
def test_parameters_are_checked_at_decoding(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        SubmitAlgo(id="p", ts_event=0, ts_ingest=0, account="a", strategy="s", symbol="BTCUSDT", side="Buy",
                   qty=D(1), **fields)  # type: ignore[arg-type]


def test_a_repeated_report_or_parent_is_applied_once() -> None:
    """An emitter without a transaction may log an event twice after a crash (docs/COMMITS.md): the
    copy of a child's partial fill must not count twice, nor a parent read again start a second one."""
    state, out = run([instrument_defined(), book(T0), parent("iceberg")])
    [first] = children(out)
    partial = fill(first, "0.001", "100.0", whole=False)
    state, out = run([partial, book(T0 + S), partial], state)
    assert out == [] and state.parents["p1"].filled == D("0.001") and state.parents["p1"].open == {
        first.id: D("0.003")}
    state, out = run([fill(first, "0.003", "100.0", n=1)], state)
    [second] = children(out)
    assert second.qty == D("0.004") and state.parents["p1"].filled == D("0.004")
    assert run([parent("iceberg")], state)[1] == []


def test_the_repeat_filter_is_the_same_whatever_order_it_saw_the_ids_in() -> None:
    """A replay and the live run hold one state: the window of applied ids depends on the ids only."""
    state, out = run([instrument_defined(), book(T0), parent("iceberg")])
    [first] = children(out)
    late = fill(first, "0.001", "100.0", whole=False)
    early = msgspec.structs.replace(late, id="f-early", ts_event=T0 - 400 * S)  # older than the 5 min window
    one, _ = run([late, early], state)
    other, _ = run([early, late], state)
    assert one.applied == other.applied and late.id in one.applied[f"{T0 // (10 * S):012d}"]
