"""`omnihub simulate` and `omnihub staffing`: the hub's CLI mounts these with `add_commands`.

Each sub-command sets `func(args) -> int` (the exit status). `--json` prints the object DESIGN
section 11 fixes: agents, arrivals_per_hour, aht_s, sla_s, and erlang_c / simulated figures.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from .erlang import predict, staffing
from .simulate import SimulationResult, simulate

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$")
_UNIT = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_AHT_HELP = "average handling time: 180, 180s or 3m"
_SLA_HELP = "service-level threshold (default 20s)"


def parse_seconds(text: str) -> float:
    """`180`, `180s`, `3m`, `1.5h` -> seconds (argparse type)."""
    m = _DURATION.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"bad duration {text!r}: use seconds (180, 180s), minutes (3m) or hours (1h)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sim = subparsers.add_parser("simulate", help="run the real router in virtual time beside Erlang C")
    sim.add_argument("--agents", type=_positive_int, required=True)
    sim.add_argument("--arrivals-per-hour", type=_positive, required=True)
    sim.add_argument("--aht", type=parse_seconds, required=True, help=_AHT_HELP)
    sim.add_argument("--sla", type=parse_seconds, default=20.0, help=_SLA_HELP)
    sim.add_argument("--hours", type=_positive, default=100.0, help="simulated hours (default 100)")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--json", action="store_true", help="print a JSON object")
    sim.set_defaults(func=run_simulate)

    staff = subparsers.add_parser("staffing", help="agents needed for a service-level target (Erlang C)")
    staff.add_argument("--arrivals-per-hour", type=_positive, required=True)
    staff.add_argument("--aht", type=parse_seconds, required=True, help=_AHT_HELP)
    staff.add_argument("--sla", type=parse_seconds, default=20.0, help=_SLA_HELP)
    staff.add_argument("--target", type=float, default=0.8, help="service level to reach (default 0.8)")
    staff.add_argument("--hours", type=float, default=50.0,
                       help="hours to simulate the recommended staffing for (0: skip; default 50)")
    staff.add_argument("--seed", type=int, default=1)
    staff.add_argument("--json", action="store_true", help="print a JSON object")
    staff.set_defaults(func=run_staffing)


def run_simulate(args: argparse.Namespace) -> int:
    result = simulate(args.agents, args.arrivals_per_hour, args.aht, args.sla, args.hours, args.seed)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(f"{result.agents} agents, {_num(result.arrivals_per_hour)} calls/h, "
              f"AHT {_num(result.aht_s)} s, SLA {_num(result.sla_s)} s; {_num(result.hours)} h simulated, "
              f"{result.calls} calls, seed {result.seed}")
        _print_table(result.erlang_c.to_dict(), result.simulated.to_dict())
    return 0


def run_staffing(args: argparse.Namespace) -> int:
    if not 0 < args.target < 1:
        print("staffing: --target must be between 0 and 1", file=sys.stderr)
        return 2
    agents = staffing(args.arrivals_per_hour, args.aht, args.sla, args.target)
    sim: SimulationResult | None = None
    if args.hours > 0 and agents > 0:
        sim = simulate(agents, args.arrivals_per_hour, args.aht, args.sla, args.hours, args.seed)
    predicted = predict(agents, args.arrivals_per_hour, args.aht, args.sla).to_dict() if agents else None
    out = {
        "agents": agents, "arrivals_per_hour": args.arrivals_per_hour, "aht_s": args.aht, "sla_s": args.sla,
        "target": args.target, "erlang_c": predicted, "simulated": sim.simulated.to_dict() if sim else None,
    }
    if args.json:
        _print_json(out)
    else:
        print(f"{agents} agents reach {args.target:.0%} within {_num(args.sla)} s "
              f"at {_num(args.arrivals_per_hour)} calls/h, AHT {_num(args.aht)} s")
        if predicted is not None:
            _print_table(predicted, out["simulated"])
    return 0


def _print_json(obj: dict[str, Any]) -> None:
    # Infinite ASA (too few agents) is not JSON: null says "no finite answer".
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return None if isinstance(v, float) and v in (float("inf"), float("-inf")) else v
    print(json.dumps(clean(obj), indent=2))


def _num(x: float) -> str:
    return f"{x:g}"


def _print_table(erlang: dict[str, float], simulated: dict[str, float] | None) -> None:
    rows = [("P(wait)", "p_wait", "{:.3f}"), ("service level", "service_level", "{:.1%}"),
            ("ASA", "asa_s", "{:.1f} s"), ("occupancy", "occupancy", "{:.1%}")]
    print(f"{'':16}{'Erlang C':>12}{'simulated':>12}")
    for label, key, fmt in rows:
        sim = fmt.format(simulated[key]) if simulated else "-"
        print(f"{label:16}{fmt.format(erlang[key]):>12}{sim:>12}")
