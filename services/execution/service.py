"""Execution as the runtime sees it: orders.decisions + orders.events folded by the pure core.

Execution's effects are at the venue, so this definition is not what `hean run execution` runs
(that is the process in shell.py, one per account, holding the lease); it is how `hean replay
execution` folds the log and `hean state execution` reads the executor's snapshots, which hold
the same core state (one per account, scope "execution@<account>").
"""

from __future__ import annotations

from schemas.events import DecisionEvent, ExecutionEvent
from schemas.topics import ORDERS_DECISIONS, ORDERS_EVENTS
from services.execution import core
from services.runtime.service import ServiceDef

INPUTS = (ORDERS_DECISIONS, ORDERS_EVENTS)


def definition() -> ServiceDef[core.ExecutionState]:
    return ServiceDef(
        name="execution",
        inputs=INPUTS,
        accepts=DecisionEvent | ExecutionEvent,
        state_type=core.ExecutionState,
        initial_state=core.initial_state,
        step=core.step,
        fold=core.fold,
        partitioned=False,
        # An order's reports are in one partition, in order; the rest are sets and sums
        # (tests/services/execution/test_core.py folds every interleaving to one state).
        order_free=True,
        summarize=core.summarize,
        account_of=core.account_of,
        merge_accounts=core.merge_accounts,
    )
