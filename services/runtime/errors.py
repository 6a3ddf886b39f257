"""The error tree every HEAN service shares, and what the shell does with each branch.

    HeanError
    ├── DecodeError           a record that is not a valid event → dlq, processing moves on
    │   └── UnsupportedVersion    a schema major this code does not know → dlq
    ├── ConfigError           a wrong or missing setting → refuse to start, naming the key
    ├── InvariantViolation    the core's state is broken → crash; restart from the snapshot
    ├── DeliveryFailed        the broker refused or lost produced records → crash; restart and
    │                         rebuild from the log (nothing that depended on them happened)
    └── TransientError        retriable = True: back off and try again (broker, Redis, venue)

The shell branches on these classes and on `retriable`, never on lists of library exceptions.
"""

from __future__ import annotations


class HeanError(Exception):
    """Base of every error HEAN raises on purpose."""

    retriable: bool = False


class DecodeError(HeanError):
    """Bytes that do not decode into a known, valid event.

    `reason` is a short machine word ("malformed", "invalid", "unsupported_version") used as a
    metric label and stored with the dead letter; the message says what was found.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnsupportedVersion(DecodeError):
    """An event whose schema major version this code does not read."""

    def __init__(self, event_type: str, version: int, supported: int) -> None:
        super().__init__(
            "unsupported_version",
            f"Expected schema major {supported} for {event_type!r}, found {version}; "
            "upgrade this service or route the producer to a new topic.",
        )
        self.version = version


class NotAccepted(DecodeError):
    """A valid HEAN event of a type this reader does not take (a shared topic carries several
    types: risk reads AccountUpdated from accounting.positions, not PositionUpdated). Skipped,
    never dead-lettered: nothing is wrong with it."""

    def __init__(self, event_type: str) -> None:
        super().__init__("not_accepted", f"{event_type} is not among the types this reader takes")
        self.event_type = event_type


class ConfigError(HeanError):
    """A setting that is missing or has the wrong type; raised at startup, naming the key."""


class InvariantViolation(HeanError):
    """The core found its own state impossible (e.g. a fill for an unknown order)."""


class DeliveryFailed(HeanError):
    """Produced records were not acknowledged by the broker (refused, too large, timed out).

    Not retried in place: the process exits so its supervisor restarts it, and the restart
    rebuilds from what the log really holds."""


class TransientError(HeanError):
    """A failure worth retrying after a backoff."""

    retriable = True
