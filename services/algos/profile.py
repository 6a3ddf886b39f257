"""A VWAP's volume profile from recorded history: the share of volume per slice of the parent's
window, at the same time of day over the last N days of `trades` in ClickHouse. Pure: the SQL to
ask and the shares from its answer; `hean algo submit vwap --profile-days N` asks the store
(services/cli/algo.py) and carries the shares in SubmitAlgo.volume_profile, so the algos fold
never reads the store and a replay sizes the same children.

Bucket k (0..slices-1) of day d is [start - d days + k * width, start - d days + (k + 1) * width)
with width = duration / slices: the k-th slice of the parent at the same clock time d days ago.
A bucket with no trades gets share 0 (its slot sends nothing); no trades in any bucket is an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

DAY_NS = 86_400 * 10**9
NS_PER_S = 10**9
MAX_PROFILE_DAYS = 90
SHARE_PLACES = Decimal("1e-8")
_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class NoHistory(ValueError):
    """The store holds no trades to build the profile from; the message says where it looked."""


def check(duration_s: int, slices: int, days: int) -> None:
    """A ValueError naming the first parameter a profile cannot be built with."""
    if not 0 < duration_s <= 86_400:
        raise ValueError(f"a profiled vwap spans at most a day (its buckets are times of day), got --duration "
                         f"{duration_s}")
    if not 1 <= slices <= 1_000:
        raise ValueError(f"--slices must be 1-1000 for a profiled vwap, got {slices}")
    if duration_s * NS_PER_S // slices == 0:
        raise ValueError(f"--duration {duration_s} s cannot hold {slices} slices")
    if not 1 <= days <= MAX_PROFILE_DAYS:
        raise ValueError(f"--profile-days must be 1-{MAX_PROFILE_DAYS}, got {days}")


def query(db: str, venue: str, symbol: str, start_ns: int, duration_s: int, slices: int, days: int) -> str:
    """The SQL whose rows are (bucket, volume): the qty traded on `symbol` in each slice's window over
    the last `days` days, buckets with no trade absent. Names are checked, numbers are ints, so the
    text is built safely."""
    check(duration_s, slices, days)
    for name in (db, venue, symbol):
        if not _NAME.match(name):
            raise ValueError(f"Expected a plain name (letters, digits, _), found {name!r}")
    origin = start_ns - days * DAY_NS
    duration_ns = duration_s * NS_PER_S
    width = duration_ns // slices
    offset = f"((toUnixTimestamp64Nano(trade_ts) - {origin}) % {DAY_NS})"
    # The inner GROUP BY id keeps one row per trade: a replay into the table inserts trades twice.
    return (f"SELECT least(intDiv({offset}, {width}), {slices - 1}) AS bucket, sum(trade_qty) AS volume "
            f"FROM (SELECT id, any(ts_event) AS trade_ts, any(qty) AS trade_qty FROM {db}.trades "
            f"WHERE symbol = '{symbol}' AND venue = '{venue}' "
            f"AND ts_event >= fromUnixTimestamp64Nano(toInt64({origin}), 'UTC') "
            f"AND ts_event < fromUnixTimestamp64Nano(toInt64({start_ns}), 'UTC') GROUP BY id) "
            f"WHERE {offset} < {duration_ns} GROUP BY bucket ORDER BY bucket")


def shares(rows: Iterable[Sequence[object]], slices: int, where: str) -> tuple[Decimal, ...]:
    """Each slice's share of the volume (exact to 1e-8; the algos core divides by their sum), from
    the (bucket, volume) rows of `query`. NoHistory, naming `where`, when nothing traded."""
    volumes = [Decimal(0)] * slices
    for bucket, volume in rows:
        index = int(str(bucket))
        if not 0 <= index < slices:
            raise ValueError(f"Expected buckets 0-{slices - 1} from the profile query, found {bucket}")
        volumes[index] += Decimal(str(volume))
    total = sum(volumes, Decimal(0))
    if total <= 0:
        raise NoHistory(f"no trades recorded {where}: nothing to take a volume profile from; record that time "
                        "of day first (the recorder runs in `hean up`), or leave out --profile-days to use "
                        "the configured curve (ALGOS_VWAP_CURVE)")
    return tuple((v / total).quantize(SHARE_PLACES, rounding=ROUND_HALF_EVEN) for v in volumes)


def window(symbol: str, db: str, start_ns: int, duration_s: int, days: int) -> str:
    """Where the profile looked, for messages: "of BTCUSDT in hean.trades at 10:30:00-10:35:00 UTC
    over the last 5 days"."""
    def clock(ns: int) -> str:
        return datetime.fromtimestamp(ns / NS_PER_S, UTC).strftime("%H:%M:%S")
    day = "day" if days == 1 else f"{days} days"
    return (f"of {symbol} in {db}.trades at {clock(start_ns)}-{clock(start_ns + duration_s * NS_PER_S)} UTC "
            f"over the last {day}")
