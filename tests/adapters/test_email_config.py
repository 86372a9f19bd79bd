"""The email adapter's settings: checked at start-up, an SMTP listener must know who may use it."""

from __future__ import annotations

import pytest

from adapters.email import EmailAdapter
from adapters.registry import AdapterConfigError, available, validate_config


def test_registered_under_its_name():
    assert available()["email"] is EmailAdapter
    assert (EmailAdapter.name, EmailAdapter.channel, EmailAdapter.provider) == ("email", "email", "email")


def test_listener_without_auth_or_trusted_networks_is_refused():
    with pytest.raises(AdapterConfigError, match="smtp_auth users and/or trusted_networks"):
        validate_config(EmailAdapter, {"smtp_listen": "127.0.0.1:2525"})


@pytest.mark.parametrize("raw", [
    {"smtp_listen": "127.0.0.1:2525", "trusted_networks": ["127.0.0.0/8", "::1/128"]},
    {"smtp_listen": "127.0.0.1:2525", "smtp_auth": {"mx": "pw"}, "smtp_auth_require_tls": False},
    {"imap": {"host": "imap.example.com", "username": "u", "password": "p"}},
    {"imap": {"host": "h", "username": "u", "password": "p", "start": "new", "max_attempts": 1,
              "failed_mailbox": "INBOX.omnihub failed"}},
    {"imap": {"host": "h", "username": "u", "password": "p", "mailbox": "고객 문의", "failed_mailbox": "처리 실패"}},
    {"smtp_host": "smtp.example.com", "from_address": "help@shop.example"},
])
def test_valid(raw):
    validate_config(EmailAdapter, raw)


@pytest.mark.parametrize("raw, message", [
    ({"smtp_listen": "2525", "trusted_networks": ["127.0.0.1/32"]}, "HOST:PORT"),
    ({"smtp_listen": ":2525", "smtp_auth": {"mx": "pw"}}, "needs smtp_tls_cert"),
    ({"smtp_listen": ":2525", "trusted_networks": ["not-a-network"]}, "trusted_networks.0"),
    ({"smtp_host": "smtp.example.com"}, "needs from_address"),
    ({"smtp_host": "h", "from_address": "a@b.example", "ssl": True}, "exclusive"),
    ({"smtp_lisen": "127.0.0.1:2525"}, "did you mean 'smtp_listen'"),
    ({"imap": {"host": "h", "username": "u", "password": "p", "pol_interval_s": 5}}, "imap.pol_interval_s: unknown key"),
    ({"imap": {"host": "h", "username": "u", "password": "p", "max_attempt": 3}}, "did you mean 'max_attempts'"),
    ({"imap": {"host": "h", "username": "u", "password": "p", "max_attempts": 0}}, "imap.max_attempts"),
    ({"imap": {"host": "h", "username": "u", "password": "p", "start": "latest"}}, "imap.start"),
    ({"imap": {"host": "h", "username": "u", "password": "p", "failed_mailbox": "inbox"}}, "must not be the mailbox"),
    ({"imap": {"host": "h", "username": "u", "password": "p", "failed_mailbox": "failed*"}}, "wildcards"),
    ({"imap": {"host": "h", "username": "u", "password": "p", "failed_mailbox": "failed\n"}}, "printable"),
])
def test_invalid(raw, message):
    with pytest.raises(AdapterConfigError, match=message):
        validate_config(EmailAdapter, raw)


def test_imap_defaults():
    imap = validate_config(EmailAdapter, {"imap": {"host": "h", "username": "u", "password": "p"}}).imap
    assert (imap.start, imap.max_attempts, imap.failed_mailbox) == ("all", 5, "omnihub-failed")


def test_passwords_are_secret():
    config = validate_config(EmailAdapter, {"smtp_listen": ":2525", "smtp_auth": {"mx": "hunter2"},
                                            "smtp_auth_require_tls": False})
    assert "hunter2" not in repr(config)
