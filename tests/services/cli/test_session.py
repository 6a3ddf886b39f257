"""Which session `hean up` continues and the reading commands default to (services/cli/session.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import session
from services.runtime.errors import ConfigError


def test_a_first_run_starts_a_new_session_and_the_next_continues_it(tmp_path: Path) -> None:
    first, continued = session.for_up(tmp_path, None, new_session=False)
    assert not continued and first.startswith("run") and first.endswith(".")
    session.remember(tmp_path, first)
    again, continued = session.for_up(tmp_path, None, new_session=False)
    assert (again, continued) == (first, True)


def test_new_session_starts_fresh_and_an_explicit_prefix_wins(tmp_path: Path) -> None:
    session.remember(tmp_path, "run20260101000000.")
    fresh, continued = session.for_up(tmp_path, None, new_session=True)
    assert not continued and fresh != "run20260101000000."
    assert session.for_up(tmp_path, "mine.", new_session=False) == ("mine.", False)
    assert session.for_up(tmp_path, "run20260101000000.", new_session=True) == ("run20260101000000.", True)


def test_readers_take_explicit_then_env_then_the_current_session(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEAN_TOPIC_PREFIX", raising=False)
    assert session.for_reader(tmp_path, None) == ""
    session.remember(tmp_path, "run1.")
    assert session.for_reader(tmp_path, None) == "run1."
    monkeypatch.setenv("HEAN_TOPIC_PREFIX", "env.")
    assert session.for_reader(tmp_path, None) == "env."
    assert session.for_reader(tmp_path, "") == ""


@pytest.mark.parametrize("bad", ["has space.", "slash/", "ü."])
def test_a_prefix_that_is_no_topic_name_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="topic prefix"):
        session.remember(tmp_path, bad)
    (tmp_path / session.SESSION_FILE).write_text(bad)
    with pytest.raises(ConfigError, match="topic prefix"):
        session.current(tmp_path)
