"""A broker and a Redis of a run's own, so a fault test can SIGKILL the one and wipe the other
without touching the shared local stack (or anything else using it at the time).

`PrivateBroker` is the project's own Kafka (infra/kafka.sh) with its data under the run's home and
on free ports; `kill()` is a SIGKILL (no controlled shutdown: the log must recover from whatever
was on disk), `start()` brings the same node back on the same data. `PrivateRedis` is Debian's
redis-server without persistence, so `FLUSHALL` is the whole truth of what survives.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

ROOT = Path(__file__).resolve().parents[2]


def free_port_pair() -> int:
    """A port P with P and P + 1 free (the broker listens on P, its controller on P + 1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise OSError("no two adjacent free ports found")


class PrivateBroker:
    """One KRaft node of the run's own (see the module docstring)."""

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = home
        self.port = port or free_port_pair()
        self.env = {**os.environ, "HEAN_HOME": str(home), "HEAN_KAFKA_PORT": str(self.port),
                    "HEAN_KAFKA_CONTROLLER_PORT": str(self.port + 1), "HEAN_KAFKA_HEAP": "384m"}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        try:
            return int((self.home / "kafka" / "kafka.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    async def start(self) -> None:
        """Start (or restart on the same data) and return once the broker accepts connections."""
        process = await asyncio.create_subprocess_exec("bash", str(ROOT / "infra" / "kafka.sh"), "start",
                                                       env=self.env, stdout=subprocess.PIPE,
                                                       stderr=subprocess.STDOUT)
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"private broker did not start: {out.decode(errors='replace')[-2000:]}")

    async def kill(self) -> None:
        """SIGKILL (no controlled shutdown, no flush beyond what the OS has), then wait until the
        process is gone. The broker is kafka.sh's detached child, so init reaps it."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        for _ in range(500):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"broker pid {pid} still alive 10 s after SIGKILL")

    async def stop(self) -> None:
        process = await asyncio.create_subprocess_exec("bash", str(ROOT / "infra" / "kafka.sh"), "stop",
                                                       env=self.env, stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.DEVNULL)
        await process.wait()


class PrivateRedis:
    """redis-server on a free port, no persistence, removed by `stop()`."""

    def __init__(self, home: Path) -> None:
        self.home = home
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", str(self.home)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = aioredis.Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    if await client.ping():
                        return
                except (OSError, RedisConnectionError):
                    await asyncio.sleep(0.05)
            raise RuntimeError(f"redis-server did not answer on {self.port}")
        finally:
            await client.aclose()

    async def flushall(self) -> None:
        client = aioredis.Redis.from_url(self.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
