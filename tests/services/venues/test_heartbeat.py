"""The one liveness rule of both venues' WebSockets (services/venues/heartbeat.py)."""

from __future__ import annotations

import pytest

from services.venues.heartbeat import verdict


@pytest.mark.parametrize(("now", "last", "unanswered", "expected"), [
    (100.0, 99.0, None, None),  # live: a message a second ago, no ping out
    (100.0, 99.0, 95.0, None),  # a ping out for 5 s: within the 10 s
    (100.0, 99.0, 89.0, "pong_timeout"),  # pushing, but the ping of 11 s ago went unanswered
    (100.0, 50.0, None, "stale"),  # silent for 50 s > 45
    (100.0, 50.0, 80.0, "stale"),  # silent and unanswered: silence is the cause named
    (100.0, 55.0, 90.0, None),  # exactly at both limits: not yet
])
def test_a_connection_is_given_up_only_when_silent_or_unanswering(now: float, last: float,
                                                                 unanswered: float | None,
                                                                 expected: str | None) -> None:
    assert verdict(now, last, unanswered, stale_after=45.0, pong_timeout=10.0) == expected
