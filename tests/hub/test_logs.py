"""Log masking: customers' numbers and addresses never reach a log; ids, times and hosts stay whole."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime

from hypothesis import given
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
