"""Time-ordered ids (UUIDv7): index-friendly, and the older of two profiles has the smaller id."""

from __future__ import annotations

import uuid

from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    """A stdlib uuid.UUID, version 7 (uuid-utils' Rust generator: ~3 us a call, monotonic in-process)."""
    return uuid7()
