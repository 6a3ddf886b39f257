"""A coherent synthetic trading session on every topic the recorder records, for its tests and bench.

Deterministic for a seed: the same events (ids included) every call, so two recordings of it can be
compared row for row. The market is an integer-tick random walk with a 10-level book per side
(snapshot every 100 updates, deltas in between, best bid/ask carried on each event); orders follow
intent → decision → ack → partial fill → fill (or venue reject, or cancel), with taker fees, and
accounting follows every fill. Not a market model: just consistent enough for the doc queries to
give checkable answers (fills at or beyond the decision-time mid, fees = 5.5 bp of notional).
"""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal

from schemas import events as ev
from schemas.topics import (
    ACCOUNTING_POSITIONS,
    ALGOS_REPORTS,
    CONTROL,
    DLQ,
    MD_BARS,
    MD_BOOK,
    MD_TICKERS,
    MD_TRADES,
    ORDERS_DECISIONS,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
    REF_INSTRUMENTS,
)
from services.bars.core import Bar, on_trade

T0 = 1_704_153_600_000_000_000  # 2024-01-02 00:00:00 UTC
STEP_NS = 10_000_000
SYMBOLS = {"BTCUSDT": (Decimal("0.1"), 420_000), "ETHUSDT": (Decimal("0.01"), 230_000)}
STRATEGIES = ("ema", "meanrev")
ACCOUNTS = {"ema": "acc1", "meanrev": "acc2"}
RULES = ("max_notional", "max_position", "rate_limit")
FEE_RATE = Decimal("0.00055")
NEW_TAKER_FEE = Decimal("0.0004")
"""BTCUSDT's taker fee from the middle of the session on (its second ref.instruments version)."""
LEVELS = 10
Keyed = tuple[str, ev.Event]


def _book(mid: int, old: tuple[dict[int, int], dict[int, int]],
          rng: random.Random) -> tuple[dict[int, int], dict[int, int]]:
    """Bids below and asks above `mid` (ticks), sizes in lots: the sizes of levels still in view
    stay, new levels get a size, and one level per side changes size (a few level updates a delta)."""
    bids = {mid - k: old[0].get(mid - k) or rng.randint(1, 40) for k in range(1, LEVELS + 1)}
    asks = {mid + k: old[1].get(mid + k) or rng.randint(1, 40) for k in range(1, LEVELS + 1)}
    bids[mid - rng.randint(1, LEVELS)] = rng.randint(1, 40)
    asks[mid + rng.randint(1, LEVELS)] = rng.randint(1, 40)
    return bids, asks


def _diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    changed = {p: s for p, s in new.items() if old.get(p) != s}
    changed.update({p: 0 for p in old if p not in new})
    return changed


def session(steps: int = 3000, seed: int = 7) -> dict[str, list[Keyed]]:
    """topic → [(key, event)] in produce order."""
    rng = random.Random(seed)
    out: dict[str, list[Keyed]] = defaultdict(list)
    mids = {s: m for s, (_, m) in SYMBOLS.items()}
    books = {s: ({}, {}) for s in SYMBOLS}
    update_ids = dict.fromkeys(SYMBOLS, 0)
    positions: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0),
                                                                            Decimal(0)])
    n_orders = 0
    open_bars: dict[str, Bar | None] = dict.fromkeys(SYMBOLS)
    for symbol, (tick, _) in SYMBOLS.items():
        out[REF_INSTRUMENTS].append((symbol, instrument(symbol, tick, T0 - 1, FEE_RATE)))
    for step in range(steps):
        if step == steps // 2:  # the venue changes BTCUSDT's fees mid-session: a second version
            out[REF_INSTRUMENTS].append(("BTCUSDT", instrument("BTCUSDT", SYMBOLS["BTCUSDT"][0],
                                                               T0 + step * STEP_NS, NEW_TAKER_FEE)))
        ts = T0 + step * STEP_NS
        for symbol, (tick, _) in SYMBOLS.items():
            mids[symbol] += rng.choice((-1, 0, 0, 1))
            bids, asks = _book(mids[symbol], books[symbol], rng)
            update_ids[symbol] += 1
            snapshot = update_ids[symbol] % 100 == 1
            old_bids, old_asks = books[symbol]
            set_bids = bids if snapshot else _diff(old_bids, bids)
            set_asks = asks if snapshot else _diff(old_asks, asks)
            books[symbol] = (bids, asks)

            def level(p: int, s: int, tick: Decimal = tick) -> ev.PriceLevel:
                return (p * tick, Decimal(s) / 1000)

            best_bid, best_ask = level(max(bids), bids[max(bids)]), level(min(asks), asks[min(asks)])
            kind = ev.BookSnapshotReceived if snapshot else ev.BookDeltaReceived
            out[MD_BOOK].append((symbol, kind(
                id=ev.derive_id("book", symbol, update_ids[symbol]), ts_event=ts, ts_ingest=ts + 300_000,
                symbol=symbol, depth=50, update_id=update_ids[symbol], seq=update_ids[symbol] * 3,
                bids=[level(p, s) for p, s in sorted(set_bids.items(), reverse=True)],
                asks=[level(p, s) for p, s in sorted(set_asks.items())], best_bid=best_bid, best_ask=best_ask)))
            side = rng.choice(("Buy", "Sell"))
            price = best_ask[0] if side == "Buy" else best_bid[0]
            out[MD_TRADES].append((symbol, ev.TradeReceived(
                id=ev.derive_id("trade", symbol, step), ts_event=ts + 1_000, ts_ingest=ts + 301_000, symbol=symbol,
                trade_id=f"{symbol}-{step}", side=side, price=price, qty=Decimal(rng.randint(1, 500)) / 1000)))
            bar_step = on_trade(out[MD_TRADES][-1][1], 1, open_bars[symbol], None)  # trades come in order
            open_bars[symbol] = bar_step.open_bar
            out[MD_BARS].extend((symbol, bar) for bar in bar_step.published)
            if step % 10 == 0:
                out[MD_TICKERS].append((symbol, ev.TickerUpdated(
                    id=ev.derive_id("ticker", symbol, step), ts_event=ts + 2_000, ts_ingest=ts + 302_000,
                    symbol=symbol, last_price=price, mark_price=mids[symbol] * tick, bid1_price=best_bid[0],
                    bid1_size=best_bid[1], ask1_price=best_ask[0], ask1_size=best_ask[1])))
            if step % 5 == 0:
                n_orders += 1
                _order(out, rng, n_orders, ts + 3_000_000, symbol, best_bid[0], best_ask[0], positions)
        if step % 500 == 250:
            account = ACCOUNTS[STRATEGIES[step // 500 % 2]]
            out[CONTROL].append((account, ev.TradingHalted(id=ev.derive_id("halt", step), ts_event=ts,
                                                           ts_ingest=ts, account=account, reason="daily loss",
                                                           actor="risk")))
            out[CONTROL].append((account, ev.TradingResumed(id=ev.derive_id("resume", step), ts_event=ts + 1,
                                                            ts_ingest=ts + 1, account=account, reason="reviewed",
                                                            actor="ops")))
        if step % 100 == 50:  # an algo parent's progress, every table has rows under the crash test
            filled = Decimal(step % 1000) / 1000
            out[ALGOS_REPORTS].append((symbol, ev.AlgoProgressed(
                id=ev.derive_id("algo", step), ts_event=ts, ts_ingest=ts, parent_id=f"parent-{step // 1000}",
                account="acc1", strategy="operator", symbol=symbol, side="Buy", kind="twap", qty=Decimal(1),
                filled_qty=filled, avg_price=best_bid[0] if filled else None, children=step % 1000 // 100)))
        if step % 200 == 100:
            out[DLQ].append(("md.trades", ev.DeadLettered(
                id=ev.derive_id("dlq", step), ts_event=ts, ts_ingest=ts, service="strategy", source_topic="md.trades",
                source_partition=step % 6, source_offset=step, reason="malformed", error="not msgpack",
                payload=bytes([0xC1, step % 256, 0, 0xFF]))))
    return dict(out)


def instrument(symbol: str, tick: Decimal, ts: int, taker_fee: Decimal) -> ev.InstrumentDefined:
    """The rules of `symbol` as ingest would publish them at `ts` (id from the rules, as ingest's)."""
    rules = {"venue": "bybit", "symbol": symbol, "kind": "linear_perpetual", "base_coin": symbol[:-4],
             "quote_coin": "USDT", "tick_size": tick, "lot_step": Decimal("0.001"), "min_qty": Decimal("0.001"),
             "max_qty": Decimal(100), "min_notional": Decimal(5), "maker_fee": Decimal("0.0002"),
             "taker_fee": taker_fee}
    return ev.InstrumentDefined(id=ev.derive_id("instrument", *rules.values()), ts_event=ts, ts_ingest=ts, **rules)


def _order(out: dict[str, list[Keyed]], rng: random.Random, n: int, ts: int, symbol: str, bid: Decimal,
           ask: Decimal, positions: dict[tuple[str, str], list[Decimal]]) -> None:
    """One intent and what follows it; the fill price is the touch or one tick through it."""
    strategy = STRATEGIES[n % 2]
    account = ACCOUNTS[strategy]
    tick = SYMBOLS[symbol][0]
    side = rng.choice(("Buy", "Sell"))
    qty = Decimal(rng.randint(2, 20)) / 1000
    intent = ev.SubmitOrder(id=f"intent-{n}", ts_event=ts, ts_ingest=ts + 50_000, origin_ts=ts - 2_000_000,
                            account=account, strategy=strategy, symbol=symbol, side=side, order_type="Market",
                            qty=qty)
    out[ORDERS_INTENTS].append((symbol, intent))
    t = ts + 200_000
    if rng.random() < 0.2:
        rule = rng.choice(RULES)
        out[ORDERS_DECISIONS].append((symbol, ev.IntentRejected(
            id=f"decision-{n}", ts_event=t, ts_ingest=t, origin_ts=intent.origin_ts, intent=intent, rule=rule,
            detail=f"{rule} exceeded by intent-{n}")))
        return
    out[ORDERS_DECISIONS].append((symbol, ev.IntentApproved(id=f"decision-{n}", ts_event=t, ts_ingest=t,
                                                            origin_ts=intent.origin_ts, intent=intent)))
    common = {"account": account, "symbol": symbol, "intent_id": intent.id, "order_link_id": f"hean-{n}",
              "order_id": f"o{n}", "origin_ts": intent.origin_ts}
    if rng.random() < 0.1:
        out[ORDERS_EVENTS].append((symbol, ev.OrderRejected(id=f"rej-{n}", ts_event=t + 1_000_000,
                                                            ts_ingest=t + 1_100_000, ret_code=110007,
                                                            reason="insufficient balance", **common)))
        return
    t_ack = t + rng.randint(500_000, 3_000_000)
    out[ORDERS_EVENTS].append((symbol, ev.OrderAcknowledged(id=f"ack-{n}", ts_event=t_ack, ts_ingest=t_ack + 100_000,
                                                            side=side, order_type="Market", qty=qty, **common)))
    touch = ask if side == "Buy" else bid
    through = tick if side == "Buy" else -tick
    first = (qty / 2).quantize(Decimal("0.001"))
    fills = [(first, touch), (qty - first, touch + through * rng.randint(0, 2))]
    cancel = rng.random() < 0.15
    if cancel:
        fills = fills[:1]
    cum = Decimal(0)
    for i, (fill_qty, fill_price) in enumerate(fills):
        t_fill = t_ack + (i + 1) * rng.randint(1_000_000, 5_000_000)
        cum += fill_qty
        fee = (fill_qty * fill_price * FEE_RATE).quantize(Decimal("0.00000001"))
        fill = {"exec_id": f"x{n}-{i}", "side": side, "fill_qty": fill_qty, "fill_price": fill_price, "fee": fee,
                "is_maker": False, "cum_qty": cum}
        if i == len(fills) - 1 and not cancel:
            out[ORDERS_EVENTS].append((symbol, ev.OrderFilled(id=f"fill-{n}-{i}", ts_event=t_fill,
                                                              ts_ingest=t_fill + 100_000, **fill, **common)))
        else:
            out[ORDERS_EVENTS].append((symbol, ev.OrderPartiallyFilled(
                id=f"fill-{n}-{i}", ts_event=t_fill, ts_ingest=t_fill + 100_000, leaves_qty=qty - cum, **fill,
                **common)))
        _account(out, positions, account, symbol, side, fill_qty, fill_price, fee, t_fill, f"{n}-{i}")
    if cancel:
        out[ORDERS_EVENTS].append((symbol, ev.OrderCancelled(id=f"cancel-{n}", ts_event=t_fill + 1_000_000,
                                                             ts_ingest=t_fill + 1_100_000, reason="IOC remainder",
                                                             cum_qty=cum, **common)))


def _account(out: dict[str, list[Keyed]], positions: dict[tuple[str, str], list[Decimal]], account: str,
             symbol: str, side: str, qty: Decimal, price: Decimal, fee: Decimal, ts: int, cause: str) -> None:
    """Average-cost position after one fill, then the account's totals (marked at the fill price)."""
    state = positions[account, symbol]  # qty, avg entry, realized, fees
    signed = qty if side == "Buy" else -qty
    if state[0] == 0 or (state[0] > 0) == (signed > 0):
        state[1] = (state[0] * state[1] + signed * price) / (state[0] + signed)
    else:
        closed = min(abs(signed), abs(state[0]))
        state[2] += closed * (price - state[1]) * (1 if state[0] > 0 else -1)
        if abs(signed) > abs(state[0]):
            state[1] = price
    state[0] += signed
    state[3] += fee
    unrealized = state[0] * (price - state[1])
    out[ACCOUNTING_POSITIONS].append((account, ev.PositionUpdated(
        id=ev.derive_id("position", cause), ts_event=ts, ts_ingest=ts + 200_000, account=account, symbol=symbol,
        qty=state[0], avg_entry_price=state[1].quantize(Decimal("0.00000001")), mark_price=price,
        realized_pnl=state[2], unrealized_pnl=unrealized, fees=state[3])))
    mine = [v for (a, _), v in positions.items() if a == account]
    realized, fees = sum((v[2] for v in mine), Decimal(0)), sum((v[3] for v in mine), Decimal(0))
    out[ACCOUNTING_POSITIONS].append((account, ev.AccountUpdated(
        id=ev.derive_id("account", cause), ts_event=ts + 1, ts_ingest=ts + 200_001, account=account,
        equity=Decimal(10_000) + realized + unrealized - fees, realized_pnl=realized, unrealized_pnl=unrealized,
        fees=fees, gross_exposure=sum((abs(v[0]) * price for v in mine), Decimal(0)))))
