"""The adapter contract for email: SMTP into a real hub on both backends, out to a real SMTP server."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from tests.adapters.contract import AdapterContract, Auth, Delivery, outbound_message

from .email_hub import PASSWORD, USER, deliver, start_email_hub

CORPUS = Path(__file__).resolve().parents[1] / "data" / "email"


class TestEmailContract(AdapterContract):
    adapter_name = "email"

    @pytest.fixture
    async def hub(self, aiohttp_client, make_settings, tmp_path):
        client = await start_email_hub(aiohttp_client, make_settings, tmp_path)
        yield client
        client.smtp_controller.stop()

    def samples(self):
        return [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]

    def bad_payloads(self):
        return [(b"", "message"), (b"\r\n\r\n", "message"), ("not bytes", "message")]

    async def deliver(self, hub, raw, auth: Auth) -> Delivery:
        login = {Auth.SIGNED: (USER, PASSWORD), Auth.UNSIGNED: None, Auth.WRONG: (USER, "wrong")}[auth]
        try:
            reply = await deliver(hub, raw, login)
        except smtplib.SMTPResponseException as exc:
            return Delivery(accepted=False, status=exc.smtp_code, detail=exc.smtp_error)
        return Delivery(accepted=True, status=250, detail=reply)

    async def outbound(self, hub):
        return outbound_message("email", {"type": "email", "value": "alice@example.com"},
                                subject="Your order", text="It has shipped.")
