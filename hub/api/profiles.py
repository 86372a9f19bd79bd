"""The profile API (DESIGN sections 4 and 11): the single view, lookup, timeline, update,
erasure, merge, unmerge and merge suggestions.

Each request is one unit of work; the statements live in hub.profiles.store and run on a
sync connection through run_sync, so the merge the API does is the one the ingest writer does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import Connection

from hub import keys
from hub.access.auth import Scope, requires
from hub.api import openapi
from hub.api.confine import profile_refusal
from hub.api.paging import encode_cursor, listing, page_request
from hub.http_errors import error_response, json_response
from hub.profiles import store as repo
from hub.profiles.segments import SEGMENTS, SegmentSet, refresh
from hub.storage.engine import writer
from schemas import Interaction, parse_identifier
from schemas.profile import Profile, ProfilePatch, Rfm
from schemas.timestamps import rfc3339

routes = web.RouteTableDef()

def _now() -> datetime:
    return datetime.now(UTC)


def _field_error(status: int, error: str, field: str, message: str) -> web.Response:
    return error_response(status, error, f"{field}: {message}", [{"field": field, "message": message}])


def _profile_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text='{"error": "not_found", "message": "no such profile", '
                                    '"fields": [{"field": "id", "message": "not a UUID"}]}',
                               content_type="application/json") from None


async def _read(request: web.Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    async with request.app[keys.ENGINE].connect() as conn:
        return await conn.run_sync(fn, *args, **kwargs)


async def _write(request: web.Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # writer(): on SQLite the transaction starts with BEGIN IMMEDIATE (it reads, then writes).
    async with writer(request.app[keys.ENGINE]).begin() as conn:  # type: ignore[union-attr]
        result = await conn.run_sync(fn, *args, **kwargs)
    request.app[keys.RELAY].notify()  # the events just committed: publish now, not at the next poll
    return result


def _view(row: dict[str, Any]) -> dict[str, Any]:
    last = row.get("last_purchase_at")
    rfm = Rfm(recency_days=(_now() - last).days if last else None, last_purchase_at=last,
              frequency=row["frequency"], monetary=row["monetary"])
    attrs = row["attributes"]
    fields = {k: row[k] for k in Profile.model_fields if k in row and k not in ("rfm", "identifiers", "attributes")}
    # Rules (issue 5) may have kept owner and tier in attributes before these columns existed.
    for name in ("owner", "tier"):
        if fields.get(name) is None and isinstance(attrs.get(name), str):
            fields[name] = attrs[name]
    profile = Profile(**fields, attributes=attrs, rfm=rfm, identifiers=row.get("identifiers", []))
    return profile.model_dump(mode="json")


def _etag(version: int) -> str:
    return f'"{version}"'


def _respond(row: dict[str, Any], status: int = 200) -> web.Response:
    return json_response(_view(row), status=status, headers={"ETag": _etag(row["version"])})


def _moved(request: web.Request, survivor: uuid.UUID, suffix: str = "") -> web.Response:
    """A merged-away profile answers with where the customer lives now (301 for reads, 409 for writes)."""
    location = f"/v1/profiles/{survivor}{suffix}"
    status = 301 if request.method == "GET" else 409
    return json_response({"error": "merged", "message": f"this profile was merged into {survivor}",
                              "merged_into": str(survivor), "location": location},
                             status=status, headers={"Location": location})


async def _guard(request: web.Request, coro, suffix: str = "") -> Any:
    """Run a repository call, turning its refusals into JSON answers."""
    try:
        return await coro
    except repo.ProfileNotFound:
        return _field_error(404, "not_found", "id", "no such profile")
    except repo.ProfileMerged as exc:
        return _moved(request, exc.survivor, suffix)
    except repo.ProfileErased:
        return _field_error(410, "erased", "id", "this profile was erased")
    except repo.StaleVersion as exc:
        return error_response(412, "precondition_failed", f"stale If-Match: the profile is at version {exc.current}",
                              [{"field": "If-Match", "message": f"current ETag is {_etag(exc.current)}"}])
    except repo.NotMerged as exc:
        return _field_error(409, "not_merged", "id", str(exc))


@routes.get("/v1/profiles/merge-suggestions")
@requires(Scope.PROFILES_READ)
@openapi.lists("MergeSuggestion")
async def list_suggestions(request: web.Request) -> web.Response:
    """Pairs of profiles the merge policy would not merge on its own, newest first. Paged (`limit`, `cursor`)."""
    if (refusal := await profile_refusal(request, None)) is not None:  # about profiles of any task
        return refusal
    state = request.query.get("state", "open")
    if state not in ("open", "merged", "dismissed"):
        return _field_error(422, "validation_failed", "state", "one of open, merged, dismissed")
    page = page_request(request, "merge-suggestions", _time_id_key)
    rows, last = await _read(request, repo.suggestions, state=state, limit=page.limit, after=page.after)
    return json_response(listing(rows, _cursor("merge-suggestions", last)))


def _time_id_key(key: list[Any]) -> tuple[datetime, uuid.UUID]:
    at, item_id = key
    when = datetime.fromisoformat(at)
    if when.tzinfo is None:
        raise ValueError("cursor time has no offset")
    return when, uuid.UUID(item_id)


def _cursor(kind: str, last: tuple[datetime, uuid.UUID] | None) -> str | None:
    return encode_cursor(kind, [rfc3339(last[0]), str(last[1])]) if last is not None else None


@routes.get("/v1/profiles")
@requires(Scope.PROFILES_READ)
async def lookup(request: web.Request) -> web.Response:
    text = request.query.get("identifier")
    if not text:
        return _field_error(422, "validation_failed", "identifier", "required, as TYPE:VALUE")
    try:
        ident = parse_identifier(text, request.app[keys.SETTINGS].default_region)
    except (ValueError, ValidationError) as exc:
        message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        return _field_error(422, "validation_failed", "identifier", message)
    pid = await _read(request, repo.find_by_identifier, ident.key)
    # An agent user learns nothing about a profile outside its tasks, not even whether it exists.
    if (refusal := await profile_refusal(request, pid)) is not None:
        return refusal
    if pid is None:
        return _field_error(404, "not_found", "identifier", f"no profile has {ident}")
    return await _guard(request, _get(request, pid))


async def _get(request: web.Request, pid: uuid.UUID) -> web.Response:
    return _respond(await _read(request, repo.get, pid))


@routes.get("/v1/profiles/{id}")
@requires(Scope.PROFILES_READ)
async def get_profile(request: web.Request) -> web.Response:
    pid = _profile_id(request)
    if (refusal := await profile_refusal(request, pid)) is not None:
        return refusal
    return await _guard(request, _get(request, pid))


@routes.get("/v1/profiles/{id}/timeline")
@requires(Scope.PROFILES_READ)
@openapi.lists(Interaction)
async def get_timeline(request: web.Request) -> web.Response:
    """The customer's interactions on every channel, newest first. Paged (`limit`, `cursor`)."""
    pid = _profile_id(request)
    if (refusal := await profile_refusal(request, pid)) is not None:
        return refusal
    page = page_request(request, "timeline", _time_id_key)

    async def read() -> web.Response:
        items, last = await _read(request, repo.timeline, pid, limit=page.limit, after=page.after)
        return json_response(listing(items, _cursor("timeline", last)))

    return await _guard(request, read(), "/timeline")


@routes.patch("/v1/profiles/{id}")
@requires(Scope.PROFILES_WRITE)
@openapi.body(ProfilePatch)
async def patch_profile(request: web.Request) -> web.Response:
    pid = _profile_id(request)
    if_version = None
    if (header := request.headers.get("If-Match")) and header.strip() != "*":
        try:
            if_version = int(header.strip().removeprefix("W/").strip('"'))
        except ValueError:
            return _field_error(412, "precondition_failed", "If-Match", f"not an ETag of this hub: {header}")
    changes = ProfilePatch.model_validate_json(await request.read()).model_dump(mode="json", exclude_unset=True)
    return await _guard(request, _patched(request, pid, changes, if_version))


async def _patched(request: web.Request, pid: uuid.UUID, changes: dict[str, Any], if_version: int | None):
    segments = request.app[keys.PIPELINE].policy.segments
    return _respond(await _write(request, _patch, pid, _typed(changes), if_version=if_version, now=_now(),
                                 segments=segments))


def _patch(conn: Connection, pid: uuid.UUID, changes: dict[str, Any], *, if_version: int | None, now: datetime,
           segments: SegmentSet | None) -> dict[str, Any]:
    """The update, then its configured segments recomputed in the same transaction."""
    row = repo.patch(conn, pid, changes, if_version=if_version, now=now)
    if segments:
        moved = refresh(conn, segments, [pid], now)
        if pid in moved:
            row = {**row, SEGMENTS: moved[pid], "version": row["version"] + 1}
    return row


def _typed(changes: dict[str, Any]) -> dict[str, Any]:
    # JSON mode gave a JSON-able dict; the birthday column wants a date back.
    if changes.get("birthday") is not None:
        changes["birthday"] = datetime.fromisoformat(changes["birthday"]).date()
    return changes


@routes.delete("/v1/profiles/{id}")
@requires(Scope.PROFILES_WRITE)
async def erase_profile(request: web.Request) -> web.Response:
    pid = _profile_id(request)

    async def run() -> web.Response:
        return json_response(await _write(request, repo.erase, pid, now=_now()))

    return await _guard(request, run())


@routes.post("/v1/profiles/{id}/merge")
@requires(Scope.PROFILES_WRITE)
async def merge_profiles(request: web.Request) -> web.Response:
    pid = _profile_id(request)
    other = await _other(request, required=True)
    if isinstance(other, web.Response):
        return other
    if other == pid:
        return _field_error(422, "validation_failed", "other", "a profile cannot be merged with itself")

    async def run() -> web.Response:
        return json_response(await _write(request, repo.merge, pid, other, now=_now(), reason="api"))

    return await _guard(request, run())


@routes.post("/v1/profiles/{id}/unmerge")
@requires(Scope.PROFILES_WRITE)
async def unmerge_profiles(request: web.Request) -> web.Response:
    pid = _profile_id(request)
    other = await _other(request, required=False)
    if isinstance(other, web.Response):
        return other

    async def run() -> web.Response:
        return json_response(await _write(request, repo.unmerge, pid, other=other, now=_now()))

    return await _guard(request, run())


async def _other(request: web.Request, *, required: bool) -> uuid.UUID | None | web.Response:
    body = await request.json() if request.can_read_body else {}
    value = body.get("other") if isinstance(body, dict) else None
    if value is None:
        return _field_error(422, "validation_failed", "other", "required: the other profile's id") if required else None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return _field_error(422, "validation_failed", "other", "not a UUID")
