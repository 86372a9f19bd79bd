"""`omnihub import pos FILE`, run as a user runs it, on SQLite and PostgreSQL: what it prints, what
it stores (through the real pipeline: profiles, RFM, events), and that a second run, or a receipt
that already came in by webhook, adds nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from hub.app import create_app
from tests.adapters.pos_support import SECRET, post, sale
from tests.hub.conftest import count_rows

HEADER = "store,register,receipt,time,total,currency,loyalty_id,phone,email,customer_name,items,refund,original_receipt"
ITEMS = '"[{""sku"": ""TEA-01"", ""qty"": 2, ""unit_price"": ""12000""}]"'
CSV = f"""{HEADER}
S01,1,R-1,2026-11-20T12:00:00+09:00,24000,KRW,LOY-1,010-1234-5678,minji@example.com,Kim Minji,{ITEMS},,
S01,1,R-2,2026-11-21T12:00:00+09:00,-5,KRW,LOY-1,,,,,,
S01,2,R-3,2026-11-22T12:00:00+09:00,6000,,LOY-1,,,,,,

S01,2,R-4,2026-11-23T12:00:00+09:00,12000,KRW,LOY-1,,,,,true,R-1
S02,1,R-1,2026-11-23T15:00:00+09:00,1000,KRW,,01012345678,,,,,
"""


@pytest.fixture
def config(tmp_path, database_url) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(f"database_url: '{database_url}'\n"
                    f"adapters:\n  pos: {{secret: '{SECRET}', default_currency: KRW}}\n")
    return path


async def omnihub(config: Path, *args: str) -> tuple[int, str, str]:
    exe = Path(sys.executable).with_name("omnihub")
    proc = await asyncio.create_subprocess_exec(str(exe), "--config", str(config), *args, env=dict(os.environ),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def hub(aiohttp_client, make_settings, tmp_path):
    """The hub reading what the import stored (and taking webhooks for the cross-path test)."""
    settings = make_settings(blob_dir=str(tmp_path / "blobs"),
                             adapters={"pos": {"secret": SECRET, "default_currency": "KRW"}})
    return await aiohttp_client(create_app(settings))


async def profile_of(hub, ident: str) -> dict:
    resp = await hub.get(f"/v1/profiles?identifier={quote(ident)}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_importing_a_csv_twice_stores_it_once_and_reports_the_bad_line(config, tmp_path, hub):
    file = tmp_path / "sales.csv"
    file.write_text(CSV, encoding="utf-8")
    code, out, err = await omnihub(config, "import", "pos", str(file))
    assert code == 1, err  # a rejected line: the exit status says so
    assert out.splitlines() == [
        "line 3: total: must not be negative; a refund is sent with refund: true and the amounts as printed",
        f"{file}: 4 imported, 0 repeats, 1 rejected",
    ]
    assert await count_rows(hub.app, "interactions") == 4

    code, out, err = await omnihub(config, "import", "pos", str(file))
    assert out.splitlines()[-1] == f"{file}: 0 imported, 4 repeats, 1 rejected"
    assert await count_rows(hub.app, "interactions") == 4

    # Through the real pipeline: one customer (loyalty id and phone), RFM net of the refund.
    profile = await profile_of(hub, "phone:+821012345678")
    assert profile["display_name"] == "Kim Minji"
    assert profile["rfm"]["frequency"] == 3  # R-1, R-3 and S02's R-1; the refund R-4 is no visit
    assert profile["rfm"]["monetary"] == 24000 + 6000 + 1000 - 12000
    timeline = (await (await hub.get(f"/v1/profiles/{profile['id']}/timeline")).json())["items"]
    assert sorted(i["provider_ref"] for i in timeline) == ["S01:R-1", "S01:R-3", "S01:R-4", "S02:R-1"]
    assert await count_rows(hub.app, "outbox") > 4  # events wait for a running hub's relay


async def test_json_lines_report_as_json_with_line_numbers_and_fields(config, tmp_path, hub):
    lines = [
        json.dumps(sale("R-1")),
        "",
        "{not json",
        json.dumps(sale("R-2", customer={"phone": "12", "email": "nobody"})),
        json.dumps(sale("R-3", total="1000", refund=True, original_receipt="R-1")),
        json.dumps(sale("R-1")),  # the same receipt again in the file: a repeat
    ]
    file = tmp_path / "sales.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = await omnihub(config, "import", "pos", str(file), "--json")
    assert code == 1, err
    report = json.loads(out)
    assert (report["imported"], report["repeats"]) == (2, 1)
    assert [(p["line"], p["field"]) for p in report["rejected"]] == [
        (3, "line"), (4, "customer.phone"), (4, "customer.email")]
    assert report["failed"] == []
    assert await count_rows(hub.app, "interactions") == 2


async def test_a_receipt_that_came_by_webhook_is_a_repeat_in_the_import(config, tmp_path, hub):
    answer = await (await post(hub, sale("R-7"))).json()
    file = tmp_path / "day.jsonl"
    file.write_text(json.dumps(sale("R-7")) + "\n" + json.dumps(sale("R-8")) + "\n")
    code, out, _ = await omnihub(config, "import", "pos", str(file))
    assert code == 0
    assert out.splitlines() == [f"{file}: 1 imported, 1 repeats, 0 rejected"]
    assert (await profile_of(hub, "loyalty_id:LOY-77"))["id"] == answer["profile_id"]
    assert (await profile_of(hub, "loyalty_id:LOY-77"))["rfm"]["frequency"] == 2


async def test_an_unknown_column_stops_before_anything_is_stored(config, tmp_path, hub):
    file = tmp_path / "sales.csv"
    file.write_text("store,reciept,time,total\nS01,R-1,2026-11-20T12:00:00+09:00,1000\n")
    code, out, err = await omnihub(config, "import", "pos", str(file))
    assert code == 2
    assert "unknown CSV column 'reciept' (did you mean 'receipt'?)" in err
    assert await count_rows(hub.app, "interactions") == 0


async def test_a_row_in_another_encoding_is_rejected_alone(config, tmp_path, hub):
    file = tmp_path / "sales.csv"
    file.write_bytes(
        "store,receipt,time,total,customer_name,loyalty_id\n".encode()
        + "S01,R-1,2026-11-20T12:00:00+09:00,1000,김민지,LOY-1\n".encode("cp949")
        + "S01,R-2,2026-11-20T12:00:00+09:00,1000,김민지,LOY-2\n".encode("utf-8"))
    code, out, _ = await omnihub(config, "import", "pos", str(file))
    assert out.splitlines() == ["line 2: customer_name: not utf-8-sig text; see --encoding",
                                f"{file}: 1 imported, 0 repeats, 1 rejected"]
    assert (await profile_of(hub, "loyalty_id:LOY-2"))["display_name"] == "김민지"
