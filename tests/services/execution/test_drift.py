"""Position and wallet drift: a position the venue holds that the reported fills do not add up to
becomes a PositionDriftDetected on control, a metric and (with halt_on_drift) a halt; a fill still
on its way never does; the wallet follows the same rule. What the venue held before HEAN's first
start is adopted once (the account's opening). Pure rules first, then the executor against the
simulator over real sockets."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from schemas.events import AccountOpened, PositionAdopted, PositionDriftDetected, TradingHalted, WalletDriftDetected
from schemas.topics import CONTROL, DLQ, ORDERS_DECISIONS, ORDERS_EVENTS
from services.accounting import core as accounting
from services.domain.position import Position
from services.exchange_sim.server import SimConfig, Simulator
from services.execution.drift import PositionCheck, WalletCheck, WalletDrift, expected_wallet
from services.execution.opening import opening_events
from services.runtime.codec import decode, encode
from services.venues.bybit.account import Held, held_positions, position_sizes, wallet_balance
from tests.conftest import create_topics, read_topic
from tests.services.execution.test_execution_faults import KEYS, counter, decision, executor, produce, sim, until

__all__ = ["sim"]
D = Decimal


def test_a_difference_is_drift_only_when_it_holds_with_no_fill_in_between() -> None:
    check = PositionCheck()
    assert check.check({"BTCUSDT": (D("0.02"), 7)}, {"BTCUSDT": D("0.01")}) == ([], [], ["BTCUSDT"])
    # the venue filled again meanwhile (seq moved): still only suspect, the fill may be on its way
    assert check.check({"BTCUSDT": (D("0.03"), 8)}, {"BTCUSDT": D("0.01")})[0] == []
    drifts, _, _ = check.check({"BTCUSDT": (D("0.03"), 8)}, {"BTCUSDT": D("0.01")})
    assert [(d.symbol, d.venue_qty, d.reported_qty, d.venue_seq) for d in drifts] == [("BTCUSDT", D("0.03"),
                                                                                        D("0.01"), 8)]
    assert check.check({"BTCUSDT": (D("0.03"), 8)}, {"BTCUSDT": D("0.01")})[0] == [], "reported once"
    assert check.check({"BTCUSDT": (D("0.03"), 8)}, {"BTCUSDT": D("0.03")})[1] == ["BTCUSDT"], "agrees again"
    assert check.check({}, {"ETHUSDT": D("0.1")})[2] == ["ETHUSDT"], "a reported position the venue lacks"
    assert position_sizes([{"symbol": "X", "size": "0.5", "side": "Sell", "seq": 3},
                           {"symbol": "Y", "size": "0", "side": ""}]) == {"X": (D("-0.5"), 3)}


async def test_a_fill_hean_never_saw_is_a_drift_and_halts_the_account(
        sim: Simulator, bootstrap: str, redis_url: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ, CONTROL))
    execution = executor(sim, bootstrap, redis_url, prefix, account_check_seconds=0.3, halt_on_drift=True)
    key = KEYS["acc-a"][0]
    stop = asyncio.Event()
    task = asyncio.create_task(execution.run(stop))
    try:
        await asyncio.wait_for(execution.active.wait(), 30)
        await produce(bootstrap, prefix + ORDERS_DECISIONS, [encode(decision("acc-a", 1, "Market"))])
        await until(lambda: execution.reports.positions.get("BTCUSDT") == D("0.01"), what="the reported fill")
        await asyncio.sleep(1.2)  # several checks: the venue and the reports agree
        assert counter(execution, "hean_position_drifts_total") == 0
        code, _, _ = sim.engine.place(key, {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                            "orderType": "Market", "qty": "0.010", "orderLinkId": "by-hand-1"},
                                      sim.venue_ms())  # placed by hand on the account: not HEAN's order
        assert code == 0
        sim.deliver_private_reports()
        await until(lambda: counter(execution, "hean_position_drifts_total") == 1, timeout=15, what="the drift")
        await asyncio.sleep(1.0)
        assert counter(execution, "hean_position_drifts_total") == 1, "a drift is reported once"
        assert counter(execution, "hean_position_drift", account="acc-a", symbol="BTCUSDT") == 0.01
    finally:
        stop.set()
        await task
    control = [decode(r.value) for r in await read_topic(bootstrap, prefix + CONTROL)]
    [drift] = [e for e in control if isinstance(e, PositionDriftDetected)]
    assert (drift.account, drift.symbol, drift.venue_qty, drift.reported_qty) == ("acc-a", "BTCUSDT", D("0.02"),
                                                                                   D("0.01"))
    [halt] = [e for e in control if isinstance(e, TradingHalted)]
    assert halt.account == "acc-a" and "position drift on BTCUSDT" in halt.reason and halt.actor == "execution"


def test_the_opening_reads_bybits_wallet_and_positions() -> None:
    wallet = {"list": [{"accountType": "UNIFIED", "coin": [{"coin": "BTC", "walletBalance": "0.5"},
                                                           {"coin": "USDT", "walletBalance": "12345.67"}]}]}
    assert wallet_balance(wallet, "USDT") == D("12345.67") and wallet_balance(wallet, "ETH") == 0
    rows = [{"symbol": "BTCUSDT", "side": "Sell", "size": "0.020", "avgPrice": "60000.5", "seq": 42,
             "updatedTime": "1767225600000"}, {"symbol": "ETHUSDT", "side": "", "size": "0", "avgPrice": "0"}]
    held = held_positions(rows)
    assert held == {"BTCUSDT": Held(D("-0.020"), D("60000.5"), 42, 1767225600000)}
    adopted, opened = opening_events("acc-a", "USDT", D("12345.67"), held, 1767225600123, 5)
    assert [(a.symbol, a.qty, a.avg_entry_price, a.venue_seq, a.ts_event) for a in adopted] == [
        ("BTCUSDT", D("-0.020"), D("60000.5"), 42, 1767225600123 * 1_000_000)]
    assert (opened.account, opened.coin, opened.wallet_balance, opened.positions) == ("acc-a", "USDT",
                                                                                      D("12345.67"), 1)
    again, reopened = opening_events("acc-a", "USDT", D("1"), held, 1, 6)
    assert (again[0].id, reopened.id) == (adopted[0].id, opened.id), "one opening per account, whenever read"
    for bad in ({"list": []}, {"list": [{"coin": [{"coin": "USDT", "walletBalance": "lots"}]}]}):
        with pytest.raises(ValueError):
            wallet_balance(bad, "USDT")
    with pytest.raises(ValueError, match="average price"):
        held_positions([{"symbol": "X", "side": "Buy", "size": "1", "avgPrice": "0"}])


def test_a_wallet_difference_beyond_the_tolerance_is_drift_only_when_it_holds() -> None:
    check = WalletCheck(tolerance=D("0.01"))
    assert check.check(D("100.005"), D("100")) == (None, False, False), "within the tolerance: agreement"
    assert check.check(D("95"), D("100")) == (None, False, True), "first sighting: suspect"
    assert check.check(D("95"), D("99")) == (None, False, True), "the log moved (a fill arrived): suspect again"
    drift, _, _ = check.check(D("95"), D("99"))
    assert drift == WalletDrift(D("95"), D("99"))
    assert check.check(D("95"), D("99")) == (None, False, False), "reported once"
    assert check.check(D("99"), D("99")) == (None, True, False), "agrees again"
    books = {"BTCUSDT": Position(qty=D("1"), entry_value=D("100"), realized=D("12"), fees=D("0.5"),
                                 funding=D("-0.25")), "ETHUSDT": Position(realized=D("-2"), fees=D("1"))}
    assert expected_wallet(D("1000"), books) == D("1000") + D("12") - D("0.5") + D("0.25") - D("2") - D("1")


async def test_what_the_venue_held_is_adopted_once_and_the_wallet_is_watched(
        bootstrap: str, redis_url: str, prefix: str) -> None:
    """An account holding 0.020 BTCUSDT and 12345.5 USDT before HEAN's first start: the first
    executor logs them (PositionAdopted, AccountOpened) and its position check expects the adopted
    position (no drift); a restart adopts nothing again; a withdrawal HEAN never saw becomes a
    WalletDriftDetected and a halt. Accounting's fold of the log starts from the venue's balance
    with the adopted position in it."""
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ, CONTROL))
    venue = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT",), seed=11, balance=D("12345.5"),
                                positions=("BTCUSDT=0.020@60000",),
                                api_keys=tuple(f"{k}:{s}" for k, s in KEYS.values())))
    await venue.start()
    try:
        for run in ("first", "restart"):
            execution = executor(venue, bootstrap, redis_url, prefix, account_check_seconds=0.3,
                                 halt_on_wallet_drift=True)
            stop = asyncio.Event()
            task = asyncio.create_task(execution.run(stop))
            try:
                await asyncio.wait_for(execution.active.wait(), 30)
                assert execution.reports.positions == {"BTCUSDT": D("0.020")}
                assert execution.reports.expected_wallet() == D("12345.5")
                if run == "first":
                    await asyncio.sleep(1.2)  # several checks: the venue agrees with what was adopted
                    assert counter(execution, "hean_position_drifts_total") == 0
                    assert counter(execution, "hean_wallet_drifts_total") == 0
                else:
                    venue.engine.accounts[KEYS["acc-a"][0]].balance -= D("5")  # a withdrawal HEAN never saw
                    await until(lambda e=execution: counter(e, "hean_wallet_drifts_total") == 1, timeout=15,
                                what="the wallet drift")
                    assert counter(execution, "hean_wallet_drift", account="acc-a", coin="USDT") == -5
            finally:
                stop.set()
                await task
    finally:
        await venue.stop()
    events = [decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_EVENTS)]
    assert [(e.account, e.symbol, e.qty, e.avg_entry_price) for e in events if isinstance(e, PositionAdopted)] == [
        ("acc-a", "BTCUSDT", D("0.020"), D("60000"))]
    assert [(e.account, e.wallet_balance) for e in events if isinstance(e, AccountOpened)] == [
        ("acc-a", D("12345.5"))], "opened once, though two executors started"
    control = [decode(r.value) for r in await read_topic(bootstrap, prefix + CONTROL)]
    [drift] = [e for e in control if isinstance(e, WalletDriftDetected)]
    assert (drift.account, drift.coin, drift.venue_balance, drift.expected_balance) == ("acc-a", "USDT",
                                                                                        D("12340.5"), D("12345.5"))
    [halt] = [e for e in control if isinstance(e, TradingHalted)]
    assert "wallet" in halt.reason and halt.actor == "execution"
    assert not [e for e in control if isinstance(e, PositionDriftDetected)]
    books = accounting.initial_state()
    for event in events:
        books = accounting.fold(books, event)
    held = books.positions["acc-a"]["BTCUSDT"]
    assert (held.qty, held.avg_entry, held.realized) == (D("0.020"), D("60000"), 0)
    assert accounting.account_totals(books, "acc-a", D("100000"))["equity"] == D("12345.5")  # no mark folded
