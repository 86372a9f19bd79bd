from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hub.cli import main, public_port_mismatch

SID = "AC" + "0" * 32


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    omnihub = Path(sys.executable).with_name("omnihub")
    return subprocess.run([str(omnihub), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_schema_prints_both_json_schemas(capsys):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"interaction", "event"}
    assert "occurred_at" in printed["interaction"]["properties"]


def test_config_shows_env_over_file_with_secrets_masked(tmp_path):
    config = tmp_path / "omnihub.yaml"
    config.write_text("default_region: US\nport: 9000\nadapters:\n  sms_twilio: {auth_token: s3cret, account_sid: "
                      f"{SID}, from_number: '+15005550006'}}\n")
    result = run("--config", str(config), "config",
                 env={"OMNIHUB_PORT": "9100", "OMNIHUB_AMQP_URL": "amqp://guest:hunter2@localhost:5672/%2F"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["port"] == 9100 and shown["default_region"] == "US"
    assert shown["amqp_url"] == "amqp://guest:***@localhost:5672/%2F"
    assert shown["adapters"]["sms_twilio"] == {"auth_token": "***", "account_sid": SID, "from_number": "+15005550006"}
    assert "hunter2" not in result.stdout and "s3cret" not in result.stdout


def test_a_misspelt_key_is_refused_with_a_suggestion(tmp_path):
    config = tmp_path / "omnihub.yaml"
    config.write_text("databse_url: sqlite+aiosqlite:///x.db\n")
    result = run("--config", str(config), "config")
    assert result.returncode == 2
    assert "did you mean 'database_url'" in result.stderr


def test_migrate_creates_the_sqlite_database(tmp_path):
    result = run("migrate", env={"OMNIHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/hub.db"})
    assert result.returncode == 0, result.stderr
    from alembic.script import ScriptDirectory

    from hub.storage.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert result.stdout.strip() == f"database at revision {', '.join(sorted(heads))}"
    assert (tmp_path / "hub.db").exists()


def test_config_masks_adapter_secrets_at_any_depth(tmp_path):
    config = tmp_path / "hub.yaml"
    config.write_text(
        "adapters:\n"
        "  sms_twilio: {account_sid: AC00000000000000000000000000000000, auth_token: tw-secret-1,\n"
        "               from_number: '+15005550006', keywords: {opt_out: [수신거부]}}\n"
        "  email: {smtp_listen: '127.0.0.1:2525', smtp_auth: {mx-relay: relay-secret-2},\n"
        "          smtp_auth_require_tls: false, imap: {host: imap.example.com, username: help,\n"
        "          password: imap-secret-3}, smtp_username: help, smtp_password: smtp-secret-4}\n")
    result = run("--config", str(config), "config")
    assert result.returncode == 0, result.stderr
    for secret in ("tw-secret-1", "relay-secret-2", "imap-secret-3", "smtp-secret-4"):
        assert secret not in result.stdout
    shown = json.loads(result.stdout)["adapters"]
    assert shown["sms_twilio"]["keywords"] == {"opt_out": ["수신거부"]}  # not a secret for having "key" in it
    assert shown["email"]["imap"]["host"] == "imap.example.com" and shown["email"]["smtp_auth_require_tls"] is False
    assert shown["email"]["smtp_auth"] == {"mx-relay": "***"}


def test_bare_omnihub_prints_the_help(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("usage: omnihub") and "serve" in out and "demo" in out and "config" in out
    assert err == ""


def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run("serve", "--port", str(port), env={"OMNIHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.db"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot listen on port {port}" in lines[0] and "already in use" in lines[0]
    assert not (tmp_path / "h.db").exists()  # refused before anything started


def test_serve_warns_when_public_base_url_names_another_port(tmp_path):
    """`serve --port N` with the default public_base_url (port 8080): every Twilio signature would be
    checked against the wrong URL. The warning comes at start, in the JSON log."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")},
           "OMNIHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.db", "OMNIHUB_DATABSE_URL": "x"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("omnihub")), "serve", "--port", str(port)],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        seen: list[dict] = []
        for line in proc.stderr:  # ends when the hub exits; it is stopped once both warnings are seen
            if line.startswith("{"):
                seen.append(json.loads(line))
            if sum(e["level"] == "warning" for e in seen) >= 2:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    warnings = [e for e in seen if e["level"] == "warning"]
    mismatch = next(e for e in warnings if "public_base_url" in e["message"])
    assert mismatch["public_base_url"] == "http://127.0.0.1:8080" and mismatch["listening_port"] == port
    assert f"names port 8080 but the hub listens on {port}" in mismatch["message"]
    assert any("OMNIHUB_DATABSE_URL" in e["message"] and "OMNIHUB_DATABASE_URL" in e["message"] for e in warnings)


@pytest.mark.parametrize("url, port, warned", [
    ("http://127.0.0.1:8080", 9000, True),
    ("http://127.0.0.1:8080", 8080, False),
    ("http://hub.example.com:8443", 8080, True),
    ("https://hub.example.com", 8080, False),  # a proxy's or a tunnel's: it forwards where it likes
    ("https://abc.ngrok.app/", 9000, False),
])
def test_public_port_mismatch(url, port, warned):
    assert (public_port_mismatch(url, port) is not None) == warned
