"""Checking that a webhook comes from Twilio, shared by the SMS and voice adapters.

Twilio signs each webhook with X-Twilio-Signature: HMAC-SHA1 (keyed with the account's auth token)
of the URL it called plus the POSTed form (https://www.twilio.com/docs/usage/security#validating-requests),
or, where the account signs with a separate webhooks shared key, as
X-Twilio-Webhooks-Signature-Settings says. The URL is the one Twilio was given, so behind a proxy
it is rebuilt from the hub's `public_base_url`, not from what the hub sees.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator, get_signature_algorithm

from .base import AuthenticityError

FORM = web.RequestKey("twilio_form", MultiDict)


class TwilioSignature:
    def __init__(self, auth_token: str, webhooks_shared_key: str | None = None) -> None:
        self._validator = RequestValidator(auth_token)
        self._shared_key_validator = RequestValidator(webhooks_shared_key) if webhooks_shared_key else None

    def check(self, request: web.Request, body: bytes, public_base_url: str) -> MultiDict[str]:
        """The request's form, once its signature is checked (also kept as request[FORM], so the
        handler does not parse it again); raises AuthenticityError."""
        signature = request.headers.get("X-Twilio-Signature")
        if not signature:
            raise AuthenticityError("no X-Twilio-Signature header")
        url = public_base_url + request.path_qs
        form = request[FORM] = parse_form(body)
        settings = request.headers.get("X-Twilio-Webhooks-Signature-Settings")
        validator, algorithm = self._validator, None
        if settings:  # signed with the account's webhooks shared key, SHA-1 or SHA-256
            if self._shared_key_validator is None:
                raise AuthenticityError("signed with a webhooks shared key, and none is configured")
            validator, algorithm = self._shared_key_validator, get_signature_algorithm(settings)
        # The URL as Twilio was given it matches at the first try; validate() then tries it with
        # and without the port, as Twilio's own signing is inconsistent about ports.
        if hmac.compare_digest(validator.compute_signature(url, form, algorithm), signature):
            return form
        if not validator.validate(url, form, signature, algorithm):
            shown = shown_url(url)
            raise AuthenticityError(f"X-Twilio-Signature does not match {shown} (public_base_url + path): "
                                    "was it signed for another URL?", checked_url=shown)
        return form


def shown_url(url: str) -> str:
    """The URL without credentials (Twilio allows https://user:pass@host/...) or query: safe to log and answer."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_form(body: bytes) -> MultiDict[str]:
    # A MultiDict, as Twilio signs every value of a repeated key (a dict kept only the last, and
    # the signature then failed); RequestValidator reads it with getall() at the first try, where
    # for a dict it raised and caught two AttributeErrors per field.
    return MultiDict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
