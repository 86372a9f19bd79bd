"""What the HTTP benches share: ports and pinning, wrk, hubs serving an empty database, counting the
rows they wrote.

Every request a bench sends is new: its wrk script numbers requests from a base the bench passes
(`wrk ... -- BASE`), and each run on a database starts past every number an earlier run on it could
have sent (answered + one in flight per connection). Rows written are counted afterwards, so a
figure says how many answers were repeats that wrote nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The source tree the servers run (another checkout's, to compare it with this one's on the same load).
SOURCE = os.environ.get("OMNIHUB_BENCH_SOURCE", str(ROOT))
PG_ADMIN_DSN = os.environ.get("OMNIHUB_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
WARM_UP_S = 2
PIN = True

# Lua shared by the wrk scripts: `number()` is a request number no other request on the database had.
NUMBERING_LUA = r"""
local threads_started = 0
function setup(thread)
  thread:set("thread_no", threads_started)
  threads_started = threads_started + 1
end
local base, threads, counter = 0, 1, 0
function init(args)
  base = tonumber(args[1]) or 0
  threads = tonumber(args[2]) or 1
end
local function number()
  local n = base + counter * threads + (thread_no or 0)
  counter = counter + 1
  return n
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def pin(cpu: int | None) -> list[str]:
    usable = cpu is not None and PIN and shutil.which("taskset") and (os.cpu_count() or 1) > 1
    return ["taskset", "-c", str(cpu)] if usable else []


def need_wrk(bench: str) -> None:
    if not shutil.which("wrk"):
        sys.exit(f"{bench} needs wrk: apt-get install wrk")


@dataclass
class WrkRun:
    rps: float
    answered: int
    p99: str


def start_wrk(url: str, seconds: float, connections: int, script: Path, base: int, cpu: int | None = 1,
              threads: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [*pin(cpu), "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), "--latency",
         url, "--", str(base), str(threads)],
        stdout=subprocess.PIPE, text=True)


def finish_wrk(proc: subprocess.Popen) -> WrkRun:
    out, _ = proc.communicate()
    if proc.returncode != 0 or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk failed or saw errors:\n{out}")
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    return WrkRun(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                  int(re.search(r"(\d+) requests in", out).group(1)), p99.group(1) if p99 else "?")


class Database:
    """An empty database for one hub run: its URL, its interaction count, and dropping it."""

    url: str

    def count(self) -> int:
        raise NotImplementedError

    def drop(self) -> None:
        pass

    def index_reads(self) -> dict[str, float]:
        """Index entries read per index scan, for the indexes the ingest's lookups use."""
        return {}


class SqliteDatabase(Database):
    def __init__(self, directory: Path) -> None:
        self.path = directory / f"bench-{uuid.uuid4().hex[:8]}.db"
        self.url = f"sqlite+aiosqlite:///{self.path}"

    def count(self) -> int:
        if not self.path.exists():
            return 0
        with sqlite3.connect(self.path, timeout=30) as conn:
            try:
                return conn.execute("SELECT count(*) FROM interactions").fetchone()[0]
            except sqlite3.OperationalError:  # not migrated yet
                return 0


class PostgresDatabase(Database):
    def __init__(self) -> None:
        self.name = f"omnihub_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg(PG_ADMIN_DSN, f'CREATE DATABASE "{self.name}"')
        self.dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{self.name}"
        self.url = self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    def count(self) -> int:
        return _pg(self.dsn, "SELECT count(*) FROM interactions") or 0

    def drop(self) -> None:
        _pg(PG_ADMIN_DSN, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def index_reads(self) -> dict[str, float]:
        # Read once the hubs have exited (a backend flushes its statistics when it ends): a key
        # lookup reads about one entry per scan, a plan that filters reads the whole channel.
        import asyncpg

        async def run() -> dict[str, float]:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                rows = await conn.fetch(
                    "SELECT indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname IN "
                    "('uq_interactions_provider_ref', 'pk_identifiers', 'pk_profiles') AND idx_scan > 0")
                return {r["indexrelname"]: r["idx_tup_read"] / r["idx_scan"] for r in rows}
            finally:
                await conn.close()

        return asyncio.run(run())


def _pg(dsn: str, sql: str) -> int | None:
    import asyncpg

    async def run() -> int | None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            if sql.startswith("SELECT"):
                try:
                    return await conn.fetchval(sql)
                except asyncpg.UndefinedTableError:  # not migrated yet
                    return None
            await conn.execute(sql)
            return None
        finally:
            await conn.close()

    return asyncio.run(run())


@dataclass
class HubRun:
    wrk: WrkRun
    answered: int  # warm-up and timed run together
    rows: int  # interactions in the database afterwards
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the timed run, rows)
    index_reads: dict[str, float] = field(default_factory=dict)

    @property
    def repeats(self) -> int:
        # Requests still in flight when wrk stops may be committed unanswered: this is a lower bound.
        return max(0, self.answered - self.rows)

    def window_rates(self, window: float = 10) -> tuple[float, float]:
        """Rows written per second in the first and in the last `window` seconds of the timed run."""
        (t0, r0), (t_end, r_end) = self.samples[0], self.samples[-1]
        first = min(self.samples[1:], key=lambda s: abs(s[0] - t0 - window))
        last = min(self.samples[:-1], key=lambda s: abs(s[0] - (t_end - window)))
        return (first[1] - r0) / (first[0] - t0), (r_end - last[1]) / (t_end - last[0])


def start_server(cmd: list[str], env: dict[str, str], cpu: int | None = 0) -> subprocess.Popen:
    return subprocess.Popen([*pin(cpu), *cmd], env={**os.environ, "PYTHONPATH": SOURCE, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def hub_command(port: int) -> list[str]:
    return [str(Path(sys.executable).with_name("omnihub")), "serve", "--port", str(port)]


def floor_command(port: int) -> list[str]:
    return [sys.executable, str(ROOT / "bench/floor_server.py"), str(port)]


def measure_floor(path: str, seconds: float, connections: int, script: Path) -> WrkRun:
    port = free_port()
    server = start_server(floor_command(port), {})
    try:
        wait_port(port)
        finish_wrk(start_wrk(f"http://127.0.0.1:{port}{path}", WARM_UP_S, connections, script, 0))
        return finish_wrk(start_wrk(f"http://127.0.0.1:{port}{path}", seconds, connections, script, 0))
    finally:
        server.terminate()
        server.wait(10)


def measure_hubs(path: str, seconds: float, connections: int, script: Path, db: Database, env: dict[str, str],
                 *, hubs: int = 1, command: Callable[[int], list[str]] = hub_command, cpu: int | None = 0,
                 wrk_cpu: int | None = 1, sample_every: float | None = None) -> HubRun:
    """`hubs` hub processes on one empty database, all on one port (`command` must then bind it
    with SO_REUSEPORT): a warm-up, then the timed run, counting rows every `sample_every` seconds."""
    port = free_port()
    env = {"OMNIHUB_LOG_LEVEL": "WARNING", "OMNIHUB_DATABASE_URL": db.url, **env}
    servers = [start_server(command(port), env, cpu)]
    try:
        wait_port(port)  # the first hub has migrated the database: the others start on it
        servers += [start_server(command(port), env, cpu) for _ in range(hubs - 1)]
        time.sleep(5 if hubs > 1 else 0)  # no way to tell from outside when each one listens
        url = f"http://127.0.0.1:{port}{path}"
        warm = finish_wrk(start_wrk(url, WARM_UP_S, connections, script, 0, wrk_cpu))
        base = warm.answered + connections + 1
        # Every `sample_every` seconds, and 10.5 and 0.5 s before the end: the first and last 10 s.
        schedule = sorted({*(k * sample_every for k in range(int(seconds / sample_every) + 1)), seconds - 10.5,
                           seconds - 0.5} if sample_every else set())
        schedule = [t for t in schedule if 0 < t < seconds]
        if sample_every:
            time.sleep(0.5)  # the warm-up's last requests, answered or not, commit
        before = first = db.count() if sample_every else 0
        proc = start_wrk(url, seconds, connections, script, base, wrk_cpu)
        # wrk's clock starts once its script has loaded (sms.py's reads a file of signed requests):
        # the windows start at the first row the timed run writes.
        while sample_every and proc.poll() is None and (first := db.count()) == before:
            time.sleep(0.05)
        started = time.monotonic()
        samples = [(0.0, first)] if sample_every else []
        for at in schedule:
            time.sleep(max(0.0, started + at - time.monotonic()))
            samples.append((time.monotonic() - started, db.count()))
        timed = finish_wrk(proc)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(30)
    return HubRun(timed, warm.answered + timed.answered, db.count(), samples, db.index_reads())
