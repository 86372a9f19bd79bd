"""The long CLI jobs (`import pos`, `rules replay`, `dlq replay`) show a progress bar to a person at a
terminal, and nothing of it to a script: with their output redirected, or with --json.

"At a terminal" is a real pseudo-terminal (pty) holding the command's stdout and stderr."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import pika
import pytest

from hub.broker.dead_letters import QUEUE, REASON
from hub.progress import Progress
from tests.hub.test_cli import run

OMNIHUB = Path(sys.executable).with_name("omnihub")
DEMO_RULES = Path(__file__).resolve().parents[2] / "hub" / "demo" / "rules"
TIMEOUT_S = 120.0  # generous: a shared 2-core machine
HEADER = "store,register,receipt,time,total,currency,phone"
ROWS = [f"S01,1,R-{n},2026-11-20T12:00:00+09:00,1000,KRW,010-5555-01{n:02d}" for n in range(12)]


def at_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run omnihub with stdout and stderr on one pseudo-terminal: (exit status, all it wrote)."""
    controller, terminal = pty.openpty()
    # A terminal 100 columns wide, as a window is: a new pty has none, and tqdm draws a bar as wide as that.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen([str(OMNIHUB), *args], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                            env={**os.environ, **env})
    os.close(terminal)
    written = b""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the command closed the terminal (it exited)
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=60), written.decode("utf-8", "replace")


@pytest.fixture
def sales(tmp_path) -> Path:
    path = tmp_path / "sales.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n")
    return path


@pytest.fixture
def hub_env(tmp_path) -> dict[str, str]:
    return {"OMNIHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/hub.db", "OMNIHUB_LOG_LEVEL": "WARNING"}


def test_import_pos_shows_a_bar_at_a_terminal_only(sales, hub_env):
    status, shown = at_a_terminal("import", "pos", str(sales), env=hub_env)
    assert status == 0, shown
    assert "importing sales.csv" in shown and f"{len(ROWS) + 1}/{len(ROWS) + 1}" in shown, shown
    assert "12 imported" in shown

    status, shown = at_a_terminal("import", "pos", str(sales), "--json", env=hub_env)
    assert status == 0 and "importing" not in shown and '"repeats": 12' in shown, shown

    piped = run("import", "pos", str(sales), env=hub_env)
    assert piped.returncode == 0 and "importing" not in piped.stdout + piped.stderr, piped.stderr


def test_rules_replay_shows_a_bar_at_a_terminal_only(sales, hub_env):
    assert run("import", "pos", str(sales), env=hub_env).returncode == 0
    status, shown = at_a_terminal("rules", "replay", str(DEMO_RULES), "--since", "3650d", env=hub_env)
    assert status == 0, shown
    assert "replaying interactions" in shown and f"{len(ROWS)}/{len(ROWS)}" in shown, shown
    assert f"over {len(ROWS)} interaction(s)" in shown

    status, shown = at_a_terminal("rules", "replay", str(DEMO_RULES), "--since", "3650d", "--json", env=hub_env)
    assert status == 0 and "replaying" not in shown, shown
    piped = run("rules", "replay", str(DEMO_RULES), "--since", "3650d", env=hub_env)
    assert piped.returncode == 0 and "replaying" not in piped.stdout + piped.stderr, piped.stderr


@pytest.mark.rabbitmq
def test_dlq_replay_shows_a_bar_at_a_terminal_only(amqp_url, run_prefix, hub_env):
    dead, work = f"{run_prefix}.progress.dead.{uuid.uuid4().hex[:6]}", f"{run_prefix}.progress.work"
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = conn.channel()
    try:
        for name in (dead, work):
            channel.queue_declare(name, auto_delete=False)

        def bury(n: int) -> None:
            for i in range(n):
                channel.basic_publish("", dead, f'{{"n": {i}}}'.encode(), pika.BasicProperties(
                    message_id=f"m-{i}", headers={REASON: "failed", QUEUE: work}))

        bury(3)
        args = ("dlq", "replay", "--to-queue", "--amqp-url", amqp_url, "--queue", dead)
        status, shown = at_a_terminal(*args, env=hub_env)
        assert status == 0, shown
        assert "replaying dead letters" in shown and "3/3" in shown and "replayed 3" in shown, shown
        bury(2)
        status, shown = at_a_terminal(*args, "--json", env=hub_env)
        assert status == 0 and "replaying" not in shown and '"replayed": 2' in shown, shown
        bury(1)
        piped = run(*args, env=hub_env)
        assert piped.returncode == 0 and piped.stdout.strip() == "replayed 1" and piped.stderr == "", piped.stderr
        assert channel.queue_declare(work, passive=True).method.message_count == 6
    finally:
        for name in (dead, work):
            channel.queue_delete(name)
        conn.close()


def test_the_bar_follows_done_and_total(monkeypatch):
    monkeypatch.setattr("hub.progress.at_a_terminal", lambda: True)
    with Progress("working", "item") as progress:
        assert progress.shown
        progress(0, None)
        progress(3, 10)
        progress(10, None)
        assert (progress._bar.n, progress._bar.total) == (10, 10)
    with Progress("working", "item", quiet=True) as quiet:
        assert not quiet.shown
        quiet(5, 10)  # a hidden bar takes the calls all the same
