"""`/console/`: the agent console's files, served as they are, with a policy that keeps the page to
this hub (no CDN, no inline script); anything else under /console/ is a JSON 404; `/` leads there."""

from __future__ import annotations

import re

import pytest

from hub.api.console import CONSOLE_DIR

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_the_page_and_every_file_it_loads_are_served(client):
    resp = await client.get("/console/")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    html = await resp.text()
    assets = re.findall(r'(?:src|href)="([^":]+)"', html)
    assert "console.js" in assets and "console.css" in assets
    modules = {"console.js"}
    for name in sorted(p.name for p in CONSOLE_DIR.glob("*.js")):
        source = (CONSOLE_DIR / name).read_text(encoding="utf-8")
        modules |= {m.removeprefix("./") for m in re.findall(r'from "(\./[^"]+)"', source)}
        assert "http://" not in source and "https://" not in source, f"{name} reaches outside the hub"
    for name in sorted(set(assets) | modules):
        resp = await client.get(f"/console/{name}")
        assert resp.status == 200, name
        kind = {"js": "text/javascript", "css": "text/css"}[name.rsplit(".", 1)[1]]
        assert resp.headers["Content-Type"].startswith(kind), name


async def test_console_without_the_slash_redirects_keeping_the_agent(client):
    resp = await client.get("/console?agent=kim", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/console/?agent=kim"


async def test_anything_else_under_console_is_a_json_404(client):
    for path in ("/console/nope.js", "/console/__init__.py", "/console/..%2Fapp.py", "/console/a/b.js",
                 "/console/..%2Fconsole%2Fconsole.js", "/console/%2e%2e%2fconsole%2fconsole.js"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"] == "not_found", path
    resp = await client.post("/console/")
    assert resp.status == 405


async def test_the_hubs_front_door_leads_to_the_console_and_names_the_api(client):
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/console/"
    assert "</v1/openapi.json>" in resp.headers["Link"]
    resp = await client.get("/")  # followed: the console's page
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert (await client.post("/")).status == 405  # only GET has a page; the rest is still JSON
