"""Every bench starts both ways a reader runs it: `python bench/x.py` and `python -m bench.x`.

A script in bench/ runs with bench/ at the head of sys.path, where a bench named like one of the
project's packages (bench/rules.py) used to shadow it for its neighbours. `--help` imports
everything the bench needs and exits before any measuring.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))  # _x: shared code
PACKAGES = {p.parent.name for p in ROOT.glob("*/__init__.py")}


def command(bench: str, way: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / f"{bench}.py")] if way == "script" else [sys.executable, "-m", f"bench.{bench}"]


@pytest.fixture(scope="module")
def started(tmp_path_factory) -> dict[tuple[str, str], subprocess.CompletedProcess[str]]:
    """Every bench both ways with --help, all at once: each start is mostly imports."""
    elsewhere = tmp_path_factory.mktemp("cwd")
    # No PYTHONPATH from the caller: a bench must find the project by itself.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    procs = {
        (bench, way): subprocess.Popen([*command(bench, way), "--help"], cwd=elsewhere if way == "script" else ROOT,
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for bench in BENCHES for way in ("script", "module")
    }
    results = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.mark.parametrize("way", ["script", "module"])
@pytest.mark.parametrize("bench", BENCHES)
def test_a_bench_starts_both_ways(started, bench, way):
    result = started[(bench, way)]
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_no_bench_is_named_like_a_package():
    assert {"rules", "routing", "schemas", "hub", "adapters"} <= PACKAGES
    assert not PACKAGES & set(BENCHES)
