"""`POST /v1/auth/login`, `POST /v1/auth/logout`, `GET /v1/auth/me` (hub.access.auth)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub import keys
from hub.access.auth import AUTHENTICATED, PUBLIC, credential, principal, requires
from hub.api import openapi
from hub.http_errors import error_response

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
    done = await request.app[keys.AUTH].login(body.username, body.password)
    if done is None:
        # The same answer for an unknown user, a wrong password and a disabled user.
        return error_response(401, "invalid_credentials", "unknown user or wrong password")
    token, expires_at, who = done
    return web.json_response({"token": token, "expires_at": expires_at.isoformat(),
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
        return web.json_response({"auth_enabled": False})
    return web.json_response({"auth_enabled": True, **who.view()})
