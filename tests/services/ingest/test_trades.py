"""The trade ledger's rules (what a REST page adds after a reconnect, what the live stream repeats)
and the recent-trade parser. Pure: no broker, no venue."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.events import TradeReceived
from schemas.topics import MD_BOOK, MD_TRADES
from services.domain.ids import market_trade_id
from services.ingest.trades import TradeLedger, trade_gap
from services.venues.bybit.public import BybitNormalizer
from services.venues.bybit.trades import RecentTradesRefused, parse_recent_trades

MS = 1_000_000


def trade(n: int, ts_ms: int, symbol: str = "BTCUSDT") -> TradeReceived:
    return TradeReceived(id=market_trade_id("bybit", "linear", symbol, f"t{n}"), ts_event=ts_ms * MS, ts_ingest=0,
                         symbol=symbol, trade_id=f"t{n}", side="Buy", price=Decimal("100.1"), qty=Decimal("0.001"))


def test_a_page_adds_only_what_came_after_the_last_published_trade() -> None:
    ledger = TradeLedger()
    for t in (trade(1, 10), trade(2, 20), trade(3, 20)):
        ledger.published(t)
    page = [trade(0, 5), trade(1, 10), trade(2, 20), trade(3, 20), trade(4, 20), trade(5, 30)]
    fill = ledger.fill("BTCUSDT", page, full=False)
    assert [t.trade_id for t in fill.events] == ["t4", "t5"], "same time, unknown id: new; older: published"
    assert fill.missing_since_ns is None


def test_a_full_page_that_does_not_reach_back_reports_the_gap() -> None:
    ledger = TradeLedger()
    ledger.published(trade(1, 10))
    page = [trade(n, 10 + n) for n in range(50, 60)]
    fill = ledger.fill("BTCUSDT", page, full=True)
    assert [t.trade_id for t in fill.events] == [f"t{n}" for n in range(50, 60)], "what the page has is kept"
    assert fill.missing_since_ns == 10 * MS, "trades after the last published one may be lost: said"
    reaching = ledger.fill("BTCUSDT", [trade(1, 10), *page], full=True)
    assert reaching.missing_since_ns is None, "a full page holding the last published trade covers the gap"


def test_the_last_trade_is_the_last_met_at_the_newest_time_and_a_gap_names_both_ends() -> None:
    ledger = TradeLedger()
    assert ledger.last_trade("BTCUSDT") is None
    for t in (trade(1, 10), trade(3, 20), trade(2, 20), trade(0, 5)):  # log order; an older one changes nothing
        ledger.published(t)
    assert ledger.last_trade("BTCUSDT") == ("t2", 20 * MS)
    gap = trade_gap("bybit", "linear", "BTCUSDT", "page_short", ("t2", 20 * MS), trade(50, 60), now_ns=7)
    assert (gap.last_trade_id, gap.last_trade_ts, gap.first_trade_id, gap.first_trade_ts) == (
        "t2", 20 * MS, "t50", 60 * MS)
    assert (gap.ts_event, gap.ts_ingest) == (60 * MS, 7), "venue time where there is one"
    again = trade_gap("bybit", "linear", "BTCUSDT", "page_short", ("t2", 20 * MS), trade(50, 60), now_ns=9)
    assert again.id == gap.id, "the same hole found again is the same event"
    unread = trade_gap("bybit", "linear", "BTCUSDT", "read_failed", ("t2", 20 * MS), None, now_ns=9)
    assert (unread.first_trade_id, unread.first_trade_ts, unread.ts_event) == ("", 0, 9)
    assert unread.id != gap.id


def test_nothing_is_filled_before_the_first_published_trade() -> None:
    assert TradeLedger().fill("BTCUSDT", [trade(1, 10)], full=True).events == []


def test_admit_drops_repeated_trades_and_passes_the_rest() -> None:
    ledger = TradeLedger(memory=3)
    book = object()
    first = ledger.admit([(MD_TRADES, "BTCUSDT", trade(1, 10)), (MD_BOOK, "BTCUSDT", book)])
    assert [e for _, _, e in first] == [trade(1, 10), book]
    again = ledger.admit([(MD_TRADES, "BTCUSDT", trade(1, 10)), (MD_TRADES, "BTCUSDT", trade(2, 11))])
    assert [e.trade_id for _, _, e in again] == ["t2"], "a trade both in the page and on the stream goes once"
    for n in range(3, 6):
        ledger.admit([(MD_TRADES, "BTCUSDT", trade(n, 10 + n))])
    assert ledger.admit([(MD_TRADES, "BTCUSDT", trade(1, 10))]), "ids beyond `memory` are forgotten"
    assert ledger.last_ns("BTCUSDT") == 15 * MS and ledger.last_ns("ETHUSDT") is None


def test_a_rest_trade_equals_the_stream_trade_it_repeats() -> None:
    row = {"execId": "ab-1", "symbol": "BTCUSDT", "price": "65000.10", "size": "0.002", "side": "Sell",
           "time": "1767225600050", "isBlockTrade": False}
    newer = {**row, "execId": "ab-2", "time": "1767225600060"}
    parsed = parse_recent_trades({"retCode": 0, "result": {"category": "linear", "list": [newer, row]}},
                                 "linear", recv_ns=7)
    assert [t.trade_id for t in parsed] == ["ab-1", "ab-2"], "oldest first"
    frame = ('{"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1767225600051, "data": [{"T": '
             '1767225600050, "s": "BTCUSDT", "S": "Sell", "v": "0.002", "p": "65000.10", "i": "ab-1", "BT": false}]}')
    (_, _, live), = BybitNormalizer("linear").on_frame(frame, 7).events
    assert parsed[0] == live


@pytest.mark.parametrize("answer", [
    {"retCode": 10001, "retMsg": "params error"},
    {"retCode": 0, "result": {"list": [{"execId": "x", "symbol": "BTCUSDT", "price": "1", "size": "1",
                                        "side": "Up", "time": "1"}]}},
    {"retCode": 0, "result": {"list": [{"execId": "x", "symbol": "BTCUSDT", "price": "one", "size": "1",
                                        "side": "Buy", "time": "1"}]}},
    {"retCode": 0, "result": {}},
])
def test_an_unreadable_answer_is_refused_whole(answer: dict) -> None:
    with pytest.raises(RecentTradesRefused):
        parse_recent_trades(answer, "linear", recv_ns=0)
