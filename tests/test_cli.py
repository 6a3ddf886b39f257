"""The `hean` command: every subcommand answers --help; bad input gets a clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.cli.main import build_parser, main

SUBCOMMANDS = ["infra", "topics", "schemas", "run", "replay", "state", "sql", "kill-switch", "up", "demo", "orders",
               "order", "backtest", "algo", "compose"]


def test_every_subcommand_is_listed() -> None:
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert set(choices) == set(SUBCOMMANDS)


@pytest.mark.parametrize("command", [[], *[[c] for c in SUBCOMMANDS]])
def test_help(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "services.cli.main", *command, "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "usage: hean" in result.stdout


def test_replay_needs_a_start_point(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["replay", "tally"])
    assert info.value.code == 2
    assert "one of the arguments --from-beginning --from-offset --from-time is required" in capsys.readouterr().err


def test_unknown_service_lists_the_known_ones() -> None:
    with pytest.raises(SystemExit, match="known: accounting, algos, execution, risk, strategy, tally"):
        main(["state", "nope"])


def test_bad_time_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "tally", "--from-time", "yesterday"])
    assert "expected ms since the epoch or ISO 8601" in capsys.readouterr().err


def test_bad_setting_is_a_clean_exit(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HEAN_SNAPSHOT_EVERY_EVENTS", "many")
    assert main(["state", "tally"]) == 2
    assert "snapshot_every_events" in capsys.readouterr().err
