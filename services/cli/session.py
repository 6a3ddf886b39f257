"""The current session: which topic prefix `hean up` continues and the other commands read.

A session is a topic prefix (`runYYYYmmddHHMMSS.`) with everything under it: its topics, its
snapshots and lease in Redis, and the simulator's saved venue state. `hean up` writes the prefix
it runs to `$HEAN_HOME/session`, and the next `hean up` continues it, so Ctrl-C and `make run`
again carries on with the same positions and PnL. `--new-session` starts a fresh one.

A session has one venue (`hean up --venue`, default the simulator), kept in
`$HEAN_HOME/sessions/<session>/venue`: positions on the simulator and on Bybit's testnet must never
fold into one account, so `hean up` on another venue than the current session's starts a new one.

`hean state`, `hean replay`, `hean topics` and `hean kill-switch` use, in this order: the prefix
given on the command line, HEAN_TOPIC_PREFIX, the current session, or none.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from services.runtime.errors import ConfigError

SESSION_FILE = "session"
_VALID = re.compile(r"^[A-Za-z0-9._-]{0,200}$")


def new_prefix() -> str:
    """A fresh session's prefix, named after the moment it started."""
    return time.strftime("run%Y%m%d%H%M%S.")


def validate_prefix(prefix: str) -> str:
    """A prefix must be a legal start of a Kafka topic name."""
    if not _VALID.match(prefix):
        raise ConfigError(f"Expected a topic prefix of letters, digits, '.', '_' or '-', was {prefix!r}")
    return prefix


def current(home: Path) -> str | None:
    """The prefix of the session `hean up` ran last, or None when there is none yet."""
    try:
        text = (home / SESSION_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return validate_prefix(text) if text else None


def _venue_file(home: Path, prefix: str) -> Path:
    return home / "sessions" / (prefix.rstrip(".") or "default") / "venue"


def venue_of(home: Path, prefix: str) -> str | None:
    """The venue a session trades on; None for a session that never ran (sessions from before
    venues were recorded ran on the simulator)."""
    try:
        return _venue_file(home, prefix).read_text().strip() or "sim"
    except FileNotFoundError:
        return "sim" if (home / "sessions" / (prefix.rstrip(".") or "default")).exists() else None


def remember(home: Path, prefix: str, venue: str = "sim") -> None:
    """Make `prefix` the current session on `venue` (atomically: a crash leaves the old or the new one)."""
    home.mkdir(parents=True, exist_ok=True)
    scratch = home / f".{SESSION_FILE}.tmp"
    scratch.write_text(validate_prefix(prefix) + "\n")
    venue_file = _venue_file(home, prefix)
    venue_file.parent.mkdir(parents=True, exist_ok=True)
    venue_file.write_text(venue + "\n")
    scratch.replace(home / SESSION_FILE)


def for_up(home: Path, explicit: str | None, new_session: bool, venue: str = "sim") -> tuple[str, bool]:
    """The prefix `hean up` runs and whether it continues an earlier session. The current session
    continues only on its own venue; an explicit prefix of another venue's session is refused."""
    if explicit is not None:
        prefix = validate_prefix(explicit)
        ran_on = venue_of(home, prefix)
        if ran_on is not None and ran_on != venue:
            raise ConfigError(f"session {prefix!r} trades on {ran_on}, not {venue}; use another --topic-prefix "
                              "or --new-session")
        return prefix, prefix == current(home)
    if not new_session:
        existing = current(home)
        if existing is not None and venue_of(home, existing) in (None, venue):
            return existing, True
    fresh, n = new_prefix(), 1
    while fresh == current(home) or venue_of(home, fresh) is not None:  # two sessions begun in one second
        n += 1
        fresh = f"{new_prefix().rstrip('.')}-{n}."
    return fresh, False


def for_reader(home: Path, explicit: str | None) -> str:
    """The prefix a reading command uses: explicit, HEAN_TOPIC_PREFIX, the current session, or ""."""
    if explicit is not None:
        return validate_prefix(explicit)
    if "HEAN_TOPIC_PREFIX" in os.environ:
        return validate_prefix(os.environ["HEAN_TOPIC_PREFIX"])
    return current(home) or ""
