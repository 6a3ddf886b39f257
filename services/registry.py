"""Every service `hean run/replay/state` knows, by name, imported only when asked for."""

from __future__ import annotations

import importlib
from typing import Any

from services.runtime.service import ServiceDef

SERVICES: dict[str, str] = {
    "tally": "services.tally.shell:DEFINITION",
}


def definition(name: str) -> ServiceDef[Any]:
    """The ServiceDef registered under `name`; an unknown name lists the known ones."""
    try:
        target = SERVICES[name]
    except KeyError:
        raise SystemExit(f"Unknown service {name!r}; known: {', '.join(sorted(SERVICES))}") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
