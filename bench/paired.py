"""Paired A/B of two omnihub checkouts under the ingest bench's load, both at once on one core.

    python bench/paired.py A_DIR B_DIR [--pairs 3] [--seconds 10]

This machine's throughput drifts by tens of percent within minutes, so a change worth 2% cannot be
seen by benching A, then B. Here both hubs run at the same time pinned to the first core (each gets
about half of it), each driven by its own wrk on the second core, so both see the same noise. For
each pair it prints both hubs' CPU time per request (utime + stime from /proc) and their throughput,
and B against A. An A/A run agrees within 1-2%. A_DIR and B_DIR are source trees (a checkout or a
`git worktree add --detach DIR REF`); both run on this interpreter's installed dependencies.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from bench._hubs import free_port, pin, wait_port  # noqa: E402
from bench.ingest import LUA  # noqa: E402


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)


def start_hub(source: str, port: int, workdir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": source, "OMNIHUB_LOG_LEVEL": "WARNING",
           "OMNIHUB_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/hub.db"}
    omnihub = Path(sys.executable).with_name("omnihub")
    return subprocess.Popen([*pin(0), str(omnihub), "serve", "--port", str(port)], env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wrk(port: int, seconds: int, script: Path, base: int = 0) -> subprocess.Popen:
    # `base`: the first request number (bench/_hubs.py), so the timed run repeats no warm-up request.
    return subprocess.Popen([*pin(1), "wrk", "-t1", "-c64", f"-d{seconds}s", "-s", str(script),
                             f"http://127.0.0.1:{port}/v1/interactions", "--", str(base)],
                            stdout=subprocess.PIPE, text=True)


def requests_done(run: subprocess.Popen) -> int:
    out, _ = run.communicate()
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers during the bench:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))


def one_pair(a: str, b: str, seconds: int, script: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    """((req/s, us of CPU per request) of A, the same of B), measured side by side."""
    with tempfile.TemporaryDirectory() as tmp:
        ports = (free_port(), free_port())
        dirs = (Path(tmp) / "a", Path(tmp) / "b")
        for d in dirs:
            d.mkdir()
        hubs = [start_hub(src, port, d) for src, port, d in zip((a, b), ports, dirs, strict=True)]
        try:
            for port in ports:
                wait_port(port)
            warm = [requests_done(run) for run in [wrk(port, 2, script) for port in ports]]
            before = [cpu_ticks(h.pid) for h in hubs]
            runs = [wrk(port, seconds, script, n + 65) for port, n in zip(ports, warm, strict=True)]
            done = [requests_done(run) for run in runs]
            after = [cpu_ticks(h.pid) for h in hubs]
        finally:
            for h in hubs:
                h.terminate()
                h.wait(10)
    ticks = os.sysconf("SC_CLK_TCK")
    return tuple((n / seconds, (t1 - t0) / ticks / n * 1e6)  # type: ignore[return-value]
                 for n, t0, t1 in zip(done, before, after, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description="paired A/B of two omnihub source trees under ingest load")
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ingest.lua"
        script.write_text(LUA)
        for _ in range(args.pairs):
            (a_rps, a_us), (b_rps, b_us) = one_pair(os.path.abspath(args.a), os.path.abspath(args.b),
                                                    args.seconds, script)
            print(f"A {a_rps:7.0f} req/s {a_us:6.1f} us/req | B {b_rps:7.0f} req/s {b_us:6.1f} us/req | "
                  f"B/A cpu per request {b_us / a_us:.3f}, throughput {b_rps / a_rps:.3f}", flush=True)
            time.sleep(1)


if __name__ == "__main__":
    main()
