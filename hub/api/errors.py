"""JSON errors for every failure: a client is told which field is wrong, never handed HTML."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger("omnihub.api")


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


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app._client_max_size
        return error_response(413, "body_too_large", f"request body larger than {limit} bytes",
                              [{"field": "body", "message": f"at most {limit} bytes"}])
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except ValidationError as exc:
        return validation_error_response(exc)
    except json.JSONDecodeError as exc:
        return error_response(400, "invalid_json", str(exc), [{"field": "body", "message": str(exc)}])
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(500, "internal_error", "the hub failed to handle this request; it was logged")
