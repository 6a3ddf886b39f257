"""The backtest loop: the live cores over an in-process log, in the order live services meet events.

Live, every service reads topics; here one FIFO log carries the same (topic, event) pairs to the
consumers that read that topic live (each service's `inputs`, filtered by what it `accepts`), and
each service steps with the very `step` its shell hands the runtime (services/*/shell.py
`definition`: the core with its parameters and the traded-venue filter). The fill model reads
orders.decisions (as execution does) and ref.instruments (as the venue's rules). The recorded
instrument definitions are delivered first, as ingest publishes them before its streams start.
A market event starts a cascade that runs to quiescence before the next market event, exactly as a
lockstep live run settles after each released frame (services/supervisor/lockstep.py): the
zero-latency backtest is the lockstep run without the broker. The fill model sees each market step
(one symbol's events at one venue time) before the cores do, as the simulator fills resting orders
when its market steps and before it publishes the step's frames.

Parent orders (SubmitAlgo, `hean backtest --algo`) are worked by the algos service's own step
(services/algos/shell.py), which joins the loop only when there are parents: each goes into
orders.intents before the first market step at or after its time, as a live parent sent before
its market; its children are intents like the strategy's (risk, then the fill model), and its
execution reports stay in the run's algos.reports, which no core in the loop reads.

An output the loop has no consumer for (a new topic) stops the run (UnroutedOutput), as does an
intent the fill model cannot answer (venue.UnsupportedIntent): a backtest that silently drops
part of what the strategy says is worse than none.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from schemas.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    InstrumentDefined,
    IntentApproved,
    SubmitAlgo,
    TickerUpdated,
    TradeReceived,
)
from schemas.topics import (
    ALGOS_REPORTS,
    MD_BOOK,
    MD_TICKERS,
    MD_TRADES,
    ORDERS_DECISIONS,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
    REF_INSTRUMENTS,
)
from services.accounting import core as accounting
from services.accounting.config import AccountingConfig
from services.accounting.shell import definition as accounting_definition
from services.algos.config import AlgosConfig
from services.algos.shell import definition as algos_definition
from services.backtest.venue import FUNDING_INTERVAL_NS, FillModel
from services.risk import core as risk
from services.risk.config import RiskConfig
from services.risk.shell import definition as risk_definition
from services.runtime.errors import InvariantViolation
from services.runtime.service import ServiceDef
from services.strategy import core as strategy
from services.strategy.config import StrategyConfig
from services.strategy.shell import definition as strategy_definition

MARKET_TOPICS = {TradeReceived: MD_TRADES, BookSnapshotReceived: MD_BOOK, BookDeltaReceived: MD_BOOK,
                 TickerUpdated: MD_TICKERS}


class UnroutedOutput(InvariantViolation):
    """A core produced an event for a topic the backtest loop does not route."""


@dataclass(frozen=True)
class Setup:
    """What one backtest runs: the live services' settings and the fill model's latency."""

    strategy: StrategyConfig
    risk: RiskConfig
    accounting: AccountingConfig
    latency_ns: int = 0
    funding_interval_ns: int = FUNDING_INTERVAL_NS
    algos: AlgosConfig = field(default_factory=AlgosConfig)
    parents: tuple[SubmitAlgo, ...] = ()  # in start order

    @property
    def starting_balance(self) -> Decimal:
        return self.accounting.starting_balance

    def services(self) -> dict[str, ServiceDef[Any]]:
        """The services as their shells define them live (the same step functions); the algos
        service only with parent orders to work (it steps on every trade and book event)."""
        algos = {"algos": algos_definition(self.algos)} if self.parents else {}
        return {"strategy": strategy_definition(self.strategy), **algos, "risk": risk_definition(self.risk),
                "accounting": accounting_definition(self.accounting)}

    def account(self) -> str:
        return self.strategy.account


@dataclass
class Outcome:
    """Everything the run produced, per topic in log order, and the final states."""

    log: dict[str, list[Event]] = field(default_factory=dict)
    strategy_state: strategy.StrategyState = field(default_factory=strategy.initial_state)
    risk_state: risk.RiskState = field(default_factory=risk.initial_state)
    accounting_state: accounting.AccountingState = field(default_factory=accounting.initial_state)
    algos_state: Any = None  # the algos core's AlgoState when the run had parent orders
    market_events: int = 0
    first_ns: int = 0
    last_ns: int = 0
    prices: dict[str, list[tuple[int, Decimal]]] = field(default_factory=dict)  # trade prints, for the report

    def of(self, topic: str) -> list[Event]:
        return self.log.get(topic, [])


STEP_WINDOW_NS = 5_000_000


def steps(events: Iterable[Any], window_ns: int = STEP_WINDOW_NS) -> Iterable[list[Any]]:
    """Market steps: runs of consecutive events of one symbol whose venue times lie within
    `window_ns` of the run's first. One venue instant prints its book, trades and ticker with
    slightly different stamps (Bybit's book carries the matching engine's cts, a few ms before
    the trades' time; the simulator mimics it), so equal stamps would split one step in two."""
    group: list[Any] = []
    for event in events:
        if group and (event.symbol != group[0].symbol or abs(event.ts_event - group[0].ts_event) > window_ns):
            yield group
            group = []
        group.append(event)
    if group:
        yield group


def run(setup: Setup, events: Iterable[Any], progress: Callable[[int], None] | None = None,
        price_every: int = 1, instruments: Sequence[InstrumentDefined] = ()) -> Outcome:
    """Run the cores over `events` (market events in the order ingest published them), after the
    instrument definitions the data holds."""
    out = Outcome()
    venue = FillModel(setup.latency_ns, funding_interval_ns=setup.funding_interval_ns)
    services = setup.services()
    routes = _routes(services)
    state: dict[str, Any] = {name: service.initial_state() for name, service in services.items()}
    queue: deque[tuple[str, Event]] = deque()
    prints = 0
    parents = deque(sorted(setup.parents, key=lambda p: (p.ts_event, p.id)))

    def settle() -> None:
        while queue:
            topic, event = queue.popleft()
            out.log.setdefault(topic, []).append(event)
            _deliver(topic, event)

    def emit(topic: str, events_out: Sequence[Any]) -> None:
        for item in events_out:
            queue.append((item.topic, item.event) if topic == "" else (topic, item))

    def step_core(name: str, event: Event) -> None:
        service = services[name]
        if not isinstance(event, service.accepts):
            return  # live, the service's decoder refuses it (NotAccepted)
        state[name], emits = service.step(state[name], event)
        for item in emits:
            if item.topic not in routes:
                raise UnroutedOutput(f"{name} produced {type(item.event).__name__} for {item.topic!r}, which the "
                                     "backtest loop does not route; add a consumer for it in services/backtest/loop.py")
        emit("", emits)

    def _deliver(topic: str, event: Event) -> None:
        for consumer in routes[topic]:
            if consumer != "venue":
                step_core(consumer, event)
            elif isinstance(event, IntentApproved):
                emit(ORDERS_EVENTS, venue.on_decision(event))
            elif isinstance(event, InstrumentDefined):
                venue.define(event)

    for definition in instruments:
        queue.append((REF_INSTRUMENTS, definition))
        settle()
    out.log.pop(REF_INSTRUMENTS, None)
    for step in steps(events):
        while parents and parents[0].ts_event <= step[0].ts_event:
            queue.append((ORDERS_INTENTS, parents.popleft()))
            settle()
        emit(ORDERS_EVENTS, venue.on_step(step))
        settle()
        for event in step:
            if isinstance(event, TradeReceived):
                prints += 1
                if prints % price_every == 0:
                    out.prices.setdefault(event.symbol, []).append((event.ts_event, event.price))
            queue.append((MARKET_TOPICS[type(event)], event))
            settle()
        if not out.first_ns:
            out.first_ns = step[0].ts_event
        out.last_ns = step[-1].ts_event
        out.market_events += len(step)
        if progress is not None:
            progress(len(step))
    queue.extend((ORDERS_INTENTS, parent) for parent in parents)  # after the data: in the log, never started
    settle()
    emit(ORDERS_EVENTS, venue.finish())
    settle()
    for topic in MARKET_TOPICS.values():
        out.log.pop(topic, None)  # the input, not an output: the source holds it
    out.strategy_state, out.risk_state, out.accounting_state = state["strategy"], state["risk"], state["accounting"]
    out.algos_state = state.get("algos")
    return out


VENUE_INPUTS = (ORDERS_DECISIONS, REF_INSTRUMENTS)  # what execution and the venue read
KEPT = (ALGOS_REPORTS,)  # outputs no core in the loop reads (live: the recorder, hean algo status): kept, not routed


def _routes(services: dict[str, ServiceDef[Any]]) -> dict[str, tuple[str, ...]]:
    """topic → the consumers that read it, in a fixed order (the services', then the venue)."""
    topics = {t for service in services.values() for t in service.inputs} | set(VENUE_INPUTS) | set(KEPT)
    return {t: (*(n for n, s in services.items() if t in s.inputs), *(("venue",) if t in VENUE_INPUTS else ()))
            for t in sorted(topics)}
