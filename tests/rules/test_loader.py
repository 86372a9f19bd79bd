"""Loader errors: each mistake is reported at its line, with a hint, and all of them at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rules import EXAMPLES_DIR, Route, RulesError, SendMessage, StartTimer, load_ruleset, loads_ruleset
from rules.loader import load_path

GOOD_RULE = "    then: [{add_tag: x}]\n"

# (id, rule text placed under `rules:` starting at line 2, expected line, expected message fragment)
ERRORS = [
    (
        "unknown-field-root",
        "  - name: a\n    on: interaction.received\n    when: {field: interation.channel, op: eq, value: sms}\n",
        4,
        "did you mean 'interaction.channel'?",
    ),
    (
        "unknown-field-interaction",
        (
            "  - name: a\n    on: interaction.received\n    when:\n      all:\n"
            "        - {field: interaction.content.txt, op: exists}\n"
        ),
        6,
        "did you mean 'interaction.content.text'?",
    ),
    (
        "unknown-operator",
        (
            "  - name: a\n    on: interaction.received\n    when:\n      - field: profile.tier\n        op: eqq\n"
            "        value: vip\n"
        ),
        6,
        "unknown operator 'eqq'; did you mean 'eq'?",
    ),
    (
        "value-type-list-for-eq",
        "  - name: a\n    on: interaction.received\n    when: {field: profile.tier, op: eq, value: [a, b]}\n",
        4,
        "eq: value must be a single string",
    ),
    (
        "value-type-scalar-for-in",
        "  - name: a\n    on: interaction.received\n    when: {field: profile.tier, op: in, value: vip}\n",
        4,
        "in: value must be a non-empty list",
    ),
    (
        "value-type-text-for-gt",
        "  - name: a\n    on: interaction.received\n    when: {field: profile.age, op: gt, value: old}\n",
        4,
        "gt: value must be a number or a date",
    ),
    (
        "value-null-for-eq",
        "  - name: a\n    on: interaction.received\n    when: {field: profile.age, op: eq, value: null}\n",
        4,
        "use op: missing",
    ),
    (
        "value-missing",
        "  - name: a\n    on: interaction.received\n    when: {field: profile.age, op: gt}\n",
        4,
        "needs a `value:`",
    ),
    (
        "value-not-taken",
        "  - name: a\n    on: interaction.received\n    when: {field: profile.age, op: exists, value: 1}\n",
        4,
        "takes no value",
    ),
    (
        "bad-duration",
        "  - name: a\n    on: interaction.received\n    when: {field: profile.seen, op: within, value: 3 days}\n",
        4,
        "bad duration '3 days'",
    ),
    (
        "between-reversed",
        "  - name: a\n    on: interaction.received\n    when: {field: profile.age, op: between, value: [9, 1]}\n",
        4,
        "empty range",
    ),
    (
        "bad-regex",
        (
            "  - name: a\n    on: interaction.received\n    when:\n      any:\n"
            "        - {field: interaction.content.text, op: matches, value: 'refund(' }\n"
        ),
        6,
        "bad regex 'refund('",
    ),
    (
        "regex-too-long",
        (
            "  - name: a\n    on: interaction.received\n    when:\n      - field: interaction.subject\n        op: matches\n"
            f"        value: '{'x' * 201}'\n"
        ),
        7,
        "the limit is 200",
    ),
    (
        "regex-nested-repeat",
        "  - name: a\n    on: interaction.received\n    when: {field: interaction.subject, op: matches, value: '(a+)+$'}\n",
        4,
        "exponential time",
    ),
    (
        "unknown-channel",
        "  - name: a\n    on: interaction.received\n    when: {field: interaction.channel, op: in, value: [sms, emial]}\n",
        4,
        "unknown channel 'emial'; did you mean 'email'?",
    ),
    (
        "unknown-trigger",
        "  - name: a\n    on: interaction.recieved\n",
        3,
        "did you mean 'interaction.received'?",
    ),
    ("bad-schedule", "  - name: a\n    on: {schedule: 'daily 9am'}\n", 3, "bad schedule 'daily 9am'"),
    ("bad-cron-field", "  - name: a\n    on: {schedule: '0 25 * * *'}\n", 3, "in the hour field"),
    (
        "schedule-reads-interaction",
        "  - name: a\n    on: {schedule: daily 09:00}\n    when: {field: interaction.channel, op: eq, value: sms}\n",
        4,
        "a scheduled rule has no interaction",
    ),
    (
        "unknown-rule-key",
        "  - name: a\n    on: interaction.received\n    prority: 3\n",
        4,
        "did you mean 'priority'?",
    ),
    ("missing-on", "  - name: a\n    when: {field: profile.age, op: exists}\n", 2, "missing `on:`"),
    (
        "bad-priority",
        "  - name: a\n    on: interaction.received\n    priority: high\n",
        4,
        "priority must be a whole number",
    ),
    (
        "bad-stop",
        "  - name: a\n    on: interaction.received\n    stop: maybe\n",
        4,
        "stop must be true or false",
    ),
    ("bad-rule-name", "  - name: 'two words'\n    on: interaction.received\n", 2, "a rule name is"),
    (
        "condition-mixing",
        "  - name: a\n    on: interaction.received\n    when: {all: [], field: x}\n",
        4,
        "one of all/any/not",
    ),
    ("empty-any", "  - name: a\n    on: interaction.received\n    when: {any: []}\n", 4, "non-empty list"),
]

ACTION_ERRORS = [
    ("unknown-action", "      - rout: {queue: vip}\n", 5, "unknown action 'rout'; did you mean 'route'?"),
    (
        "missing-argument",
        "      - send_message: {template: hello}\n",
        5,
        "missing its required argument `purpose`",
    ),
    (
        "bad-purpose",
        "      - send_message: {template: hello, purpose: marketting}\n",
        5,
        "did you mean 'marketing'?",
    ),
    ("bad-argument", "      - route: {queue: vip, priority: 101}\n", 5, "from 0 to 100"),
    ("unknown-argument", "      - route: {queue: vip, skils: [ko]}\n", 5, "did you mean 'skills'?"),
    ("no-arguments", "      - route\n", 5, "route needs arguments: queue"),
    ("bad-tag", "      - add_tag: 'two words'\n", 5, "a tag is"),
    ("two-keys", "      - route: {queue: vip}\n        priority: 3\n", 5, "check the indentation"),
    ("escalate-needs-target", "      - escalate: {}\n", 5, "escalate needs a queue or skills"),
    (
        "bad-channel",
        "      - send_message: {template: t, purpose: marketing, channel: [sms, fx]}\n",
        5,
        "did you mean 'fax'?",
    ),
    ("set-profile-unknown", "      - set_profile: {teir: vip}\n", 5, "did you mean 'tier'?"),
    ("set-profile-timezone", "      - set_profile: {timezone: Mars/Base}\n", 5, "unknown timezone"),
    ("bad-event", "      - publish: Order-Flagged\n", 5, "an event type looks like"),
    ("timer-missing", "      - start_timer: {name: t, then: [stop]}\n", 5, "start_timer is missing after"),
    (
        "timer-cancel-on",
        "      - start_timer: {name: t, after: 1h, then: [stop], cancel_on: [interaction.snt]}\n",
        5,
        "did you mean",
    ),
    (
        "timer-unless",
        "      - start_timer: {name: t, after: 1h, then: [stop], unless: {field: x.y, op: exists}}\n",
        5,
        "unknown field",
    ),
    ("no-route-argument", "      - no_route: {queue: vip}\n", 5, "no_route takes no arguments"),
    ("no-route-in-timer", "      - start_timer: {name: t, after: 1h, then: [no_route]}\n", 5, "cannot wait for a timer"),
]


def _load(text: str) -> RulesError:
    with pytest.raises(RulesError) as caught:
        loads_ruleset(text, file="r.yaml")
    return caught.value


@pytest.mark.parametrize(("rule", "line", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_rule_error_at_its_line(rule: str, line: int, message: str) -> None:
    text = "rules:\n" + rule + ("" if "then:" in rule else GOOD_RULE)
    issues = _load(text).issues
    assert [(i.line, message in i.message) for i in issues] == [(line, True)], issues
    assert issues[0].file == "r.yaml"


@pytest.mark.parametrize(
    ("action", "line", "message"), [e[1:] for e in ACTION_ERRORS], ids=[e[0] for e in ACTION_ERRORS]
)
def test_action_error_at_its_line(action: str, line: int, message: str) -> None:
    text = "rules:\n  - name: a\n    on: interaction.received\n    then:\n" + action
    issues = _load(text).issues
    assert [(i.line, message in i.message, i.rule) for i in issues] == [(line, True, "a")], issues


def test_no_route_is_refused_where_nothing_arrives_to_route() -> None:
    text = "rules:\n  - name: a\n    on: {schedule: 'daily 09:00'}\n    then:\n      - no_route\n"
    issues = _load(text).issues
    assert [(i.line, "scheduled rules have none" in i.message) for i in issues] == [(5, True)], issues


def test_every_error_is_collected_not_just_the_first() -> None:
    text = textwrap.dedent(
        """\
        rules:
          - name: a
            on: interaction.recieved
            when: {field: profile.tier, op: eqq, value: vip}
            then: [{rout: x}]
          - name: b
            on: interaction.received
            then: [{add_tag: 'bad tag'}]
        """
    )
    error = _load(text)
    assert [(i.line, i.rule) for i in error.issues] == [(3, "a"), (4, "a"), (5, "a"), (8, "b")]
    assert "r.yaml:3: [a] unknown trigger" in str(error)


def test_yaml_syntax_error_has_a_line() -> None:
    (issue,) = _load("rules:\n  - name: a\n    on: [unclosed\n").issues
    assert issue.line >= 3 and "YAML syntax" in issue.message


def test_duplicate_rule_name_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules:\n  - {name: greet, on: profile.created, then: [stop]}\n")
    (tmp_path / "b.yml").write_text("rules:\n\n  - name: greet\n    on: profile.created\n    then: [stop]\n")
    with pytest.raises(RulesError) as caught:
        load_ruleset(tmp_path)
    (issue,) = caught.value.issues
    assert issue.file.endswith("b.yml") and issue.line == 3
    assert f"first defined at {tmp_path / 'a.yaml'}:2" in issue.message


def test_directory_files_merge_in_path_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(
        "rules:\n  - {name: second, on: profile.created, then: [{add_tag: b}]}\n"
    )
    (tmp_path / "a.yaml").write_text("rules:\n  - {name: first, on: profile.created, then: [{add_tag: a}]}\n")
    (tmp_path / "notes.txt").write_text("not rules")
    rs = load_ruleset(tmp_path)
    assert [r.name for r in rs.rules] == ["first", "second"]
    assert len(rs.files) == 2


def test_conflicting_timezones_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("timezone: Asia/Seoul\nrules: []\n")
    (tmp_path / "b.yaml").write_text("timezone: UTC\nrules: []\n")
    with pytest.raises(RulesError, match="differs from 'Asia/Seoul'"):
        load_ruleset(tmp_path)


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="no such file"):
        load_ruleset(tmp_path / "nope")
    with pytest.raises(RulesError, match="no \\*.yaml"):
        load_ruleset(tmp_path)


def test_on_key_is_not_read_as_yaml_true() -> None:
    rs = loads_ruleset("rules:\n  - {name: a, on: profile.created, then: [stop]}\n")
    assert rs.rules[0].on == "profile.created"


def test_python_tags_are_refused_not_run() -> None:
    text = "rules:\n  - name: a\n    on: interaction.received\n    when: {field: profile.x, op: eq, value: !!python/name:os.system ''}\n    then: [stop]\n"
    (issue,) = _load(text).issues
    assert issue.line == 4


def test_alias_bombs_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}]"
        for n in range(1, 9)
    ]
    with pytest.raises(RulesError, match="more than"):
        loads_ruleset("\n".join(lines) + "\nrules: []\n")


def test_actions_are_typed_data() -> None:
    rs = loads_ruleset(
        textwrap.dedent(
            """\
            rules:
              - name: a
                on: interaction.received
                then:
                  - route: {queue: vip, skills: ko, owner_first: true}
                  - send_message: {template: t, purpose: marketing, channel: [sms, email], delay: 1h30m}
                  - start_timer: {name: nudge, after: 10m, then: [{auto_reply: sorry}], cancel_on: interaction.sent}
            """
        )
    )
    route, send, timer = rs.rules[0].then
    assert route == Route(queue="vip", skills=("ko",), owner_first=True)
    assert send.channel == ("sms", "email") and send.delay.total_seconds() == 5400
    assert isinstance(send, SendMessage) and isinstance(timer, StartTimer)
    assert timer.key == "a/nudge" and timer.cancel_on == ("interaction.sent",)


def test_version_ignores_comments_and_layout_but_not_meaning() -> None:
    a = loads_ruleset("rules:\n  - {name: a, on: profile.created, priority: 1, then: [stop]}\n")
    b = loads_ruleset(
        "# hello\nrules:\n  - name: a   # same rule\n    priority: 1\n    on: profile.created\n    then:\n      - stop\n"
    )
    c = loads_ruleset("rules:\n  - {name: a, on: profile.created, priority: 2, then: [stop]}\n")
    assert a.version == b.version != c.version
    assert len(a.version) == 12 and int(a.version, 16) >= 0


def test_disabled_rules_are_checked_but_not_loaded() -> None:
    rs = loads_ruleset("rules:\n  - {name: a, on: profile.created, enabled: false, then: [stop]}\n")
    assert rs.rules == ()
    with pytest.raises(RulesError):
        loads_ruleset("rules:\n  - {name: a, on: profile.created, enabled: false, then: [{rout: x}]}\n")


def test_plugin_channels_are_accepted_when_declared() -> None:
    text = "rules:\n  - {name: a, on: interaction.received, when: {field: interaction.channel, op: eq, value: kakao}, then: [stop]}\n"
    with pytest.raises(RulesError, match="unknown channel 'kakao'"):
        loads_ruleset(text)
    assert loads_ruleset(text, channels={"sms", "kakao"}).rules[0].name == "a"


def test_packaged_example_loads_cleanly() -> None:
    loaded = load_path(EXAMPLES_DIR)
    names = [r.name for r in loaded.rules]
    assert {"vip-first", "complaint-to-retention", "birthday-greeting"} <= set(names)
    assert loaded.timezone == "Asia/Seoul"
    assert load_ruleset(EXAMPLES_DIR).warnings == []
