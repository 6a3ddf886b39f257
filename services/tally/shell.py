"""Wires the tally core to the runtime: input demo.trades, output demo.tallies, per partition."""

from __future__ import annotations

from schemas.events import TradeReceived
from schemas.topics import DEMO_TRADES
from services.runtime.service import ServiceDef
from services.tally import core

DEFINITION: ServiceDef[core.TallyState] = ServiceDef(
    name="tally",
    inputs=(DEMO_TRADES,),
    accepts=TradeReceived,
    state_type=core.TallyState,
    initial_state=core.initial_state,
    step=core.step,
    partitioned=True,
    summarize=core.summarize,
)
