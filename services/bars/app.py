"""The bars service: a faust-streaming app, md.trades → md.bars (1 s and 1 m bars per symbol).

Run: `python -m services.bars` (HEAN_KAFKA_BOOTSTRAP, HEAN_TOPIC_PREFIX; BARS_* settings).

Why faust here and not the runtime every other service uses: bars are a windowed aggregation per
key, which is what a stream processor's windowed tables are for. Its state lives in faust tables
backed by changelog topics (`<app id>-bars-1s-changelog`, …), so a restarted worker rebuilds it
from the log like every HEAN service, and with `processing_guarantee="exactly_once"` the
changelog writes, the published bars and the input offsets commit in one Kafka transaction per
input partition. Per bar size two tables: a tumbling windowed table holding every bucket's bar
(what a late trade folds into) and the symbol's open bar, which never expires, so a quiet symbol's
last bar is still published when its next trade comes. The folding is services/bars/core.py.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import faust
import msgspec

from schemas.events import TradeReceived
from schemas.topics import DLQ, MD_BARS, MD_TRADES, SYMBOL_PARTITIONS
from services.bars.core import INTERVALS_S, decode_bar, encode_bar, on_trade
from services.runtime.bus import dead_letter
from services.runtime.codec import encode, typed_decoder
from services.runtime.errors import ConfigError, DecodeError
from services.runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)


class BarsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings (env prefix BARS_). `late_s`: how long, in event time, a bucket's bar is kept for
    trades that arrive after a later bucket opened (the windowed table's expiry); an older trade
    cannot be folded any more and is dead-lettered ("late_trade"). `commit_interval_s`: how often
    faust commits (each commit is one transaction per input partition). `session_timeout_s`: how
    long the group waits for a worker that stopped answering (a SIGKILL) before it rebalances."""

    late_s: float = 120.0
    commit_interval_s: float = 0.2
    session_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if min(self.late_s, self.commit_interval_s, self.session_timeout_s) <= 0:
            raise ConfigError(f"late_s, commit_interval_s and session_timeout_s must be positive, were {self.late_s}, "
                              f"{self.commit_interval_s} and {self.session_timeout_s}")


class _EventClock:
    """The windowed tables' time: the bucket being read or written, set by the agent before each
    access. Windows then follow the trades' event time, not Kafka timestamps or the wall clock."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, event: Any = None) -> float:
        return self.seconds


def make_app(settings: RuntimeSettings, config: BarsConfig) -> faust.App:
    """The faust app with its topics, tables and agent."""
    prefix = settings.topic_prefix
    app = faust.App(
        f"{prefix}hean.bars",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        processing_guarantee="exactly_once",
        topic_partitions=SYMBOL_PARTITIONS,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=config.commit_interval_s,
        broker_session_timeout=config.session_timeout_s,  # a SIGKILLed worker's partitions move after it
        broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
        web_enabled=False,
        table_cleanup_interval=30.0,
    )
    trades = app.topic(prefix + MD_TRADES, key_serializer="raw", value_serializer="raw",
                       partitions=SYMBOL_PARTITIONS)
    out = app.topic(prefix + MD_BARS, key_serializer="raw", value_serializer="raw", partitions=SYMBOL_PARTITIONS)
    dlq = app.topic(prefix + DLQ, key_serializer="raw", value_serializer="raw")
    clock = _EventClock()
    windows, opens = {}, {}
    for size in INTERVALS_S:
        name = f"bars-{size}s"
        table = app.Table(name, key_type=str, value_type=bytes, partitions=SYMBOL_PARTITIONS)
        windows[size] = table.tumbling(float(size), expires=timedelta(seconds=config.late_s + size)).relative_to(clock)
        opens[size] = app.Table(f"{name}-open", key_type=str, value_type=bytes, partitions=SYMBOL_PARTITIONS)
    decode = typed_decoder(TradeReceived)

    @app.agent(trades)
    async def bars(stream: Any) -> None:
        async for event in stream.events():
            try:
                trade = decode(event.value)
            except DecodeError as exc:
                _, key, value = dead_letter(event.message, "bars", exc.reason, str(exc), prefix + DLQ)
                await dlq.send(key=key, value=value)
                continue
            for size in INTERVALS_S:
                published = _apply(trade, size, windows[size], opens[size], clock, config.late_s)
                if published is None:
                    error = f"trade of {trade.ts_event} ns is older than the {config.late_s} s of {size} s bars kept"
                    _, key, value = dead_letter(event.message, "bars", "late_trade", error, prefix + DLQ)
                    await dlq.send(key=key, value=value)
                    break
                for bar in published:  # into the input's partition: the same transaction as its offset
                    await out.send(key=trade.symbol.encode(), value=encode(bar), partition=event.message.partition)

    app.bars_agent = bars  # type: ignore[attr-defined]
    return app


def _apply(trade: TradeReceived, size: int, window: Any, open_table: Any, clock: _EventClock,
           late_s: float) -> list[Any] | None:
    """One trade on one bar size: read the open bar (and a late trade's own bucket), fold, write
    back; the bars to publish, or None for a trade older than the bars kept."""
    symbol = trade.symbol
    raw_open = open_table.get(symbol)
    open_bar = decode_bar(raw_open) if raw_open is not None else None
    bucket_s = trade.ts_event // 10**9 // size * size
    clock.seconds = bucket_s + size / 2  # the middle of the bucket: never on a window's edge
    bar_at = None
    if open_bar is not None and trade.ts_event < open_bar.bucket:
        if (open_bar.bucket / 10**9) - bucket_s > late_s:
            return None
        try:
            bar_at = decode_bar(window[symbol].current())
        except KeyError:  # the bucket had no trade yet
            bar_at = None
    step = on_trade(trade, size, open_bar, bar_at)
    window[symbol] = encode_bar(step.bar)
    if step.open_bar is not open_bar:
        open_table[symbol] = encode_bar(step.open_bar)
    return step.published
