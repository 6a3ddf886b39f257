"""`hean algo submit twap|vwap|iceberg …` (a parent order on orders.intents, worked by the algos
service) and `hean algo status` (every parent with its latest execution report, from the log).

The parent is an event like any intent: the algos service folds it and sends its children, each
an ordinary SubmitOrder through risk. Its parameters are checked here first (one line, exit 2) and
again when any service decodes it (SubmitAlgo.__post_init__), so a bad parent never starts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from schemas.events import AlgoReport, Event, SubmitAlgo
from schemas.topics import ALGOS_REPORTS, ORDERS_INTENTS
from services.cli.orders import UsageError, _common, _decimal, _read
from services.domain.ids import derive_id
from services.runtime.codec import encode


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
    submit.add_argument("--slices", help="twap: how many children over the duration")
    submit.add_argument("--display", help="iceberg: the quantity shown at a time")
    submit.add_argument("--participation", help="twap/vwap: a child's cap as a fraction of the volume since the last")
    submit.add_argument("--topic-prefix", help="prefix of every topic name (default: the current session)")
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


def parent_order(args: argparse.Namespace, now_ns: int) -> SubmitAlgo:
    """The parent `hean algo submit` sends; a UsageError names the first bad argument."""
    common = _common(args.account, args.symbol, now_ns)
    side = {"buy": "Buy", "sell": "Sell"}.get(args.side.lower())
    if side is None:
        raise UsageError(f"--side must be Buy or Sell, got {args.side!r}")
    fields: dict[str, Any] = {"qty": _decimal("qty", args.qty), "limit_price": _decimal("price", args.price)}
    if args.kind == "iceberg":
        for name in ("duration", "slices", "participation"):
            if getattr(args, name) is not None:
                raise UsageError(f"an iceberg takes no --{name}")
        if args.price is None or args.display is None:
            raise UsageError("an iceberg needs --price and --display")
        fields["display_qty"] = _decimal("display", args.display)
        if fields["display_qty"] > fields["qty"]:
            raise UsageError(f"--display {args.display} is more than --qty {args.qty}")
    else:
        if args.display is not None:
            raise UsageError(f"a {args.kind} takes no --display")
        fields["duration_s"] = _int("duration", args.duration)
        if args.kind == "twap":
            fields["slices"] = _int("slices", args.slices)
            if fields["slices"] > 1000:
                raise UsageError(f"--slices must be at most 1000, got {args.slices!r}")
        elif args.slices is not None:
            raise UsageError("a vwap takes its slices from the configured curve (ALGOS_VWAP_CURVE), not --slices")
        participation = _decimal("participation", args.participation)
        if participation is not None and participation > 1:
            raise UsageError(f"--participation is a fraction of the volume, at most 1, got {args.participation!r}")
        fields["participation"] = participation
    try:
        return SubmitAlgo(id=derive_id("operator-algo", args.account, args.symbol, now_ns), **common,
                          side=side, kind=args.kind, **fields)
    except ValueError as exc:  # what the event itself refuses (a rule the checks above do not repeat)
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


async def _send(topic: str, parent: SubmitAlgo) -> None:
    from services.cli.topics import bootstrap  # the broker's client only when sending (hean starts faster)
    from services.runtime.bus import make_producer, send_and_wait
    producer = make_producer(bootstrap())
    await producer.start()
    try:
        await send_and_wait(producer, [(topic, parent.symbol.encode(), encode(parent))])
    finally:
        await producer.stop()


def main(args: argparse.Namespace, prefix: str) -> int:
    """`hean algo ACTION`; bad input is one line on stderr and exit code 2."""
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
    return 0
