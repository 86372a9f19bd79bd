"""The headers an attachment is served with (`GET /v1/interactions/{id}/attachments/{n}`).

Everything about an attachment came from outside: a customer named the file, a provider (or an
integrator, through `POST /v1/interactions`) gave its content type. So the file name is encoded
(RFC 6266 `filename*`, with a plain ASCII `filename` for old clients) and never trusted to hold
quotes, slashes or line breaks; a content type that is not a well-formed media type becomes
application/octet-stream; and only raster images are shown inline. An SVG or HTML file is a
download served under a sandbox CSP with nosniff: opened from the hub's own origin it could
otherwise run script with an agent's session.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

FALLBACK_TYPE = "application/octet-stream"
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"})
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}([ \t]*;[ \t]*{_TOKEN}=({_TOKEN}|\"[^\"\\\x00-\x1f\x7f]*\"))*")
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._()+ -]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 5987 attr-char besides letters and digits: what may stand unencoded in filename*.
_ATTR_CHARS = "!#$&+-.^_`|~"

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-cache",
}


def media_type(declared: str | None) -> str:
    """The Content-Type to send: the declared one when it is a well-formed media type."""
    text = (declared or "").strip()
    return text if _MEDIA_TYPE.fullmatch(text) else FALLBACK_TYPE


def file_name(declared: str | None, n: int) -> str:
    """The name to offer: the declared one without any path or control characters, else `attachment-<n>`."""
    name = _CONTROL.sub("", re.split(r"[/\\]", declared or "")[-1]).strip().lstrip(".")
    return name or f"attachment-{n}"


def disposition(name: str, content_type: str) -> str:
    """`inline` for raster images, `attachment` otherwise; filename* carries the name in UTF-8."""
    kind = "inline" if content_type.split(";", 1)[0].strip().lower() in INLINE_TYPES else "attachment"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = _UNSAFE_ASCII.sub("_", ascii_name).strip(" .") or "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
