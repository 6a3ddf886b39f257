"""The simulator's matching engine: accounts, orders, fills, positions and wallet. No I/O.

Orders trade against the simulator's own public book (`SymbolMarket`): a taker fill removes that
liquidity from the public book, so the market data everyone sees reflects our trades. A resting
order fills as a maker by queue position (services/matching/queue.py: the size resting at its
price when it arrives is ahead of it, eaten by trades at that price and shrunk as the level
shrinks), never merely when touched; the backtester's fill model applies the same rules to the
recorded market (services/backtest/venue.py). Prices are integer ticks and
sizes integer lot steps; money (values, fees, PnL, balances) is Decimal and exact.

Every call returns (retCode, retMsg, result) as the REST layer answers, plus the reports the
private WebSocket pushes (`order`, `execution`, `position`, `wallet`). Codes follow bybit-v5.md
§3.6: 10001 parameter error, 110001 order does not exist, 110007 balance insufficient,
110072 duplicate orderLinkId, 110094 notional below the minimum, 110043 leverage not modified.
Orders the venue itself cancels at placement are Bybit's: orderStatus "Cancelled", cancelType
"UNKNOWN" (its enum has no PostOnly/FOK/IOC values; docs/v5/enum.mdx) and the reason in
rejectReason: EC_PostOnlyWillTakeLiquidity (docs/v5/order/order-list.mdx shows exactly this row),
EC_CancelForNoFullFill (FOK), EC_NoImmediateQtyToFill (the unfilled rest of an IOC or market order).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from services.domain.position import Position as DomainPosition
from services.domain.position import apply_fill
from services.exchange_sim import views
from services.exchange_sim.market import Fill, Instrument, SymbolMarket
from services.exchange_sim.views import text as _text
from services.matching import book as matching_book
from services.matching.queue import queue_on_arrival, step_fill

TAKER_FEE = Decimal("0.00055")
MAKER_FEE = Decimal("0.0002")
ORDER_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
ORDER_IDS = uuid.UUID("0b9f2c2e-9d8e-4c3f-8f43-5a1f2a7c0d11")
OPEN = ("New", "PartiallyFilled")
POST_ONLY_CROSSED = "EC_PostOnlyWillTakeLiquidity"
FOK_NOT_FILLED = "EC_CancelForNoFullFill"
IOC_REST = "EC_NoImmediateQtyToFill"
NEVER_RESTED = (POST_ONLY_CROSSED, FOK_NOT_FILLED)  # rejectReasons of orders cancelled at placement
MAX_LEVERAGE = Decimal(100)

Result = tuple[int, str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Valid:
    """A create-order request that passed validation, in ticks and lot steps."""

    instrument: Instrument
    side: str
    order_type: str
    price: int | None
    qty: int
    tif: str
    reduce_only: bool
    link_id: str


@dataclass
class SimOrder:
    order_id: str
    order_link_id: str
    symbol: str
    side: str
    order_type: str
    price: int | None
    qty: int
    time_in_force: str
    reduce_only: bool
    created_ms: int
    updated_ms: int
    status: str = "New"
    cum_qty: int = 0
    cum_value: Decimal = Decimal(0)
    cum_fee: Decimal = Decimal(0)
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    last_price_on_created: str = ""
    queue_ahead: int = 0  # lot steps resting ahead of this order at its price (services/matching/queue.py)

    @property
    def leaves(self) -> int:
        return self.qty - self.cum_qty if self.status in OPEN else 0


@dataclass
class Position:
    size: int = 0  # signed lot steps: > 0 long, < 0 short
    entry_value: Decimal = Decimal(0)  # |size| * average entry price, exact
    realized: Decimal = Decimal(0)
    seq: int = 0
    created_ms: int = 0
    updated_ms: int = 0


@dataclass
class Account:
    api_key: str
    balance: Decimal
    orders: dict[str, SimOrder] = field(default_factory=dict)
    by_link_id: dict[str, str] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    fees_paid: Decimal = Decimal(0)
    funding_paid: Decimal = Decimal(0)  # funding settled on positions (received: negative)
    executions: list[dict[str, Any]] = field(default_factory=list)  # the execution reports, oldest first
    leverage: dict[str, Decimal] = field(default_factory=dict)  # symbol → leverage set (default 10)


class MatchingEngine:
    """All accounts of the venue, trading against the public markets."""

    def __init__(self, markets: dict[str, SymbolMarket], balances: dict[str, Decimal] | None = None) -> None:
        self.markets = markets
        self.accounts: dict[str, Account] = {k: Account(k, v) for k, v in (balances or {}).items()}
        self.exec_seq = itertools.count(1)
        self.reports: list[tuple[str, str, dict[str, Any]]] = []  # (api_key, topic, data)
        self._now_ms = 0  # the fill being applied's time, for the position's timestamps

    def hold(self, api_key: str, symbol: str, qty: Decimal, price: Decimal, now_ms: int) -> None:
        """Give an account a position before any order (EXCHANGE_SIM_POSITIONS): `qty` signed, at
        the average entry `price`, as a real account may hold it when HEAN first trades it."""
        market = self.markets.get(symbol)
        if market is None:
            raise ValueError(f"cannot hold {symbol}: the simulator lists {sorted(self.markets)}")
        lots = qty / market.instrument.qty_step
        if qty == 0 or price <= 0 or lots != lots.to_integral_value():
            raise ValueError(f"cannot hold {qty} {symbol} at {price}: expected a non-zero multiple of the lot "
                             f"step {market.instrument.qty_step} at a positive price")
        self.accounts[api_key].positions[symbol] = Position(size=int(lots), entry_value=abs(qty) * price, seq=1,
                                                           created_ms=now_ms, updated_ms=now_ms)

    # ------------------------------------------------------------------ requests

    def place(self, api_key: str, request: dict[str, Any], now_ms: int) -> Result:
        """POST /v5/order/create."""
        account = self.accounts[api_key]
        checked = self._validate(account, request)
        if not isinstance(checked, _Valid):
            return checked
        inst, side, order_type, price = checked.instrument, checked.side, checked.order_type, checked.price
        qty, tif, reduce_only, link_id = checked.qty, checked.tif, checked.reduce_only, checked.link_id
        if reduce_only:
            position = account.positions.get(inst.symbol, Position()).size
            closable = -position if side == "Buy" else position
            if closable <= 0:
                return 110017, "reduce-only order would not reduce the position", {}
            qty = min(qty, closable)
        market = self.markets[inst.symbol]
        reference = price if price is not None else (market.best_ask() if side == "Buy" else market.best_bid())
        notional = inst.tick_size * reference * inst.qty_step * qty
        if notional < inst.min_notional:
            return 110094, f"Order notional value below the lower limit {inst.min_notional}", {}
        if not reduce_only and notional * TAKER_FEE > account.balance:
            return 110007, "ab not enough for new order", {}
        order_id = str(uuid.uuid5(ORDER_IDS, f"{api_key}:{len(account.orders)}:{link_id}"))
        order = SimOrder(order_id, link_id, inst.symbol, side, order_type, price, qty, tif, reduce_only,
                         now_ms, now_ms, last_price_on_created=inst.price_text(market.last_price))
        account.orders[order_id] = order
        if link_id:
            account.by_link_id[link_id] = order_id
        crosses = matching_book.crosses(side, price, market.best_bid(), market.best_ask())
        if tif == "PostOnly" and crosses:
            self._cancel(account, order, now_ms, "UNKNOWN", POST_ONLY_CROSSED)
        elif tif == "FOK" and self._available(market, side, price) < qty:
            self._cancel(account, order, now_ms, "UNKNOWN", FOK_NOT_FILLED)
        else:
            self._report_order(account, order)
            if crosses:
                self._take(account, order, market, now_ms)
            if order.status in OPEN and (order_type == "Market" or tif in ("IOC", "FOK")):
                self._cancel(account, order, now_ms, "UNKNOWN", IOC_REST)
            elif order.status in OPEN and price is not None:
                own = market.bids if side == "Buy" else market.asks
                order.queue_ahead = queue_on_arrival(own.get(price), 0)
        return 0, "OK", {"orderId": order_id, "orderLinkId": link_id}

    def cancel(self, api_key: str, request: dict[str, Any], now_ms: int) -> Result:
        """POST /v5/order/cancel by orderId or orderLinkId (orderId wins when both are given)."""
        account = self.accounts[api_key]
        order = self._find(account, request)
        if order is None or order.status not in OPEN:
            return 110001, "Order does not exist.", {}
        self._cancel(account, order, now_ms, "CancelByUser")
        return 0, "OK", {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def amend(self, api_key: str, request: dict[str, Any], now_ms: int) -> Result:
        """POST /v5/order/amend: a resting order's new total qty and/or price, in place (same
        orderId, same orderLinkId). Only New or PartiallyFilled orders (else 110001, as for a
        cancel); an amend that changes nothing is refused with 10001. A new price that crosses
        fills at once as a taker, except a PostOnly order, which the venue cancels instead."""
        account = self.accounts[api_key]
        order = self._find(account, request)
        if order is None or order.status not in OPEN or order.symbol != request.get("symbol"):
            return 110001, "Order does not exist.", {}
        inst = self.markets[order.symbol].instrument
        qty, price = order.qty, order.price
        if request.get("qty"):
            value = Decimal(str(request["qty"]))
            if value % inst.qty_step or not inst.min_qty <= value <= inst.max_qty:
                return 10001, (f"params error: qty {value} must be a multiple of {inst.qty_step} within "
                               f"[{inst.min_qty}, {inst.max_qty}]"), {}
            qty = int(value / inst.qty_step)
            if qty <= order.cum_qty:
                return 10001, f"params error: qty {value} must exceed the filled qty {inst.qty_text(order.cum_qty)}", {}
        if request.get("price"):
            if order.price is None:
                return 10001, "params error: a market order has no price to amend", {}
            value = Decimal(str(request["price"]))
            if value <= 0 or value % inst.tick_size:
                return 10001, f"params error: price {value} must be a positive multiple of {inst.tick_size}", {}
            price = int(value / inst.tick_size)
        if (qty, price) == (order.qty, order.price):
            return 10001, "The order remains unchanged as the parameters entered match the existing ones.", {}
        # A new price or a larger qty goes to the back of the queue at its price; a smaller qty keeps its place.
        requeue = price != order.price or qty > order.qty
        order.qty, order.price, order.updated_ms = qty, price, now_ms
        market = self.markets[order.symbol]
        assert price is not None
        crosses = matching_book.crosses(order.side, price, market.best_bid(), market.best_ask())
        if crosses and order.time_in_force == "PostOnly":
            self._cancel(account, order, now_ms, "UNKNOWN", POST_ONLY_CROSSED)
        else:
            self._report_order(account, order)
            if crosses:
                self._take(account, order, market, now_ms)
            if order.status in OPEN and requeue:
                own = market.bids if order.side == "Buy" else market.asks
                order.queue_ahead = queue_on_arrival(own.get(price), 0)
        return 0, "OK", {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def cancel_all(self, api_key: str, request: dict[str, Any], now_ms: int) -> Result:
        """POST /v5/order/cancel-all: every open order of a symbol, else of a base coin, else of a
        settle coin (linear needs one of the three). The answer lists what was cancelled."""
        account = self.accounts[api_key]
        symbol, base, settle = request.get("symbol"), request.get("baseCoin"), request.get("settleCoin")
        if not (symbol or base or settle):
            return 10001, "params error: symbol, baseCoin or settleCoin is required for linear", {}
        cancelled = []
        for order in list(account.orders.values()):
            inst = self.markets[order.symbol].instrument
            wanted = inst.symbol == symbol if symbol else inst.base_coin == base if base else inst.quote_coin == settle
            if order.status in OPEN and wanted:
                self._cancel(account, order, now_ms, "CancelByUser")
                cancelled.append({"orderId": order.order_id, "orderLinkId": order.order_link_id})
        return 0, "OK", {"list": cancelled, "success": "1"}

    def open_orders(self, api_key: str, query: dict[str, str]) -> Result:
        """GET /v5/order/realtime: open orders, or any order when asked by id or orderLinkId."""
        account = self.accounts[api_key]
        if query.get("orderId") or query.get("orderLinkId"):
            order = self._find(account, query)
            orders = [order] if order is not None else []
        else:
            open_only = str(query.get("openOnly", 0)) == "0"
            orders = [o for o in account.orders.values() if not open_only or o.status in OPEN]
            if query.get("symbol"):
                orders = [o for o in orders if o.symbol == query["symbol"]]
        orders.sort(key=lambda o: o.created_ms, reverse=True)
        return 0, "OK", {"list": [self.order_view(o) for o in orders[:int(query.get("limit") or 50)]],
                         "nextPageCursor": "", "category": "linear"}

    def order_history(self, api_key: str, query: dict[str, Any]) -> Result:
        """GET /v5/order/history: closed and open orders, newest first, by symbol / orderId /
        orderLinkId / orderStatus; `cursor` is the offset the previous page's nextPageCursor gave."""
        account = self.accounts[api_key]
        cursor = str(query.get("cursor") or "0")
        start = int(cursor) if cursor.isdigit() and len(cursor) < 10 else -1
        if start < 0:
            return 10001, "params error: cursor must be a nextPageCursor this endpoint gave", {}
        limit = int(query.get("limit") or 20)
        wanted = [o for o in sorted(account.orders.values(), key=lambda o: o.created_ms, reverse=True)
                  if (not query.get("orderId") or o.order_id == query["orderId"])
                  and (not query.get("orderLinkId") or o.order_link_id == query["orderLinkId"])
                  and (not query.get("symbol") or o.symbol == query["symbol"])
                  and (not query.get("orderStatus") or o.status == query["orderStatus"])]
        more = start + limit < len(wanted)
        return 0, "OK", {"list": [self.order_view(o) for o in wanted[start:start + limit]],
                         "nextPageCursor": str(start + limit) if more else "", "category": "linear"}

    def set_leverage(self, api_key: str, request: dict[str, Any], now_ms: int) -> Result:
        """POST /v5/position/set-leverage: one-way mode, so buy and sell leverage must match."""
        account = self.accounts[api_key]
        symbol = request["symbol"]
        if symbol not in self.markets:
            return 10001, f"params error: symbol {symbol!r} is not listed", {}
        buy, sell = Decimal(request["buyLeverage"]), Decimal(request["sellLeverage"])
        if buy != sell:
            return 10001, "params error: buyLeverage must equal sellLeverage in one-way mode", {}
        if not 1 <= buy <= MAX_LEVERAGE or buy % Decimal("0.01"):
            return 10001, f"params error: leverage must be within [1, {MAX_LEVERAGE}] in steps of 0.01", {}
        if account.leverage.get(symbol, Decimal(10)) == buy:
            return 110043, "leverage not modified", {}
        account.leverage[symbol] = buy
        self.reports.append((api_key, "position", self.position_view(account, symbol)))
        return 0, "OK", {}

    def executions(self, api_key: str, query: dict[str, str]) -> Result:
        """GET /v5/execution/list: the account's fills, newest first, by symbol / orderId / orderLinkId;
        `cursor` is the offset into that list, as the previous page's nextPageCursor gave it."""
        account = self.accounts[api_key]
        try:
            limit = int(query.get("limit") or 50)
            start = int(query.get("cursor") or 0)
        except ValueError:
            return 10001, "params error: limit and cursor must be integers", {}
        if not 1 <= limit <= 100 or start < 0:
            return 10001, "params error: limit must be within [1, 100]", {}
        wanted = [e for e in reversed(account.executions)
                  if all(not query.get(k) or e[k] == query[k]
                         for k in ("symbol", "orderId", "orderLinkId", "execType"))]
        page = wanted[start:start + limit]
        more = start + limit < len(wanted)
        return 0, "OK", {"category": "linear", "list": page, "nextPageCursor": str(start + limit) if more else ""}

    def settle_funding(self, rate: Decimal, now_ms: int) -> int:
        """Charge every open position its funding (Bybit's rule: position value at the mark x rate;
        a long pays a positive rate, a short receives it), settled in the wallet to 8 decimals and
        reported as an `execution` with execType "Funding". Returns the positions charged."""
        charged = 0
        for account in self.accounts.values():
            for symbol, position in account.positions.items():
                if position.size == 0:
                    continue
                market = self.markets[symbol]
                inst = market.instrument
                mark_ticks = market.mark_ticks()
                value = inst.tick_size * mark_ticks * inst.qty_step * abs(position.size)
                amount = (value * rate * (1 if position.size > 0 else -1)).quantize(Decimal("0.00000001"))
                account.balance -= amount
                account.funding_paid += amount
                position.seq += 1
                execution = {
                    "category": "linear", "symbol": symbol,
                    "execId": str(uuid.uuid5(ORDER_IDS, f"exec:{next(self.exec_seq)}")),
                    "execPrice": inst.price_text(mark_ticks), "execQty": inst.qty_text(abs(position.size)),
                    "execValue": _text(value), "execFee": _text(amount), "feeRate": _text(rate),
                    "execType": "Funding", "isMaker": False, "orderId": "", "orderLinkId": "",
                    "side": "Buy" if position.size > 0 else "Sell", "orderPrice": "", "orderQty": "0",
                    "orderType": "UNKNOWN", "leavesQty": "0", "closedSize": "0", "execPnl": "0",
                    "execTime": str(now_ms), "seq": position.seq, "feeCurrency": "USDT",
                    "markPrice": inst.price_text(mark_ticks)}
                account.executions.append(execution)
                self.reports.append((account.api_key, "execution", execution))
                self.reports.append((account.api_key, "wallet", self.wallet_view(account)))
                charged += 1
        return charged

    def ledger(self) -> dict[str, Any]:
        """Every account as the venue sees it (orders in placing order, fills, positions, wallet):
        the simulator's own books, for tests and the chaos comparison (GET /sim/ledger)."""
        return {key: {"orders": [self.order_view(o) for o in account.orders.values()],
                      "executions": account.executions,
                      "positions": [self.position_view(account, s) for s in sorted(self.markets)],
                      "wallet": self.wallet_view(account)}
                for key, account in self.accounts.items()}

    def positions(self, api_key: str, query: dict[str, str]) -> Result:
        """GET /v5/position/list."""
        account = self.accounts[api_key]
        symbols = [query["symbol"]] if query.get("symbol") else sorted(self.markets)
        if any(s not in self.markets for s in symbols):
            return 10001, f"params error: symbol {query.get('symbol')!r} is not listed", {}
        return 0, "OK", {"list": [self.position_view(account, s) for s in symbols], "nextPageCursor": "",
                         "category": "linear"}

    # ------------------------------------------------------------------ market steps

    def on_market_step(self, symbol: str, now_ms: int, trades: Sequence[Fill] = ()) -> None:
        """Fill resting orders the step reached by queue position (services/matching/queue.py):
        `trades` are the step's public trades, the book is as the step left it. Makers, at their
        own price; one execution per order and step."""
        market = self.markets[symbol]
        printed = [(t.side, t.price, t.qty) for t in trades]
        for account in self.accounts.values():
            for order in list(account.orders.values()):
                if order.symbol != symbol or order.status not in OPEN or order.price is None:
                    continue
                own, opposite = (market.bids, market.best_ask()) if order.side == "Buy" else \
                    (market.asks, market.best_bid())
                filled, order.queue_ahead = step_fill(order.side, order.price, order.leaves, order.queue_ahead,
                                                      printed, own.get(order.price), opposite)
                if filled:
                    self._fill(account, order, filled, order.price, maker=True, now_ms=now_ms)

    # ------------------------------------------------------------------ internals

    def _validate(self, account: Account, request: dict[str, Any]) -> Result | _Valid:
        if request.get("category") != "linear":
            return 10001, "params error: category must be linear", {}
        symbol = request.get("symbol")
        if symbol not in self.markets:
            return 10001, f"params error: symbol {symbol!r} is not listed", {}
        inst: Instrument = self.markets[symbol].instrument
        side, order_type = request.get("side"), request.get("orderType")
        if side not in ("Buy", "Sell") or order_type not in ("Limit", "Market"):
            return 10001, "params error: side must be Buy|Sell and orderType Limit|Market", {}
        try:
            qty_value = Decimal(str(request.get("qty")))
            price_value = Decimal(str(request["price"])) if order_type == "Limit" else None
        except (ArithmeticError, KeyError, ValueError):
            return 10001, "params error: qty (and price for Limit) must be decimal strings", {}
        if qty_value % inst.qty_step or qty_value < inst.min_qty or qty_value > inst.max_qty:
            return 10001, (f"params error: qty {qty_value} must be a multiple of {inst.qty_step} within "
                           f"[{inst.min_qty}, {inst.max_qty}]"), {}
        if price_value is not None and (price_value <= 0 or price_value % inst.tick_size):
            return 10001, f"params error: price {price_value} must be a positive multiple of {inst.tick_size}", {}
        tif = request.get("timeInForce", "GTC") if order_type == "Limit" else "IOC"
        if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
            return 10001, f"params error: timeInForce {tif!r}", {}
        link_id = request.get("orderLinkId") or ""
        if link_id and not ORDER_LINK_ID.match(link_id):
            return 10001, "params error: orderLinkId must be 1-36 of [A-Za-z0-9_-]", {}
        if link_id and link_id in account.by_link_id:
            return 110072, "OrderLinkedID is duplicate", {}
        price = int(price_value / inst.tick_size) if price_value is not None else None
        return _Valid(inst, side, order_type, price, int(qty_value / inst.qty_step), tif,
                      bool(request.get("reduceOnly", False)), link_id)

    def _find(self, account: Account, request: dict[str, Any]) -> SimOrder | None:
        order_id = request.get("orderId") or account.by_link_id.get(request.get("orderLinkId") or "")
        return account.orders.get(order_id or "")

    @staticmethod
    def _available(market: SymbolMarket, side: str, price: int | None) -> int:
        return int(matching_book.available(market.asks if side == "Buy" else market.bids, side, price))

    def _take(self, account: Account, order: SimOrder, market: SymbolMarket, now_ms: int) -> None:
        book = market.asks if order.side == "Buy" else market.bids
        for level, take in matching_book.walk(book, order.side, order.price, order.leaves):
            matching_book.remove(book, [(level, take)])  # before the fill: its views see the book without it
            self._fill(account, order, take, level, maker=False, now_ms=now_ms)
        if not market.asks:
            market.asks[market.best_bid() + 1] = 1
        if not market.bids:
            market.bids[market.best_ask() - 1] = 1

    def _fill(self, account: Account, order: SimOrder, qty: int, price: int, maker: bool, now_ms: int) -> None:
        self._now_ms = now_ms
        inst = self.markets[order.symbol].instrument
        value = inst.tick_size * price * inst.qty_step * qty
        fee = value * (MAKER_FEE if maker else TAKER_FEE)
        order.cum_qty += qty
        order.cum_value += value
        order.cum_fee += fee
        order.updated_ms = now_ms
        order.status = "Filled" if order.cum_qty == order.qty else "PartiallyFilled"
        closed_pnl = self._apply_position(account, order.symbol, qty if order.side == "Buy" else -qty, value)
        account.balance += closed_pnl - fee
        account.fees_paid += fee
        exec_id = str(uuid.uuid5(ORDER_IDS, f"exec:{next(self.exec_seq)}"))
        execution = {
            "category": "linear", "symbol": order.symbol, "execId": exec_id, "execPrice": inst.price_text(price),
            "execQty": inst.qty_text(qty), "execValue": _text(value), "execFee": _text(fee),
            "feeRate": _text(MAKER_FEE if maker else TAKER_FEE), "execType": "Trade", "isMaker": maker,
            "orderId": order.order_id, "orderLinkId": order.order_link_id, "side": order.side,
            "orderPrice": inst.price_text(order.price) if order.price is not None else "",
            "orderQty": inst.qty_text(order.qty), "orderType": order.order_type,
            "leavesQty": inst.qty_text(order.leaves), "closedSize": "0", "execPnl": _text(closed_pnl),
            "execTime": str(now_ms), "seq": account.positions[order.symbol].seq, "feeCurrency": "USDT"}
        account.executions.append(execution)
        self.reports.append((account.api_key, "execution", execution))
        self._report_order(account, order)
        self.reports.append((account.api_key, "position", self.position_view(account, order.symbol)))
        self.reports.append((account.api_key, "wallet", self.wallet_view(account)))

    def _apply_position(self, account: Account, symbol: str, signed_qty: int, value: Decimal) -> Decimal:
        """Update the one-way position by the domain's fill fold; returns the PnL this fill closed.

        The engine counts in lot steps: the fold runs on lots and the price of one lot (value /
        lots, exact since value = lots * price * step), so its digits are the venue's own."""
        position = account.positions.setdefault(symbol, Position())
        position.seq += 1
        position.created_ms = position.created_ms or self._now_ms
        position.updated_ms = self._now_ms
        lots = Decimal(abs(signed_qty))
        held = DomainPosition(Decimal(position.size), position.entry_value)  # realized from zero: this fill's PnL
        moved = apply_fill(held, "Buy" if signed_qty > 0 else "Sell", lots, value / lots)
        position.size, position.entry_value = int(moved.qty), moved.entry_value
        position.realized += moved.realized
        return moved.realized

    def _cancel(self, account: Account, order: SimOrder, now_ms: int, cancel_type: str,
                reject_reason: str = "EC_NoError") -> None:
        order.status = "Cancelled"  # linear: a partly filled order that is cancelled reports "Cancelled"
        order.cancel_type = cancel_type
        order.reject_reason = reject_reason
        order.updated_ms = now_ms
        self._report_order(account, order)

    def _report_order(self, account: Account, order: SimOrder) -> None:
        self.reports.append((account.api_key, "order", self.order_view(order)))

    # ------------------------------------------------------------------ views (V5 JSON, views.py)

    def order_view(self, order: SimOrder) -> dict[str, Any]:
        return views.order_view(self, order)

    def position_view(self, account: Account, symbol: str) -> dict[str, Any]:
        return views.position_view(self, account, symbol)

    def wallet_view(self, account: Account) -> dict[str, Any]:
        return views.wallet_view(self, account)
