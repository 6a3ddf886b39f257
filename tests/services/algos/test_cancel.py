"""Cancelling a parent (CancelAlgo) in the algos core: no more children, the working child cancelled
through an intent, the parent ended cancelled with what filled until then; and a vwap sized by the
volume profile it carries instead of the configured curve."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.events import AlgoCompleted, CancelAlgo, CancelOrder, IntentRejected, OrderCancelled, SubmitAlgo
from services.algos.core import AlgoParams, target
from services.domain.ids import algo_cancel_child_id, algo_done_id
from services.runtime.service import Emit
from tests.samples import instrument_defined
from tests.services.algos.test_core import PARAMS, T0, book, children, fill, parent, reports, run

S = 10**9
D = Decimal


def cancel(parent_id: str = "p1", ts: int = T0 + 20 * S, account: str = "acc", reason: str = "enough") -> CancelAlgo:
    return CancelAlgo(id=f"cancel-{ts}", ts_event=ts, ts_ingest=ts, account=account, strategy="operator",
                      symbol="BTCUSDT", parent_id=parent_id, reason=reason)


def cancels(emits: list[Emit]) -> list[CancelOrder]:
    return [e.event for e in emits if isinstance(e.event, CancelOrder)]


def gone(child_id: str, ts: int) -> OrderCancelled:
    return OrderCancelled(id=f"gone-{child_id}", ts_event=ts, ts_ingest=ts, account="acc", symbol="BTCUSDT",
                          intent_id=child_id, order_link_id="h-x", reason="CancelByUser")


def test_a_cancel_stops_the_schedule_cancels_the_open_child_and_ends_with_its_fills() -> None:
    state, out = run([instrument_defined(), book(T0), parent("iceberg")])
    [child] = children(out)
    state, out = run([fill(child, "0.001", "100.0", whole=False), cancel()], state)
    [order] = cancels(out)
    assert order.intent_id == child.id and order.id == algo_cancel_child_id("p1", child.id)
    assert (order.account, order.strategy, order.symbol) == ("acc", "operator", "BTCUSDT")
    assert reports(out) == [], "the parent ends when its child has left the book, not before"
    state, out = run([book(T0 + 30 * S), cancel(ts=T0 + 31 * S)], state)
    assert out == [], "no new child while cancelling, and a second cancel adds nothing"
    state, out = run([gone(child.id, T0 + 32 * S)], state)
    statuses = [r.status for r in reports(out)]
    done = reports(out)[-1]
    assert statuses == ["working", "cancelled"] and isinstance(done, AlgoCompleted)
    assert done.id == algo_done_id("p1") and done.filled_qty == D("0.001") and done.children == 1
    assert done.detail == "cancelled by operator: enough"
    assert not state.parents and state.finished == ("p1",)
    state, out = run([cancel(ts=T0 + 40 * S), book(T0 + 90 * S)], state)
    assert out == [], "an ended parent's cancel changes nothing"


def test_a_cancel_between_slots_ends_the_parent_at_once() -> None:
    state, out = run([instrument_defined(), book(T0), parent(), book(T0 + 15 * S)])
    [first] = children(out)
    state, _ = run([fill(first, str(first.qty), "100.2")], state)
    state, out = run([cancel(reason="")], state)
    assert cancels(out) == [] and [r.status for r in reports(out)] == ["cancelled"]
    assert reports(out)[0].filled_qty == first.qty and reports(out)[0].detail == "cancelled by operator"
    _, out = run([book(T0 + 30 * S), book(T0 + 61 * S)], state)
    assert children(out) == [], "no slot of a cancelled twap falls due"


def test_a_child_refused_after_the_cancel_ends_the_parent_instead_of_a_retry() -> None:
    state, out = run([instrument_defined(), book(T0), parent("iceberg")])
    [child] = children(out)
    state, _ = run([cancel()], state)
    state, out = run([IntentRejected(id="r", ts_event=T0, ts_ingest=0, intent=child, rule="halted", detail="x"),
                      book(T0 + 5 * S)], state)
    assert children(out) == [] and [r.status for r in reports(out)] == ["working", "cancelled"]


@pytest.mark.parametrize("other", [cancel(parent_id="p2"), cancel(account="someone-else")])
def test_a_cancel_of_an_unknown_or_anothers_parent_changes_nothing(other: CancelAlgo) -> None:
    state, _ = run([instrument_defined(), book(T0), parent("iceberg")])
    after, out = run([other], state)
    assert out == [] and after == state


def test_a_cancelled_parent_not_started_yet_ends_without_an_arrival_price() -> None:
    state, out = run([instrument_defined(), parent(), cancel(ts=T0)])
    [done] = reports(out)
    assert not state.parents and done.status == "cancelled" and done.arrival_price is None and done.children == 0


def test_a_vwap_with_a_profile_follows_it_not_the_configured_curve() -> None:
    profiled = parent("vwap", qty=D("0.010"), volume_profile=(D("0.1"), D("0"), D("0.4"), D("0.5")))
    assert [target(profiled, k, PARAMS) for k in (1, 2, 3, 4)] == [D("0.001"), D("0.001"), D("0.005"), D("0.010")]
    state, out = run([instrument_defined(), book(T0), profiled, book(T0 + 15 * S)],
                     params=AlgoParams(vwap_curve=(D(1), D(1))))
    [first] = children(out)
    assert first.qty == D("0.001"), "a tenth in the first of four slices (15 s each), not half in 30 s"
    state, out = run([fill(first, "0.001", "100.2"), book(T0 + 30 * S)], state)
    assert children(out) == [], "the second bucket saw no volume: its slot sends nothing"
    _, out = run([book(T0 + 45 * S)], state)
    assert [c.qty for c in children(out)] == [D("0.004")]


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "twap", "slices": 2, "volume_profile": (D(1), D(1))}, "Only a vwap takes a volume_profile"),
    ({"kind": "vwap", "volume_profile": (D(0), D(0))}, "a positive sum"),
    ({"kind": "vwap", "volume_profile": (D(1), D(-1), D(2))}, "weights >= 0"),
])
def test_a_bad_profile_is_refused_at_decoding(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SubmitAlgo(id="p", ts_event=0, ts_ingest=0, account="a", strategy="s", symbol="BTCUSDT", side="Buy",
                   qty=D(1), duration_s=60, **fields)  # type: ignore[arg-type]
