"""`hean infra up|down|status`: the local stack without Docker.

Kafka (KRaft, jars from Maven Central) through infra/kafka.sh; Redis from Debian's redis-server
(or one already answering on the port, which is then used and left alone); chDB in-process, so
only its data directory is prepared. Every action is idempotent and says what it found.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


@dataclass(frozen=True)
class LocalStack:
    """Paths and ports of the local stack, from HEAN_HOME / HEAN_*_PORT."""

    home: Path
    kafka_port: int
    redis_port: int

    @classmethod
    def from_env(cls) -> LocalStack:
        home = Path(os.environ.get("HEAN_HOME", ROOT / ".hean")).resolve()
        return cls(home, int(os.environ.get("HEAN_KAFKA_PORT", "9092")),
                   int(os.environ.get("HEAN_REDIS_PORT", "6379")))

    @property
    def redis_dir(self) -> Path:
        return self.home / "redis"

    @property
    def redis_pidfile(self) -> Path:
        return self.redis_dir / "redis.pid"

    @property
    def chdb_dir(self) -> Path:
        return self.home / "chdb"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def redis_ping(port: int) -> bool:
    """True when a Redis server answers PING on the port (not just any listener)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def kafka(action: str, stack: LocalStack) -> int:
    env = {**os.environ, "HEAN_HOME": str(stack.home), "HEAN_KAFKA_PORT": str(stack.kafka_port)}
    return subprocess.call(["bash", str(INFRA / "kafka.sh"), action], env=env)


def redis_up(stack: LocalStack) -> int:
    if redis_ping(stack.redis_port):
        owner = "ours" if stack.redis_pidfile.exists() else "already running, used as is"
        print(f"redis: up on 127.0.0.1:{stack.redis_port} ({owner})")
        return 0
    if port_open(stack.redis_port):
        print(f"redis: port {stack.redis_port} is in use by something that is not Redis; "
              "stop it or set HEAN_REDIS_PORT")
        return 1
    server = shutil.which("redis-server")
    if server is None:
        print("redis: redis-server not found; install it (apt-get install redis-server) or start one")
        return 1
    stack.redis_dir.mkdir(parents=True, exist_ok=True)
    if stack.redis_pidfile.exists():
        print(f"redis: removing stale pid file {stack.redis_pidfile}")
        stack.redis_pidfile.unlink()
    subprocess.check_call([
        server, "--port", str(stack.redis_port), "--bind", "127.0.0.1", "--daemonize", "yes",
        "--dir", str(stack.redis_dir), "--pidfile", str(stack.redis_pidfile),
        "--logfile", str(stack.redis_dir / "redis.log"), "--save", "60 1", "--appendonly", "yes",
    ])
    for _ in range(50):
        if redis_ping(stack.redis_port):
            print(f"redis: up on 127.0.0.1:{stack.redis_port} (data {stack.redis_dir})")
            return 0
        time.sleep(0.1)
    print(f"redis: did not answer within 5 s; see {stack.redis_dir / 'redis.log'}")
    return 1


def redis_down(stack: LocalStack) -> int:
    if not stack.redis_pidfile.exists():
        state = "not started by hean; left running" if redis_ping(stack.redis_port) else "not running"
        print(f"redis: {state}")
        return 0
    pid = int(stack.redis_pidfile.read_text().strip() or 0)
    try:
        os.kill(pid, 15)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)
    except ProcessLookupError:
        pass
    stack.redis_pidfile.unlink(missing_ok=True)
    print("redis: stopped")
    return 0


def chdb_up(stack: LocalStack) -> int:
    stack.chdb_dir.mkdir(parents=True, exist_ok=True)
    try:
        import chdb  # noqa: F401
    except ImportError:
        print("chdb: not installed (pip install -e .)")
        return 1
    print(f"chdb: in-process engine, data {stack.chdb_dir}")
    return 0


def up() -> int:
    stack = LocalStack.from_env()
    stack.home.mkdir(parents=True, exist_ok=True)
    for rc in (kafka("start", stack), redis_up(stack), chdb_up(stack)):
        if rc:
            return rc
    from services.cli.topics import create_topics

    return create_topics()


def down() -> int:
    stack = LocalStack.from_env()
    return kafka("stop", stack) or redis_down(stack)


def status() -> int:
    stack = LocalStack.from_env()
    rc = kafka("status", stack)
    if redis_ping(stack.redis_port):
        print(f"redis: running on 127.0.0.1:{stack.redis_port}")
    else:
        print("redis: not running")
        rc = 1
    print(f"chdb: data {stack.chdb_dir} ({'present' if stack.chdb_dir.exists() else 'not created yet'})")
    return rc
