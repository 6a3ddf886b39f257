"""Everything `hean run` can start, by name, imported only when asked for.

SERVICES fold the log through the shared runtime (so `hean replay` and `hean state` work on them);
PROCESSES are the edges of the platform with their own loops (venue, WebSocket source, sink).
Execution is both: a process that acts, whose state is a fold `hean replay`/`hean state` know.
"""

from __future__ import annotations

import importlib
from typing import Any

from services.runtime.service import ServiceDef

SERVICES: dict[str, str] = {
    "tally": "services.tally.shell:DEFINITION",
    "accounting": "services.accounting.shell:definition",
    "strategy": "services.strategy.shell:definition",
    "risk": "services.risk.shell:definition",
    "algos": "services.algos.shell:definition",
    # Execution acts through its own process (PROCESSES, which `hean run` prefers); this folds
    # the same core over the log for `hean replay execution` and reads `hean state execution`.
    "execution": "services.execution.service:definition",
}
PROCESSES: dict[str, str] = {
    "exchange-sim": "services.exchange_sim.main:run",
    "ingest": "services.ingest.main:run",
    "recorder": "services.recorder.main:run",
    "execution": "services.execution.main:run",
}


def _load(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def definition(name: str) -> ServiceDef[Any]:
    """The ServiceDef registered under `name`; an unknown name lists the known ones."""
    if name not in SERVICES:
        raise SystemExit(f"Unknown service {name!r}; known: {', '.join(sorted(SERVICES))}")
    target = _load(SERVICES[name])
    return target if isinstance(target, ServiceDef) else target()  # a factory reads its settings


def process(name: str) -> Any:
    """The `run(settings, stop)` coroutine function of a process, or None if `name` is a service."""
    if name in PROCESSES:
        return _load(PROCESSES[name])
    if name in SERVICES:
        return None
    raise SystemExit(f"Unknown service {name!r}; known: {', '.join(sorted({*SERVICES, *PROCESSES}))}")
