"""The email parser over a corpus of real-shaped messages (one table, one helper), plus hypothesis
fuzzing with mutated messages: the only exception the parser may raise is PayloadError."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import PayloadError
from adapters.email.html_text import html_to_text
from adapters.email.parse import parse
from adapters.email.threads import conversation_key, msgid_list, normalize_msgid, provider_ref
from schemas import DEFAULT_REGION_KEY, Interaction

CORPUS = Path(__file__).resolve().parents[1] / "data" / "email"
NOW = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
CONTEXT = {DEFAULT_REGION_KEY: "KR"}


@dataclass(frozen=True)
class Case:
    file: str
    subject: str | None
    sender: str | None  # the sender's email identifier, None when there is none
    snippet: str | None  # must occur in content.text
    key: str  # conversation_key
    tags: tuple[str, ...] = ()
    attachments: int = 0
    name: str | None = None  # the sender's display name, when the case checks it


CASES = [
    Case("01_plain_ascii.eml", "Where is my order #1042?", "alice@example.com",
         "kettle last week", "email:CAF1042.plain@mail.example.com", name="Alice Doe"),
    Case("02_alternative.eml", "Refund for damaged lamp", "bob@example.org",
         "arrived broken. I would like a refund", "email:20261123111530.alt@example.org"),
    Case("03_html_only.eml", "Newsletter question", "carol@example.net",
         "Can I change my delivery address?\n\nCarol & family", "email:html-only-77@example.net"),
    Case("04_nested_mixed.eml", "Invoice and photo of the package", "dan.lee@example.com",
         "See the photo of the box", "email:nested.4242@example.com", attachments=2),
    Case("05_euc_kr.eml", "배송지 변경 부탁드립니다", "minji.kim@example.co.kr",
         "서울시 강남구로 변경", "email:euckr.20261123140211@mail.example.co.kr", name="김민지"),
    Case("06_iso2022kr.eml", "환불 문의", "park@example.kr", "환불 가능한가요?",
         "email:iso2022kr.1@example.kr", name="박서준"),
    Case("07_quoted_printable.eml", "Falsche Bestellung — order 77", "juergen@example.de",
         "Grüße aus München — the café order #77 was wrong. 주문 확인", "email:qp-77@example.de",
         name="Jürgen Müller"),
    Case("08_base64_utf8.eml", "Cancel my subscription ✂", "eve@example.com", "ありがとう",
         "email:b64.body@example.com"),
    Case("09_inline_image.eml", "Screenshot of the error", "frank@example.com",
         "The checkout page shows this:", "email:inline.img.9@example.com", attachments=1),
    Case("10_bounce_dsn.eml", "Undelivered Mail Returned to Sender", None,
         "could not\nbe delivered", "email:20261129031000.BNC1@mx.example.net", tags=("bounce",)),
    Case("11_auto_reply.eml", "Automatic reply: Your order has shipped", "grace@example.com",
         "out of the office", "email:0192aaaa-0000-7ccc-8ddd-000000000011@shop.example",
         tags=("auto_reply",)),
    Case("12_no_message_id.eml", "no id here", "henry@example.com", "sets no Message-ID",
         "email:sha256:" + hashlib.sha256((CORPUS / "12_no_message_id.eml").read_bytes()).hexdigest()),
    Case("13_malformed_headers.eml", "=?utf-8?Q?broken_encoded_word", "ivy@example.com",
         "unknown charset label", "email:malformed.13@example.com"),
    Case("14_shift_jis.eml", "商品未着のお問い合わせ", "tanaka@example.jp", "確認をお願いします",
         "email:sjis.14@example.jp", name="田中太郎"),
    Case("15_iso_8859_1.eml", "Problème de livraison à Lyon", "francois@example.fr",
         "n'est pas arrivé à Lyon", "email:latin1.15@example.fr", name="François Gaël"),
    Case("16_reply_thread.eml", "Re: Where is my order #1042?", "alice@example.com",
         "it arrived today", "email:CAF1042.plain@mail.example.com"),
    Case("17_cp949_labelled_ks_c.eml", "똠방각하 주문 취소", "choi@example.kr", "똠방각하 상품",
         "email:kscp949.17@example.kr", name="최똠방"),
    Case("18_rfc2231_filename.eml", "영수증 첨부", "jin@example.kr", "영수증을 첨부합니다",
         "email:rfc2231.18@example.kr", attachments=1),
    Case("19_forwarded_rfc822.eml", "Fwd: Your order confirmation", "kate@example.com",
         "shows the wrong size", "email:fwd.19@example.com", attachments=1),
    Case("20_no_body_no_from.eml", "empty", None, None, "email:empty.20@example.com"),
]


def check(case: Case) -> Interaction:
    """The one helper every corpus case runs through."""
    raw = (CORPUS / case.file).read_bytes()
    interaction = parse(raw, now=NOW, context=CONTEXT, via="smtp").interaction
    assert interaction.channel == "email" and interaction.provider == "email"
    assert interaction.direction == "inbound"
    assert interaction.subject == case.subject
    senders = [str(i) for i in interaction.sender.identifiers] if interaction.sender else []
    assert senders == ([f"email:{case.sender}"] if case.sender else [])
    if case.name is not None:
        assert interaction.sender is not None and interaction.sender.display_name == case.name
    text = interaction.content.text if interaction.content else None
    if case.snippet is None:
        assert not text
    else:
        assert text is not None and case.snippet in text, text
    assert tuple(interaction.tags) == case.tags
    assert interaction.kind == ("event" if case.tags else "message")
    assert len(interaction.attachments) == case.attachments
    assert interaction.conversation_key == case.key
    assert interaction.metadata["email.via"] == "smtp"
    # What the hub stores must survive its own JSON round trip.
    assert Interaction.model_validate_json(interaction.model_dump_json(), context=CONTEXT) == interaction
    return interaction


def test_corpus_is_complete():
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(c.file for c in CASES)
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_corpus(case):
    check(case)


def test_attachments_carry_their_bytes_and_hashes():
    parsed = parse((CORPUS / "04_nested_mixed.eml").read_bytes(), now=NOW)
    image, pdf = parsed.attachments
    assert image.content_type == "image/png" and image.data.startswith(b"\x89PNG")
    assert pdf.filename == "invoice-1042.pdf" and pdf.data.startswith(b"%PDF-1.4")
    meta = parsed.interaction.attachments[1]
    assert (meta.size, meta.sha256, meta.storage_ref) == (len(pdf.data), hashlib.sha256(pdf.data).hexdigest(), None)
    korean = parse((CORPUS / "18_rfc2231_filename.eml").read_bytes(), now=NOW).attachments[0]
    assert korean.filename == "영수증.pdf"


def test_bounce_names_the_failed_message_and_has_no_customer_sender():
    parsed = parse((CORPUS / "10_bounce_dsn.eml").read_bytes(), now=NOW)
    assert parsed.bounce is not None
    assert parsed.bounce.original_message_id == "0192aaaa-bbbb-7ccc-8ddd-eeeeffff0000@shop.example"
    assert (parsed.bounce.recipient, parsed.bounce.action, parsed.bounce.status) == \
        ("nobody@example.net", "failed", "5.1.1")
    assert parsed.interaction.identifiers() == []
    assert parsed.interaction.metadata["email.bounce.status"] == "5.1.1"


def test_dates_and_dedupe_keys():
    plain = parse((CORPUS / "01_plain_ascii.eml").read_bytes(), now=NOW).interaction
    assert plain.occurred_at == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert plain.provider_ref == "CAF1042.plain@mail.example.com"
    undated = parse((CORPUS / "13_malformed_headers.eml").read_bytes(), now=NOW).interaction
    assert undated.occurred_at == NOW
    raw = (CORPUS / "12_no_message_id.eml").read_bytes()
    first, again = (parse(raw, now=NOW).interaction for _ in range(2))
    assert first.provider_ref == again.provider_ref == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert parse(raw + b"P.S.\r\n", now=NOW).interaction.provider_ref != first.provider_ref


@pytest.mark.parametrize("raw, field", [(b"", "message"), (b"   \r\n", "message"), ("text", "message")])
def test_not_a_message_is_a_payload_error(raw, field):
    with pytest.raises(PayloadError) as err:
        parse(raw, now=NOW)
    assert err.value.field == field


def test_size_limit():
    with pytest.raises(PayloadError, match="over the limit"):
        parse((CORPUS / "04_nested_mixed.eml").read_bytes(), now=NOW, max_bytes=100)


def test_thread_helpers():
    assert normalize_msgid(" <a@b>  ") == "a@b"
    assert normalize_msgid("a@b") == "a@b"
    assert normalize_msgid("<>") is None
    assert msgid_list("<a@b> <c@d>\r\n <a@b>") == ["a@b", "c@d"]
    assert conversation_key("x" * 600).startswith("email:sha256:")
    assert provider_ref("y" * 300, b"").startswith("msgid-sha256:")


def test_html_to_text():
    assert html_to_text("<p>a&amp;b</p><br><ul><li>one<li>two</ul><style>x</style>") == "a&b\n\none\ntwo"


# --- fuzzing --------------------------------------------------------------------------------------
SEEDS = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
_NASTY = [b"=?", b"?=", b"=?utf-8?B?", b"=?euc-kr?Q?=FF", b"\r\n", b"\n\n", b"--", b"boundary=\"",
          b"Content-Type: multipart/mixed; boundary=x\r\n", b"Content-Transfer-Encoding: base64\r\n",
          b"charset=\"x-bogus\"", b"<", b">", b"\"", b"\x00", b"\xff\xfe", b"\x1b$)C", b":", b";",
          b"filename*=UTF-8''%FF", b"Message-ID: <>\r\n", b"References: <<<>>\r\n", b"Date: 99 Foo 0\r\n",
          b"From: =?utf-8?B?\xff?= <@>\r\n", b"Content-Type: message/rfc822\r\n\r\n", b"\t"]


@st.composite
def mutated_messages(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["insert", "delete", "flip", "truncate", "duplicate"]))
        pos = draw(st.integers(0, len(data)))
        match op:
            case "insert":
                data[pos:pos] = draw(st.sampled_from(_NASTY) | st.binary(max_size=16))
            case "delete":
                del data[pos:pos + draw(st.integers(1, 64))]
            case "flip":
                if pos < len(data):
                    data[pos] = draw(st.integers(0, 255))
            case "truncate":
                del data[pos:]
            case "duplicate":
                data[pos:pos] = data[max(0, pos - 200):pos]
    return bytes(data)


def _parses_or_refuses(raw: bytes) -> None:
    try:
        interaction = parse(raw, now=NOW, context=CONTEXT).interaction
    except PayloadError:
        return
    Interaction.model_validate_json(interaction.model_dump_json(), context=CONTEXT)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_fuzz_mutated_corpus(raw):
    _parses_or_refuses(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(raw):
    _parses_or_refuses(raw)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To",
                                           "References", "Date", "Content-Type", "Auto-Submitted"]),
                          st.text(max_size=80)), max_size=8),
       st.text(max_size=200))
def test_fuzz_header_text(headers, body):
    raw = "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n" + body
    _parses_or_refuses(raw.encode("utf-8", "surrogatepass"))


def test_references_are_kept_for_the_hubs_reply_threading():
    reply = parse((CORPUS / "16_reply_thread.eml").read_bytes(), now=NOW).interaction
    assert reply.metadata["references"] == \
        "CAF1042.plain@mail.example.com 0192bbbb-1111-7ccc-8ddd-000000001042@shop.example"
    many = " ".join(f"<id{i:04d}@example.com>" for i in range(500))
    raw = f"From: a@example.com\r\nMessage-ID: <x@y>\r\nReferences: {many}\r\n\r\nhi\r\n".encode()
    kept = parse(raw, now=NOW).interaction.metadata["references"].split()
    assert kept[0] == "id0000@example.com" and kept[-1] == "id0499@example.com" and len(" ".join(kept)) <= 2048
