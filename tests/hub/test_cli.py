from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hub.cli import main


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
    config.write_text("default_region: US\nport: 9000\nadapters:\n  sms_twilio: {auth_token: s3cret, account_sid: AC1}\n")
    result = run("--config", str(config), "config",
                 env={"OMNIHUB_PORT": "9100", "OMNIHUB_AMQP_URL": "amqp://guest:hunter2@localhost:5672/%2F"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["port"] == 9100 and shown["default_region"] == "US"
    assert shown["amqp_url"] == "amqp://guest:***@localhost:5672/%2F"
    assert shown["adapters"]["sms_twilio"] == {"auth_token": "***", "account_sid": "AC1"}
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
        "          password: imap-secret-3}, smtp_password: smtp-secret-4}\n")
    result = run("--config", str(config), "config")
    assert result.returncode == 0, result.stderr
    for secret in ("tw-secret-1", "relay-secret-2", "imap-secret-3", "smtp-secret-4"):
        assert secret not in result.stdout
    shown = json.loads(result.stdout)["adapters"]
    assert shown["sms_twilio"]["keywords"] == {"opt_out": ["수신거부"]}  # not a secret for having "key" in it
    assert shown["email"]["imap"]["host"] == "imap.example.com" and shown["email"]["smtp_auth_require_tls"] is False
    assert shown["email"]["smtp_auth"] == {"mx-relay": "***"}
