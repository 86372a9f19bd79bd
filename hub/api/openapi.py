"""`GET /v1/openapi.json`: the HTTP API as OpenAPI 3.1, generated from the running app.

Paths and methods come from the app's router, so the configured adapters' webhooks are listed as
they are mounted; summaries are the first line of each handler's docstring; request bodies are the
pydantic models handlers declare with `@body(Model)`, and list routes declare their items with
`@lists(...)` (a model, or a shape from hub.api.shapes), which adds the one list shape and its
`limit` and `cursor` parameters. Nothing is copied by hand, so the document cannot drift from the routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hub.access.auth import PUBLIC, requires
from hub.api import shapes
from hub.api.errors import is_not_routed
from hub.api.paging import DEFAULT_LIMIT, MAX_LIMIT
from hub.http_errors import json_response

_BODY = "__omnihub_body__"
_LIST = "__omnihub_list__"
_ANSWERS = "__omnihub_answers__"
_REF = "#/components/schemas/{model}"
H = TypeVar("H", bound=Callable[..., Any])

_ERROR = {
    "type": "object", "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a machine-readable code, e.g. validation_failed"},
        "message": {"type": "string"},
        "fields": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {
            "field": {"type": "string", "description": "dotted path of the failing field"},
            "message": {"type": "string"}, "type": {"type": "string"}}}},
    },
}


def body(model: type[BaseModel]) -> Callable[[H], H]:
    """Declare the JSON body a handler takes (it still validates it itself)."""
    def mark(handler: H) -> H:
        setattr(handler, _BODY, model)
        return handler
    return mark


def lists(items: type[BaseModel] | str, **summary: dict[str, Any]) -> Callable[[H], H]:
    """Declare a list route: its items (a model, or the name of a shape in hub.api.shapes) and any
    summary fields it answers beside them."""
    def mark(handler: H) -> H:
        setattr(handler, _LIST, (items, summary))
        return handler
    return mark


def answers(status: int, description: str, content: dict[str, Any] | None = None) -> Callable[[H], H]:
    """Declare a success answer that is not JSON (a file, a redirect): its status, what it is and
    its content by media type."""
    def mark(handler: H) -> H:
        answer: dict[str, Any] = {"description": description}
        if content is not None:
            answer["content"] = content
        setattr(handler, _ANSWERS, {str(status): answer})
        return handler
    return mark


_PAGING = [
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
     "description": "items per page; anything else is a 422 naming `limit`"},
    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "the `next` of the page before (opaque); "
                    "one this list did not hand out is a 422 naming `cursor`"},
]


def _list_answer(marked: tuple[type[BaseModel] | str, dict[str, Any]], models: dict[str, type[BaseModel]]
                 ) -> dict[str, Any]:
    items, summary = marked
    if isinstance(items, str):
        name = items
    else:
        name = items.__name__
        models[name] = items
    return {"description": "one page of the list", "content": {"application/json": {
        "schema": shapes.page({"$ref": _REF.format(model=name)}, summary)}}}


def document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    models: dict[str, type[BaseModel]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD" or path is None or is_not_routed(route):
            continue
        handler = route.handler
        doc = (handler.__doc__ or "").strip()
        operation: dict[str, Any] = {
            "operationId": f"{route.method.lower()}_{handler.__name__}",
            "summary": doc.splitlines()[0] if doc else handler.__name__.replace("_", " "),
            "responses": {
                "2XX": {"description": "success"},
                "default": {"description": "a JSON error naming the failing field",
                            "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}},
            },
        }
        names = re.findall(r"\{(\w+)\}", path)
        if names:
            operation["parameters"] = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                                       for n in names]
        marked = getattr(handler, _LIST, None)
        if marked is not None:
            operation["parameters"] = [*operation.get("parameters", []), *_PAGING]
            operation["responses"] = {"200": _list_answer(marked, models), **operation["responses"]}
            del operation["responses"]["2XX"]
        if (declared := getattr(handler, _ANSWERS, None)) is not None:
            operation["responses"] = {**declared, "default": operation["responses"]["default"]}
        model = getattr(handler, _BODY, None)
        if model is not None:
            models[model.__name__] = model
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}}
        paths.setdefault(path, {})[route.method.lower()] = operation
    schemas: dict[str, Any] = {"Error": _ERROR, **shapes.ITEMS}
    if models:
        _, top = models_json_schema([(m, "validation") for m in models.values()], ref_template=_REF)
        schemas.update(top.get("$defs", {}))
    return {"openapi": "3.1.0",
            "info": {"title": "omnihub", "version": "1",
                     "description": "Omnichannel contact-center hub: the HTTP API (DESIGN section 11). "
                                    "Every list answers {\"items\": [...], \"next\": cursor or null}; "
                                    "every time is RFC 3339 in UTC, ending in Z."},
            "paths": dict(sorted(paths.items())), "components": {"schemas": schemas}}


routes = web.RouteTableDef()


@routes.get("/v1/openapi.json")
@requires(PUBLIC)
async def openapi(request: web.Request) -> web.Response:
    """This document."""
    return json_response(document(request.app))
