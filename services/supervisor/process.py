"""One supervised child process: started, watched, restarted after a crash, stopped cleanly.

A child that exits while the stack is running is restarted with a growing delay (0.5 s doubling
up to 30 s, reset after a minute of good health), so a crash loop does not spin the CPU. Its
output goes to `.hean/logs/NAME.log`, so the terminal stays the live view's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 15.0
HEALTHY_AFTER_SECONDS = 60.0


class Child:
    """`hean run NAME` (or any argv) kept alive until `stop()`."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.last_exit: int | None = None
        self.started_at = 0.0
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running and self.process else None

    async def start(self) -> None:
        await self._spawn()
        self._watch = asyncio.create_task(self._keep_alive())

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=self.env,
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children in order
            )
        self.started_at = time.monotonic()

    async def _keep_alive(self) -> None:
        delay = 0.5
        while not self._stopping:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            self.last_exit = code
            if time.monotonic() - self.started_at > HEALTHY_AFTER_SECONDS:
                delay = 0.5
            log.warning("%s exited with %s; restarting in %.1f s", self.name, code, delay)
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)
            if self._stopping:
                return
            self.restarts += 1
            while not self._stopping:
                try:
                    await self._spawn()
                    break
                except OSError as exc:  # the watcher must not die of it: the child would stay down unseen
                    self.last_exit = -1
                    log.error("%s could not be restarted (%s); trying again in %.1f s", self.name, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(30.0, delay * 2)

    def last_log_line(self) -> str:
        """The child's last line of output (why it crashed, usually)."""
        with contextlib.suppress(OSError), self.log_path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else ""
        return ""

    def kill(self) -> None:
        """SIGKILL the current process (chaos and tests); the watcher restarts it."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def stop(self) -> None:
        """SIGTERM (the services' graceful path), then SIGKILL after the grace period."""
        self._stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                print(f"hean up: {self.name} did not stop in {STOP_GRACE_SECONDS:.0f} s; killing it", file=sys.stderr)
                process.kill()
                await process.wait()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
