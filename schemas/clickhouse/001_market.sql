-- Market-data tables, the same DDL for chDB (local) and a ClickHouse server (compose).
-- {db} is replaced by the database name. Ordered by (symbol, time) and partitioned by day;
-- DoubleDelta suits monotonic timestamps, ZSTD the rest. _topic/_partition/_offset record the
-- Kafka position of each row: the recorder resumes from max(_offset), so a replay adds no rows.

CREATE TABLE IF NOT EXISTS {db}.trades
(
    symbol      LowCardinality(String),
    ts_event    DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    ts_ingest   DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    venue       LowCardinality(String),
    category    LowCardinality(String),
    trade_id    String CODEC(ZSTD(1)),
    side        Enum8('Buy' = 1, 'Sell' = 2),
    price       Decimal(38, 18) CODEC(ZSTD(1)),
    qty         Decimal(38, 18) CODEC(ZSTD(1)),
    id          String CODEC(ZSTD(1)),
    _topic      LowCardinality(String),
    _partition  UInt16,
    _offset     UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event)
ORDER BY (symbol, ts_event);

CREATE TABLE IF NOT EXISTS {db}.book_top
(
    symbol      LowCardinality(String),
    ts_event    DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    ts_ingest   DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    venue       LowCardinality(String),
    category    LowCardinality(String),
    depth       UInt16,
    update_id   UInt64 CODEC(Delta, ZSTD(1)),
    kind        Enum8('snapshot' = 1, 'delta' = 2),
    bid_price   Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    bid_size    Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    ask_price   Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    ask_size    Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    id          String CODEC(ZSTD(1)),
    _topic      LowCardinality(String),
    _partition  UInt16,
    _offset     UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event)
ORDER BY (symbol, ts_event);

CREATE TABLE IF NOT EXISTS {db}.tickers
(
    symbol        LowCardinality(String),
    ts_event      DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    ts_ingest     DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    venue         LowCardinality(String),
    category      LowCardinality(String),
    last_price    Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    mark_price    Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    index_price   Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    bid1_price    Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    bid1_size     Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    ask1_price    Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    ask1_size     Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    volume_24h    Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    turnover_24h  Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    funding_rate  Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    open_interest Nullable(Decimal(38, 18)) CODEC(ZSTD(1)),
    id            String CODEC(ZSTD(1)),
    _topic        LowCardinality(String),
    _partition    UInt16,
    _offset       UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event)
ORDER BY (symbol, ts_event);
