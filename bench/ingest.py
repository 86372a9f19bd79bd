"""Ingest throughput: `POST /v1/interactions` against a bare aiohttp JSON handler measured in the same
run, from an empty database.

    python bench/ingest.py [--seconds 10] [--connections 64] [--rounds 3] [--no-pin]
    python bench/ingest.py --postgres [--seconds 60] [--rounds 1]

Load comes from wrk (Debian package `wrk`), one thread pinned to the second core; each server is a
single process pinned to the first. Every request is a new customer (new profile, identifier, two
outbox events): the heavier path. Each 201 from omnihub is a durable commit (SQLite: WAL,
synchronous=FULL). Each hub run starts on an empty database, with a 2 s warm-up before the timed
run; no request repeats an earlier one (the figures print how many answers wrote no row).

Default (SQLite): floor and hub runs alternate for --rounds rounds and medians are reported: this
machine's throughput drifts by tens of percent over minutes. Target (issue 2): ratio >= 0.40.

--postgres: per round a floor run, then a SQLite hub and a PostgreSQL hub for --seconds each (60),
counting rows every 10 s: the rate of the first 10 s against the last 10 s (target: within 15%,
the tables grow from empty with no ANALYZE) and PostgreSQL's rate against SQLite's (target >= 0.6).
PostgreSQL: OMNIHUB_BENCH_PG_DSN (default postgresql://postgres@127.0.0.1:5432/test) may create
databases; each run gets its own and drops it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from bench import _hubs  # noqa: E402
from bench._hubs import HubRun, PostgresDatabase, SqliteDatabase, WrkRun  # noqa: E402

PATH = "/v1/interactions"
LUA = _hubs.NUMBERING_LUA + r"""
local template = '{"channel":"sms","direction":"inbound","kind":"message","provider":"bench",' ..
  '"provider_ref":"B-%d","occurred_at":"2026-11-23T10:00:00+09:00",' ..
  '"sender":{"identifiers":[{"type":"phone","value":"010-%04d-%04d"}],"display_name":"Bench Customer"},' ..
  '"content":{"text":"배송지 변경 부탁드립니다"}}'
request = function()
  local n = number()
  -- 80 million distinct mobile numbers, 010-2000-0000 to 010-9999-9999
  local body = string.format(template, n, 2000 + math.floor(n / 10000) % 8000, n % 10000)
  return wrk.format("POST", "/v1/interactions", {["Content-Type"] = "application/json"}, body)
end
"""


def run_rounds(args, script: Path, path: str, hub_env: dict[str, str], tmp: Path) -> tuple[list[WrkRun], list[HubRun]]:
    """The SQLite mode: floor and hub runs alternate for args.rounds rounds, each hub on a new database."""
    floors, hubs = [], []
    for _ in range(args.rounds):
        floors.append(_hubs.measure_floor(path, args.seconds, args.connections, script))
        hubs.append(_hubs.measure_hubs(path, args.seconds, args.connections, script, SqliteDatabase(tmp), hub_env))
    return floors, hubs


def repeats(runs: list[HubRun]) -> str:
    return (f"repeats {sum(r.repeats for r in runs)} of {sum(r.answered for r in runs)} answers "
            f"({sum(r.rows for r in runs)} rows written)")


def report(name: str, args, floor_label: str, hub_label: str, hub_note: str, floors: list[WrkRun], hubs: list[HubRun],
           target: str = "") -> None:
    floor, hub = statistics.median(r.rps for r in floors), statistics.median(r.wrk.rps for r in hubs)
    where = "server pinned to core 0, wrk to core 1" if _hubs.PIN else "unpinned"
    width = max(len(floor_label), len(hub_label), len("ratio")) + 1
    print(f"{name} bench: wrk 1 thread, {args.connections} connections, {args.seconds}s x {args.rounds} rounds "
          f"(medians), {where}, each hub run from an empty database")
    print(f"{floor_label:<{width}}: {floor:9.0f} req/s   rounds: {', '.join(f'{r.rps:.0f}' for r in floors)}")
    print(f"{hub_label:<{width}}: {hub:9.0f} req/s   rounds: {', '.join(f'{r.wrk.rps:.0f}' for r in hubs)}")
    print(" " * (width + 2) + f"{hub_note}; p99 " + ", ".join(r.wrk.p99 for r in hubs) + f"; {repeats(hubs)}")
    print(f"{'ratio':<{width}}: {hub / floor:9.2f}" + (f"  ({target})" if target else ""))
    # Each round's hub run follows its floor run by seconds; the medians above may pair runs minutes
    # apart while the machine drifts, so the rounds' own ratios are shown too.
    paired = [h.wrk.rps / f.rps for f, h in zip(floors, hubs, strict=True)]
    print(f"{'round by round':<{width}}: {statistics.median(paired):9.2f}  (median of "
          + ", ".join(f"{r:.2f}" for r in paired) + ")")


def run_postgres_mode(name: str, args, script: Path, path: str, hub_env: dict[str, str], tmp: Path) -> None:
    """Floor, SQLite hub, PostgreSQL hub per round; the hubs for args.seconds from an empty database."""
    rows: list[tuple[WrkRun, HubRun, HubRun]] = []
    for _ in range(args.rounds):
        floor = _hubs.measure_floor(path, min(args.seconds, 10), args.connections, script)
        lite = _hubs.measure_hubs(path, args.seconds, args.connections, script, SqliteDatabase(tmp), hub_env,
                                  sample_every=10)
        database = PostgresDatabase()
        try:
            pg = _hubs.measure_hubs(path, args.seconds, args.connections, script, database, hub_env, sample_every=10)
        finally:
            database.drop()
        rows.append((floor, lite, pg))
    where = "server pinned to core 0 (PostgreSQL unpinned), wrk to core 1" if _hubs.PIN else "unpinned"
    print(f"{name} bench, PostgreSQL mode: wrk 1 thread, {args.connections} connections, hubs {args.seconds}s from "
          f"an empty database (no ANALYZE), {where}")
    for n, (floor, lite, pg) in enumerate(rows, 1):
        print(f"round {n}: floor (bare aiohttp) {floor.rps:.0f} req/s")
        for label, run in (("SQLite", lite), ("PostgreSQL", pg)):
            first, last = run.window_rates()
            print(f"  {label:<10} {run.wrk.rps:7.0f} req/s = {run.wrk.rps / floor.rps:.3f} of the floor; rows/s "
                  f"first 10 s {first:.0f}, last 10 s {last:.0f} (last/first {last / first:.2f}, target >= 0.85); "
                  f"p99 {run.wrk.p99}; {repeats([run])}")
        print("  PostgreSQL index entries read per scan (a key lookup reads about 1): "
              + ", ".join(f"{name} {reads:.1f}" for name, reads in sorted(pg.index_reads.items())))
        print(f"  PostgreSQL / SQLite: {pg.wrk.rps / lite.wrk.rps:.2f} (target >= 0.6)")


def parse_args(description: str, seconds: int = 10, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=int, help=f"timed run per server ({seconds}; 60 with --postgres)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, help="3 (1 with --postgres)")
    parser.add_argument("--postgres", action="store_true",
                        help="SQLite and PostgreSQL hubs for 60 s each from an empty database: decay and ratio")
    parser.add_argument("--no-pin", action="store_true", help="let server and wrk share every core")
    if extra:
        extra(parser)
    args = parser.parse_args()
    args.seconds = args.seconds or (60 if args.postgres else seconds)
    args.rounds = args.rounds or (1 if args.postgres else 3)
    if args.postgres and args.seconds < 21:
        parser.error("--postgres compares the first and last 10 s: --seconds must be over 20")
    _hubs.PIN = not args.no_pin
    return args


def main() -> None:
    args = parse_args("omnihub ingest throughput against a bare aiohttp floor")
    _hubs.need_wrk("bench/ingest.py")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ingest.lua"
        script.write_text(LUA)
        if args.postgres:
            run_postgres_mode("ingest", args, script, PATH, {}, Path(tmp))
            return
        floors, hubs = run_rounds(args, script, PATH, {}, Path(tmp))
    report("ingest", args, "floor  bare aiohttp JSON handler", "omnihub POST /v1/interactions",
           "SQLite, every 201 a durable commit", floors, hubs, "target >= 0.40")


if __name__ == "__main__":
    main()
