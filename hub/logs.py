"""JSON logs, with phone numbers, email addresses and hub credentials masked wherever they appear."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")
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
_DIGITS = re.compile(f"(?P<keep>{_KEEP})|(?P<phone>{_PHONE})")
# The hub's session tokens and API keys (hub.access.auth prefixes them so): the agent websocket carries its
# token in the URL, which an access log line quotes.
_CREDENTIAL = re.compile(r"\b(oh[tk]_)[A-Za-z0-9_-]{8,}")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def mask(text: str) -> str:
    text = _CREDENTIAL.sub(r"\1***", text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _DIGITS.sub(_masked_digits, text)


def _masked_digits(found: re.Match[str]) -> str:
    if found.group("keep") is not None:
        return found.group("keep")
    return "***" + re.sub(r"\D", "", found.group("phone"))[-2:]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = mask(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika narrates every frame at INFO; its warnings and errors are what an operator needs.
    logging.getLogger("pika").setLevel(logging.WARNING)
