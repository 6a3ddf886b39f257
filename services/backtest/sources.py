"""Recorded market data back into events: from the store (chDB or a ClickHouse server) or the log.

Both give the md events of the chosen symbols with `from_ns <= ts_event < to_ns`, in the order
ingest published them: by ingest time, then book before trade before ticker, then the Kafka
position. The events are the recorded ones, ids included, so a strategy's intent ids (derived from
the trade or book event that caused them) come out as they did live.

Instrument definitions: every InstrumentDefined of the symbols on ref.instruments (ingest
publishes them before its streams start), from the log or from the store's `instruments` table;
a symbol with none recorded takes `instruments.definition`'s (the one place rules come from
without a record).

From the store: `trades`, `book_top` (one row per book event: kind, top of book) with
`book_levels` (its levels) and `tickers`, selected by the session's topic prefix (`_topic`).
The store keeps prices as Decimal(38, 18); on the way back they take the instrument's digits
again (prices the tick's, sizes the lot's, as the venue printed them; trimmed where the symbol has
no rules), so everything computed from them prints as it did live. Not recorded, hence not
rebuilt: a book event's `seq` (0 here) and `origin_ts` (taken as the ingest time, which it is for
market data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from schemas.events import BookDeltaReceived, BookSnapshotReceived, InstrumentDefined, TickerUpdated, TradeReceived
from schemas.topics import MD_BOOK, MD_TICKERS, MD_TRADES, REF_INSTRUMENTS
from services.domain.venues import TRADED_VENUE

MarketEvent = TradeReceived | BookSnapshotReceived | BookDeltaReceived | TickerUpdated
RANK = {MD_BOOK: 0, MD_TRADES: 1, MD_TICKERS: 2}


class SourceError(Exception):
    """The data cannot be read (store down, no such session); the message is one line for a person."""


@dataclass(frozen=True)
class Recorded:
    """What a backtest replays: the instrument definitions, then the market events."""

    events: list[MarketEvent]
    instruments: list[InstrumentDefined]


@dataclass(frozen=True)
class Query:
    """Which recorded data a backtest reads."""

    symbols: tuple[str, ...]
    from_ns: int
    to_ns: int
    prefix: str = ""
    # md.* holds every venue's market data under the same symbols (a `hean up --binance` session
    # records Binance's BTCUSDT beside Bybit's): a backtest reads only the venue it trades, or a
    # Binance book would fill orders meant for Bybit.
    venue: str = TRADED_VENUE


def _sort_key(event: Any, topic: str, partition: int, offset: int) -> tuple[int, int, int, int]:
    return (event.ts_ingest, RANK[topic], partition, offset)


# ------------------------------------------------------------------ the log


async def from_log(bootstrap: str, query: Query) -> Recorded:
    """The md topics (and ref.instruments) of `query.prefix`, read from the beginning to their end offsets."""
    from aiokafka.errors import KafkaError

    from services.runtime.bus import make_consumer, partitions_of, read_to_end
    from services.runtime.codec import decode
    from services.runtime.errors import DecodeError

    consumer = make_consumer(bootstrap, None, client="aiokafka")  # topics() and the aiokafka errors below
    try:
        await consumer.start()
    except KafkaError as exc:
        raise SourceError(f"cannot reach the Kafka broker at {bootstrap}: {type(exc).__name__}") from None
    keyed: list[tuple[tuple[int, int, int, int], MarketEvent]] = []
    defined: list[tuple[tuple[int, int], InstrumentDefined]] = []
    wanted = set(query.symbols)
    try:
        topics = [query.prefix + t for t in (MD_TRADES, MD_BOOK, MD_TICKERS)]
        existing = await consumer.topics()
        missing = [t for t in topics if t not in existing]
        if missing:
            raise SourceError(f"no topic {missing[0]!r} on {bootstrap}: check --topic-prefix (the session)")
        if query.prefix + REF_INSTRUMENTS in existing:
            topics.append(query.prefix + REF_INSTRUMENTS)
        tps = await partitions_of(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        async for tp, records in read_to_end(consumer, tps, ends):
            topic = tp.topic[len(query.prefix):]
            for record in records:
                if record.offset >= ends[tp]:
                    continue
                try:
                    event = decode(record.value)
                except DecodeError:
                    continue  # ingest never wrote it; the services dead-lettered it live too
                if getattr(event, "venue", None) != query.venue:
                    continue
                if isinstance(event, InstrumentDefined):
                    if event.symbol in wanted:
                        defined.append(((tp.partition, record.offset), event))
                elif getattr(event, "symbol", None) in wanted and query.from_ns <= event.ts_event < query.to_ns:
                    keyed.append((_sort_key(event, topic, tp.partition, record.offset), event))  # type: ignore[arg-type]
    except KafkaError as exc:
        raise SourceError(f"reading the log failed: {type(exc).__name__} {exc}") from None
    finally:
        await consumer.stop()
    keyed.sort(key=lambda pair: pair[0])
    defined.sort(key=lambda pair: pair[0])
    return Recorded([event for _, event in keyed], [event for _, event in defined])


# ------------------------------------------------------------------ the store


def from_store(store_url: str, default_path: Path, query: Query) -> Recorded:
    """The recorded md tables of `query.prefix` in the chDB store or on a ClickHouse server."""
    from services.cli.sql import QueryFailed, fetch
    from services.recorder.query import QueryLimits

    def rows(sql: str) -> list[list[Any]]:
        try:
            data = fetch(sql, store_url, "JSONCompactEachRow", default_path, QueryLimits(timeout_seconds=600))
        except QueryFailed as exc:
            raise SourceError(str(exc)) from None
        return [orjson.loads(line) for line in data.splitlines() if line]

    symbols = ", ".join(_quote(s) for s in query.symbols)
    where = (f"symbol IN ({symbols}) AND venue = {_quote(query.venue)} "
             f"AND ts_event >= fromUnixTimestamp64Nano({query.from_ns}, 'UTC') "
             f"AND ts_event < fromUnixTimestamp64Nano({min(query.to_ns, 2**62)}, 'UTC')")
    position = ("_partition, _offset, toString(toUnixTimestamp64Nano(ts_event)), "
                "toString(toUnixTimestamp64Nano(ts_ingest))")
    keyed: list[tuple[tuple[int, int, int, int], MarketEvent]] = []
    for r in rows(f"SELECT {position}, symbol, venue, category, trade_id, side, toString(price), toString(qty), id "
                  f"FROM hean.trades WHERE _topic = {_quote(query.prefix + MD_TRADES)} AND {where}"):
        price, qty = _digits(r[4])
        event = TradeReceived(id=r[11], ts_event=int(r[2]), ts_ingest=int(r[3]), origin_ts=int(r[3]), symbol=r[4],
                              venue=r[5], category=r[6], trade_id=r[7], side=r[8], price=price(r[9]), qty=qty(r[10]))
        keyed.append((_sort_key(event, MD_TRADES, r[0], r[1]), event))
    levels: dict[str, tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]] = {}
    for symbol, event_id, side, price, size in rows(
            f"SELECT symbol, id, toString(side), toString(price), toString(size) FROM hean.book_levels "
            f"WHERE _topic = {_quote(query.prefix + MD_BOOK)} AND {where} ORDER BY _partition, _offset"):
        bids, asks = levels.setdefault(event_id, ([], []))
        as_price, as_size = _digits(symbol)
        (bids if side == "bid" else asks).append((as_price(price), as_size(size)))
    top = ("toString(bid_price), toString(bid_size), toString(ask_price), toString(ask_size)")
    for r in rows(f"SELECT {position}, symbol, venue, category, depth, update_id, toString(kind), {top}, id "
                  f"FROM hean.book_top WHERE _topic = {_quote(query.prefix + MD_BOOK)} AND {where}"):
        bids, asks = levels.get(r[14], ([], []))
        kind = BookSnapshotReceived if r[9] == "snapshot" else BookDeltaReceived
        event = kind(id=r[14], ts_event=int(r[2]), ts_ingest=int(r[3]), origin_ts=int(r[3]), symbol=r[4], venue=r[5],
                     category=r[6], depth=int(r[7]), update_id=int(r[8]), seq=0,
                     bids=sorted(bids, reverse=True), asks=sorted(asks),
                     best_bid=_level(r[4], r[10], r[11]), best_ask=_level(r[4], r[12], r[13]))
        keyed.append((_sort_key(event, MD_BOOK, r[0], r[1]), event))
    prices = ("last_price", "mark_price", "index_price", "bid1_price", "bid1_size", "ask1_price", "ask1_size",
              "volume_24h", "turnover_24h", "funding_rate", "open_interest")
    for r in rows(f"SELECT {position}, symbol, venue, category, {', '.join(f'toString({p})' for p in prices)}, id "
                  f"FROM hean.tickers WHERE _topic = {_quote(query.prefix + MD_TICKERS)} AND {where}"):
        as_price, as_size = _digits(r[4])
        values = {p: _optional(v, as_size if p.endswith("_size") else as_price if p.endswith("_price") else _num)
                  for p, v in zip(prices, r[7:18], strict=True)}
        event = TickerUpdated(id=r[18], ts_event=int(r[2]), ts_ingest=int(r[3]), origin_ts=int(r[3]), symbol=r[4],
                              venue=r[5], category=r[6], **values)
        keyed.append((_sort_key(event, MD_TICKERS, r[0], r[1]), event))
    keyed.sort(key=lambda pair: pair[0])
    return Recorded([event for _, event in keyed], _store_instruments(rows, query))


RULE_COLUMNS = ("tick_size", "lot_step", "min_qty", "max_qty", "min_notional", "maker_fee", "taker_fee", "multiplier")


def _store_instruments(rows: Callable[[str], list[list[Any]]], query: Query) -> list[InstrumentDefined]:
    """The recorded rules (`instruments`, every version ingest published before `to_ns`, in time
    order, as from the log); a symbol with none recorded (a store filled before the recorder kept
    ref.instruments) takes `instruments.definition`'s."""
    from services.backtest.instruments import definition

    symbols = ", ".join(_quote(s) for s in query.symbols)
    found: list[InstrumentDefined] = []
    for r in rows(f"SELECT id, toString(toUnixTimestamp64Nano(ts_event)), toString(toUnixTimestamp64Nano(ts_ingest)), "
                  f"toString(toUnixTimestamp64Nano(origin_ts)), venue, symbol, toString(kind), base_coin, quote_coin, "
                  f"{', '.join(f'toString({c})' for c in RULE_COLUMNS)}, status FROM hean.instruments "
                  f"WHERE _topic = {_quote(query.prefix + REF_INSTRUMENTS)} AND venue = {_quote(query.venue)} "
                  f"AND symbol IN ({symbols}) AND ts_event < fromUnixTimestamp64Nano({min(query.to_ns, 2**62)}, 'UTC') "
                  "ORDER BY ts_event, _partition, _offset"):
        rules = {c: _num(v) for c, v in zip(RULE_COLUMNS, r[9:17], strict=True)}
        found.append(InstrumentDefined(id=r[0], ts_event=int(r[1]), ts_ingest=int(r[2]), origin_ts=int(r[3]),
                                       venue=r[4], symbol=r[5], kind=r[6], base_coin=r[7], quote_coin=r[8],
                                       status=r[17], **rules))
    recorded = {d.symbol for d in found}
    fallback = (definition(s, query.from_ns, query.venue) for s in query.symbols if s not in recorded)
    return found + [d for d in fallback if d is not None]


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _num(text: str) -> Decimal:
    """A Decimal(38, 18) column's text with the scale's trailing zeros trimmed (value unchanged)."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Decimal(text)


def _digits(symbol: str) -> tuple[Callable[[str], Decimal], Callable[[str], Decimal]]:
    """(price, size) readers giving the symbol's tick and lot digits (trimmed without rules)."""
    from services.backtest.instruments import instrument_rules

    rules = instrument_rules(symbol)
    if rules is None:
        return _num, _num
    return _on_grid(rules.tick_size), _on_grid(rules.qty_step)


def _on_grid(unit: Decimal) -> Callable[[str], Decimal]:
    """A reader printing on `unit`'s digits; a value off that grid keeps its own (never rounded)."""
    def read(text: str) -> Decimal:
        value = _num(text)
        if value.as_tuple().exponent >= unit.as_tuple().exponent:  # type: ignore[operator]
            return value.quantize(unit)
        return value

    return read


def _optional(text: str | None, read: Callable[[str], Decimal] = _num) -> Decimal | None:
    return None if text is None or text in ("", "\\N", "NULL") else read(text)


def _level(symbol: str, price: str | None, size: str | None) -> tuple[Decimal, Decimal] | None:
    as_price, as_size = _digits(symbol)
    p, s = _optional(price, as_price), _optional(size, as_size)
    return None if p is None or s is None else (p, s)

