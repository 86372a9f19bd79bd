"""A real hub (create_app) running the email adapter: its SMTP listener on a free port, outbound
to a capturing aiosmtpd server. Shared by the contract and the end-to-end tests."""

from __future__ import annotations

import asyncio
import smtplib

from hub import keys
from hub.app import create_app

from .email_support import CapturingHandler, capturing_server

USER, PASSWORD = "mx-relay", "s3cret"


async def start_email_hub(aiohttp_client, make_settings, tmp_path, **overrides):
    handler = CapturingHandler()
    controller = capturing_server(handler)
    config = {"smtp_listen": "127.0.0.1:0", "smtp_auth": {USER: PASSWORD}, "smtp_auth_require_tls": False,
              "smtp_host": "127.0.0.1", "smtp_port": controller.port, "starttls": False,
              "from_address": "help@shop.example", "from_name": "Shop Support", "send_retry_wait_s": 0.01,
              **overrides}
    settings = make_settings(blob_dir=str(tmp_path / "blobs"), adapters={"email": config})
    client = await aiohttp_client(create_app(settings))
    client.smtp_peer = handler
    client.smtp_controller = controller
    client.listener_port = client.app[keys.ADAPTERS]["email"].listener.port
    return client


def smtp_deliver(port: int, raw: bytes, login: tuple[str, str] | None = (USER, PASSWORD)) -> str:
    """Send like an MTA relaying to us; returns the 250 reply text, raises on refusal."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mx.example.net")
        if login:
            client.login(*login)
        code, reply = client.mail("sender@example.net")
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, "sender@example.net")
        code, reply = client.rcpt("help@shop.example")
        if code != 250:
            raise smtplib.SMTPRecipientsRefused({"help@shop.example": (code, reply)})
        code, reply = client.data(raw)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        return reply.decode()


async def deliver(hub, raw: bytes, login: tuple[str, str] | None = (USER, PASSWORD)) -> str:
    return await asyncio.to_thread(smtp_deliver, hub.listener_port, raw, login)
