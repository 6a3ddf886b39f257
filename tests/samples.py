"""One valid instance of every event type, for round-trip and export tests."""

from __future__ import annotations

from decimal import Decimal

from schemas import events as ev

T = 1_700_000_000_123_456_789
ENVELOPE = {"ts_event": T, "ts_ingest": T + 5, "origin_ts": T + 1}

_submit = ev.SubmitOrder(id="intent-1", **ENVELOPE, account="acc1", strategy="ema", symbol="BTCUSDT", side="Buy",
                         order_type="Limit", qty=Decimal("0.010"), price=Decimal("65000.10"))
_order = {"account": "acc1", "symbol": "BTCUSDT", "intent_id": "intent-1", "order_link_id": "hean-abc",
          "order_id": "o1"}


def instrument_defined(symbol: str = "BTCUSDT", ts: int = 1) -> ev.InstrumentDefined:
    """A ref.instruments record with BTCUSDT's rules on the simulator (tick 0.10, lot 0.001, min 5 USDT),
    for tests that feed risk or a strategy without an ingest in front of them."""
    return ev.InstrumentDefined(id=f"instrument-{symbol}", ts_event=ts, ts_ingest=ts, venue="bybit", symbol=symbol,
                                kind="linear_perpetual", base_coin=symbol.removesuffix("USDT"), quote_coin="USDT",
                                tick_size=Decimal("0.10"), lot_step=Decimal("0.001"), min_qty=Decimal("0.001"),
                                max_qty=Decimal("1190.000"), min_notional=Decimal("5"), maker_fee=Decimal("0.0002"),
                                taker_fee=Decimal("0.00055"))


SAMPLES: dict[type, ev.Event] = {
    ev.TradeReceived: ev.TradeReceived(id="t1", **ENVELOPE, symbol="BTCUSDT", trade_id="x1", side="Sell",
                                       price=Decimal("16578.50"), qty=Decimal("0.001")),
    ev.BookSnapshotReceived: ev.BookSnapshotReceived(
        id="b1", **ENVELOPE, symbol="BTCUSDT", depth=50, update_id=18521288, seq=7961638724,
        bids=[(Decimal("16493.50"), Decimal("0.006"))], asks=[(Decimal("16611.00"), Decimal("0.029"))]),
    ev.BookDeltaReceived: ev.BookDeltaReceived(
        id="b2", **ENVELOPE, symbol="BTCUSDT", depth=50, update_id=18521289, seq=7961638725,
        bids=[(Decimal("16493.50"), Decimal("0"))], asks=[]),
    ev.TickerUpdated: ev.TickerUpdated(id="k1", **ENVELOPE, symbol="BTCUSDT", last_price=Decimal("66666.60"),
                                       mark_price=Decimal("66666.60"), funding_rate=Decimal("-0.005")),
    ev.SubmitOrder: _submit,
    ev.CancelOrder: ev.CancelOrder(id="c1", **ENVELOPE, account="acc1", strategy="ema", symbol="BTCUSDT",
                                   intent_id="intent-1"),
    ev.AmendOrder: ev.AmendOrder(id="m1", **ENVELOPE, account="acc1", strategy="maker", symbol="BTCUSDT",
                                 intent_id="intent-1", price=Decimal("65000.20")),
    ev.CancelAllOrders: ev.CancelAllOrders(id="x1", **ENVELOPE, account="acc1", strategy="operator",
                                           symbol="BTCUSDT"),
    ev.SubmitAlgo: ev.SubmitAlgo(id="a1", **ENVELOPE, account="acc1", strategy="operator", symbol="BTCUSDT",
                                 side="Buy", kind="twap", qty=Decimal("0.050"), duration_s=60, slices=6,
                                 participation=Decimal("0.2")),
    ev.CancelAlgo: ev.CancelAlgo(id="ac1", **ENVELOPE, account="acc1", strategy="operator", symbol="BTCUSDT",
                                 parent_id="a1", reason="market moved"),
    ev.AlgoProgressed: ev.AlgoProgressed(id="r1", **ENVELOPE, parent_id="a1", account="acc1", strategy="operator",
                                         symbol="BTCUSDT", side="Buy", kind="twap", qty=Decimal("0.050"),
                                         filled_qty=Decimal("0.010"), avg_price=Decimal("65000.1"),
                                         arrival_price=Decimal("65000.05"), children=1, started_ts=T),
    ev.AlgoCompleted: ev.AlgoCompleted(id="r2", **ENVELOPE, parent_id="a1", account="acc1", strategy="operator",
                                       symbol="BTCUSDT", side="Buy", kind="iceberg", qty=Decimal("0.050"),
                                       filled_qty=Decimal("0.050"), shortfall=Decimal("0.5"),
                                       shortfall_bps=Decimal("1.54"), status="completed", children=5),
    ev.IntentApproved: ev.IntentApproved(id="d1", **ENVELOPE, intent=_submit),
    ev.IntentRejected: ev.IntentRejected(id="d2", **ENVELOPE, intent=_submit, rule="max_notional",
                                         detail="notional 650.001 > 500"),
    ev.OrderAcknowledged: ev.OrderAcknowledged(id="e1", **ENVELOPE, **_order, side="Buy", order_type="Limit",
                                               qty=Decimal("0.010"), price=Decimal("65000.10")),
    ev.OrderRejected: ev.OrderRejected(id="e2", **ENVELOPE, **_order, ret_code=110004,
                                       reason="Wallet balance is insufficient"),
    ev.OrderPartiallyFilled: ev.OrderPartiallyFilled(
        id="e3", **ENVELOPE, **_order, exec_id="x1", side="Buy", fill_qty=Decimal("0.004"),
        fill_price=Decimal("65000.10"), fee=Decimal("0.143000220"), is_maker=False, cum_qty=Decimal("0.004"),
        leaves_qty=Decimal("0.006")),
    ev.OrderFilled: ev.OrderFilled(id="e4", **ENVELOPE, **_order, exec_id="x2", side="Buy", fill_qty=Decimal("0.006"),
                                   fill_price=Decimal("65000.00"), fee=Decimal("-0.0039"), is_maker=True,
                                   cum_qty=Decimal("0.010")),
    ev.OrderCancelled: ev.OrderCancelled(id="e5", **ENVELOPE, **_order, reason="CancelByUser"),
    ev.OrderAmended: ev.OrderAmended(id="e6", **ENVELOPE, **_order, qty=Decimal("0.020"), price=Decimal("65000.20")),
    ev.OrderAmendRejected: ev.OrderAmendRejected(id="e7", **ENVELOPE, **_order, ret_code=110001,
                                                 reason="Order does not exist."),
    ev.PositionDriftDetected: ev.PositionDriftDetected(id="dr1", **ENVELOPE, account="acc1", symbol="BTCUSDT",
                                                       venue_qty=Decimal("0.020"), reported_qty=Decimal("0.010"),
                                                       venue_seq=42),
    ev.WalletDriftDetected: ev.WalletDriftDetected(id="wd1", **ENVELOPE, account="acc1",
                                                   venue_balance=Decimal("12340.67"),
                                                   expected_balance=Decimal("12345.67")),
    ev.TradeGapDetected: ev.TradeGapDetected(id="tg1", **ENVELOPE, venue="bybit", symbol="BTCUSDT",
                                             reason="page_short", last_trade_id="t-100",
                                             last_trade_ts=T - 9_000_000_000, first_trade_id="t-180",
                                             first_trade_ts=T),
    ev.FundingSettled: ev.FundingSettled(id="f1", **ENVELOPE, account="acc1", symbol="BTCUSDT", exec_id="x9",
                                         funding_rate=Decimal("0.0001"), position_qty=Decimal("-0.010"),
                                         mark_price=Decimal("65000.00"), amount=Decimal("-0.065")),
    ev.PositionAdopted: ev.PositionAdopted(id="pa1", **ENVELOPE, account="acc1", symbol="BTCUSDT",
                                           qty=Decimal("-0.020"), avg_entry_price=Decimal("60000.5"), venue_seq=42),
    ev.AccountOpened: ev.AccountOpened(id="ao1", **ENVELOPE, account="acc1", wallet_balance=Decimal("12345.67"),
                                       positions=1),
    ev.PositionUpdated: ev.PositionUpdated(id="p1", **ENVELOPE, account="acc1", symbol="BTCUSDT",
                                           qty=Decimal("-0.010"), avg_entry_price=Decimal("65000.04"),
                                           mark_price=Decimal("64990"), realized_pnl=Decimal("1.25"),
                                           unrealized_pnl=Decimal("0.1004"), fees=Decimal("0.139")),
    ev.AccountUpdated: ev.AccountUpdated(id="a1", **ENVELOPE, account="acc1", equity=Decimal("10001.2114"),
                                         realized_pnl=Decimal("1.25"), unrealized_pnl=Decimal("0.1004"),
                                         fees=Decimal("0.139"), gross_exposure=Decimal("649.90")),
    ev.InstrumentDefined: instrument_defined(),
    ev.TradingHalted: ev.TradingHalted(id="h1", **ENVELOPE, account="acc1", reason="daily loss", actor="risk"),
    ev.TradingResumed: ev.TradingResumed(id="h2", **ENVELOPE, account="acc1", reason="reviewed", actor="ops"),
    ev.DeadLettered: ev.DeadLettered(id="q1", **ENVELOPE, service="tally", source_topic="demo.trades",
                                     source_partition=2, source_offset=17, reason="malformed", error="bad",
                                     payload=b"\xc1\x00garbage"),
    ev.TallyUpdated: ev.TallyUpdated(id="y1", **ENVELOPE, symbol="BTCUSDT", count=3, total_qty=Decimal("0.003"),
                                     total_notional=Decimal("49.7355"), source_id="t1"),
    ev.BarClosed: ev.BarClosed(id="r1", **ENVELOPE, symbol="BTCUSDT", interval_s=60, open=Decimal("16578.50"),
                               high=Decimal("16580.00"), low=Decimal("16570.50"), close=Decimal("16579.00"),
                               volume=Decimal("0.003"), turnover=Decimal("49.7355"), vwap=Decimal("16578.5"),
                               trades=3),
}
