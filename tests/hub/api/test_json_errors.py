"""Every failure is answered in JSON, including requests no route takes and errors a handler lets out."""

from __future__ import annotations

import logging

from aiohttp import web

from hub.api.errors import add_json_routes, add_not_routed
from hub.http_errors import answer_for, answers_its_errors
from tests.hub.payloads import sms


async def test_an_unknown_path_is_a_json_404(client):
    for path in ("/nope", "/v1/interactions/a/b", "/channels/none/inbound"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"] == "not_found"


async def test_a_known_path_with_the_wrong_method_is_a_json_405_naming_the_allowed_ones(client):
    resp = await client.get("/v1/interactions")
    assert resp.status == 405
    body = await resp.json()
    assert body["error"] == "method_not_allowed"
    assert "POST" in body["message"]
    assert resp.headers["Allow"] == "POST"
    resp = await client.delete("/healthz")
    assert resp.status == 405
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}


async def test_a_too_large_body_on_any_route_is_a_json_413(aiohttp_client, make_settings):
    from hub.app import create_app

    client = await aiohttp_client(create_app(make_settings(max_body_bytes=4096)))
    resp = await client.post("/v1/messages", data=b"{" + b" " * 10_000 + b"}",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["fields"] == [{"field": "body", "message": "at most 4096 bytes"}]
    # The ingest route answers its own errors (no wrapper): the same answer.
    resp = await client.post("/v1/interactions", json=sms(text="x" * 10_000))
    assert resp.status == 413
    assert (await resp.json())["error"] == "body_too_large"


def _app_with(handler, path="/boom") -> web.Application:
    routes = web.RouteTableDef()
    routes.get(path)(handler)
    app = web.Application()
    add_json_routes(app, routes)
    add_not_routed(app)
    return app


async def test_an_unhandled_error_is_a_logged_json_500(aiohttp_client, caplog):
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("disk on fire")

    client = await aiohttp_client(_app_with(boom))
    with caplog.at_level(logging.ERROR, logger="omnihub.api"):
        resp = await client.get("/boom")
    assert resp.status == 500
    assert (await resp.json())["error"] == "internal_error"
    assert any(r.exc_info and "disk on fire" in str(r.exc_info[1]) for r in caplog.records)


async def test_an_http_error_a_handler_raises_becomes_json_and_a_redirect_stays_a_redirect(aiohttp_client):
    async def gone(request: web.Request) -> web.Response:
        raise web.HTTPGone()

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    app = _app_with(gone, "/gone")
    routes = web.RouteTableDef()
    routes.get("/moved")(moved)
    add_json_routes(app, routes)
    client = await aiohttp_client(app)
    resp = await client.get("/gone")
    assert resp.status == 410
    assert (await resp.json())["error"] == "gone"
    resp = await client.get("/moved", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/elsewhere"


async def test_routes_added_after_the_catch_all_still_answer(aiohttp_client):
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = _app_with(ok, "/first")
    app.router.add_get("/later/{id}", ok)
    app.router.add_get("/later2", ok)
    client = await aiohttp_client(app)
    for path in ("/first", "/later/7", "/later2"):
        resp = await client.get(path)
        assert resp.status == 200, path
    assert (await client.get("/later")).status == 404


async def test_a_handler_that_answers_its_own_errors_is_not_wrapped(aiohttp_client):
    @answers_its_errors
    async def own(request: web.Request) -> web.StreamResponse:
        try:
            raise ValueError("x")
        except Exception as exc:
            return answer_for(request, exc)

    app = _app_with(own, "/own")
    route = next(r for r in app.router.routes() if r.resource.canonical == "/own" and r.method == "GET")
    assert route.handler is own
    client = await aiohttp_client(app)
    assert (await client.get("/own")).status == 500
