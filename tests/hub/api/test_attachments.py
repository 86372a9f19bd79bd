"""`GET /v1/interactions/{id}/attachments/{n}`: a stored attachment's bytes, from the blob store, with
its type, length and a safely encoded file name; under the rules that guard reading the interaction
(an agent user reads only its own tasks' customers'); a JSON 404 for what is not there."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from hub import keys
from hub.access.auth import Role, Scope
from hub.api.attachments import disposition, file_name, media_type
from hub.app import create_app
from tests.hub.access.test_auth import add_key, add_user, bearer, login
from tests.hub.conftest import eventually
from tests.hub.payloads import sms

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")  # the head of a PNG
PDF = "%PDF-1.4\n견적서\n%%EOF\n".encode()
ROUTING = {"queues": [{"name": "support", "sla_s": 30}], "agents": [{"id": "alice"}], "default_queue": "support",
           "poll_interval_s": 0.05}


@pytest.fixture
async def client(aiohttp_client, make_settings, tmp_path):
    return await aiohttp_client(create_app(make_settings(blob_dir=str(tmp_path / "blobs"))))


async def stored(client, data: bytes, filename: str | None, content_type: str) -> dict:
    """An attachment whose bytes are in the hub's blob store, as an adapter records one."""
    ref = await client.app[keys.BLOBS].put(data)
    return {"filename": filename, "content_type": content_type, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "storage_ref": ref}


async def with_attachments(client, *attachments: dict, phone: str = "010-4000-0001", headers=None, **extra) -> dict:
    payload = sms(phone, attachments=list(attachments), **extra)
    resp = await client.post("/v1/interactions", json=payload, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_the_bytes_come_back_with_type_length_and_file_name(client):
    photo = await stored(client, PNG, "사진 1.png", "image/png")
    quote = await stored(client, PDF, '견적서 "최종".pdf', "application/pdf")
    done = await with_attachments(client, photo, quote)
    resp = await client.get(f"/v1/interactions/{done['id']}/attachments/0")
    assert resp.status == 200
    assert await resp.read() == PNG
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Length"] == str(len(PNG))
    assert resp.headers["Content-Disposition"].startswith("inline;")  # an image shows in the page
    assert "filename*=UTF-8''%EC%82%AC%EC%A7%84%201.png" in resp.headers["Content-Disposition"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"

    resp = await client.get(f"/v1/interactions/{done['id']}/attachments/1")
    assert resp.status == 200 and await resp.read() == PDF
    assert resp.headers["Content-Type"] == "application/pdf"
    assert resp.headers["Content-Length"] == str(len(PDF))
    value = resp.headers["Content-Disposition"]
    assert value.startswith("attachment;")  # anything else is a download
    assert unquote(re.search(r"filename\*=UTF-8''(\S+)", value).group(1)) == '견적서 "최종".pdf'
    assert re.search(r'filename="([^"]*)"', value).group(1).isascii()  # for clients without filename*


async def test_an_unknown_attachment_or_interaction_is_a_json_404_naming_it(client):
    done = await with_attachments(client, await stored(client, PNG, "a.png", "image/png"))
    for n in ("1", "-1", "x", "01x", "99999999999999999999"):
        resp = await client.get(f"/v1/interactions/{done['id']}/attachments/{n}")
        body = await resp.json()
        assert resp.status == 404 and body["fields"][0]["field"] == "n", (n, body)
    plain = await (await client.post("/v1/interactions", json=sms("010-4000-0002"))).json()
    resp = await client.get(f"/v1/interactions/{plain['id']}/attachments/0")
    assert resp.status == 404 and "no attachments" in (await resp.json())["message"]
    resp = await client.get("/v1/interactions/0190a000-0000-7000-8000-000000000000/attachments/0")
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"


async def test_a_storage_ref_that_is_not_the_stores_own_is_never_followed(client, tmp_path):
    """storage_ref comes in with POST /v1/interactions: a path in it must not reach the disk."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    recorded = {"filename": "x.txt", "content_type": "text/plain", "size": 9, "sha256": "0" * 64}
    refs = ["blob:sha256:../../../" + str(secret), "file://" + str(secret), "blob:sha256:" + "0" * 64, None]
    done = await with_attachments(client, *({**recorded, "storage_ref": ref} for ref in refs))
    for n in range(len(refs)):
        resp = await client.get(f"/v1/interactions/{done['id']}/attachments/{n}")
        body = await resp.json()
        assert resp.status == 404 and body["error"] == "not_stored", (refs[n], body)


async def test_html_and_svg_are_downloads_and_a_bad_content_type_is_octet_stream(client):
    page = await stored(client, b"<script>alert(1)</script>", "page.html", "text/html")
    drawing = await stored(client, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "d.svg", "image/svg+xml")
    odd = await stored(client, b"bytes", "odd.bin", "text/plain\r\nSet-Cookie: a=b")
    done = await with_attachments(client, page, drawing, odd)
    for n in (0, 1):
        resp = await client.get(f"/v1/interactions/{done['id']}/attachments/{n}")
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert "sandbox" in resp.headers["Content-Security-Policy"]
    resp = await client.get(f"/v1/interactions/{done['id']}/attachments/2")
    assert resp.headers["Content-Type"] == "application/octet-stream" and "Set-Cookie" not in resp.headers


async def test_an_agent_reads_the_attachments_of_its_own_tasks_customers_only(aiohttp_client, make_settings, tmp_path):
    settings = make_settings(auth={"enabled": True, "key_cache_s": 0}, routing=ROUTING, blob_dir=str(tmp_path / "b"))
    hub = await aiohttp_client(create_app(settings))
    await hub.app[keys.ROUTER].active.wait()
    admin = bearer(await add_key(hub, "admin", Scope.ADMIN))
    await add_user(hub, "ann", Role.AGENT, agent_id="alice")
    ann = bearer(await login(hub, "ann"))
    # Another customer's document (kind event: never a task, so never one of ann's).
    other = await with_attachments(hub, await stored(hub, PDF, "q.pdf", "application/pdf"), headers=admin,
                                   kind="event")
    assert (await hub.get(f"/v1/interactions/{other['id']}/attachments/0")).status == 401
    assert (await hub.get(f"/v1/interactions/{other['id']}/attachments/0", headers=ann)).status == 403

    resp = await hub.post("/v1/agents/alice/presence", json={"presence": "available"}, headers=ann)
    assert resp.status == 200, await resp.text()
    own = await with_attachments(hub, await stored(hub, PNG, "p.png", "image/png"), phone="010-4000-0003",
                                 headers=admin)

    async def offered_to_alice() -> bool:
        return bool((await (await hub.get("/v1/tasks", headers=ann)).json())["items"])

    await eventually(offered_to_alice)
    resp = await hub.get(f"/v1/interactions/{own['id']}/attachments/0", headers=ann)
    assert resp.status == 200 and await resp.read() == PNG
    assert (await hub.get(f"/v1/interactions/{other['id']}/attachments/0", headers=ann)).status == 403


# Names as customers' mail clients and phones send them: any text at all.
@given(st.text(max_size=80), st.sampled_from(["image/png", "application/pdf", "text/html", "image/svg+xml"]))
def test_any_file_name_makes_one_safe_header_that_gives_the_name_back(declared: str, content_type: str) -> None:
    name = file_name(declared, 3)
    value = disposition(name, content_type)
    web.Response(headers={"Content-Disposition": value})  # aiohttp takes it as a header value
    assert value.isascii() and not re.search(r"[\x00-\x1f\x7f]", value)
    kind, plain, encoded = re.fullmatch(r"(inline|attachment); filename=\"([^\"\\]*)\"; filename\*=UTF-8''(\S+)",
                                        value).groups()
    assert (kind == "inline") == (content_type == "image/png")
    assert unquote(encoded, errors="strict") == name
    assert "/" not in name and "\\" not in name and name.strip() and not name.startswith(".")
    assert plain and "/" not in plain


@given(st.text(max_size=60))
def test_any_declared_content_type_is_sent_only_if_well_formed(declared: str) -> None:
    sent = media_type(declared)
    web.Response(headers={"Content-Type": sent})
    assert sent == "application/octet-stream" or (sent == declared.strip() and "\n" not in sent and "/" in sent)
