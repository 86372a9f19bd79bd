"""A config mistake, in an adapter's settings as at the top level, is one line naming the key by its
full dotted path with the nearest known key, exit status 2, in `serve`, `demo` and `config`
(with or without --check); a misspelt OMNIHUB_* variable is a one-line warning, not silence."""

from __future__ import annotations

import pytest

from hub.cli import main
from hub.settings import unknown_environment
from tests.hub.test_cli import run

SID = "AC" + "0" * 32
TWILIO = f"{{account_sid: {SID}, auth_token: t, from_number: '+15005550006'"

MISTAKES = {
    "misspelt-adapter-key": (
        f"adapters:\n  sms_twilio: {{account_sid: {SID}, auth_token: t, from_numbr: '+15005550006'}}\n",
        "adapters.sms_twilio.from_numbr: unknown key (did you mean 'from_number'?)"),
    "unknown-adapter": (
        f"adapters:\n  sms_twilo: {TWILIO}}}\n",
        "adapters.sms_twilo: no such adapter (did you mean 'sms_twilio'?)"),
    "missing-from-number": (
        f"adapters:\n  sms_twilio: {{account_sid: {SID}, auth_token: t}}\n",
        "adapters.sms_twilio.from_number: missing: give from_number or messaging_service_sid"),
    "bad-from-number": (
        f"adapters:\n  sms_twilio: {{account_sid: {SID}, auth_token: t, from_number: 'call me'}}\n",
        "adapters.sms_twilio.from_number: not a phone number"),
    "smtp-listener-for-anyone": (
        "adapters:\n  email: {smtp_listen: '127.0.0.1:2525'}\n",
        "adapters.email.smtp_listen: needs smtp_auth users and/or trusted_networks"),
    "nested-imap-key": (
        "adapters:\n  email: {imap: {host: h, username: u, passwrd: p}}\n",
        "adapters.email.imap.passwrd: unknown key (did you mean 'password'?)"),
    "top-level-key": (
        "databse_url: sqlite+aiosqlite:///x.db\n",
        "databse_url: unknown key (did you mean 'database_url'?)"),
    "nested-top-level-key": (
        "routing:\n  defalt_queue: support\n",
        "routing.defalt_queue: unknown key (did you mean 'default_queue'?)"),
    "queue-key": (
        "routing:\n  queues: [{name: support, sla: 60}]\n",
        "routing.queues.0.sla: unknown key (did you mean 'sla_s'?)"),
}


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # no traceback, no second line
    return lines[0]


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["config"], ["config", "--check"]])
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_config_mistake_is_one_line_naming_the_key(mistake, command, tmp_path, capsys):
    text, expected = MISTAKES[mistake]
    config = tmp_path / "omnihub.yaml"
    config.write_text(text)
    assert main(["--config", str(config), *command]) == 2
    out, err = capsys.readouterr()
    line = _one_line(err)
    assert line.startswith("omnihub: invalid configuration: ") and expected in line, line
    assert out == ""


def test_every_mistake_is_on_the_one_line(tmp_path, capsys):
    config = tmp_path / "omnihub.yaml"
    config.write_text(f"adapters:\n  sms_twilio: {{account_sid: {SID}, auth_tokn: t, from_number: '+15005550006'}}\n")
    assert main(["--config", str(config), "config", "--check"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "adapters.sms_twilio.auth_tokn: unknown key (did you mean 'auth_token'?)" in line
    assert "adapters.sms_twilio.auth_token: Field required" in line


def test_a_mistake_set_from_the_environment_names_its_variable(monkeypatch, capsys):
    """The demo runs its bundled config; the environment is how a user gets a mistake into it."""
    monkeypatch.setenv("OMNIHUB_ADAPTERS__SMS_TWILIO__FROM_NUMBR", "+15005550006")
    assert main(["demo", "--once", "--port", "0"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert ("adapters.sms_twilio.from_numbr (from OMNIHUB_ADAPTERS__SMS_TWILIO__FROM_NUMBR): unknown key "
            "(did you mean 'from_number'?)") in line


def test_config_check_passes_a_good_config(tmp_path):
    config = tmp_path / "omnihub.yaml"
    config.write_text(f"adapters:\n  sms_twilio: {TWILIO}}}\n  email: {{enabled: false, smtp_listen: ':25'}}\n")
    result = run("--config", str(config), "config", "--check", env={"OMNIHUB_REQUIRE_SERVICES": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "configuration ok (adapters: email, sms_twilio)"
    assert result.stderr == ""  # a variable the test suite reads is not taken for a misspelt setting


def test_a_misspelt_environment_variable_is_a_warning_with_a_suggestion():
    result = run("config", "--check", env={"OMNIHUB_DATABSE_URL": "sqlite+aiosqlite:///elsewhere.db"})
    assert result.returncode == 0, result.stderr
    line = _one_line(result.stderr)
    assert "OMNIHUB_DATABSE_URL" in line and "did you mean OMNIHUB_DATABASE_URL?" in line
    assert "elsewhere.db" not in line  # the name is the mistake; the value may be a secret


def test_only_unknown_names_are_warned_about():
    warnings = unknown_environment({
        "OMNIHUB_DATABASE_URL": "x", "omnihub_port": "1", "OMNIHUB_ADAPTERS__SMS_TWILIO__AUTH_TOKEN": "x",
        "OMNIHUB_TEST_PG_DSN": "x", "OMNIHUB_REQUIRE_SERVICES": "1", "PATH": "/bin",
        "OMNIHUB_ROUTNG__DEFAULT_QUEUE": "x", "OMNIHUB_XYZZY": "x",
    })
    assert warnings == [
        "environment variable OMNIHUB_ROUTNG__DEFAULT_QUEUE names no setting (did you mean OMNIHUB_ROUTING?); "
        "it is ignored",
        "environment variable OMNIHUB_XYZZY names no setting; it is ignored",
    ]
