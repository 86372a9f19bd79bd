"""Standard Webhooks signatures (https://www.standardwebhooks.com), for the webhooks DESIGN section 9
says are signed that way (POS, CTI): HMAC-SHA256 over `id.timestamp.body`, keyed with the base64
part of a `whsec_` secret, within a 5-minute window, checked by the reference library.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook as StandardWebhook

from .base import AuthenticityError

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def standard_secret(value: SecretStr) -> SecretStr:
    """A config validator's body: the secret is `whsec_` and base64 the library accepts."""
    try:
        if not value.get_secret_value().startswith("whsec_"):
            raise ValueError
        StandardWebhook(value.get_secret_value())
    except Exception:  # noqa: BLE001 - the library raises binascii.Error, its own error, RuntimeError
        raise ValueError("a Standard Webhooks secret: 'whsec_' followed by base64") from None
    return value


class SignatureCheck:
    def __init__(self, secret: SecretStr) -> None:
        self._verifier = StandardWebhook(secret.get_secret_value())

    def verify(self, request: web.Request, body: bytes) -> None:
        """Raise AuthenticityError unless `body` is signed with our secret, recently."""
        headers = {name: request.headers.get(name, "") for name in SIGNATURE_HEADERS}
        missing = [name for name, value in headers.items() if not value]
        if missing:
            raise AuthenticityError(f"no {', '.join(missing)} header")
        try:
            # The standard signs the body as text; the reference library's answer to bytes that are
            # not UTF-8 changed between releases (an error, then "no matching signature"): ask first.
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticityError("the body is not UTF-8") from None
        try:
            self._verifier.verify(body, headers, json_parse=False)
        except Exception as exc:  # noqa: BLE001 - see _reason
            raise AuthenticityError(_reason(exc)) from None


def _reason(exc: Exception) -> str:
    # The reference verifier raises its own error for a wrong or stale signature, but lets
    # ValueError, binascii.Error and UnicodeDecodeError out of malformed headers or a body that is
    # not UTF-8: every one of them means "not provably from the sender", never a 500.
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "the body is not UTF-8"
    if type(exc).__name__ == "WebhookVerificationError" and text:
        return text  # "No matching signature found", "Message timestamp too old"...
    return "malformed webhook-signature or webhook-timestamp header"
