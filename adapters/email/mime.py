"""Reading MIME defensively: headers, charsets and the part tree of real-world mail, where a
header the modern policy cannot parse is read from its raw form and an unknown charset falls back
to UTF-8. Nothing here raises on malformed input."""

from __future__ import annotations

import codecs
import email
import email.header
import email.utils
import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message

_ADDR_SPEC = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_PLAIN_ADDR = re.compile(r'^[^\s"<>()]+@[^\s"<>()]+$')
_MAX_DEPTH = 20  # nested multiparts deeper than this are not walked (a zip-bomb of MIME)

# Senders routinely label a superset charset with its base name (Korean mail labelled EUC-KR is
# often CP949, Japanese Shift_JIS often CP932): decoding with the superset loses nothing.
_SUPERSETS = {"euc-kr": "cp949", "ks_c_5601-1987": "cp949", "shift_jis": "cp932", "gb2312": "gb18030",
              "iso-8859-1": "cp1252", "us-ascii": "utf-8", "ascii": "utf-8"}


@dataclass(frozen=True)
class RawAttachment:
    filename: str | None
    content_type: str
    data: bytes


def decode_bytes(data: bytes, charset: str | None) -> str:
    name = (charset or "utf-8").strip().strip('"').lower()
    name = _SUPERSETS.get(name, name)
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):  # unknown, or not even a name ("euc\x00kr")
        name = "utf-8"
    try:
        return data.decode(name)
    except UnicodeDecodeError:
        # Mislabelled: UTF-8 is the likeliest truth, and replacement keeps what can be read.
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode(name, errors="replace")
    except Exception:  # noqa: BLE001 - a codec that fails in other ways (some CJK codecs on odd input)
        return data.decode("utf-8", errors="replace")


def decode_raw_header(value: str) -> str:
    """An RFC 2047 header from its raw form, tolerating unknown charsets and broken words."""
    try:
        chunks = email.header.decode_header(value)
    except Exception:  # noqa: BLE001
        return value
    out = []
    for chunk, charset in chunks:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return "".join(out)


def _raw(msg: Message, name: str) -> str | None:
    return next((v for k, v in raw_items(msg) if k.lower() == name.lower()), None)


def header(msg: Message, name: str) -> str | None:
    """A header's decoded value (first occurrence), or None; never raises.

    Encoded words are decoded here rather than by the policy, which reads a charset label with
    the stdlib's aliases (ks_c_5601-1987 as EUC-KR, losing CP949's extra syllables) and gives up
    on an encoded word inside quotes.
    """
    raw = _raw(msg, name)
    if raw is None:
        return None
    if "=?" in raw or _has_surrogates(raw):
        text = clean(decode_raw_header(raw))
    else:
        try:
            text = str(msg.get(name))
        except Exception:  # noqa: BLE001 - the policy's parser chokes on some malformed headers
            text = raw
    return " ".join(text.split()) or None


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def clean(text: str) -> str:
    """Undecodable bytes the email package kept as surrogate escapes, as replacement characters."""
    if not _has_surrogates(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def raw_items(msg: Message) -> list[tuple[str, str]]:
    try:
        return [(k, v if isinstance(v, str) else str(v)) for k, v in msg.raw_items()]
    except Exception:  # noqa: BLE001
        return []


def addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header; malformed entries dropped."""
    raw = _raw(msg, name)
    if raw is None:
        return []
    pairs: list[tuple[str, str]] = []
    if "=?" not in raw:
        try:
            pairs = [(a.display_name, a.addr_spec) for a in msg[name].addresses if "@" in a.addr_spec]
        except Exception:  # noqa: BLE001 - fall back to the lenient parser of email.utils
            pairs = []
    if not pairs:
        # Split the raw header first and decode each name after: a decoded name may hold a comma.
        try:
            pairs = [(decode_raw_header(n), a) for n, a in email.utils.getaddresses([" ".join(raw.split())])]
        except Exception:  # noqa: BLE001
            pairs = []
        pairs = [(n, a) for n, a in pairs if a and "@" in a]
    if not pairs:
        # Last resort for a header too broken for either parser ("Unclosed <a@b.example").
        found = _ADDR_SPEC.search(header(msg, name) or "")
        pairs = [("", found.group(0))] if found else []
    out = []
    for n, a in pairs:
        if not _PLAIN_ADDR.match(a):  # '"Unclosed <a@b.example"': salvage the address inside
            found = _ADDR_SPEC.search(a)
            a = found.group(0) if found else ""
        if a:
            out.append((" ".join(clean(n or "").split()), clean(a)))
    return out


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()[:255]
    except Exception:  # noqa: BLE001
        return "application/octet-stream"


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _part_text(part: Message) -> str:
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    return decode_bytes(_payload_bytes(part), charset).replace("\r\n", "\n")


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        name = None
    if name and "=?" in name:
        name = decode_raw_header(name)
    return clean(name)[:200] if name else None


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # noqa: BLE001
        return None


@dataclass
class Walk:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[RawAttachment] = field(default_factory=list)
    status_blocks: list[Message] = field(default_factory=list)
    original_headers: Message | None = None


def walk(part: Message, out: Walk, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        return
    ctype = _content_type(part)
    if ctype == "message/rfc822" or ctype == "text/rfc822-headers":
        inner = _inner_message(part)
        if inner is not None and out.original_headers is None:
            out.original_headers = inner
        if ctype == "message/rfc822":
            out.attachments.append(RawAttachment(_filename(part) or "message.eml", ctype, _inner_bytes(part)))
        return
    if ctype == "message/delivery-status":
        out.status_blocks.extend(_status_blocks(part))
        return
    if part.is_multipart():
        payload = part.get_payload()
        for child in payload if isinstance(payload, list) else ():
            if isinstance(child, Message):
                walk(child, out, depth + 1)
        return
    disposition = _disposition(part)
    filename = _filename(part)
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        (out.plain if ctype == "text/plain" else out.html).append(_part_text(part))
        return
    if ctype.startswith("text/") and disposition is None and not filename:
        return  # an unnamed inline text part of a kind we do not show (text/calendar bodies...)
    out.attachments.append(RawAttachment(filename, ctype, _payload_bytes(part)))


def _inner_message(part: Message) -> Message | None:
    try:
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        if isinstance(payload, str):
            return email.message_from_string(payload, policy=policy.default)
    except Exception:  # noqa: BLE001
        return None
    return None


def _inner_bytes(part: Message) -> bytes:
    inner = _inner_message(part)
    try:
        return inner.as_bytes(policy=policy.SMTP) if inner is not None else _payload_bytes(part)
    except Exception:  # noqa: BLE001 - a nested message the generator cannot re-serialize
        return _payload_bytes(part)


def _status_blocks(part: Message) -> list[Message]:
    try:
        payload = part.get_payload()
    except Exception:  # noqa: BLE001
        return []
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    if isinstance(payload, str):
        return [email.message_from_string(block.strip() + "\n\n", policy=policy.default)
                for block in payload.replace("\r\n", "\n").split("\n\n") if block.strip()]
    return []
