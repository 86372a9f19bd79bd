"""`POST /v1/auth/login`, `POST /v1/auth/logout`, `GET /v1/auth/me`, `POST /v1/auth/password`
(hub.access.auth, hub.access.logins); an admin's `POST /v1/users/{username}/unlock` and
`GET /v1/security/events` (hub.access.security_log)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub import keys
from hub.access import security_log
from hub.access.auth import AUTHENTICATED, PUBLIC, Scope, credential, digest, principal, requires
from hub.access.logins import AccountLocked, LoginThrottled, PasswordRejected
from hub.api import openapi
from hub.api.paging import encode_cursor, listing, page_request
from hub.http_errors import error_response, json_response

routes = web.RouteTableDef()


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


@routes.post("/v1/auth/login")
@openapi.body(LoginBody)
@requires(PUBLIC)
async def login(request: web.Request) -> web.Response:
    """Log in with a username and password: a bearer token that expires after auth.token_ttl_s."""
    body = LoginBody.model_validate_json(await request.read())
    try:
        done = await request.app[keys.AUTH].login(body.username, body.password, request.remote)
    except LoginThrottled as exc:
        return throttled(exc)
    except AccountLocked:
        return error_response(423, "account_locked", "this account is locked after too many wrong passwords: "
                              "an admin can unlock it (omnihub users unlock)")
    if done is None:
        # The same answer for an unknown user, a wrong password and a disabled user.
        return error_response(401, "invalid_credentials", "unknown user or wrong password")
    token, expires_at, who = done
    return json_response({"token": token, "expires_at": expires_at,
                          "user": {"name": who.name, "role": who.role, "agent_id": who.agent_id}})


@routes.post("/v1/auth/logout")
@requires(AUTHENTICATED)
async def logout(request: web.Request) -> web.Response:
    """End this session (its token stops working at once on this hub process)."""
    token = credential(request)
    if token is not None and request.app[keys.AUTH].enabled:
        await request.app[keys.AUTH].logout(token)
    return web.Response(status=204)


@routes.get("/v1/auth/me")
@requires(AUTHENTICATED)
async def me(request: web.Request) -> web.Response:
    """Who the credentials belong to, with their role and scopes; `auth_enabled: false` on an open hub."""
    who = principal(request)
    if who is None:
        return json_response({"auth_enabled": False})
    return json_response({"auth_enabled": True, **who.view()})


def throttled(exc: LoginThrottled) -> web.Response:
    response = error_response(429, "throttled", f"too many wrong passwords: try again in {exc.retry_after_s} s")
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


class PasswordChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


@routes.post("/v1/auth/password")
@openapi.body(PasswordChangeBody)
@requires(AUTHENTICATED)
async def change_password(request: web.Request) -> web.Response:
    """Change your own password (the current one is checked and throttled like a login); every other
    session of yours ends, this one goes on."""
    who = principal(request)
    if who is None or who.kind != "user":
        return error_response(403, "forbidden", "only a logged-in user has a password to change")
    body = PasswordChangeBody.model_validate_json(await request.read())
    auth = request.app[keys.AUTH]
    token = credential(request)
    try:
        changed = await auth.logins.change_password(who.name, body.current_password, body.new_password,
                                                    keep_session=digest(token) if token else None,
                                                    client=request.remote)
    except PasswordRejected as exc:
        return error_response(422, "invalid", str(exc), [{"field": "new_password", "message": str(exc)}])
    except LoginThrottled as exc:
        return throttled(exc)
    except AccountLocked:
        return error_response(423, "account_locked", "this account is locked: an admin can unlock it")
    if not changed:
        return error_response(422, "invalid", "the current password is wrong",
                              [{"field": "current_password", "message": "wrong password"}])
    auth.forget_user(who.name)
    return web.Response(status=204)


@routes.post("/v1/auth/ws-ticket")
@requires(AUTHENTICATED)
async def ws_ticket(request: web.Request) -> web.Response:
    """A one-time ticket for opening a websocket (`?ticket=`), valid for auth.ws_ticket_ttl_s: a browser
    can't give a websocket an Authorization header, and a token in a URL would be logged."""
    who = principal(request)
    if who is None:  # auth is off: a socket needs no ticket
        return web.json_response({"ticket": None, "expires_at": None})
    ticket, expires_at = await request.app[keys.AUTH].issue_ticket(who)
    return web.json_response({"ticket": ticket, "expires_at": expires_at.isoformat().replace("+00:00", "Z")},
                             status=201)


@routes.post("/v1/users/{username}/unlock")
@requires(Scope.ADMIN)
async def unlock(request: web.Request) -> web.Response:
    """Clear an account's lockout and failed-login count."""
    who = principal(request)
    name = request.match_info["username"]
    await request.app[keys.AUTH].logins.unlock(name, actor=who.name if who else "anonymous")
    return web.Response(status=204)


@routes.get("/v1/security/events")
@requires(Scope.ADMIN)
@openapi.lists("SecurityEvent")
async def security_events(request: web.Request) -> web.Response:
    """The security event log, newest first: `?username=`. Paged (`limit`, `cursor`)."""
    page = page_request(request, "security-events", _event_key)
    before = page.after[0] if page.after is not None else None
    async with request.app[keys.ENGINE].connect() as conn:
        rows, theirs = await security_log.page(conn, limit=page.limit, before=before,
                                               username=request.query.get("username"))
    # The log's own cursor only says whether more follow: the answer's is the one every list hands out.
    after = encode_cursor("security-events", [rows[-1]["id"]]) if theirs is not None else None
    return json_response(listing(rows, after))


def _event_key(key: list[Any]) -> tuple[int]:
    (event_id,) = key
    if isinstance(event_id, bool) or not isinstance(event_id, int):
        raise TypeError("not an event id")
    return (event_id,)
