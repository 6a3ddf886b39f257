"""`hean algo submit twap|vwap|iceberg …` (a parent order on orders.intents, worked by the algos
service), `hean algo cancel PARENT_ID` (stop it) and `hean algo status` (every parent with its
latest execution report, from the log).

The parent is an event like any intent: the algos service folds it and sends its children, each
an ordinary SubmitOrder through risk. Its parameters are checked here first (one line, exit 2) and
again when any service decodes it (SubmitAlgo.__post_init__), so a bad parent never starts. A vwap
with --profile-days takes its volume profile from the trades recorded in ClickHouse, read here at
submit time (services/algos/profile.py) and carried in the parent, so no service reads the store.
A cancel is a CancelAlgo on orders.intents; the command then follows algos.reports until the
parent's completion (its working child cancelled through risk, its fills until then counted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from schemas.events import AlgoCompleted, AlgoReport, CancelAlgo, Event, SubmitAlgo
from schemas.topics import ALGOS_REPORTS, ORDERS_INTENTS
from services.algos import profile
from services.cli.follow import follow
from services.cli.orders import UsageError, _common, _decimal, _read
from services.domain.ids import derive_id
from services.runtime.codec import encode

ProfileReader = Callable[[str, str, str, int, int, int, int], tuple[Decimal, ...]]
"""(store url, venue, symbol, start ns, duration s, slices, days) → the shares per slice."""


def add_parser(sub: Any) -> None:
    """`hean algo …` on the top-level parser."""
    algo = sub.add_parser("algo", help="execution algorithms: submit a TWAP, VWAP or iceberg parent, or show them")
    actions = algo.add_subparsers(dest="action", required=True, metavar="ACTION")
    submit = actions.add_parser("submit", help="send a parent order (its children go through risk)")
    submit.add_argument("kind", choices=("twap", "vwap", "iceberg"))
    submit.add_argument("--account", required=True)
    submit.add_argument("--symbol", required=True)
    submit.add_argument("--side", required=True, help="Buy or Sell")
    submit.add_argument("--qty", required=True, help="the parent's whole quantity")
    submit.add_argument("--price", help="limit price (iceberg: required; twap/vwap: children never pass it)")
    submit.add_argument("--duration", help="twap/vwap: seconds of market time the schedule spans")
    submit.add_argument("--slices", help="twap, and vwap with --profile-days: how many children over the duration")
    submit.add_argument("--display", help="iceberg: the quantity shown at a time")
    submit.add_argument("--participation", help="twap/vwap: a child's cap as a fraction of the volume since the last")
    submit.add_argument("--profile-days", help="vwap: size the slices by the volume recorded at the same time of day "
                        "over the last N days (hean.trades), not by ALGOS_VWAP_CURVE")
    submit.add_argument("--store", help="vwap --profile-days: chdb://PATH or clickhouse://… (default: RECORDER_STORE)")
    submit.add_argument("--topic-prefix", help="prefix of every topic name (default: the current session)")
    cancel = actions.add_parser("cancel", help="stop a parent: no more children, its working child cancelled")
    cancel.add_argument("parent", metavar="PARENT_ID", help="the parent's id, as `hean algo status` shows it")
    cancel.add_argument("--reason", default="", help="recorded in the parent's report")
    cancel.add_argument("--wait", type=float, default=15.0, help="seconds to wait for the parent's end")
    cancel.add_argument("--topic-prefix", help="prefix of every topic name (default: the current session)")
    status = actions.add_parser("status", help="every parent order with its latest execution report")
    status.add_argument("--account", help="only this account's parents")
    status.add_argument("--topic-prefix", help="prefix of every topic name (default: the current session)")


def _int(name: str, text: str | None) -> int:
    if text is None:
        raise UsageError(f"--{name} is required here")
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--{name} must be a whole number, got {text!r}") from None
    if value <= 0:
        raise UsageError(f"--{name} must be positive, got {text!r}")
    return value


def parent_order(args: argparse.Namespace, now_ns: int, read_profile: ProfileReader | None = None) -> SubmitAlgo:
    """The parent `hean algo submit` sends; a UsageError names the first bad argument. A vwap with
    --profile-days gets its profile from `read_profile` (default: the recorded trades)."""
    common = _common(args.account, args.symbol, now_ns)
    side = {"buy": "Buy", "sell": "Sell"}.get(args.side.lower())
    if side is None:
        raise UsageError(f"--side must be Buy or Sell, got {args.side!r}")
    fields: dict[str, Any] = {"qty": _decimal("qty", args.qty), "limit_price": _decimal("price", args.price)}
    if args.kind == "iceberg":
        for name in ("duration", "slices", "participation", "profile_days"):
            if getattr(args, name) is not None:
                raise UsageError(f"an iceberg takes no --{name.replace('_', '-')}")
        if args.price is None or args.display is None:
            raise UsageError("an iceberg needs --price and --display")
        fields["display_qty"] = _decimal("display", args.display)
        if fields["display_qty"] > fields["qty"]:
            raise UsageError(f"--display {args.display} is more than --qty {args.qty}")
    else:
        if args.display is not None:
            raise UsageError(f"a {args.kind} takes no --display")
        if args.kind != "vwap" and args.profile_days is not None:
            raise UsageError(f"a {args.kind} takes no --profile-days (only a vwap has a volume profile)")
        fields["duration_s"] = _int("duration", args.duration)
        participation = _decimal("participation", args.participation)
        if participation is not None and participation > 1:
            raise UsageError(f"--participation is a fraction of the volume, at most 1, got {args.participation!r}")
        fields["participation"] = participation
        if args.kind == "twap":
            fields["slices"] = _int("slices", args.slices)
            if fields["slices"] > 1000:
                raise UsageError(f"--slices must be at most 1000, got {args.slices!r}")
        elif args.profile_days is not None:
            days, slices = _int("profile-days", args.profile_days), _int("slices", args.slices)
            try:
                profile.check(fields["duration_s"], slices, days)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            reader = read_profile or recorded_profile
            store = args.store or os.environ.get("RECORDER_STORE", "")
            fields["volume_profile"] = reader(store, "bybit", common["symbol"], now_ns, fields["duration_s"],
                                              slices, days)
        elif args.slices is not None:
            raise UsageError("a vwap takes its slices from the configured curve (ALGOS_VWAP_CURVE), not --slices "
                             "(or give --profile-days and --slices)")
    try:
        return SubmitAlgo(id=derive_id("operator-algo", args.account, args.symbol, now_ns), **common,
                          side=side, kind=args.kind, **fields)
    except ValueError as exc:  # what the event itself refuses (a rule the checks above do not repeat)
        raise UsageError(str(exc)) from None


def recorded_profile(store_url: str, venue: str, symbol: str, start_ns: int, duration_s: int, slices: int,
                     days: int) -> tuple[Decimal, ...]:
    """The vwap's shares per slice from the trades recorded in the store (asked as `hean sql` asks:
    the running recorder's endpoint, a ClickHouse server, or the chDB store opened read-only)."""
    import orjson

    from services.cli.infra import LocalStack
    from services.cli.sql import QueryFailed, fetch
    from services.recorder.query import QueryLimits

    db = "hean" if not store_url or store_url.startswith("chdb://") else \
        (urlsplit(store_url).path or "/hean").strip("/") or "hean"
    sql = profile.query(db, venue, symbol, start_ns, duration_s, slices, days)
    try:
        data = fetch(sql, store_url, "JSONCompactEachRow", LocalStack.from_env().chdb_dir, QueryLimits())
    except QueryFailed as exc:
        raise UsageError(f"cannot read the recorded trades for a volume profile: {exc}") from None
    rows = [orjson.loads(line) for line in data.splitlines() if line]
    try:
        return profile.shares(rows, slices, profile.window(symbol, db, start_ns, duration_s, days))
    except profile.NoHistory as exc:
        raise UsageError(str(exc)) from None


def latest_reports(intents: Iterable[Event], reports: Iterable[Event]) -> list[tuple[SubmitAlgo, AlgoReport | None]]:
    """Each parent in the log with its latest report (None: not started yet), oldest parent first."""
    parents = {e.id: e for e in intents if isinstance(e, SubmitAlgo)}
    latest: dict[str, AlgoReport] = {}
    for report in reports:
        if isinstance(report, AlgoReport):
            held = latest.get(report.parent_id)
            if held is None or held.status == "working":  # the completion is the last word
                latest[report.parent_id] = report
    return [(p, latest.get(pid)) for pid, p in sorted(parents.items(), key=lambda kv: (kv[1].ts_event, kv[0]))]


def _text(value: Decimal | None) -> str:
    return "" if value is None else str(value)


def render(rows: list[tuple[SubmitAlgo, AlgoReport | None]]) -> str:
    header = ("parent", "kind", "account", "symbol", "side", "qty", "filled", "children", "status", "arrival",
              "avg_fill", "market_vwap", "shortfall", "bps", "fees", "detail")
    lines = [header]
    for parent, report in rows:
        if report is None:
            lines.append((parent.id, parent.kind, parent.account, parent.symbol, parent.side, str(parent.qty), "0",
                          "0", "waiting", "", "", "", "", "", "", ""))
            continue
        lines.append((parent.id, parent.kind, parent.account, parent.symbol, parent.side, str(parent.qty),
                      str(report.filled_qty), str(report.children), report.status, _text(report.arrival_price),
                      _text(report.avg_price), _text(report.market_vwap), _text(report.shortfall),
                      _text(report.shortfall_bps), _text(report.fees), report.detail[:60]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


async def _send(topic: str, parent: SubmitAlgo | CancelAlgo) -> None:
    from services.cli.topics import bootstrap  # the broker's client only when sending (hean starts faster)
    from services.runtime.bus import make_producer, send_and_wait
    producer = make_producer(bootstrap())
    await producer.start()
    try:
        await send_and_wait(producer, [(topic, parent.symbol.encode(), encode(parent))])
    finally:
        await producer.stop()


def cancel_order(parent_id: str, reason: str, rows: list[tuple[SubmitAlgo, AlgoReport | None]],
                 now_ns: int) -> CancelAlgo:
    """The CancelAlgo of `hean algo cancel` for a parent in the log that has not ended; a UsageError
    says why not otherwise."""
    found = [(p, r) for p, r in rows if p.id == parent_id]
    if not found:
        raise UsageError(f"no parent order {parent_id!r} in the log; `hean algo status` lists them")
    [(parent, report)] = found
    if report is not None and report.status != "working":
        raise UsageError(f"parent {parent_id} has ended already: {report.status}")
    if len(reason) > 200:
        raise UsageError(f"--reason must be at most 200 characters, got {len(reason)}")
    from services.risk.core import OPERATOR_STRATEGY  # lazily: risk's core is a heavy import
    return CancelAlgo(id=derive_id("operator-algo-cancel", parent_id, now_ns), ts_event=now_ns, ts_ingest=now_ns,
                      origin_ts=now_ns, account=parent.account, strategy=OPERATOR_STRATEGY, venue=parent.venue,
                      symbol=parent.symbol, parent_id=parent_id, reason=reason)


async def _cancel_and_follow(prefix: str, cancel: CancelAlgo, wait_s: float) -> AlgoCompleted | None:
    """Send the cancel, then read algos.reports from where it ended before it until the parent's
    completion (None: not within `wait_s`)."""
    async with contextlib.aclosing(follow([prefix + ALGOS_REPORTS], lambda: _send(prefix + ORDERS_INTENTS, cancel),
                                          wait_s)) as events:
        async for event in events:
            if isinstance(event, AlgoCompleted) and event.parent_id == cancel.parent_id:
                return event
    return None


def _cancel(args: argparse.Namespace, prefix: str) -> int:
    logs = asyncio.run(_read([prefix + ORDERS_INTENTS, prefix + ALGOS_REPORTS]))
    try:
        cancel = cancel_order(args.parent, args.reason,
                              latest_reports(logs[prefix + ORDERS_INTENTS], logs[prefix + ALGOS_REPORTS]),
                              time.time_ns())
    except UsageError as exc:
        print(f"hean algo cancel: {exc}", file=sys.stderr)
        return 2
    print(f"CancelAlgo {cancel.id} for parent {cancel.parent_id} sent to {prefix + ORDERS_INTENTS}")
    done = asyncio.run(_cancel_and_follow(prefix, cancel, args.wait))
    if done is None:
        print(f"  no completion within {args.wait:g} s; is the algos service running on this session?")
        return 1
    print(f"  {done.status}: filled {done.filled_qty} of {done.qty} in {done.children} children"
          + (f", avg fill {done.avg_price}" if done.avg_price is not None else "") + f" ({done.detail})")
    return 0


def main(args: argparse.Namespace, prefix: str) -> int:
    """`hean algo ACTION`; bad input is one line on stderr and exit code 2."""
    if args.action == "cancel":
        return _cancel(args, prefix)
    if args.action == "status":
        logs = asyncio.run(_read([prefix + ORDERS_INTENTS, prefix + ALGOS_REPORTS]))
        rows = [(p, r) for p, r in latest_reports(logs[prefix + ORDERS_INTENTS], logs[prefix + ALGOS_REPORTS])
                if args.account is None or p.account == args.account]
        print(render(rows) if rows else "no parent orders" + (f" for {args.account}" if args.account else ""))
        return 0
    try:
        parent = parent_order(args, time.time_ns())
    except UsageError as exc:
        print(f"hean algo submit: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_send(prefix + ORDERS_INTENTS, parent))
    print(f"{parent.kind} {parent.id} for {parent.account} on {parent.symbol} sent to {prefix + ORDERS_INTENTS}; "
          "`hean algo status` follows it")
    if parent.volume_profile:
        print(f"  volume profile of the last {args.profile_days} day(s), share per slice: "
              + " ".join(str(w.normalize()) for w in parent.volume_profile))
    return 0
