"""JSON error answers for every HTTP route: a client is told which field is wrong, never handed HTML.

A small shared utility below every capability, so the web layer (hub.api), the adapter runtime
(hub.channels) and authorization (hub.access) answer errors the same way without importing the
web layer, which sits on top (DESIGN section 2).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger("omnihub.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Check = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
_ANSWERS_ITS_ERRORS = "_omnihub_answers_its_errors"


def error_response(status: int, error: str, message: str, fields: list[dict[str, Any]] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": error, "message": message}
    if fields is not None:
        body["fields"] = fields
    return web.json_response(body, status=status)


def validation_error_response(exc: ValidationError) -> web.Response:
    fields = []
    for err in exc.errors(include_url=False, include_input=False):
        if err["type"] == "json_invalid":
            return error_response(400, "invalid_json", f"body is not valid JSON: {err['msg']}",
                                  [{"field": "body", "message": err["msg"]}])
        path = ".".join(str(p) for p in err["loc"]) or "body"
        fields.append({"field": path, "message": err["msg"], "type": err["type"]})
    names = ", ".join(f["field"] for f in fields[:5])
    return error_response(422, "validation_failed", f"invalid fields: {names}", fields)


def answer_for(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The JSON answer for an exception a handler let out; an HTTPException that is not an error
    (a redirect) or that already carries JSON is raised again for aiohttp to send as it is."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app._client_max_size
        return error_response(413, "body_too_large", f"request body larger than {limit} bytes",
                              [{"field": "body", "message": f"at most {limit} bytes"}])
    if isinstance(exc, web.HTTPException):
        if exc.status < 400 or exc.content_type == "application/json":
            raise exc
        return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    if isinstance(exc, ValidationError):
        return validation_error_response(exc)
    if isinstance(exc, json.JSONDecodeError):
        return error_response(400, "invalid_json", str(exc), [{"field": "body", "message": str(exc)}])
    log.error("unhandled error", exc_info=exc, extra={"path": request.path, "method": request.method})
    return error_response(500, "internal_error", "the hub failed to handle this request; it was logged")


# Per route rather than an application middleware: with any middleware at all, aiohttp wraps every
# request in two extra layers (the middleware and its own current-app fixer) plus a cache lookup,
# 2-3% of an ingest's CPU in paired bench runs. `POST /v1/interactions` calls answer_for itself.
def json_errors(handler: Handler, check: Check | None = None) -> Handler:
    """`handler`, answering whatever it raises with a JSON error (see answer_for); with `check` (the
    authorization hub.access.auth adds), the request goes on only if check answers None, else gets its answer.
    In the same layer: one wrapper a route, not one per concern."""
    if getattr(handler, _ANSWERS_ITS_ERRORS, False):
        return handler

    if check is None:
        @functools.wraps(handler)
        async def answered(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error becomes a JSON answer
                return answer_for(request, exc)

        return answered

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        try:
            refusal = await check(request)
            if refusal is not None:
                return refusal
            return await handler(request)
        except Exception as exc:  # noqa: BLE001 - every error becomes a JSON answer
            return answer_for(request, exc)

    return checked


def answers_its_errors(handler: Handler) -> Handler:
    """Mark a handler that calls answer_for itself, so json_errors adds no layer around it."""
    setattr(handler, _ANSWERS_ITS_ERRORS, True)
    return handler
