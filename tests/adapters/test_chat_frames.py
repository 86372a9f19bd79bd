"""Web chat frames under fuzz: whatever a socket sends, the adapter answers with an ack, a
welcome or an error frame naming the field, and never raises; the visitor-id signature holds."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import chat_frames
from adapters.base import AdapterDeps
from adapters.chat import ChatAdapter, ChatConfig
from schemas import BUILTIN_CHANNELS, CHANNELS_KEY, DEFAULT_REGION_KEY

SECRET = b"frames-test-secret-0123456789"
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                     max_leaves=10)
_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "message", "delivered", "shout", ""]) | st.text(max_size=10) | _json},
    optional={"id": st.text(max_size=70) | st.uuids().map(str) | _json, "text": st.text(max_size=60) | _json,
              "visitor": st.text(max_size=60) | _json, "email": st.emails() | st.text(max_size=20),
              "name": st.text(max_size=20) | _json, "extra": _json})
_raw = _frames.map(json.dumps) | st.text(max_size=80) | _json.map(json.dumps)


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send_str(self, data: str) -> None:
        self.sent.append(json.loads(data))


class Memory:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key):
        return self.values.get(key)

    async def set(self, key, value):
        self.values[key] = value

    async def update(self, key, change):
        changed = change(self.values.get(key))
        if changed is not None:
            self.values[key] = changed
        return self.values.get(key)


def adapter() -> ChatAdapter:
    class Outcome:
        interaction_id = "01a20b96-52d6-7089-a98e-fd7725e3cf39"
        profile_id = None
        created = True

    async def ingest(interaction):
        assert interaction.provider_ref and interaction.channel == "chat"
        return Outcome()

    async def report_status(update):
        return True

    deps = AdapterDeps(ingest=ingest, report_status=report_status, blobs=None, state=Memory(),  # type: ignore[arg-type]
                       clock=lambda: datetime.now(UTC), public_base_url="http://hub",
                       validation_context={DEFAULT_REGION_KEY: "KR", CHANNELS_KEY: BUILTIN_CHANNELS})
    config = ChatConfig.model_validate({"secret": SECRET.decode(), "allowed_origins": ["https://shop.example.com"]})
    return ChatAdapter(config, deps)


@settings(max_examples=400, deadline=None)
@given(st.lists(_raw, min_size=1, max_size=5))
def test_random_frames_get_an_ack_or_an_error_naming_a_field(raws):
    chat, ws = adapter(), FakeSocket()

    async def run():
        for raw in raws:
            await chat._frame(ws, "vVisitor1", {"name": "", "email": ""}, "https://shop.example.com", raw)  # type: ignore[arg-type]

    asyncio.run(run())
    for frame in ws.sent:
        assert frame["type"] in ("ack", "error"), frame
        if frame["type"] == "error":
            assert isinstance(frame["field"], str) and frame["field"] and frame["message"]


@settings(max_examples=300, deadline=None)
@given(_raw)
def test_parse_raises_only_frame_errors(raw):
    try:
        frame = chat_frames.parse(raw, 4000)
    except chat_frames.FrameError as exc:
        assert exc.field and exc.message
        return
    assert frame.type in ("hello", "message", "delivered")


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=40),
       st.text(max_size=50))
def test_only_a_token_the_hub_signed_names_a_visitor(suffix, junk):
    visitor = "v" + suffix
    token = chat_frames.sign(visitor, SECRET)
    assert chat_frames.verify(token, SECRET) == visitor
    assert chat_frames.verify(token, b"another-secret") is None
    assert chat_frames.verify(visitor, SECRET) is None
    assert chat_frames.verify(f"{visitor}.{junk}", SECRET) in (None, visitor)
    if junk != token.rpartition(".")[2]:
        assert chat_frames.verify(f"{visitor}.{junk}", SECRET) is None
    other = chat_frames.sign("v" + suffix + "x", SECRET).rpartition(".")[2]
    assert chat_frames.verify(f"{visitor}.{other}", SECRET) is None  # another visitor's signature
