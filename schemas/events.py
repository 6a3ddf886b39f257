"""Every event HEAN writes to its log, one frozen tagged struct per type.

These definitions drive the msgpack codec (services/runtime/codec.py), validation at the
boundary, the generated docs (`hean schemas export`) and the ClickHouse DDL checks. Money
(prices, quantities, fees, PnL) is `Decimal`, never float: msgspec writes a Decimal as its exact
decimal string, so a value read back is the value written (docs/DESIGN-NOTES.md has the measure).

Envelope (every event, DESIGN.md §3):
    type       the tag, e.g. "md.trade"; picks the struct on decode
    version    schema major version; a reader refuses majors it does not know
    id         deterministic id derived from the event's cause, so a replay reproduces it
    ts_event   event time in ns (the venue's time for market data)
    ts_ingest  local time in ns when HEAN produced the event
    origin_ts  local receive time in ns of the market event that started the causal chain,
               carried tick → intent → decision → order event, for tick-to-trade latency
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Literal

import msgspec

SCHEMA_MAJOR = 1
"""The major version this code reads and writes. A different major is refused with a typed error."""
SCHEMA_MINOR = 1
"""Additive revisions within the major, which every reader of the major decodes (a missing field
takes its default, an unknown one is ignored), so they travel without a version on the wire:
  1.0  the events of issues 1-13;
  1.1  `venue` on intents, order events and positions (InstrumentId = venue + symbol; events
       written before it decode with venue "bybit", the only venue then); ref.instrument;
       account.funding (a funding settlement, on orders.events); control.drift (a position that
       differs at the venue); algo.submit (a parent order, on orders.intents), algo.progress and
       algo.completed (its execution reports, on algos.reports); algo.cancel (an operator stops a
       parent) and SubmitAlgo.volume_profile (a vwap's profile from recorded trades);
       account.position_adopted and account.opened (what the venue held when HEAN first traded
       the account, on orders.events); control.wallet_drift (a wallet balance that differs at the venue);
       control.trade_gap (public trades ingest could not recover after a reconnect, on control)."""

Side = Literal["Buy", "Sell"]
OrderType = Literal["Limit", "Market"]
TimeInForce = Literal["GTC", "IOC", "FOK", "PostOnly"]
PriceLevel = tuple[Decimal, Decimal]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """The envelope shared by every event (see the module docstring)."""

    id: str
    version: int = SCHEMA_MAJOR
    ts_event: int
    ts_ingest: int
    origin_ts: int = 0


def derive_id(*parts: object) -> str:
    """A deterministic 128-bit id (hex) from an event's cause.

    Why: the same cause must give the same id on every replay, so a consumer can tell a
    redelivery from a new fact. blake2b is in the standard library and fast for short inputs.
    """
    raw = "\x1f".join(str(p) for p in parts).encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


# ---------------------------------------------------------------- market data (ingest → md.*)


class TradeReceived(Event, frozen=True, kw_only=True, tag="md.trade"):
    """One public trade. `side` is the taker side, as Bybit reports it."""

    venue: str = "bybit"
    category: str = "linear"
    symbol: str
    trade_id: str
    side: Side
    price: Decimal
    qty: Decimal


class BookSnapshotReceived(Event, frozen=True, kw_only=True, tag="md.book.snapshot"):
    """A full L2 book (replaces any local copy). Bids descending, asks ascending.

    `best_bid`/`best_ask` are the top of the book after this event (also on deltas), so a consumer
    that only needs the top (recorder, a simple strategy) needs no book of its own."""

    venue: str = "bybit"
    category: str = "linear"
    symbol: str
    depth: int
    update_id: int
    seq: int
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    best_bid: PriceLevel | None = None
    best_ask: PriceLevel | None = None


class BookDeltaReceived(Event, frozen=True, kw_only=True, tag="md.book.delta"):
    """Changes to an L2 book: size 0 deletes a level, any other size sets it.

    Published only after ingest applied it to a book that is continuous (update_id = last + 1)
    and not crossed, so a consumer that starts from the last snapshot can fold deltas blindly.
    """

    venue: str = "bybit"
    category: str = "linear"
    symbol: str
    depth: int
    update_id: int
    seq: int
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    best_bid: PriceLevel | None = None
    best_ask: PriceLevel | None = None


class TickerUpdated(Event, frozen=True, kw_only=True, tag="md.ticker"):
    """The merged ticker after a snapshot or delta (absent venue fields stay None)."""

    venue: str = "bybit"
    category: str = "linear"
    symbol: str
    last_price: Decimal | None = None
    mark_price: Decimal | None = None
    index_price: Decimal | None = None
    bid1_price: Decimal | None = None
    bid1_size: Decimal | None = None
    ask1_price: Decimal | None = None
    ask1_size: Decimal | None = None
    volume_24h: Decimal | None = None
    turnover_24h: Decimal | None = None
    funding_rate: Decimal | None = None
    open_interest: Decimal | None = None


# ---------------------------------------------------------------- strategy → orders.intents


class SubmitOrder(Event, frozen=True, kw_only=True, tag="order.submit"):
    """A strategy's wish to place an order. Its `id` is the intent id; the exchange
    orderLinkId is derived from it, so it can never be placed twice."""

    account: str
    strategy: str
    venue: str = "bybit"
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = "GTC"
    reduce_only: bool = False


class CancelOrder(Event, frozen=True, kw_only=True, tag="order.cancel"):
    """A strategy's wish to cancel the order it placed for `intent_id`."""

    account: str
    strategy: str
    venue: str = "bybit"
    symbol: str
    intent_id: str


class AmendOrder(Event, frozen=True, kw_only=True, tag="order.amend"):
    """A wish to change the order placed for `intent_id` in place (Bybit /v5/order/amend): `qty` is
    the new total quantity (filled part included, as Bybit counts it), `price` the new limit price;
    None leaves that one as it is. The order keeps its orderLinkId, so it stays `intent_id`'s."""

    account: str
    strategy: str
    venue: str = "bybit"
    symbol: str
    intent_id: str
    qty: Decimal | None = None
    price: Decimal | None = None

    def __post_init__(self) -> None:
        if self.qty is None and self.price is None:
            raise ValueError(f"Expected a new qty or price in amend {self.id}, found neither")
        for name, value in (("qty", self.qty), ("price", self.price)):
            if value is not None and not (value.is_finite() and value > 0):
                raise ValueError(f"Expected a positive {name} in amend {self.id}, found {value}")


class CancelAllOrders(Event, frozen=True, kw_only=True, tag="order.cancel_all"):
    """A wish to cancel every open order of `account` on `symbol` in one venue request
    (Bybit /v5/order/cancel-all), whoever placed them."""

    account: str
    strategy: str
    venue: str = "bybit"
    symbol: str


# ---------------------------------------------------------------- a parent order (orders.intents → algos)

AlgoKind = Literal["twap", "vwap", "iceberg"]
MAX_ALGO_SLICES = 1_000


class SubmitAlgo(Event, frozen=True, kw_only=True, tag="algo.submit"):
    """A parent order for the algos service (services/algos), which works it as ordinary
    SubmitOrder children, each checked by risk. Its `id` is the parent id; the children's ids derive
    from it, so a replay makes the same children.

    twap     `slices` children over `duration_s` of market time, one at the end of each interval,
             each a marketable IOC limit (through the touch, never past `limit_price`);
    vwap     the same, sized by `volume_profile` when it has one (weights per slice, computed by
             `hean algo submit vwap --profile-days N` from the trades recorded in ClickHouse, carried
             here so the fold never asks the store), else by the algos service's configured volume
             curve (ALGOS_VWAP_CURVE);
    iceberg  `display_qty` at a time as a GTC limit at `limit_price`, the next once one filled.
    `participation` (twap, vwap) caps a child at that fraction of the volume traded since the last."""

    account: str
    strategy: str
    venue: str = "bybit"
    symbol: str
    side: Side
    kind: AlgoKind
    qty: Decimal
    limit_price: Decimal | None = None
    duration_s: int = 0
    slices: int = 0
    display_qty: Decimal | None = None
    participation: Decimal | None = None
    volume_profile: tuple[Decimal, ...] = ()

    def __post_init__(self) -> None:
        """Parameters no algorithm can work are refused at decoding (a dead letter), never folded."""
        if self.volume_profile:
            weights = self.volume_profile
            if self.kind != "vwap":
                raise ValueError(f"Only a vwap takes a volume_profile, found a {self.kind} (algo {self.id})")
            if len(weights) > MAX_ALGO_SLICES or not all(w.is_finite() and w >= 0 for w in weights) \
                    or not sum(weights) > 0:
                raise ValueError(f"Expected a volume_profile of 1-{MAX_ALGO_SLICES} weights >= 0 with a positive "
                                 f"sum, found {len(weights)} weights summing to {sum(weights)} (algo {self.id})")
        for name in ("qty", "limit_price", "display_qty"):
            value = getattr(self, name)
            if value is not None and not (value.is_finite() and value > 0):
                raise ValueError(f"Expected a positive {name} in algo {self.id}, found {value}")
        if self.kind == "iceberg":
            if self.limit_price is None or self.display_qty is None:
                raise ValueError(f"An iceberg needs limit_price and display_qty (algo {self.id})")
            if self.display_qty > self.qty:
                raise ValueError(f"display_qty {self.display_qty} exceeds qty {self.qty} (algo {self.id})")
            if self.duration_s or self.slices or self.participation is not None:
                raise ValueError(f"An iceberg takes no duration_s, slices or participation (algo {self.id})")
            return
        if self.duration_s <= 0:
            raise ValueError(f"A {self.kind} needs a positive duration_s, found {self.duration_s} (algo {self.id})")
        if self.kind == "twap" and not 1 <= self.slices <= MAX_ALGO_SLICES:
            raise ValueError(f"A twap needs 1-{MAX_ALGO_SLICES} slices, found {self.slices} (algo {self.id})")
        if self.kind == "vwap" and self.slices:
            raise ValueError(f"A vwap takes its slices from the configured curve, found slices={self.slices}")
        if self.display_qty is not None:
            raise ValueError(f"A {self.kind} takes no display_qty (algo {self.id})")
        if self.participation is not None and not (self.participation.is_finite() and 0 < self.participation <= 1):
            raise ValueError(f"Expected a participation in (0, 1], found {self.participation} (algo {self.id})")


class CancelAlgo(Event, frozen=True, kw_only=True, tag="algo.cancel"):
    """A wish to stop the parent order `parent_id` (`hean algo cancel`): the algos service sends no
    more children, cancels the working one (a CancelOrder on orders.intents, through risk like any
    cancel) and, once no child is left on the book, ends the parent with status cancelled and its
    report. Keyed by the parent's symbol, so it follows the parent in the same partition; a cancel of
    a parent that ended already, or of another account's, changes nothing."""

    account: str
    strategy: str
    venue: str = "bybit"
    symbol: str
    parent_id: str
    reason: str = ""


# ---------------------------------------------------------------- risk → orders.decisions

AnyIntent = SubmitOrder | CancelOrder | AmendOrder | CancelAllOrders


class IntentApproved(Event, frozen=True, kw_only=True, tag="risk.approved"):
    """Risk let an intent through; carries the intent so execution needs no other topic."""

    intent: AnyIntent


class IntentRejected(Event, frozen=True, kw_only=True, tag="risk.rejected"):
    """Risk refused an intent; `rule` names the check (e.g. "max_notional") for SQL and alerts."""

    intent: AnyIntent
    rule: str
    detail: str


# ---------------------------------------------------------------- execution → orders.events


class OrderEvent(Event, frozen=True, kw_only=True):
    """Fields every execution report carries."""

    account: str
    venue: str = "bybit"
    symbol: str
    intent_id: str
    order_link_id: str
    order_id: str = ""


class OrderAcknowledged(OrderEvent, frozen=True, kw_only=True, tag="order.ack"):
    """The venue accepted the order (it rests or is being matched)."""

    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None = None


class OrderRejected(OrderEvent, frozen=True, kw_only=True, tag="order.rejected"):
    """The venue refused the order; `ret_code` is Bybit's retCode (0 when rejected locally)."""

    ret_code: int
    reason: str


def _check_fill(qty: Decimal, price: Decimal) -> None:
    """A fill moves a position by a positive quantity at a positive price; anything else is refused
    at decoding (a dead letter), not folded, so one bad record cannot stop accounting for good."""
    if not (qty.is_finite() and price.is_finite() and qty > 0 and price > 0):
        raise ValueError(f"Expected a positive fill_qty and fill_price, found {qty} at {price}")


class OrderPartiallyFilled(OrderEvent, frozen=True, kw_only=True, tag="order.partial_fill"):
    """One execution that leaves quantity open."""

    exec_id: str
    side: Side
    fill_qty: Decimal
    fill_price: Decimal
    fee: Decimal
    fee_currency: str = "USDT"
    is_maker: bool
    cum_qty: Decimal
    leaves_qty: Decimal

    def __post_init__(self) -> None:
        _check_fill(self.fill_qty, self.fill_price)


class OrderFilled(OrderEvent, frozen=True, kw_only=True, tag="order.fill"):
    """The execution that completes the order (leaves_qty is zero)."""

    exec_id: str
    side: Side
    fill_qty: Decimal
    fill_price: Decimal
    fee: Decimal
    fee_currency: str = "USDT"
    is_maker: bool
    cum_qty: Decimal

    def __post_init__(self) -> None:
        _check_fill(self.fill_qty, self.fill_price)


class OrderCancelled(OrderEvent, frozen=True, kw_only=True, tag="order.cancelled"):
    """The order left the book without filling its remainder."""

    reason: str = ""
    cum_qty: Decimal = Decimal(0)


class OrderAmended(OrderEvent, frozen=True, kw_only=True, tag="order.amended"):
    """The venue accepted an amend of the order: its new total `qty` and/or limit `price` (None:
    that one unchanged). Fills after it are at the new terms; the id derives from the amend intent."""

    qty: Decimal | None = None
    price: Decimal | None = None


class OrderAmendRejected(OrderEvent, frozen=True, kw_only=True, tag="order.amend_rejected"):
    """The venue refused an amend (`ret_code` is Bybit's retCode, e.g. 110001 when the order had
    already filled or been cancelled); the order itself goes on, or has ended, as before."""

    ret_code: int
    reason: str


class FundingSettled(Event, frozen=True, kw_only=True, tag="account.funding"):
    """A perpetual's funding settlement on a position (Bybit: an `execution` with execType
    "Funding"; no order is involved). `amount` is what the holder paid: positive when a long pays a
    positive rate (or a short a negative one), negative when it was received. `position_qty` is
    the signed position it was charged on, at `mark_price`."""

    account: str
    venue: str = "bybit"
    symbol: str
    exec_id: str
    funding_rate: Decimal
    position_qty: Decimal
    mark_price: Decimal
    amount: Decimal

    def __post_init__(self) -> None:
        for name in ("funding_rate", "position_qty", "mark_price", "amount"):
            if not getattr(self, name).is_finite():
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        if self.mark_price <= 0:
            raise ValueError(f"mark_price must be positive, got {self.mark_price}")


class PositionAdopted(Event, frozen=True, kw_only=True, tag="account.position_adopted"):
    """A position the venue already held when execution opened the account (see AccountOpened),
    taken into the log as it stood: signed `qty` (short < 0) at the venue's `avg_entry_price`;
    `venue_seq` is the venue's position sequence then. Accounting and risk fold it as the fill
    that opened it, without fee (services/domain/position.py `adopt`), so it counts in equity,
    exposure and the position limits, and execution's position check expects it. Keyed by symbol,
    so it precedes every fill of the symbol in its partition."""

    account: str
    venue: str = "bybit"
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    venue_seq: int = 0

    def __post_init__(self) -> None:
        if not (self.qty.is_finite() and self.qty != 0):
            raise ValueError(f"Expected a non-zero finite qty to adopt on {self.symbol}, found {self.qty}")
        if not (self.avg_entry_price.is_finite() and self.avg_entry_price > 0):
            raise ValueError(f"Expected a positive avg_entry_price on {self.symbol}, found {self.avg_entry_price}")


class AccountOpened(Event, frozen=True, kw_only=True, tag="account.opened"):
    """The venue account as execution found it at the first start of a session on it (nothing in
    orders.events described the account yet): `wallet_balance` of the settle `coin` (cash: no
    unrealized PnL), after the `positions` PositionAdopted it held. Keyed by account. Accounting
    takes the balance as the account's start in place of ACCOUNTING_STARTING_BALANCE; execution
    expects the venue's wallet to hold it plus the realized PnL less the fees and funding logged
    since (WalletDriftDetected otherwise). `ts_event` is the venue's time of the reading. Its id
    derives from the account alone: a restart finds it and opens nothing again."""

    account: str
    venue: str = "bybit"
    coin: str = "USDT"
    wallet_balance: Decimal
    positions: int = 0

    def __post_init__(self) -> None:
        if not self.wallet_balance.is_finite():
            raise ValueError(f"Expected a finite wallet_balance for {self.account}, found {self.wallet_balance}")


# ---------------------------------------------------------------- algos → algos.reports


class AlgoReport(Event, frozen=True, kw_only=True):
    """A parent order's execution so far (every report carries these fields).

    `arrival_price` is the mid when the parent started; `market_vwap` the volume-weighted price of
    every public trade on the symbol from the start to this report (`market_volume` their qty);
    `avg_price` the children's average fill; `shortfall` the implementation shortfall in the quote
    currency, side-signed so a cost is positive: (avg_price - arrival) * filled, plus fees, plus the
    unfilled qty's (mid - arrival); `shortfall_bps` the same per arrival notional of the whole qty."""

    parent_id: str
    account: str
    strategy: str
    venue: str = "bybit"
    symbol: str
    side: Side
    kind: AlgoKind
    qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None = None
    arrival_price: Decimal | None = None
    market_vwap: Decimal | None = None
    market_volume: Decimal = Decimal(0)
    shortfall: Decimal | None = None
    shortfall_bps: Decimal | None = None
    fees: Decimal = Decimal(0)
    children: int = 0
    started_ts: int = 0
    status: Literal["working", "completed", "expired", "cancelled", "failed"] = "working"
    detail: str = ""


class AlgoProgressed(AlgoReport, frozen=True, kw_only=True, tag="algo.progress"):
    """A child of the parent ended (filled, cancelled, or rejected by risk or the venue)."""


class AlgoCompleted(AlgoReport, frozen=True, kw_only=True, tag="algo.completed"):
    """The parent is done: `status` says how (completed: all filled; expired: the schedule ran out
    with qty left; cancelled: stopped by a CancelAlgo, or a child was cancelled by someone else;
    failed: children kept being rejected, `detail` says why)."""


# ---------------------------------------------------------------- accounting → accounting.positions


class PositionUpdated(Event, frozen=True, kw_only=True, tag="position.updated"):
    """A symbol's position after a fill or a mark change. `qty` is signed (short < 0)."""

    account: str
    venue: str = "bybit"
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    mark_price: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal


class AccountUpdated(Event, frozen=True, kw_only=True, tag="account.updated"):
    """An account's totals; `equity` = starting balance + realized + unrealized - fees."""

    account: str
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    gross_exposure: Decimal


# ---------------------------------------------------------------- reference data (ingest → ref.instruments)


class InstrumentDefined(Event, frozen=True, kw_only=True, tag="ref.instrument"):
    """A market's trading rules as its venue states them (Bybit: instruments-info; Binance:
    exchangeInfo), on the compacted ref.instruments topic keyed by symbol (another venue than
    Bybit by venue:SYMBOL): the latest record per key is the rule. Produced at ingest start and
    whenever the venue's answer changes; `status` other than "Trading" means no new orders.
    Fees are rates on notional; `multiplier` the contract size."""

    venue: str
    symbol: str
    kind: Literal["linear_perpetual", "spot"]
    base_coin: str
    quote_coin: str
    tick_size: Decimal
    lot_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    multiplier: Decimal = Decimal(1)
    status: str = "Trading"

    def __post_init__(self) -> None:
        """Rules no venue could mean are refused at decoding (a dead letter), never folded."""
        for name in ("tick_size", "lot_step", "min_qty", "max_qty", "multiplier"):
            value: Decimal = getattr(self, name)
            if not (value.is_finite() and value > 0):
                raise ValueError(f"Expected a positive {name} for {self.venue}:{self.symbol}, found {value}")
        if self.min_qty > self.max_qty or not self.min_notional.is_finite():
            raise ValueError(f"Expected min_qty <= max_qty and a finite min_notional for {self.venue}:{self.symbol}")


# ---------------------------------------------------------------- control


class TradingHalted(Event, frozen=True, kw_only=True, tag="control.halted"):
    """Stop opening risk on `account`: only reduce-only orders pass until resumed.

    `kill_switch` is true when the halt came from a loss limit or an operator's kill switch. Risk
    answers a halt by cancelling every working order of the account and, with `flatten`, by
    closing every position it knows with reduce-only market orders (decisions in the log)."""

    account: str
    reason: str
    actor: str
    kill_switch: bool = True
    flatten: bool = False


class TradingResumed(Event, frozen=True, kw_only=True, tag="control.resumed"):
    """Lift a halt on `account`."""

    account: str
    reason: str
    actor: str


class PositionDriftDetected(Event, frozen=True, kw_only=True, tag="control.drift"):
    """The venue holds another position than the fills execution reported add up to, and kept
    holding it over two checks with no new fill in between (the venue's position seq unchanged):
    a fill HEAN never saw (placed by hand, a liquidation, an ADL), or one it saw that the venue
    does not have. `venue_qty` and `reported_qty` are signed (short < 0)."""

    account: str
    venue: str = "bybit"
    symbol: str
    venue_qty: Decimal
    reported_qty: Decimal
    venue_seq: int


class WalletDriftDetected(Event, frozen=True, kw_only=True, tag="control.wallet_drift"):
    """The venue's wallet balance of `coin` differs from what the log says it holds (the opening
    balance, AccountOpened, plus the realized PnL less the fees and funding on orders.events since)
    by more than EXECUTION_WALLET_TOLERANCE, over two checks with neither side moving in between:
    a transfer, a fee or a fill HEAN never saw. `venue_balance` and `expected_balance` are both
    cash, without unrealized PnL."""

    account: str
    venue: str = "bybit"
    coin: str = "USDT"
    venue_balance: Decimal
    expected_balance: Decimal


TradeGapReason = Literal["page_short", "read_failed", "fill_limit"]


class TradeGapDetected(Event, frozen=True, kw_only=True, tag="control.trade_gap"):
    """Public trades of one instrument may be missing from md.trades: after a reconnect or a
    restart, ingest could not recover every trade printed since the last one it published. A
    consumer that needs every trade (volume, bars, a VWAP profile) learns here where md.trades has
    a hole, instead of from a metric nobody reads. Published on control by ingest, at most once per
    reconnect and symbol; `ts_event` is the first recovered trade's time (the detection's when
    none was read).

    `reason`: page_short, the venue's recent trades (Bybit: the newest 1000) did not reach back to
    the last published trade; read_failed, the venue's trades could not be read at all, so the
    first recovered trade is unknown ("" and 0); fill_limit, more trades were missed than ingest
    reads back per reconnect (Binance's aggTrades, INGEST_TRADE_GAP_MAX_PAGES pages of 1000).
    Missing: the trades after `last_trade_id` and before `first_trade_id` (on Binance, whose
    aggregate trade ids count up by one, exactly the ids in between)."""

    venue: str
    category: str = "linear"
    symbol: str
    reason: TradeGapReason
    last_trade_id: str
    last_trade_ts: int
    first_trade_id: str = ""
    first_trade_ts: int = 0


# ---------------------------------------------------------------- dead letters and demo


class DeadLettered(Event, frozen=True, kw_only=True, tag="dlq.dead_lettered"):
    """A record a service could not process, kept whole with the reason, so nothing is lost."""

    service: str
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    error: str
    payload: bytes


class TallyUpdated(Event, frozen=True, kw_only=True, tag="demo.tally"):
    """The demo service's running per-symbol totals after one trade (see services/tally)."""

    symbol: str
    count: int
    total_qty: Decimal
    total_notional: Decimal
    source_id: str


class BarClosed(Event, frozen=True, kw_only=True, tag="md.bar"):
    """One symbol's OHLCV bar of `interval_s` seconds from md.trades (services/bars), published
    once the symbol's first trade of a later bar arrives. `ts_event` is the bar's start (ns), the
    same bucket as ClickHouse's candles_1s / candles_1m. Open and close are the first and last
    trade by (ts_event, trade_id); `turnover` is the exact sum of price * qty and `vwap` is
    turnover / volume. A trade older than the open bar republishes its own bar, same id, with it."""

    venue: str = "bybit"
    category: str = "linear"
    symbol: str
    interval_s: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    turnover: Decimal
    vwap: Decimal
    trades: int


MarketEvent = TradeReceived | BookSnapshotReceived | BookDeltaReceived | TickerUpdated
IntentEvent = AnyIntent
DecisionEvent = IntentApproved | IntentRejected
ExecutionEvent = (OrderAcknowledged | OrderRejected | OrderPartiallyFilled | OrderFilled | OrderCancelled
                  | OrderAmended | OrderAmendRejected | FundingSettled | PositionAdopted | AccountOpened)
ControlEvent = TradingHalted | TradingResumed | PositionDriftDetected | WalletDriftDetected | TradeGapDetected

AnyEvent = (
    TradeReceived
    | BookSnapshotReceived
    | BookDeltaReceived
    | TickerUpdated
    | SubmitOrder
    | CancelOrder
    | AmendOrder
    | CancelAllOrders
    | SubmitAlgo
    | CancelAlgo
    | IntentApproved
    | IntentRejected
    | OrderAcknowledged
    | OrderRejected
    | OrderPartiallyFilled
    | OrderFilled
    | OrderCancelled
    | OrderAmended
    | OrderAmendRejected
    | FundingSettled
    | PositionAdopted
    | AccountOpened
    | AlgoProgressed
    | AlgoCompleted
    | PositionUpdated
    | AccountUpdated
    | InstrumentDefined
    | TradingHalted
    | TradingResumed
    | PositionDriftDetected
    | WalletDriftDetected
    | TradeGapDetected
    | DeadLettered
    | TallyUpdated
    | BarClosed
)

EVENT_TYPES: tuple[type[Event], ...] = AnyEvent.__args__  # type: ignore[attr-defined]
"""Every concrete event type, in declaration order (the union above is the one list)."""


def event_tag(cls: type[Event]) -> str:
    """The wire tag of an event class, e.g. "md.trade"."""
    return cls.__struct_config__.tag  # type: ignore[return-value]
