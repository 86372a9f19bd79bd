"""What the IMAP poller needs from the wire that aioimaplib leaves to its caller: mailbox names as
IMAP wants them (RFC 3501 5.1.3 and 9), a server's refusals told apart from a lost connection, and
the server's BYE, which aioimaplib drops.

aioimaplib (2.0) sends command arguments as given, so a mailbox name with a space, a quote or a
non-ASCII letter must be encoded and quoted here; neither it nor the standard library has an encoder
for modified UTF-7 (the stdlib's "utf-7" codec is RFC 2152's, with "+" and "/"), hence the small one
below.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Awaitable

import aioimaplib


class ImapError(Exception):
    """The server refused a command (a NO or BAD answer)."""


class ConnectionClosed(ConnectionError):
    """The connection closed while a command waited; `bye` is the server's reason, if it gave one."""

    def __init__(self, bye: bytes | None) -> None:
        super().__init__(f"the server closed the connection (BYE {bye!r})")
        self.bye = bye


def ok(response: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if response.result != "OK":
        raise ImapError(f"{what}: {response.result} {response.lines[-1:]!r}")
    return response


_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]+|&")


def _utf7_run(found: re.Match[str]) -> str:
    run = found.group()
    if run == "&":
        return "&-"
    encoded = base64.b64encode(run.encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
    return "&" + encoded.decode("ascii") + "-"


def utf7(name: str) -> str:
    """A mailbox name in modified UTF-7 (RFC 3501 5.1.3): printable ASCII stands for itself but
    "&" is "&-"; every other run is UTF-16BE in base64 with "," for "/", unpadded, in "&" ... "-"."""
    return _NOT_PRINTABLE_ASCII.sub(_utf7_run, name)


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox_arg(name: str) -> str:
    """A mailbox name as a command argument: modified UTF-7, then a quoted string."""
    return quoted(utf7(name))


def already_exists(response: aioimaplib.Response) -> bool:
    text = b" ".join(bytes(line) for line in response.lines if isinstance(line, bytes | bytearray)).upper()
    return b"[ALREADYEXISTS]" in text or b"ALREADY EXISTS" in text  # RFC 5530, else the usual wording


class _Protocol(aioimaplib.IMAP4ClientProtocol):
    """aioimaplib's protocol, keeping two things it only logs: the server's last BYE (its reason
    for closing) and that the connection has closed (aioimaplib lets a pending command wait for
    its timeout instead)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn_lost_cb=None) -> None:
        super().__init__(loop, conn_lost_cb)
        self.bye: bytes | None = None
        self.closed = asyncio.Event()

    def _untagged_response(self, line: bytes) -> aioimaplib.Command:
        if line.startswith(b"* BYE"):
            self.bye = bytes(line[5:]).strip()
        return super()._untagged_response(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        super().connection_lost(exc)


class Client(aioimaplib.IMAP4):
    """aioimaplib.IMAP4 on _Protocol; with ssl_context it is IMAP4_SSL (implicit TLS)."""

    protocol: _Protocol

    def create_client(self, host, port, loop, conn_lost_cb=None, ssl_context=None) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context))


async def until_closed(client: Client, pending: Awaitable[aioimaplib.Response], timeout: float) -> aioimaplib.Response:
    """Await one command, but not past the end of its connection or `timeout`: on a closed
    connection aioimaplib lets a command wait for its own timeout, or forever (UID COPY has none).
    The server's last BYE is cleared first, so a ConnectionClosed carries this command's."""
    protocol = client.protocol
    protocol.bye = None
    command = asyncio.ensure_future(asyncio.wait_for(pending, timeout))
    closed = asyncio.ensure_future(protocol.closed.wait())
    try:
        await asyncio.wait({command, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
    if not command.done():
        command.cancel()
        await asyncio.gather(command, return_exceptions=True)
        raise ConnectionClosed(protocol.bye)
    return command.result()
