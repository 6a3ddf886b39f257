"""The simulator fills resting orders by queue position (services/matching/queue.py), as the
backtest's fill model does: the size resting at the price when the order arrives is ahead of it."""

from __future__ import annotations

from decimal import Decimal

from services.exchange_sim.market import DEFAULT_INSTRUMENTS, Fill, SymbolMarket
from services.exchange_sim.matching import MatchingEngine

KEY = "key-1"


def engine() -> MatchingEngine:
    market = SymbolMarket(DEFAULT_INSTRUMENTS["BTCUSDT"], seed=1, levels=20)
    market.bids = {650000 - i: 1000 for i in range(20)}  # 65000.0 down, 1.000 BTC a level
    market.asks = {650001 + i: 1000 for i in range(20)}
    return MatchingEngine({"BTCUSDT": market}, {KEY: Decimal("100000")})


def fills(sim: MatchingEngine) -> list[tuple[str, bool]]:
    return [(d["execQty"], d["isMaker"]) for _, topic, d in sim.reports if topic == "execution"]


def test_a_resting_bid_waits_for_the_queue_ahead_then_fills_partly_then_whole() -> None:
    sim = engine()
    order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.500",
             "price": "65000.0", "timeInForce": "GTC", "orderLinkId": "q1"}
    assert sim.place(KEY, order, now_ms=1)[0] == 0  # 1.000 ahead of it at 65000.0
    market = sim.markets["BTCUSDT"]
    market.bids[650000] = 400  # a sell of 0.600 at our price ate that much of the queue
    sim.on_market_step("BTCUSDT", 2, [Fill("Sell", 650000, 600)])
    assert fills(sim) == []  # touched, and still 0.400 ahead: no fill
    market.bids[650000] = 100
    sim.on_market_step("BTCUSDT", 3, [Fill("Sell", 650000, 600)])  # 0.400 ahead, then 0.200 for us
    assert fills(sim) == [("0.200", True)]
    del market.bids[650000]
    sim.on_market_step("BTCUSDT", 4, [Fill("Sell", 649999, 50)])  # traded through our price
    assert fills(sim) == [("0.200", True), ("0.300", True)]
