"""Real hub processes for the fault tests: started from the console script with a YAML config,
each on a free port, their output kept in a log file the failing test can point at."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.tcp_proxy import free_port

OMNIHUB = Path(sys.executable).with_name("omnihub")
START_TIMEOUT_S = 60.0  # generous: CI shares two cores with the other processes of a test


class HubProcess:
    """One `omnihub serve` on a free port."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
        clean_env.update(env or {})
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [str(OMNIHUB), "serve", "--config", str(config), "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, env=clean_env,
        )

    async def wait_healthy(self, http: aiohttp.ClientSession, path: str = "/healthz",
                           timeout: float = START_TIMEOUT_S) -> None:
        """Until `path` answers 200; fails at once if the process exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"omnihub exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                async with http.get(f"{self.base}{path}") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"omnihub did not answer 200 on {path} in {timeout}s; log: {self.log_path}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs; only what was made durable survives."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


class HubProcesses:
    """Writes one config and starts as many hubs on it as a test asks for."""

    def __init__(self, tmp_path: Path) -> None:
        self._dir = tmp_path
        self.started: list[HubProcess] = []

    def config(self, settings: dict[str, Any], name: str = "omnihub.yaml") -> Path:
        path = self._dir / name
        path.write_text(yaml.safe_dump(settings))
        return path

    def start(self, config: Path, env: dict[str, str] | None = None) -> HubProcess:
        hub = HubProcess(config, self._dir / f"hub{len(self.started)}.log", env)
        self.started.append(hub)
        return hub

    def kill_all(self) -> None:
        for hub in self.started:
            hub.kill()
