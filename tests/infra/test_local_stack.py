"""`hean infra`: idempotent up, clear messages for stale pid files and busy ports, data kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.events import TradeReceived
from schemas.topics import DEMO_TRADES
from services.runtime.codec import decode_as
from services.tally.feed import produce_trades, synthetic_trades
from tests.conftest import create_topics, read_topic

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def hean(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=180, cwd=ROOT)


def test_up_when_already_running_is_fine(bootstrap: str, redis_url: str) -> None:
    result = hean("infra", "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kafka: already running" in result.stdout
    assert "redis: up" in result.stdout
    status = hean("infra", "status")
    assert status.returncode == 0 and "kafka: running" in status.stdout


def test_stale_pid_file_and_busy_port_get_clear_messages(bootstrap: str, tmp_path: Path) -> None:
    """A second stack pointed at the live broker's port: the stale pid is cleared, the port refused."""
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "kafka.pid").write_text("999999\n")
    port = bootstrap.rsplit(":", 1)[1]
    result = subprocess.run(["bash", str(ROOT / "infra" / "kafka.sh"), "start"], capture_output=True, text=True,
                            env={**os.environ, "HEAN_HOME": str(home), "HEAN_KAFKA_PORT": port}, timeout=60)
    assert result.returncode == 1
    assert "removing stale pid file" in result.stdout
    assert f"port {port} is in use" in result.stderr
    redis = hean("infra", "up", HEAN_HOME=str(home), HEAN_KAFKA_PORT=port, HEAN_REDIS_PORT=port)
    assert redis.returncode == 1


def test_redis_port_taken_by_something_else(bootstrap: str) -> None:
    from services.cli.infra import LocalStack, redis_up

    stack = LocalStack(home=Path("/nonexistent"), kafka_port=0, redis_port=int(bootstrap.rsplit(":", 1)[1]))
    assert redis_up(stack) == 1


async def test_down_then_up_keeps_topic_data(bootstrap: str, redis_url: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, [DEMO_TRADES])
    trades = list(synthetic_trades(50, seed=4))
    await produce_trades(bootstrap, prefix + DEMO_TRADES, trades)

    down = hean("infra", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "kafka: stopped" in down.stdout
    up = hean("infra", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "kafka: up" in up.stdout

    kept = [decode_as(r.value, TradeReceived) for r in await read_topic(bootstrap, prefix + DEMO_TRADES)]
    assert sorted(t.id for t in kept) == sorted(t.id for t in trades)
