"""Which trades ingest has published, so each venue trade reaches md.trades once, in order, even
across reconnects and SIGKILLs.

The public stream has no replay: trades printed while ingest was down or reconnecting come only
from the venue's REST (recent trades, newest first, a bounded page). On every (re)connect the
shell asks for that page once the subscription is acknowledged and publishes, before any live
trade, the page's trades newer than the last one published (`TradeLedger.fill`); the live trades
that follow are filtered by id (`admit`), since the page and the stream overlap. A restarted
process learns what it had published by reading md.trades back (services/ingest/resume.py).

When the page does not reach back to the last published trade, trades in between may be lost:
`fill` says so (`GapFill.missing_since_ns`), and the shell counts and logs it and publishes a
TradeGapDetected on control (`trade_gap`) naming both ends of the hole. It is never silent.
No I/O here: the shell does the reading and the publishing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.events import TradeGapDetected, TradeGapReason, TradeReceived
from schemas.topics import MD_TRADES
from services.domain.ids import trade_gap_id

# Trade ids remembered per symbol: a REST page (1000 on linear) plus the live trades that overlap
# it, with room to spare. Ids only, so a symbol costs ~150 kB.
MEMORY = 2_000


@dataclass
class _Published:
    last_ns: int = -1  # ts_event of the newest trade published
    last_trade_id: str = ""  # the venue's id of that trade (the last one met at that time)
    ids: set[str] = field(default_factory=set)  # event ids of the last MEMORY trades
    order: deque[str] = field(default_factory=deque)


@dataclass(frozen=True)
class GapFill:
    """What one REST page adds: `events` to publish (oldest first), and, when the page may not
    reach back to the last published trade, that trade's time (trades after it and before
    `events[0]` may be lost)."""

    events: list[TradeReceived]
    missing_since_ns: int | None = None


class TradeLedger:
    """The trades published per symbol: the newest one's time and the ids of the last `memory`."""

    def __init__(self, memory: int = MEMORY) -> None:
        self.memory = memory
        self._symbols: dict[str, _Published] = {}

    def published(self, event: TradeReceived) -> None:
        """Remember `event` as published (on sending it, or on reading it back from md.trades)."""
        state = self._symbols.get(event.symbol)
        if state is None:
            state = self._symbols[event.symbol] = _Published()
        if event.id in state.ids:
            return
        state.ids.add(event.id)
        state.order.append(event.id)
        if len(state.order) > self.memory:
            state.ids.discard(state.order.popleft())
        if event.ts_event >= state.last_ns:
            state.last_ns, state.last_trade_id = event.ts_event, event.trade_id

    def last_ns(self, symbol: str) -> int | None:
        """ts_event of the newest trade of `symbol` published, None before the first."""
        state = self._symbols.get(symbol)
        return state.last_ns if state is not None else None

    def last_trade(self, symbol: str) -> tuple[str, int] | None:
        """The venue's id and the time of the newest trade of `symbol` published, None before the first."""
        state = self._symbols.get(symbol)
        return (state.last_trade_id, state.last_ns) if state is not None else None

    def admit(self, events: Iterable[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
        """The (topic, key, event) triples to publish: md.trades events not published before,
        every other event as it is. Admitted trades count as published."""
        out = []
        for entry in events:
            event = entry[2]
            if entry[0] == MD_TRADES:
                state = self._symbols.get(event.symbol)
                if state is not None and event.id in state.ids:
                    continue
                self.published(event)
            out.append(entry)
        return out

    def fill(self, symbol: str, page: Sequence[TradeReceived], full: bool) -> GapFill:
        """The trades of a REST `page` (oldest first) newer than the last one published. `full`: the
        page holds as many trades as the venue returns at most, so older ones may exist beyond it.

        Before the first published trade there is nothing to fill: the live stream starts the symbol.
        A trade older than the last published one was published (the stream is in time order);
        one at the same time was, if its id is known."""
        state = self._symbols.get(symbol)
        if state is None:
            return GapFill([])
        last = state.last_ns
        events = [t for t in page if t.symbol == symbol and t.ts_event >= last and t.id not in state.ids]
        reaches_back = not full or not page or page[0].ts_event < last or page[0].id in state.ids
        return GapFill(events, None if reaches_back else last)


def trade_gap(venue: str, category: str, symbol: str, reason: TradeGapReason, last: tuple[str, int],
              first: TradeReceived | None, now_ns: int) -> TradeGapDetected:
    """The control event for a hole in md.trades after `last` (the published trade's venue id and
    time) and before `first` (the oldest trade recovered, None when none was read). Its time is the
    venue's (`first`'s) where there is one, so the same hole found twice is the same event."""
    first_id, first_ts = (first.trade_id, first.ts_event) if first is not None else ("", 0)
    return TradeGapDetected(
        id=trade_gap_id(venue, category, symbol, last[0], reason, first_id), ts_event=first_ts or now_ns,
        ts_ingest=now_ns, venue=venue, category=category, symbol=symbol, reason=reason, last_trade_id=last[0],
        last_trade_ts=last[1], first_trade_id=first_id, first_trade_ts=first_ts)
