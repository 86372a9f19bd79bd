"""A rules file with ten different kinds of mistakes, and the line and message each must get.

Shared by the loader, `rules check` and the hub's reload API tests (issue 5: all ten in one run).
"""

from __future__ import annotations

TEXT = """\
timezone: Asia/Seoul
rules:
  - name: unknown-field
    on: interaction.received
    when: {field: interaction.chanel, op: eq, value: sms}
    then: [{add_tag: a}]
  - name: unknown-operator
    on: interaction.received
    when: {field: profile.tier, op: eqq, value: vip}
    then: [{add_tag: a}]
  - name: wrong-value-type
    on: interaction.received
    when: {field: profile.age, op: gt, value: old}
    then: [{add_tag: a}]
  - name: bad-regex
    on: interaction.received
    when: {field: interaction.content.text, op: matches, value: "refund("}
    then: [{add_tag: a}]
  - name: unknown-field
    on: interaction.received
    then: [{add_tag: a}]
  - name: missing-argument
    on: interaction.received
    then:
      - send_message: {template: hello}
  - name: unknown-trigger
    on: interaction.recieved
    then: [{add_tag: a}]
  - name: unknown-action
    on: interaction.received
    then:
      - rout: {queue: vip}
  - name: bad-duration
    on: interaction.received
    when: {field: profile.last_seen, op: within, value: 3 days}
    then: [{add_tag: a}]
  - name: bad-schedule
    on: {schedule: "daily 9am"}
    then: [{add_tag: a}]
"""

# (line, fragment of the message) in file order: one per kind of mistake.
EXPECTED = [
    (5, "did you mean 'interaction.channel'?"),  # unknown field
    (9, "unknown operator 'eqq'; did you mean 'eq'?"),  # unknown operator
    (13, "gt: value must be a number or a date"),  # wrong value type
    (17, "bad regex 'refund('"),  # bad regex
    (19, "duplicate rule name 'unknown-field'"),  # duplicate rule name
    (25, "missing its required argument `purpose`"),  # action missing a required argument
    (27, "did you mean 'interaction.received'?"),  # unknown trigger
    (32, "unknown action 'rout'; did you mean 'route'?"),  # unknown action
    (35, "bad duration '3 days'"),  # bad duration
    (38, "bad schedule 'daily 9am'"),  # bad schedule
]


def check(issues: list[dict]) -> None:
    """`issues` as dicts (file, line, rule, message): exactly the ten, each at its line."""
    got = [(i["line"], i["message"]) for i in issues]
    assert len(got) == len(EXPECTED) == 10, got
    for (line, message), (want_line, fragment) in zip(got, EXPECTED, strict=True):
        assert line == want_line and fragment in message, (line, message, want_line, fragment)
