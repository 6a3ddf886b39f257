"""The topic registry: every topic of DESIGN.md §2 with its key, partitions and retention.

One place, so `hean topics create` (idempotent) and every service agree on names and shapes.
Topics keyed by symbol share one partition count, so they are co-partitioned: partition p of
md.trades, md.book, md.tickers and orders.* holds the same symbols, and one strategy instance
owning partition p sees all of a symbol's events.
"""

from __future__ import annotations

from dataclasses import dataclass

SYMBOL_PARTITIONS = 6
ACCOUNT_PARTITIONS = 3
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic's fixed shape. `retention_ms` of -1 keeps the log forever (replayable state).

    `compact` topics keep the latest record per key (reference data: the current rule for each
    instrument), so a consumer that replays from the beginning reads every key's latest value
    without the history before it."""

    name: str
    key: str
    partitions: int
    retention_ms: int
    producer: str
    consumers: tuple[str, ...]
    description: str
    compact: bool = False

    def config(self) -> dict[str, str]:
        """Broker-side topic config applied at creation."""
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "compact" if self.compact else "delete"}


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("md.trades", "symbol", SYMBOL_PARTITIONS, 7 * DAY_MS, "ingest",
              ("strategy", "recorder"), "public trades"),
    TopicSpec("md.book", "symbol", SYMBOL_PARTITIONS, 2 * DAY_MS, "ingest",
              ("strategy", "recorder"), "L2 book snapshots and continuous deltas"),
    TopicSpec("md.tickers", "symbol", SYMBOL_PARTITIONS, 7 * DAY_MS, "ingest",
              ("strategy", "recorder", "accounting", "risk"), "merged tickers (mark price)"),
    TopicSpec("orders.intents", "symbol", SYMBOL_PARTITIONS, -1, "strategy",
              ("risk", "algos"), "order intents (submit / cancel; parent orders for algos)"),
    TopicSpec("orders.decisions", "symbol", SYMBOL_PARTITIONS, -1, "risk",
              ("execution", "recorder"), "risk decisions (approved / rejected with rule)"),
    TopicSpec("orders.events", "symbol", SYMBOL_PARTITIONS, -1, "execution",
              ("accounting", "risk", "strategy", "recorder"), "venue order events and fills"),
    TopicSpec("accounting.positions", "account", ACCOUNT_PARTITIONS, -1, "accounting",
              ("risk", "recorder"), "positions, PnL and account totals"),
    TopicSpec("control", "account", 1, -1, "operator CLI, risk, execution, ingest",
              ("risk", "recorder"), "kill switch, halt and resume; position and wallet drift (execution); "
              "trade gaps (ingest, keyed by symbol)"),
    TopicSpec("dlq", "source topic", 1, 30 * DAY_MS, "any service",
              ("operator",), "records a service could not process, with the reason"),
    # Keyed by symbol and co-partitioned with md.*, so a strategy instance owning partition p
    # reads the rules of exactly the symbols it trades.
    TopicSpec("ref.instruments", "symbol", SYMBOL_PARTITIONS, -1, "ingest",
              ("strategy", "risk"), "instrument rules from the venue (tick, lot, minimums, fees)",
              compact=True),
    TopicSpec("md.bars", "symbol", SYMBOL_PARTITIONS, 7 * DAY_MS, "bars",
              ("operator",), "1 s and 1 m OHLCV bars from md.trades (services/bars, faust-streaming)"),
    TopicSpec("algos.reports", "symbol", SYMBOL_PARTITIONS, -1, "algos",
              ("recorder", "operator"), "execution reports of parent orders (TWAP, VWAP, iceberg)"),
    TopicSpec("demo.trades", "symbol", SYMBOL_PARTITIONS, DAY_MS, "hean demo",
              ("tally",), "synthetic trades for the runtime demo and benchmarks"),
    TopicSpec("demo.tallies", "symbol", SYMBOL_PARTITIONS, DAY_MS, "tally",
              ("operator",), "the demo tally service's per-symbol totals"),
)

BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}

MD_TRADES = "md.trades"
MD_BOOK = "md.book"
MD_TICKERS = "md.tickers"
ORDERS_INTENTS = "orders.intents"
ORDERS_DECISIONS = "orders.decisions"
ORDERS_EVENTS = "orders.events"
ACCOUNTING_POSITIONS = "accounting.positions"
CONTROL = "control"
DLQ = "dlq"
REF_INSTRUMENTS = "ref.instruments"
MD_BARS = "md.bars"
ALGOS_REPORTS = "algos.reports"
DEMO_TRADES = "demo.trades"
DEMO_TALLIES = "demo.tallies"


def spec(name: str) -> TopicSpec:
    """The registry entry for `name`; a typo fails loudly instead of creating a stray topic."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"Unknown topic {name!r}; known topics: {', '.join(BY_NAME)}") from None
