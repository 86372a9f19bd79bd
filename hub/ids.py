"""Time-ordered ids (UUIDv7): index-friendly, and the older of two profiles has the smaller id."""

from __future__ import annotations

import uuid

from uuid6 import uuid7


def new_id() -> uuid.UUID:
    return uuid.UUID(int=uuid7().int)
