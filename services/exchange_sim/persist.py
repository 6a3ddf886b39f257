"""The simulator's venue state on disk, so a stopped and restarted session finds its venue as it
left it: every account's orders, fills, positions and wallet, each market's process where it was
(seeded random state, books, update ids, sequence numbers), the recent public trades and the
candles of all of them, the lockstep clock. A file saved before candles were kept loads with none.

Saved atomically (a temporary file, then a rename) every `state_every_seconds` while running and
on stop; loaded at start when the file exists. A SIGKILLed simulator loses at most the last
interval: the platform's reconciliation then reports what the venue no longer knows as missing.
The file is Python's pickle of the simulator's own objects: it is written and read only by the
simulator, in the session's directory under HEAN_HOME, never from elsewhere.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.exchange_sim.server import Simulator

FORMAT = 1
# What makes the venue's state; one object graph, so the engine, the streams and the markets
# keep sharing the same market objects after a load.
PARTS = ("market", "symbols", "books", "tickers", "seq", "trade_counter", "engine", "trades", "candles",
         "lockstep_ms")


class StateMismatch(ValueError):
    """The saved venue does not fit this configuration (other symbols, other API keys)."""


def save(sim: Simulator, path: Path) -> int:
    """Write the venue's state to `path` (atomically); returns the bytes written."""
    payload = pickle.dumps({"format": FORMAT, "symbols_listed": sorted(sim.symbols), "keys": sorted(sim.secrets),
                            "parts": {name: getattr(sim, name) for name in PARTS}},
                           protocol=pickle.HIGHEST_PROTOCOL)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    with scratch.open("wb") as out:
        out.write(payload)
        out.flush()
        os.fsync(out.fileno())
    scratch.replace(path)
    return len(payload)


def load(sim: Simulator, path: Path) -> bool:
    """Restore the venue's state from `path` if it exists; False when there is nothing to load."""
    if not path.exists():
        return False
    saved: dict[str, Any] = pickle.loads(path.read_bytes())  # the simulator's own file (module docstring)
    if saved.get("format") != FORMAT:
        raise StateMismatch(f"{path} has state format {saved.get('format')}, this simulator reads {FORMAT}; "
                            "start a new session (hean up --new-session) or delete the file")
    if saved["symbols_listed"] != sorted(sim.symbols) or saved["keys"] != sorted(sim.secrets):
        raise StateMismatch(f"{path} holds a venue for symbols {saved['symbols_listed']} and other API keys than "
                            f"this one ({sorted(sim.symbols)}); start a new session (hean up --new-session)")
    for name, value in saved["parts"].items():
        setattr(sim, name, value)
    return True
