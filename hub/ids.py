"""Time-ordered ids (UUIDv7): index-friendly, and the older of two profiles has the smaller id."""

from __future__ import annotations

import uuid

import uuid_utils

_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


class UUID(uuid.UUID):
    """A stdlib uuid.UUID that carries its text, made once by uuid-utils' Rust generator.

    Every new interaction, profile and event id is turned into text several times (event bodies,
    subjects, answers); the stdlib formats it in Python each time. Equal, hashed and compared as
    any uuid.UUID; a copy or pickle is a plain uuid.UUID.
    """

    # `hex` is a slot here, shadowing uuid.UUID's property: SQLite stores ids as hex, and reading a
    # slot costs the ingest writer nothing.
    __slots__ = ("_text", "hex")

    def __str__(self) -> str:
        return self._text

    def __reduce__(self):  # type: ignore[override]
        return (uuid.UUID, (self._text,))


def new_id() -> uuid.UUID:
    """A version 7 UUID (monotonic in-process), as a uuid.UUID."""
    generated = uuid_utils.uuid7()
    value = _new(UUID)
    _set(value, "int", generated.int)
    _set(value, "is_safe", _UNKNOWN)
    _set(value, "_text", str(generated))
    _set(value, "hex", generated.hex)
    return value
