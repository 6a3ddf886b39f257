"""What a venue adapter provides, named once so ingest and execution work against any venue.

Six parts (issue 14 §3); each venue's folder implements those it has, and
tests/services/venues/test_port_contract.py runs the same contract against every adapter:

  part              Bybit V5 (services/venues/bybit/)           Binance USDⓈ-M (services/venues/binance/)
  PublicFeed        public.py BybitNormalizer (book_sync        streams.py BinanceNormalizer (SnapshotFeed:
                    "resubscribe"; book.py: consecutive u)      "rest_snapshot"; depth.py: U/u/pu rules)
  OrderRequests     private.py create_request, amend_request    -
  OrderGateway      rest.py BybitRest (signing.py)              -
  PrivateStream     private.py parse_private, events_from_…     -
  InstrumentSource  instruments.py BybitInstruments             instruments.py BinanceInstruments
  TradeHistory      trades.py BybitRecentTrades (newest page)    trades.py BinanceAggTrades (from fromId)

Shared by all: services/venues/frames.py (MalformedFrame, the JSON-object prologue, FeedResult)
and services/venues/book.py (the L2 level store). Parsers are pure (an import contract keeps I/O
out of them); the shells (ingest, execution) own the sockets and only act on what the parsers
return. The order and position views OrderGateway answers are still the venue's own dicts: a
venue-neutral view is the step for when a second venue trades.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import httpx

from schemas.events import AmendOrder, Event, SubmitOrder, TradeReceived
from services.domain.instrument import Instrument
from services.venues.frames import FeedResult

__all__ = ["InstrumentSource", "InstrumentsRefused", "OrderGateway", "OrderRequests", "PrivateStream", "PublicFeed",
           "SnapshotFeed", "TradeHistory"]

BookSync = Literal["resubscribe", "rest_snapshot"]


class InstrumentsRefused(ValueError):
    """A reference-data answer HEAN cannot read: says which item and field, and what was found."""


@runtime_checkable
class PublicFeed(Protocol):
    """Public market data of one connection: raw frames → md.* events (`venue` on every event).

    `on_frame` raises MalformedFrame (services/venues/frames.py) naming what is wrong, and never
    publishes from a book that is out of sync or crossed: such a book is named in
    `FeedResult.resync`, and `book_sync` says how the shell gets its fresh snapshot:
    "resubscribe" (the venue sends one on subscribe) or "rest_snapshot" (see SnapshotFeed)."""

    venue: str
    category: str
    book_sync: BookSync

    def on_frame(self, raw: bytes | str, recv_ns: int) -> FeedResult: ...


@runtime_checkable
class SnapshotFeed(PublicFeed, Protocol):
    """A PublicFeed whose books start from a REST depth snapshot (Binance): the shell fetches one per
    symbol named in `resync` and passes the answer to `on_snapshot` (MalformedFrame if it is not
    one), or reports the failed fetch with `snapshot_failed` so the next update asks again."""

    def on_snapshot(self, symbol: str, payload: Any, recv_ns: int) -> FeedResult: ...

    def snapshot_failed(self, symbol: str) -> None: ...


@runtime_checkable
class OrderRequests(Protocol):
    """Approved intents as the venue's request bodies. Pure; the venue's client order id derives
    from the intent id (services/domain/ids.py link_id_for), so one intent is never two orders."""

    def create_request(self, intent: SubmitOrder) -> dict[str, Any]: ...

    def amend_request(self, intent: AmendOrder) -> dict[str, Any]: ...


@runtime_checkable
class OrderGateway(Protocol):
    """The venue's signed REST: place (exactly once per client order id), amend, cancel, query.

    Raises TransientError for what a retry may fix (timeouts, 5xx, an open circuit) and a venue
    error carrying the venue's code for a refusal."""

    time_offset_ms: int

    async def sync_time(self) -> int: ...

    async def place_order(self, order: dict[str, Any]) -> dict[str, Any]: ...

    async def place_orders(self, category: str, orders: list[dict[str, Any]]) -> list[tuple[int, str]]: ...

    async def amend_order(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def amend_orders(self, category: str, items: list[dict[str, Any]]) -> list[tuple[int, str]]: ...

    async def cancel_order(self, category: str, symbol: str, link_id: str) -> dict[str, Any]: ...

    async def cancel_orders(self, category: str, items: list[dict[str, Any]]) -> list[tuple[int, str]]: ...

    async def cancel_all(self, category: str, symbol: str) -> list[dict[str, Any]]: ...

    async def find_order(self, category: str, link_id: str) -> dict[str, Any] | None: ...

    async def open_orders(self, category: str, symbol: str | None = None) -> list[dict[str, Any]]: ...

    async def executions(self, category: str, link_id: str | None = None,
                         exec_type: str | None = None) -> list[dict[str, Any]]: ...

    async def positions(self, category: str, symbol: str | None = None) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


@runtime_checkable
class PrivateStream(Protocol):
    """The account's private stream, parsed: frames → orders.events (acks, fills, cancels,
    rejects, funding). Both raise the adapter's MalformedFrame subclass naming the field; the
    shell dead-letters the frame and reconciles from the venue's REST (which feeds its views
    through the same `events_from_private`, so a reconciled event has the id the stream's would)."""

    def parse_private(self, raw: str | bytes) -> dict[str, Any]: ...

    def events_from_private(self, message: dict[str, Any], account: str, now_ns: int,
                            origins: dict[str, int]) -> list[Event]: ...


@runtime_checkable
class InstrumentSource(Protocol):
    """A venue's instruments: `read` answers the rules of every listed instrument among `symbols`.

    Raises InstrumentsRefused for an answer it cannot read, and httpx.HTTPError when the venue
    cannot be reached; both are retried by the caller (ingest's InstrumentFeed)."""

    venue: str

    async def read(self, client: httpx.AsyncClient, symbols: Sequence[str]) -> list[Instrument]: ...



@runtime_checkable
class TradeHistory(Protocol):
    """The venue's recent trades, read by ingest's gap fill (services/ingest/resume.py) on every
    (re)connect, so a trade printed while ingest was away is published, not lost.

    `since` answers the trades after the published `last_trade_id`, oldest first, and whether
    trades older than the first of them and newer than the last published may exist that it did
    not return (Bybit: a full newest page; Binance: more missing than it reads per reconnect). An
    adapter raises its own refusal (a ValueError) for an answer it cannot read."""

    venue: str
    category: str
    limit: int

    async def since(self, client: httpx.AsyncClient, symbol: str, last_trade_id: str,
                    recv_ns: int) -> tuple[list[TradeReceived], bool]: ...
