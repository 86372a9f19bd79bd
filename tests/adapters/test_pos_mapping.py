"""The POS payload parser and its mapping to the contact schema, as properties (hypothesis):
any valid transaction maps to a valid Interaction that round-trips and gives back the till's
figures; junk only ever fails as a validation error naming a field, and never as a 5xx at the
webhook."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.pos import REFUND_TAG, PosMapping, PosTransaction, error_fields
from hub.app import create_app
from schemas import BUILTIN_CHANNELS, CHANNELS_KEY, DEFAULT_REGION_KEY, Interaction
from tests.adapters.pos_support import SECRET, encode, post, sale

CONTEXT = {DEFAULT_REGION_KEY: "KR", CHANNELS_KEY: BUILTIN_CHANNELS}
MAPPING = PosMapping("KRW", "Asia/Seoul", CONTEXT)

tokens = st.text("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789-_./#", min_size=1, max_size=20)
store_ids = tokens.filter(lambda s: ":" not in s)
money = st.decimals(min_value=0, max_value=Decimal("999999999.9999"), places=4, allow_nan=False)
quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("99999"), places=3, allow_nan=False)
names = st.none() | st.text(max_size=40)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5))]))
# Numbers phonenumbers takes as valid KR mobiles: a few 010 blocks are unassigned (010-5970..5999
# in its metadata), and a valid payload must not carry one.
phones = st.builds(lambda a, b: f"010-{a:04d}-{b:04d}", st.integers(0, 9999), st.integers(0, 9999)).filter(
    lambda number: phonenumbers.is_valid_number(phonenumbers.parse(number, "KR")))
emails = st.builds(lambda user, host: f"{user}@{host}.example.com",
                   st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12),
                   st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12))
customers = st.none() | st.fixed_dictionaries({}, optional={
    "loyalty_id": st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=16),
    "phone": phones, "email": emails, "name": st.text(max_size=30)})
items = st.fixed_dictionaries(
    {"sku": tokens, "unit_price": money.map(str)},
    optional={"name": names, "qty": quantities.map(str), "category": names})


@st.composite
def payloads(draw):
    refund = draw(st.booleans())
    body = {"store": draw(store_ids), "receipt": draw(tokens), "time": draw(times).isoformat(),
            "items": draw(st.lists(items, max_size=5)), "total": str(draw(money)),
            "currency": draw(st.sampled_from(["KRW", "USD", "jpy", None]))}
    if draw(st.booleans()):
        body["register"] = draw(tokens)
    if (customer := draw(customers)) is not None:
        body["customer"] = customer
    if refund:
        body["refund"] = True
        if draw(st.booleans()):
            body["original_receipt"] = draw(tokens)
    return {k: v for k, v in body.items() if v is not None}


@settings(max_examples=300, deadline=None)
@given(payload=payloads())
def test_valid_transactions_map_to_interactions_that_round_trip(payload):
    txn = MAPPING.parse(encode(payload))
    assert MAPPING.parse(txn.model_dump_json(by_alias=True)) == txn  # the payload model round-trips
    interaction = MAPPING.interaction(txn)
    again = Interaction.model_validate_json(interaction.model_dump_json(by_alias=True), context=CONTEXT)
    assert again == interaction

    assert (again.channel, again.kind.value, again.provider) == ("pos", "transaction", "pos")
    assert again.provider_ref == f"{payload['store']}:{payload['receipt']}"
    sign = -1 if payload.get("refund") else 1
    t = again.transaction
    assert t is not None and (t.store, t.receipt) == (payload["store"], payload["receipt"])
    assert t.total == sign * Decimal(payload["total"])
    assert t.currency == payload.get("currency", "KRW").upper()
    assert [(i.sku, i.unit_price, i.qty) for i in t.items] == [
        (i["sku"], sign * Decimal(i["unit_price"]), Decimal(i.get("qty", "1"))) for i in payload["items"]]
    assert again.occurred_at == datetime.fromisoformat(payload["time"])
    assert (REFUND_TAG in again.tags) == bool(payload.get("refund"))
    customer = payload.get("customer") or {}
    assert {i.type.value for i in again.identifiers()} == {k for k in ("loyalty_id", "phone", "email") if k in customer}
    assert t.loyalty_id == customer.get("loyalty_id")


@settings(max_examples=100, deadline=None)
@given(payload=payloads())
def test_the_same_transaction_always_has_the_same_dedupe_key(payload):
    first = MAPPING.interaction(MAPPING.parse(payload))  # decoded, as an import row is
    second = MAPPING.interaction(MAPPING.parse(encode(payload)))  # bytes, as the webhook's body
    assert first.provider_ref == second.provider_ref
    assert first.conversation_key == second.conversation_key


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["store", "register", "receipt", "time", "items", "total", "currency", "customer", "refund",
          "original_receipt", "extra"]


@st.composite
def mutated(draw):
    payload = draw(payloads())
    for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        payload[field] = draw(json_values)
    return encode(payload)


junk = mutated() | json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200)


@settings(max_examples=400, deadline=None)
@given(body=junk)
def test_junk_fails_only_as_a_validation_error_naming_fields(body):
    try:
        txn = MAPPING.parse(body)
    except ValidationError as exc:
        assert all(field for field, _ in error_fields(exc))
        return
    assert isinstance(MAPPING.interaction(txn), Interaction)  # whatever parses also maps


@pytest.fixture
async def sqlite_hub(aiohttp_client, make_settings, tmp_path):
    return await aiohttp_client(create_app(make_settings(
        blob_dir=str(tmp_path / "blobs"), adapters={"pos": {"secret": SECRET}})))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=junk | payloads().map(encode))
async def test_signed_junk_at_the_webhook_never_gets_a_server_error(sqlite_hub, body):
    resp = await post(sqlite_hub, body)
    assert resp.status < 500, await resp.text()
    answer = await resp.json()
    if resp.status >= 400:
        assert resp.status in (400, 403, 422), answer
        assert answer["error"] and (resp.status == 403 or all(f["field"] for f in answer["fields"]))
    else:
        assert resp.status in (200, 201) and answer["id"]


def test_a_recorded_sale_maps_as_documented():
    interaction = MAPPING.interaction(PosTransaction.model_validate(sale(), context=MAPPING.context))
    assert interaction.provider_ref == "S01:R-0001"
    assert interaction.sender is not None and interaction.sender.display_name == "Kim Minji"
    assert [str(i) for i in interaction.identifiers()] == [
        "loyalty_id:LOY-77", "phone:+821012345678", "email:minji@example.com"]
    assert interaction.conversation_key == "pos:S01:R-0001"
