"""A run summed up: PnL, return, risk-adjusted ratios, drawdown, turnover, fees, win rate, exposure.

Money (PnL, fees, turnover, drawdown in quote) stays Decimal, taken from accounting's own
AccountUpdated events, so the report's PnL is the ledger's. Ratios are floats:
  - the equity curve is sampled on a regular grid (`bar_ns`: 1 s for runs under two hours, 1 min
    beyond) holding the last equity at each bar end, and per-bar returns are taken from it;
  - Sharpe = mean / stdev of the bar returns, Sortino = mean / downside deviation (root mean square
    of the negative returns), both annualized by sqrt(bars per 365-day year): crypto trades every day;
  - Calmar = annualized return (simple: return * year / duration) / max drawdown fraction;
  - max drawdown = the largest fall from an equity peak (quote and fraction of the peak), its
    duration the longest time equity stayed under a previous peak (to the end if never recovered);
  - win rate = share of position-reducing fills whose realized PnL change is positive;
  - exposure = share of the run's time with any position open.
A ratio whose denominator is zero (no variation, no drawdown) is reported as None, not infinity.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from schemas.events import AccountUpdated, FundingSettled, OrderFilled, OrderPartiallyFilled, PositionUpdated
from schemas.topics import ACCOUNTING_POSITIONS, ORDERS_EVENTS
from services.backtest.loop import Outcome

ZERO = Decimal(0)
YEAR_NS = 365 * 86_400 * 10**9
TWO_HOURS_NS = 2 * 3600 * 10**9


@dataclass(frozen=True)
class Metrics:
    """The headline figures of one run (see the module docstring for each definition)."""

    starting_balance: Decimal
    final_equity: Decimal
    pnl: Decimal
    total_return: float
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: Decimal
    max_drawdown_pct: float
    max_drawdown_duration_s: float
    turnover: Decimal
    fees: Decimal
    funding: Decimal  # paid on positions (negative: received)
    win_rate: float | None
    trades: int
    exposure: float
    duration_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def equity_curve(outcome: Outcome, account: str, starting_balance: Decimal) -> list[tuple[int, Decimal]]:
    """(ts, equity) after each of accounting's account updates, starting at the balance."""
    curve = [(outcome.first_ns, starting_balance)]
    curve += [(e.ts_event, e.equity) for e in outcome.of(ACCOUNTING_POSITIONS)
              if isinstance(e, AccountUpdated) and e.account == account]
    return curve


def fills(outcome: Outcome, account: str) -> list[OrderFilled | OrderPartiallyFilled]:
    return [e for e in outcome.of(ORDERS_EVENTS)
            if isinstance(e, OrderFilled | OrderPartiallyFilled) and e.account == account]


def sample(curve: Sequence[tuple[int, Decimal]], start_ns: int, end_ns: int, bar_ns: int) -> list[float]:
    """The equity at the start, then the last equity at the end of each bar up to the end (the
    curve is time ordered)."""
    values: list[float] = []
    i, last = 0, float(curve[0][1])
    t = start_ns
    while True:
        while i < len(curve) and curve[i][0] <= t:
            last = float(curve[i][1])
            i += 1
        values.append(last)
        if t >= end_ns:
            return values
        t += bar_ns


def ratios(values: Sequence[float], bars_per_year: float) -> tuple[float | None, float | None]:
    """(Sharpe, Sortino) of the bar-to-bar returns of `values`, annualized."""
    returns = [(b - a) / a for a, b in itertools.pairwise(values) if a]
    if len(returns) < 2:
        return None, None
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    scale = math.sqrt(bars_per_year)
    sharpe = mean / math.sqrt(var) * scale if var > 0 else None
    sortino = mean / downside * scale if downside > 0 else None
    return sharpe, sortino


def drawdown(curve: Sequence[tuple[int, Decimal]], end_ns: int) -> tuple[Decimal, float, float]:
    """(max drawdown in quote, as a fraction of its peak, longest time under water in s)."""
    peak, peak_ts = curve[0][1], curve[0][0]
    worst, worst_pct, longest = ZERO, 0.0, 0
    under_since: int | None = None
    for ts, equity in curve:
        if equity >= peak:
            if under_since is not None:
                longest = max(longest, ts - under_since)
                under_since = None
            peak, peak_ts = equity, ts
            continue
        if under_since is None:
            under_since = peak_ts
        fall = peak - equity
        if fall > worst:
            worst, worst_pct = fall, float(fall / peak) if peak else 0.0
    if under_since is not None:
        longest = max(longest, end_ns - under_since)
    return worst, worst_pct, longest / 1e9


def compute(outcome: Outcome, account: str, starting_balance: Decimal) -> Metrics:
    """Every figure of the module docstring for `account`'s run."""
    curve = equity_curve(outcome, account, starting_balance)
    start, end = outcome.first_ns, max(outcome.last_ns, outcome.first_ns + 1)
    duration = end - start
    bar = 10**9 if duration < TWO_HOURS_NS else 60 * 10**9
    sharpe, sortino = ratios(sample(curve, start, end, bar), YEAR_NS / bar)
    final = curve[-1][1]
    pnl = final - starting_balance
    total_return = float(pnl / starting_balance) if starting_balance else 0.0
    worst, worst_pct, under_s = drawdown(curve, end)
    annual = total_return * YEAR_NS / duration
    own = fills(outcome, account)
    turnover = sum((f.fill_qty * f.fill_price for f in own), ZERO)
    fees = sum((f.fee for f in own), ZERO)
    funding = sum((e.amount for e in outcome.of(ORDERS_EVENTS)
                   if isinstance(e, FundingSettled) and e.account == account), ZERO)
    return Metrics(starting_balance=starting_balance, final_equity=final, pnl=pnl, total_return=total_return,
                   sharpe=sharpe, sortino=sortino, calmar=annual / worst_pct if worst_pct else None,
                   max_drawdown=worst, max_drawdown_pct=worst_pct, max_drawdown_duration_s=under_s,
                   turnover=turnover, fees=fees, funding=funding, win_rate=win_rate(outcome, account), trades=len(own),
                   exposure=exposure(outcome, account, start, end), duration_s=duration / 1e9)


def win_rate(outcome: Outcome, account: str) -> float | None:
    """Share of position-reducing fills (realized PnL moved) with a gain; None without any."""
    realized: dict[str, Decimal] = {}
    wins = closes = 0
    for event in outcome.of(ACCOUNTING_POSITIONS):
        if not isinstance(event, PositionUpdated) or event.account != account:
            continue
        before = realized.get(event.symbol, ZERO)
        if event.realized_pnl != before:
            closes += 1
            wins += event.realized_pnl > before
        realized[event.symbol] = event.realized_pnl
    return wins / closes if closes else None


def exposure(outcome: Outcome, account: str, start: int, end: int) -> float:
    """Share of [start, end) with a non-zero position in any symbol."""
    open_symbols: set[str] = set()
    since: int | None = None
    held = 0
    for event in outcome.of(ACCOUNTING_POSITIONS):
        if not isinstance(event, PositionUpdated) or event.account != account:
            continue
        was_open = bool(open_symbols)
        (open_symbols.add if event.qty else open_symbols.discard)(event.symbol)
        if not was_open and open_symbols:
            since = event.ts_event
        elif was_open and not open_symbols and since is not None:
            held += event.ts_event - since
            since = None
    if since is not None:
        held += end - since
    return held / (end - start) if end > start else 0.0
