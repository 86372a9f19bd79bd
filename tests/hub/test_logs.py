"""Log masking: customers' numbers and addresses never reach a log; ids, times and hosts stay whole."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.logs import JsonFormatter, mask


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# National numbers (leading 0) and international ones (+), grouped as people write them.
phone_numbers = st.builds(
    lambda lead, body, sep, size: lead + sep.join(body[i:i + size] for i in range(0, len(body), size)),
    st.sampled_from(["0", "+82 ", "+1", "+44 "]),
    st.text("0123456789", min_size=7, max_size=12),
    st.sampled_from(["", " ", "-"]),
    st.integers(2, 4),
)


@given(phone_numbers, st.sampled_from(["from {} now", "phone:{}", "tel:{};", "({})", "{}"]))
def test_a_phone_number_is_masked_to_its_last_two_digits(number, template):
    masked = mask(template.format(number))
    assert digits(number)[:-2] not in digits(masked)
    assert "***" + digits(number)[-2:] in masked


@given(st.uuids(), st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31)),
       st.ip_addresses(v=4), st.integers(1, 65535))
def test_ids_times_and_hosts_stay_whole(uid, when, address, port):
    line = f"task {uid} at {when.isoformat()} from http://{address}:{port}/v1, id {uid.hex}."
    assert mask(line) == line


def test_provider_ids_and_short_counts_are_not_numbers():
    line = "sid SM18a5fc3b1911430eb859dd8c9b210965 retried 3 times, 120 ms"
    assert mask(line) == line


def test_email_keeps_its_first_letter_and_domain():
    assert mask("from Minji.Kim@example.com") == "from M***@example.com"


def test_the_json_formatter_masks_extra_fields_too():
    interaction_id = "01a20b2c-cbea-72d4-b55c-b535f76c7d3b"
    record = logging.makeLogRecord({"msg": "sms from %s", "args": ("010-5555-0100",), "levelname": "INFO",
                                    "sender": "+821055550100", "interaction_id": interaction_id})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "sms from ***00"
    assert entry["sender"] == "***00"
    assert entry["interaction_id"] == interaction_id


def test_encoded_numbers_and_addresses_are_decoded_then_masked():
    line = mask("GET /v1/profiles/lookup?phone=%2B821055550199&email=zqx.member%40example.com&x=%252B821055550198")
    assert "1055550199" not in digits(line) and "***99" in line
    assert "1055550198" not in digits(line) and "***98" in line  # encoded twice
    assert "qx.member" not in line and "z***@example.com" in line


LETTERS = "민지박서준김예시한국テスト山田王小明ÉéçñüøÅ"


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=LETTERS, min_size=2, max_size=8), st.text(alphabet=LETTERS, min_size=1, max_size=6))
def test_an_address_in_any_script_is_masked(local, domain):
    line = mask(f"login refused for {local}@{domain}.kr today")
    assert line == f"login refused for {local[0]}***@{domain}.kr today"


def test_statuses_sizes_ids_and_times_in_fields_stay_readable():
    record = logging.makeLogRecord({
        "msg": "request", "levelname": "INFO", "status": 201, "size": 1234567, "duration_ms": 12.5,
        "provider_ref": "1764777600.123", "created_at": "1764777600", "message_seq": 12345678,
        "params": ("+821055550100", {"to": "zqx.member@example.com"}, 99), "path": "/x?to=%2B821055550101",
    })
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["status"], entry["size"], entry["duration_ms"]) == (201, 1234567, 12.5)
    assert entry["provider_ref"] == "1764777600.123" and entry["created_at"] == "1764777600"
    assert entry["message_seq"] == 12345678
    assert entry["params"] == ["***00", {"to": "z***@example.com"}, 99]
    assert entry["path"] == "/x?to=***01"
    assert entry["time"].endswith("Z")
