"""What every venue adapter's parsers share: the malformed-frame error, the JSON-object prologue of
every frame, and what one public frame produces. Pure: no I/O.

Both venues' public streams and Bybit's private stream send one JSON object per WebSocket frame;
reading it (and refusing anything else with the same words) is done once, here, so a dead letter
says the same thing whichever parser met it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.events import Event
from services.runtime.errors import DecodeError

__all__ = ["FeedResult", "MalformedFrame", "json_object"]


class MalformedFrame(DecodeError):
    """A venue frame the adapter cannot read: dead-lettered and counted, never fatal. The message
    names what was expected and what was found (the field, the topic, the value)."""

    def __init__(self, message: str, reason: str = "malformed_frame") -> None:
        super().__init__(reason, message)


def json_object(raw: bytes | str, error: Callable[[str], DecodeError] = MalformedFrame) -> dict[str, Any]:
    """One frame as a JSON object; `error(message)` is raised for text that is not JSON or JSON
    that is not an object (an array, a number: no venue sends those as messages)."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise error(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise error(f"expected a JSON object, got {type(message).__name__}")
    return message


@dataclass
class FeedResult:
    """What one public frame (or REST depth snapshot) produced.

    - events: (topic, key, event) to publish, in order; never from a book that is out of sync.
    - resync: the books to ask a fresh snapshot for now (they lost sync: a gap, a crossed book; or
      never had one), by the feed's own key; how it is fetched is the feed's `book_sync`
      (services/venues/port.py). A feed names a book once per missing snapshot or once per frame
      that met the stale book, as its venue's rule has it.
    - gaps: how many books lost sync in this frame; reasons: why, for the log.
    - control: the frame itself when it was a control reply (subscribe ack, pong, an error).
    """

    events: list[tuple[str, str, Event]] = field(default_factory=list)
    resync: list[str] = field(default_factory=list)
    gaps: int = 0
    control: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)
