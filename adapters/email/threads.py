"""Message-IDs, thread roots and dedupe keys: shared by the parser and the sender so that an
agent's reply and the customer's next reply land in the same conversation.

A thread's key is its root, the first Message-ID of `References` (RFC 5322 section 3.6.4 asks
clients that trim a long References list to keep the first entry), else `In-Reply-To`, else the
message's own Message-ID: `email:<root without angle brackets>`.
"""

from __future__ import annotations

import hashlib
import re

KEY_PREFIX = "email:"
_IN_BRACKETS = re.compile(r"<([^<>]*)>")
_MAX_REF = 200  # Interaction.provider_ref is a Token of at most 200 characters
_MAX_ROOT = 500  # conversation_key holds 512


def normalize_msgid(value: str | None) -> str | None:
    """`<abc@example.com>` (or a bare `abc@example.com`) as `abc@example.com`; None if empty."""
    if not value:
        return None
    found = _IN_BRACKETS.search(value)
    ident = found.group(1) if found else value.strip().strip("<>")
    # Some clients fold a long id across lines; whitespace is never part of an id.
    ident = "".join(ident.split())
    return ident or None


def msgid_list(value: str | None) -> list[str]:
    """The ids of a References or In-Reply-To header, in order, without duplicates."""
    if not value:
        return []
    found = _IN_BRACKETS.findall(value) or value.split()
    out: list[str] = []
    for item in found:
        ident = normalize_msgid(item)
        if ident and ident not in out:
            out.append(ident)
    return out


def is_message_id(value: str) -> bool:
    """False for the hashes that stand in for a missing or oversized Message-ID (provider_ref)."""
    return not value.startswith(("sha256:", "msgid-sha256:"))


def thread_root(message_id: str | None, in_reply_to: str | None, references: list[str]) -> str | None:
    if references:
        return references[0]
    return in_reply_to or message_id


def conversation_key(root: str | None) -> str | None:
    if not root:
        return None
    if len(root) > _MAX_ROOT:
        return f"{KEY_PREFIX}sha256:{hashlib.sha256(root.encode()).hexdigest()}"
    return KEY_PREFIX + root


def provider_ref(message_id: str | None, raw: bytes) -> str:
    """The dedupe key: the Message-ID, or a hash of the exact bytes for a message without one, so
    that a re-delivery of the same bytes is a repeat (and a different message never is)."""
    if message_id and len(message_id) <= _MAX_REF:
        return message_id
    if message_id:
        return f"msgid-sha256:{hashlib.sha256(message_id.encode()).hexdigest()}"
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"
