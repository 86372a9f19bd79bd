"""`rules check` and `rules test`, run in-process through argparse as the hub will mount them."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rules import EXAMPLES_DIR, SampleError, parse_sample
from rules.cli import add_commands, main

SAMPLE = {
    "trigger": "interaction.received",
    "interaction": {
        "channel": "sms",
        "direction": "inbound",
        "kind": "message",
        "provider": "acme-gateway",
        "provider_ref": "MSG-0001",
        "occurred_at": "2026-11-23T10:00:00+09:00",
        "sender": {"identifiers": [{"type": "phone", "value": "010-1234-5678"}], "display_name": "Kim Minji"},
        "content": {"text": "환불 부탁드립니다"},
    },
    "profile": {"tier": "gold", "timezone": "Asia/Seoul"},
    "now": "2026-11-23T10:00:05+09:00",
}


def _cli(argv: list[str]) -> int:
    """Mount the commands under a parent parser, as `omnihub rules ...` does."""
    parser = argparse.ArgumentParser(prog="omnihub")
    rules = parser.add_subparsers(dest="group", required=True).add_parser("rules")
    add_commands(rules.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _sample(tmp_path: Path, data: object) -> str:
    path = tmp_path / "sample.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_check_ok_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["rules", "check", str(EXAMPLES_DIR)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 8 rules in 1 file(s), version ")
    assert "interaction.received: 5" in out


def test_check_errors_print_file_and_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - name: a\n    on: interaction.received\n    when: {field: profile.tier, op: eqq, value: x}\n"
        "    then: [{rout: x}]\n"
    )
    assert _cli(["rules", "check", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{bad}:4: [a] unknown operator 'eqq'; did you mean 'eq'?"
    assert lines[1].startswith(f"{bad}:5: [a] unknown action 'rout'")
    assert lines[-1] == "2 error(s); rules not loaded"


def test_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("rules:\n  - {name: a, on: nope, then: [stop]}\n")
    assert _cli(["rules", "check", str(tmp_path), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["errors"][0]["line"] == 2 and data["errors"][0]["rule"] == "a"


def test_test_explains_matches_and_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["rules", "test", str(EXAMPLES_DIR), _sample(tmp_path, SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "trigger interaction.received, channel sms" in out
    assert "no match  vip-first" in out
    assert "because profile.tier eq 'vip': found 'gold'" in out
    assert "MATCHED   complaint-to-retention" in out
    assert '1. add_tag {"tag": "complaint"}' in out
    assert "drop-auto-replies" not in out  # an email-only rule never meets an sms


def test_test_json_is_machine_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["rules", "test", str(EXAMPLES_DIR), _sample(tmp_path, SAMPLE), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["matched"] == ["complaint-to-retention", "sms-acknowledge"]
    assert data["actions"][0] == {"action": "add_tag", "tag": "complaint"}
    assert data["trace"][0]["failures"][0]["actual"] == "gold"


def test_test_a_schedule_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = {
        "trigger": {"schedule": "daily 09:00"},
        "profile": {"birthday": "1990-11-23"},
        "now": "2026-11-23T09:00:00+09:00",
    }
    assert main(["test", str(EXAMPLES_DIR), _sample(tmp_path, sample), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["matched"] == ["birthday-greeting"]


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("{not json", "cannot read the sample"),
        ({**SAMPLE, "interaction": {**SAMPLE["interaction"], "channel": "pigeon"}}, "unknown channel"),
        ({**SAMPLE, "now": "2026-11-23T10:00:00"}, "needs a UTC offset"),
        ({**SAMPLE, "profle": {}}, "unknown keys ['profle']"),
    ],
)
def test_test_bad_sample_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sample: object, message: str
) -> None:
    path = tmp_path / "sample.json"
    path.write_text(sample if isinstance(sample, str) else json.dumps(sample))
    assert _cli(["rules", "test", str(EXAMPLES_DIR), str(path)]) == 2
    assert message in capsys.readouterr().err


def test_test_with_broken_rules_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "r.yaml").write_text("rules: 3\n")
    assert _cli(["rules", "test", str(rules_dir), _sample(tmp_path, SAMPLE)]) == 1
    assert "`rules:` must be a list" in capsys.readouterr().out


def test_parse_sample_is_shared_with_the_api() -> None:
    clock = datetime(2026, 11, 23, tzinfo=UTC)
    kakao = {**SAMPLE["interaction"], "channel": "kakao"}
    sample = parse_sample({"interaction": kakao}, default_now=clock, region="KR", channels={"sms", "kakao"})
    assert sample.trigger == "interaction.received" and sample.now == clock
    assert sample.interaction.channel == "kakao"
    assert str(sample.interaction.sender.identifiers[0].value) == "+821012345678"
    with pytest.raises(SampleError, match="unknown channel"):
        parse_sample({"interaction": kakao}, default_now=clock, region="KR")
    with pytest.raises(SampleError, match="trigger"):
        parse_sample({"trigger": {"schedule": "daily 25:00"}}, default_now=clock)
