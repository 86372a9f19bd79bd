"""Flat-file records for mainframe-style batch interfaces: fixed-width and CSV, pure functions.

Fixed-width widths count bytes in the file's encoding (what a COBOL copybook's PIC X(n) means),
so a Korean name in cp949 or UTF-8 takes two or three bytes a character. A value that does not fit
is an error, never silently truncated: a cut account number is worse than a dead letter.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas import OmnihubError


class RecordError(OmnihubError, ValueError):
    """A value the layout cannot hold."""


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    source: str  # dotted path into the CloudEvent, or $routing_key
    width: int = Field(1, ge=1, le=10_000)  # fixed-width only
    align: Literal["left", "right"] = "left"
    pad: str = " "

    @field_validator("pad")
    @classmethod
    def _one_byte(cls, v: str) -> str:
        if len(v) != 1 or not v.isascii():
            raise ValueError("pad must be one ASCII character")
        return v


def text(value: Any) -> str:
    """How an event value is written: JSON for structures, empty for null, str otherwise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def fixed_width(fields: Sequence[FieldSpec], values: Sequence[str], encoding: str) -> bytes:
    """One record, exactly sum(widths) bytes, no line end."""
    out = bytearray()
    for spec, value in zip(fields, values, strict=True):
        if "\n" in value or "\r" in value:
            raise RecordError(f"field {spec.name}: a line break would split the record")
        try:
            raw = value.encode(encoding)
        except UnicodeEncodeError:
            raise RecordError(f"field {spec.name}: not representable in {encoding}") from None
        if len(raw) > spec.width:
            raise RecordError(f"field {spec.name}: {len(raw)} bytes do not fit in {spec.width}")
        padding = spec.pad.encode("ascii") * (spec.width - len(raw))
        out += raw + padding if spec.align == "left" else padding + raw
    return bytes(out)


def parse_fixed_width(fields: Sequence[FieldSpec], record: bytes, encoding: str) -> list[str]:
    """The values of one record (what the mainframe reads), pads stripped on the padded side."""
    values, at = [], 0
    for spec in fields:
        raw = record[at : at + spec.width]
        at += spec.width
        pad = spec.pad.encode("ascii")
        raw = raw.rstrip(pad) if spec.align == "left" else raw.lstrip(pad)
        values.append(raw.decode(encoding))
    if at != len(record):
        raise RecordError(f"record is {len(record)} bytes, the layout {at}")
    return values


def control_record(kind: str, number: int, width: int) -> bytes:
    """A header (H) or trailer (T) record: the letter, a 9-digit number, spaces to the width."""
    body = f"{kind}{number:09d}".encode("ascii")
    return body.ljust(max(width, len(body)), b" ")


def csv_record(values: Sequence[str], delimiter: str, encoding: str) -> bytes:
    """One CSV line ending in "\n". The writer's terminator is "\r\n" only so that it quotes a value
    holding either character (it quotes what its terminator contains; found by the property test)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow(values)
    try:
        return buffer.getvalue().removesuffix("\r\n").encode(encoding) + b"\n"
    except UnicodeEncodeError:
        raise RecordError(f"a value is not representable in {encoding}") from None


def parse_csv(data: bytes, delimiter: str, encoding: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline=""), delimiter=delimiter))
