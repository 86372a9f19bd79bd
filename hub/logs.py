"""JSON logs, with phone numbers, email addresses and hub credentials masked wherever they appear.

Masking happens once, here in the formatter, on every string a record carries (its message, its
extra fields however nested, its traceback), after decoding what a URL, a header or a query string
encodes (`%2B8210...`, `%40`): a number is masked in whatever form it arrives. Fields whose names
say they hold a status, a size, a duration, an id or a time are never masked: a log whose status
codes read `***01` is of no use at 3 a.m. Access log lines are records with such fields
(AccessLog), not a formatted string where `201 1234` would look like a phone number.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

# A local part and a domain in any script (`민지@예시.kr`): \w is Unicode-aware for str patterns.
_EMAIL = re.compile(r"(?<![\w.%+'-])([\w%+'-])[\w.%+'-]*@([\w-]+(?:\.[\w-]+)+)")
# What looks like digits but names no one, kept whole so the ids and times in a log line still
# match their rows: UUIDs, ISO dates and times, IPv4 addresses with their ports.
# Each ends where the token does, so no number is half kept and half masked.
_KEEP = (r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}(?![0-9A-Za-z])"
         r"|(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
         r"(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)?(?![\d.-]?\d)"
         r"|(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?(?!\.?\d)")
# Seven or more digits, optionally grouped, not inside a word (a hex id such as a MessageSid):
# long enough to be a phone number, not a count.
_PHONE = r"(?<![A-Za-z0-9])\+?\d[\d\s().-]{5,}\d(?![A-Za-z0-9])"
_DIGITS = re.compile(f"(?P<keep>{_KEEP})|(?P<phone>{_PHONE})", re.ASCII)
# The hub's session tokens and API keys (hub.access.auth prefixes them so), wherever one is quoted.
_CREDENTIAL = re.compile(r"\b(oh[tkw]_)[A-Za-z0-9_-]{8,}")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# Fields that hold no one's contact details, by name: never masked (a credential still is).
_PLAIN_FIELD = re.compile(r"(?:status|http_status|code|size|bytes|length|count|attempts?|pid|port|line(?:no)?"
                          r"|version|id|ref|sid|seq|sequence|method|event|worker|state|kind|error_type"
                          r"|duration\w*|\w+_(?:ms|s|at|id|ids|ref|refs|count|bytes|size|status|seq))$")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def decode(text: str) -> str:
    """`text` with percent-encoding undone (twice, for a value encoded once more inside a URL)."""
    for _ in range(2):
        if not _PERCENT.search(text):
            break
        text = unquote(text, errors="replace")
    return text


def mask(text: str) -> str:
    text = _CREDENTIAL.sub(r"\1***", decode(text))
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _DIGITS.sub(_masked_digits, text)


def _masked_digits(found: re.Match[str]) -> str:
    if found.group("keep") is not None:
        return found.group("keep")
    return "***" + re.sub(r"\D", "", found.group("phone"))[-2:]


def mask_value(value: Any) -> Any:
    """Strings masked wherever they sit in a structure (SQL parameters, headers, payload excerpts)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [mask_value(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return mask(bytes(value).decode("utf-8", errors="replace"))
    return mask(str(value))


def _field(key: str, value: Any) -> Any:
    if _PLAIN_FIELD.match(key):
        return _CREDENTIAL.sub(r"\1***", value) if isinstance(value, str) else value
    return mask_value(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _field(key, value)
        if record.exc_info:
            entry["exception"] = mask(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = mask(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class AccessLog(AbstractAccessLogger):
    """One record per request, its parts as fields: status, size and duration stay numbers; the path,
    the Referer and the User-Agent are masked like any other string (they can carry an address)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info("request", extra={
            "method": request.method,
            "path": request.rel_url.raw_path_qs if hasattr(request.rel_url, "raw_path_qs") else str(request.rel_url),
            "status": response.status,
            "size": response.body_length,
            "duration_ms": round(time * 1000, 1),
            "remote": request.remote,
            "referer": request.headers.get("Referer"),
            "user_agent": request.headers.get("User-Agent"),
        })


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika narrates every frame at INFO; its warnings and errors are what an operator needs.
    logging.getLogger("pika").setLevel(logging.WARNING)
