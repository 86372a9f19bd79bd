"""Adapters are found through entry points and configured strictly; the README's example adapter
is installed as a third-party package would be and run through a real hub."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest

from adapters.base import ChannelAdapter, Webhook
from adapters.registry import AdapterConfigError, available, build
from adapters.sms_twilio import TwilioSmsAdapter
from hub.app import create_app
from tests.hub.conftest import count_rows

README = Path(__file__).resolve().parents[2] / "README.md"
TWILIO = {"account_sid": "AC" + "0" * 32, "auth_token": "t", "from_number": "+15005550006"}


def test_built_in_adapters_register_through_entry_points():
    assert available()["sms_twilio"] is TwilioSmsAdapter


def test_unknown_adapter_name_suggests_the_installed_one():
    with pytest.raises(AdapterConfigError, match="adapters.sms_twilo: no such adapter.*did you mean 'sms_twilio'"):
        build({"sms_twilo": TWILIO}, lambda cls: None)


def test_unknown_config_key_suggests_the_right_one():
    with pytest.raises(AdapterConfigError, match="auth_tokn: unknown key \\(did you mean 'auth_token'\\?\\)"):
        build({"sms_twilio": {**TWILIO, "auth_tokn": "x"}}, lambda cls: None)


def test_a_disabled_adapter_is_not_built():
    assert build({"sms_twilio": {**TWILIO, "enabled": False}}, lambda cls: None) == []


def test_a_webhook_adapter_without_an_authenticity_check_is_refused():
    class Careless(ChannelAdapter):
        name, channel, provider = "careless", "chat", "careless"

        def webhooks(self):
            return [Webhook("POST", "in", self.normalize)]

        def normalize(self, raw):
            raise NotImplementedError

        async def send(self, message):
            raise NotImplementedError

    with pytest.raises(AdapterConfigError, match="no authenticity check"):
        build({"careless": {}}, lambda cls: None, installed={"careless": Careless})


@pytest.fixture
def webform_package(tmp_path, monkeypatch):
    """The README's example adapter, installed the way pip installs a package: a module and a
    dist-info directory whose entry_points.txt names it."""
    code = re.search(r"<!-- example:adapter -->\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "omnihub_webform.py").write_text(code)
    info = tmp_path / "omnihub_webform-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: omnihub-webform\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text('[omnihub.adapters]\nwebform = omnihub_webform:WebFormAdapter\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    return "webform"


def signed(body: dict, secret: str = "s3cret") -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"X-Signature": hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
                 "Content-Type": "application/json"}


async def test_the_readme_example_adapter_runs_as_a_third_party_package(webform_package, aiohttp_client,
                                                                      make_settings, tmp_path):
    assert webform_package in available()
    hub = await aiohttp_client(create_app(make_settings(adapters={"webform": {"secret": "s3cret"}},
                                                       blob_dir=str(tmp_path / "blobs"))))
    form = {"submission_id": "F-1", "email": "Minji@Example.COM", "name": "Kim Minji", "message": "반품 문의"}
    raw, headers = signed(form)
    resp = await hub.post("/channels/webform/submit", data=raw, headers=headers)
    assert resp.status == 201, await resp.text()
    again = await hub.post("/channels/webform/submit", data=raw, headers=headers)
    assert again.status == 200 and (await again.json())["id"] == (await resp.json())["id"]
    profile = await (await hub.get("/v1/profiles?identifier=email:minji@example.com")).json()
    items = (await (await hub.get(f"/v1/profiles/{profile['id']}/timeline")).json())["items"]
    assert [i["channel"] for i in items] == ["webform"]  # a plugin's own channel is accepted

    forged = await hub.post("/channels/webform/submit", data=json.dumps({**form, "submission_id": "F-2"}),
                            headers=headers)
    assert forged.status == 403
    raw, headers = signed({**form, "submission_id": "F-3", "email": "not-an-email"})
    bad = await hub.post("/channels/webform/submit", data=raw, headers=headers)
    assert bad.status == 422
    assert any("sender" in f["field"] for f in (await bad.json())["fields"])
    assert await count_rows(hub.app, "interactions") == 1


def test_a_nested_unknown_key_suggests_the_right_one():
    email = {"smtp_listen": "127.0.0.1:0", "trusted_networks": ["127.0.0.0/8"],
             "imap": {"host": "imap.example.com", "username": "help", "passwrd": "x"}}
    with pytest.raises(AdapterConfigError, match="imap.passwrd: unknown key \\(did you mean 'password'\\?\\)"):
        build({"email": email}, lambda cls: None)
