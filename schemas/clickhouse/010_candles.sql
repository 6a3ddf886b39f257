-- Candles: 1 s and 1 m OHLCV, VWAP and trade count per symbol. Written by hand (queries, not
-- mirrors of events). {db} is the database name.
--
-- Views over the trades deduplicated by their event id, not materialized views: a materialized
-- view sees each INSERT, so the same trades inserted twice (a replay into a fresh table, a manual
-- re-insert) would be counted twice, and merges of a ReplacingMergeTree never reach it. The inner
-- GROUP BY symbol, id keeps one row per trade; a WHERE on symbol goes through it to the table's
-- sort key. Open and close are the first and last trade by (ts_event, trade_id). Volume is the
-- exact Decimal sum; VWAP is Float64 (a product of two Decimal(38, 18) overflows).

CREATE OR REPLACE VIEW {db}.trades_unique AS
SELECT symbol, id, any(ts_event) AS ts_event, any(trade_id) AS trade_id, any(side) AS side,
       any(price) AS price, any(qty) AS qty
FROM {db}.trades
GROUP BY symbol, id;

CREATE OR REPLACE VIEW {db}.candles_1s AS
SELECT symbol,
       toStartOfSecond(ts_event) AS bucket,
       argMin(price, (ts_event, trade_id)) AS open,
       max(price) AS high,
       min(price) AS low,
       argMax(price, (ts_event, trade_id)) AS close,
       sum(qty) AS volume,
       sum(toFloat64(price) * toFloat64(qty)) / sum(toFloat64(qty)) AS vwap,
       count() AS trades
FROM {db}.trades_unique
GROUP BY symbol, bucket;

CREATE OR REPLACE VIEW {db}.candles_1m AS
SELECT symbol,
       toStartOfMinute(ts_event) AS bucket,
       argMin(price, (ts_event, trade_id)) AS open,
       max(price) AS high,
       min(price) AS low,
       argMax(price, (ts_event, trade_id)) AS close,
       sum(qty) AS volume,
       sum(toFloat64(price) * toFloat64(qty)) / sum(toFloat64(qty)) AS vwap,
       count() AS trades
FROM {db}.trades_unique
GROUP BY symbol, bucket;
