"""JSON error answers for every HTTP route: a client is told which field is wrong, never handed HTML.

A small shared utility below every capability, so the web layer (hub.api), the adapter runtime
(hub.channels) and authorization (hub.access) answer errors the same way without importing the
web layer, which sits on top (DESIGN section 2).

An outage (the database refused, dropped or timed out, no pooled connection came free, the disk
failed, the pipeline stopped) is the hub's state, not the request's fault: every route answers it
503 `unavailable` with Retry-After, never 500, and it is logged once per outage (OutageLog), not
once per request. `unavailable_cause` is the one place that tells an outage from a bug; the
adapter runtime uses it too, to hand adapters HubUnavailable.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from adapters.base import HubUnavailable
from schemas import OmnihubError
from schemas.timestamps import rfc3339

log = logging.getLogger("omnihub.api")
outage_log = logging.getLogger("omnihub.outage")

RETRY_AFTER_S = 5  # what a 503 asks a client to wait: a failover or a restart takes seconds

# PostgreSQL SQLSTATEs of an outage rather than a bad statement: connection exceptions (08),
# insufficient resources (53: too many connections, disk full), operator intervention (57: the
# statement_timeout cancelled it, admin shutdown, cannot connect now) and lock_timeout (55P03).
_PG_OUTAGE_CLASSES = ("08", "53", "57")
_PG_OUTAGE_STATES = ("55P03",)
# SQLite's result codes of an outage: locked past busy_timeout, the file unreadable or full.
_SQLITE_OUTAGE_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN",
                        "SQLITE_READONLY", "SQLITE_PROTOCOL", "SQLITE_NOMEM")
_SQLITE_OUTAGE_WORDS = ("locked", "disk i/o error", "unable to open", "disk is full", "readonly database")


class ServiceUnavailable(OmnihubError):
    """Raised where the hub cannot do anything right now through no fault of the request (the
    pipeline stopped, the database unreachable); answered 503 with Retry-After. The underlying
    error, if any, is chained as __cause__."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Check = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
_ANSWERS_ITS_ERRORS = "_omnihub_answers_its_errors"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)  # UUIDs, decimals


def dumps(data: Any) -> str:
    """The JSON of every answer: text as it is (never ASCII-escaped: `박`, not `\\ubc15`), times
    as RFC 3339 UTC ending in `Z`, UUIDs and decimals as strings."""
    return json.dumps(data, ensure_ascii=False, default=_jsonable)


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """web.json_response through `dumps`: the one way a JSON answer is written."""
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def error_response(status: int, error: str, message: str, fields: list[dict[str, Any]] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": error, "message": message}
    if fields is not None:
        body["fields"] = fields
    return json_response(body, status=status)


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
    if unavailable_cause(exc) is not None:
        return unavailable_response(request, exc)
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


def unavailable_cause(exc: BaseException) -> BaseException | None:
    """The error that makes `exc` an outage (the hub cannot work now) rather than a bug or a bad
    request, or None. Follows `raise ... from` chains: a failure caused by an outage is one."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if _is_outage(current):
            return current
        current = current.__cause__
        seen += 1
    return None


def _is_outage(exc: BaseException) -> bool:
    match exc:
        case ServiceUnavailable() | HubUnavailable() | PoolTimeout():
            return True
        case DBAPIError(connection_invalidated=True):
            return True
        case DBAPIError():
            driver = _driver_error(exc)
            if isinstance(driver, sqlite3.Error):
                return _sqlite_outage(driver)
            if isinstance(exc, InterfaceError):
                # asyncpg's client-side errors: a closed or busy connection, or a value it cannot
                # send (a ValueError: the request's fault).
                return not isinstance(driver, (ValueError, TypeError))
            state = getattr(driver, "sqlstate", None) or getattr(exc.orig, "sqlstate", None)
            if isinstance(state, str):
                return state[:2] in _PG_OUTAGE_CLASSES or state in _PG_OUTAGE_STATES
            # Other drivers (psycopg, ...) raise OperationalError for exactly this.
            return isinstance(exc, OperationalError)
        case TimeoutError() | OSError():
            # A socket the driver gave up on, a connect refused, the blob disk full or unmounted.
            return True
    return False


def _driver_error(exc: DBAPIError) -> BaseException | None:
    """The driver's own exception: asyncpg's behind SQLAlchemy's adapter, else the DBAPI's."""
    orig = exc.orig
    return getattr(orig, "__cause__", None) or orig


def _sqlite_outage(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorname", None)
    if code is not None:
        return code.startswith(_SQLITE_OUTAGE_CODES)
    text = str(error).lower()
    return any(word in text for word in _SQLITE_OUTAGE_WORDS)


def outage_name(exc: BaseException) -> str:
    """What failed, by type only (a DBAPI error's text quotes the statement and its parameters,
    which may hold a phone number): "OperationalError" or "DBAPIError <- ConnectionDoesNotExistError"."""
    cause = _root_outage(exc)
    names = [type(cause).__name__]
    if isinstance(cause, DBAPIError) and (driver := _driver_error(cause)) is not None:
        names.append(type(driver).__name__)
    return " <- ".join(dict.fromkeys(names))


def _root_outage(exc: BaseException) -> BaseException:
    """The outage under the hub's own wrappers: HubUnavailable <- PipelineStopped, or <- the DBAPI error."""
    cause = unavailable_cause(exc) or exc
    while isinstance(cause, HubUnavailable | ServiceUnavailable) and cause.__cause__ is not None:
        cause = cause.__cause__
    return cause


class OutageLog:
    """One WARNING when the hub starts answering 503 for an outage, one INFO with its length when
    the database answers again (`reachable`, called by the engine and the pipeline): an outage of
    15 s under load is two log lines, not a traceback per request.

    The outage ends once the database answers and no request was refused for QUIET_S: while it
    answers some and not others (out of pooled connections, a failover under way), that is still
    one outage, not two lines per refusal."""

    QUIET_S = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.since: float | None = None
        self.last_refused = 0.0
        self.refused = 0

    def refused_one(self, exc: BaseException) -> None:
        self.refused += 1
        self.last_refused = self._clock()
        if self.since is None:
            self.since = self.last_refused
            name = outage_name(exc)
            outage_log.warning("hub unavailable (%s): answering 503 with Retry-After until the database answers",
                               name, extra={"error": name})

    def reachable(self) -> None:
        if self.since is None:
            return
        now = self._clock()
        if now - self.last_refused < self.QUIET_S:
            return
        lasted = now - self.since
        outage_log.info("database reachable again after %.1f s; %d requests were answered 503", lasted,
                        self.refused, extra={"outage_s": round(lasted, 3), "refused": self.refused})
        self.since = None
        self.refused = 0


OUTAGES = web.AppKey("omnihub_outages", OutageLog)
_UNWIRED = OutageLog()  # an app create_app did not build (a test's bare app)


def unavailable_response(request: web.Request, exc: BaseException) -> web.Response:
    """503 `unavailable` with Retry-After: nothing was done (or a 2xx never promised it), and the
    same request may be sent again."""
    request.app.get(OUTAGES, _UNWIRED).refused_one(exc)
    root = _root_outage(exc)
    if isinstance(root, HubUnavailable | ServiceUnavailable):
        reason = str(root)  # the hub's own words, e.g. "the ingest writer is not running"
    else:
        reason = f"its database or disk is unavailable ({outage_name(exc)})"
    response = error_response(503, "unavailable", f"the hub cannot take this right now: {reason}; "
                              f"try again in {RETRY_AFTER_S} s")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response
