"""Mailbox names on the IMAP wire (adapters/email/imap_wire.py): modified UTF-7, RFC 3501 5.1.3."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.email.imap_wire import mailbox_arg, utf7


@pytest.mark.parametrize("name, wire", [
    ("INBOX", "INBOX"),
    ("Support Inbox", "Support Inbox"),
    ("R&D", "R&-D"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 5.1.3's own example
    ("처리 실패", "&zJi5rA- &wuTTKA-"),
    ("📦 returns", "&2D3c5g- returns"),  # outside the BMP: a UTF-16 surrogate pair
])
def test_utf7_encodes_as_rfc_3501_says(name, wire):
    assert utf7(name) == wire


def _decode(wire: str) -> str:
    """RFC 2152 UTF-7 (the stdlib codec) differs only in its shift characters and alphabet."""
    def run(found: re.Match[str]) -> str:
        inner = found.group(1)
        return "&" if not inner else ("+" + inner.replace(",", "/") + "-").encode().decode("utf-7")
    return re.sub(r"&([^-]*)-", run, wire)


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_utf7_is_printable_ascii_and_the_stdlib_codec_reads_it_back(name):
    wire = utf7(name)
    assert all(0x20 <= ord(c) <= 0x7E for c in wire)
    assert _decode(wire) == name


def test_mailbox_arg_quotes_after_encoding():
    assert mailbox_arg('Sent "old" \\ 보관') == '"Sent \\"old\\" \\\\ &vPStAA-"'
