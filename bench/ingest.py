"""Ingest throughput: `POST /v1/interactions` on the embedded default (SQLite) against a bare aiohttp
JSON handler measured in the same run.

    python bench/ingest.py [--seconds 10] [--connections 64] [--rounds 3] [--no-pin]

Load comes from wrk (Debian package `wrk`), one thread pinned to the second core; each server is a
single process pinned to the first. Every request is a new customer (new profile, identifier, two
outbox events): the heavier path. Each 201 from omnihub is a durable commit (WAL, synchronous=FULL).
Floor and hub runs alternate for --rounds rounds and medians are reported: this machine's
throughput drifts by tens of percent over minutes, so a single pair of runs says little.
Target (issue 2): ratio >= 0.40.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LUA = r"""
local counter = 0
local template = '{"channel":"sms","direction":"inbound","kind":"message","provider":"bench",' ..
  '"provider_ref":"B-%d-%d","occurred_at":"2026-11-23T10:00:00+09:00",' ..
  '"sender":{"identifiers":[{"type":"phone","value":"010-%04d-%04d"}],"display_name":"Bench Customer"},' ..
  '"content":{"text":"배송지 변경 부탁드립니다"}}'
local tid = math.random(1000, 9999)
request = function()
  counter = counter + 1
  local body = string.format(template, tid, counter, 2000 + math.floor(counter / 10000) % 8000, counter % 10000)
  return wrk.format("POST", "/v1/interactions", {["Content-Type"] = "application/json"}, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


PIN = True


def pin(cpu: int) -> list[str]:
    usable = PIN and shutil.which("taskset") and (os.cpu_count() or 1) > 1
    return ["taskset", "-c", str(cpu)] if usable else []


def run_wrk(port: int, seconds: int, connections: int, script: Path) -> tuple[float, str]:
    out = subprocess.run(
        [*pin(1), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), "--latency",
         f"http://127.0.0.1:{port}/v1/interactions"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers during the bench:\n{out}")
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    return rps, p99.group(1) if p99 else "?"


def measure(cmd: list[str], port: int, env: dict[str, str], args, script: Path) -> tuple[float, str]:
    proc = subprocess.Popen([*pin(0), *cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        run_wrk(port, 2, args.connections, script)  # warm-up
        return run_wrk(port, args.seconds, args.connections, script)
    finally:
        proc.terminate()
        proc.wait(10)


def alternate_rounds(args, script: Path, hub_env: Callable[[int], dict[str, str]]) -> tuple[list, list]:
    """Floor and hub runs, alternating for args.rounds rounds; `hub_env(round)` adds the hub's settings."""
    floors, hubs = [], []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    omnihub = Path(sys.executable).with_name("omnihub")
    for round_no in range(args.rounds):
        port = free_port()
        floors.append(measure([sys.executable, str(ROOT / "bench/floor_server.py"), str(port)],
                              port, env, args, script))
        port = free_port()
        hubs.append(measure([str(omnihub), "serve", "--port", str(port)], port,
                            {**env, "OMNIHUB_LOG_LEVEL": "WARNING", **hub_env(round_no)}, args, script))
    return floors, hubs


def report(name: str, args, floor_label: str, hub_label: str, hub_note: str, floors: list, hubs: list,
           target: str = "") -> None:
    floor, hub = statistics.median(r for r, _ in floors), statistics.median(r for r, _ in hubs)
    where = "server pinned to core 0, wrk to core 1" if PIN else "unpinned"
    width = max(len(floor_label), len(hub_label), len("ratio")) + 1
    print(f"{name} bench: wrk 1 thread, {args.connections} connections, {args.seconds}s x {args.rounds} rounds "
          f"(medians), {where}")
    print(f"{floor_label:<{width}}: {floor:9.0f} req/s   rounds: {', '.join(f'{r:.0f}' for r, _ in floors)}")
    print(f"{hub_label:<{width}}: {hub:9.0f} req/s   rounds: {', '.join(f'{r:.0f}' for r, _ in hubs)}")
    print(" " * (width + 2) + f"{hub_note}; p99 " + ", ".join(p for _, p in hubs))
    print(f"{'ratio':<{width}}: {hub / floor:9.2f}" + (f"  ({target})" if target else ""))
    # Each round's hub run follows its floor run by seconds; the medians above may pair runs minutes
    # apart while the machine drifts, so the rounds' own ratios are shown too.
    paired = [h / f for (f, _), (h, _) in zip(floors, hubs, strict=True)]
    print(f"{'round by round':<{width}}: {statistics.median(paired):9.2f}  (median of "
          + ", ".join(f"{r:.2f}" for r in paired) + ")")


def main() -> None:
    parser = argparse.ArgumentParser(description="omnihub ingest throughput against a bare aiohttp floor")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true", help="let server and wrk share every core")
    args = parser.parse_args()
    global PIN
    PIN = not args.no_pin
    if not shutil.which("wrk"):
        sys.exit("bench/ingest.py needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ingest.lua"
        script.write_text(LUA)
        floors, hubs = alternate_rounds(
            args, script, lambda n: {"OMNIHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench{n}.db"})
    report("ingest", args, "floor  bare aiohttp JSON handler", "omnihub POST /v1/interactions",
           "SQLite, every 201 a durable commit", floors, hubs, "target >= 0.40")


if __name__ == "__main__":
    main()
