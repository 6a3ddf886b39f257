"""Pointing HEAN at a real venue: the right URLs, no simulator, and no start with keys that
cannot be real — checked where a user would meet them (`hean up --venue`, execution's settings,
the compose override), without touching the network (this machine has none; a testnet run is
documented in docs/REAL-VENUE.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.cli import session
from services.execution.config import ExecutionConfig
from services.runtime.errors import ConfigError
from services.runtime.settings import Secret
from services.supervisor.stack import StackConfig, plan
from services.venues.bybit.endpoints import VENUES, credential_problem, is_real_bybit

ROOT = Path(__file__).resolve().parents[3]
KEY, SECRET = "AbCdEfGhIjKlMnOpQr", "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0PpOoNnMmLl"  # shaped like Bybit's, not real


@pytest.mark.parametrize("url, real", [("https://api-testnet.bybit.com", True), ("https://api.bytick.com", True),
                                       ("wss://stream.bybit.com/v5/private", True), ("http://127.0.0.1:8802", False),
                                       ("http://exchange-sim:8802", False), ("https://bybit.com.evil.example", False)])
def test_real_bybit_hosts_are_recognised(url: str, real: bool) -> None:
    assert is_real_bybit(url) is real


@pytest.mark.parametrize("value", ["", "  ", "hean-sim-key", "changeme", "xxxxxxxxxxxxxxxxxxxx", "my-placeholder-key",
                                   "short"])
def test_placeholder_or_missing_credentials_are_named_without_their_value(value: str) -> None:
    problem = credential_problem("EXECUTION_API_KEY", value)
    assert problem and problem.startswith("EXECUTION_API_KEY")
    assert not value.strip() or value.strip() not in problem


def test_execution_refuses_a_real_venue_with_placeholder_keys_and_takes_real_looking_ones() -> None:
    testnet = VENUES["bybit-testnet"]
    with pytest.raises(ConfigError, match=r"refusing to trade on https://api-testnet\.bybit\.com: EXECUTION_API_KEY"):
        ExecutionConfig(rest_url=testnet.rest, ws_url=testnet.private_ws)  # the simulator's default key
    with pytest.raises(ConfigError, match="EXECUTION_API_SECRET is not set"):
        ExecutionConfig(rest_url=testnet.rest, ws_url=testnet.private_ws, api_key=KEY, api_secret=Secret(""))
    ExecutionConfig(rest_url=testnet.rest, ws_url=testnet.private_ws, api_key=KEY, api_secret=Secret(SECRET))
    ExecutionConfig()  # the simulator on loopback takes its own test keys


def test_hean_up_on_a_real_venue_runs_no_simulator_and_takes_its_urls(tmp_path: Path) -> None:
    keys = {"EXECUTION_API_KEY": KEY, "EXECUTION_API_SECRET": SECRET}
    services = plan(StackConfig(home=tmp_path, venue="bybit-testnet", extra_env=keys))
    assert "exchange-sim" not in services
    assert services["ingest"].child.env["INGEST_URL"] == VENUES["bybit-testnet"].public_ws
    execution = services["execution"].child.env
    assert (execution["EXECUTION_REST_URL"], execution["EXECUTION_WS_URL"]) == (
        VENUES["bybit-testnet"].rest, VENUES["bybit-testnet"].private_ws)
    assert "exchange-sim" in plan(StackConfig(home=tmp_path))  # the default stays the simulator
    with pytest.raises(ValueError, match="EXECUTION_API_KEY"):
        StackConfig(home=tmp_path, venue="bybit", extra_env={"EXECUTION_API_KEY": "", "EXECUTION_API_SECRET": ""})
    with pytest.raises(ValueError, match="known venues"):
        StackConfig(home=tmp_path, venue="binance")


def test_hean_up_refuses_placeholder_keys_with_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "HEAN_HOME": str(tmp_path), "EXECUTION_API_KEY": "hean-sim-key",
           "EXECUTION_API_SECRET": "hean-sim-secret"}
    done = subprocess.run([sys.executable, "-m", "services.cli.main", "up", "--venue", "bybit-testnet",
                           "--duration", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "EXECUTION_API_KEY holds a placeholder" in done.stderr
    assert "Traceback" not in done.stderr
    assert session.current(tmp_path) is None, "a refused run does not become the current session"


def test_a_session_keeps_its_venue(tmp_path: Path) -> None:
    prefix, continued = session.for_up(tmp_path, None, False, "sim")
    session.remember(tmp_path, prefix, "sim")
    assert session.for_up(tmp_path, None, False, "sim") == (prefix, True)
    testnet, continued = session.for_up(tmp_path, None, False, "bybit-testnet")
    assert not continued and testnet != prefix, "another venue's session is never continued"
    with pytest.raises(ConfigError, match="trades on sim, not bybit"):
        session.for_up(tmp_path, prefix, False, "bybit")


def test_compose_override_runs_no_simulator_and_nothing_waits_for_one() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose is not installed; `make install` installs Debian's docker-compose package")
    env = {**os.environ, "EXECUTION_API_KEY": KEY, "EXECUTION_API_SECRET": SECRET}
    done = subprocess.run([tool, "-f", "docker-compose.yml", "-f", "infra/compose/bybit-testnet.yml", "config"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert services["exchange-sim"]["scale"] == 0
    assert services["ingest"]["environment"]["INGEST_URL"] == VENUES["bybit-testnet"].public_ws
    assert services["execution"]["environment"]["EXECUTION_REST_URL"] == VENUES["bybit-testnet"].rest
    assert not [name for name, s in services.items() if "exchange-sim" in (s.get("depends_on") or {})]
    missing = {k: v for k, v in os.environ.items() if k not in ("EXECUTION_API_KEY", "EXECUTION_API_SECRET")}
    refused = subprocess.run([tool, "-f", "docker-compose.yml", "-f", "infra/compose/bybit-testnet.yml", "config"],
                             cwd=ROOT, env=missing, capture_output=True, text=True)
    assert refused.returncode != 0 and "EXECUTION_API_KEY" in refused.stderr
