"""Issue 5 acceptance: a file with ten kinds of mistakes reports all ten, with lines, in one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rules import RulesError, loads_ruleset
from rules.cli import main

from .ten_mistakes import EXPECTED, TEXT, check


def test_the_loader_reports_all_ten_at_their_lines() -> None:
    with pytest.raises(RulesError) as caught:
        loads_ruleset(TEXT, file="bad.yaml")
    check([i.to_dict() for i in caught.value.issues])
    assert all(i.file == "bad.yaml" for i in caught.value.issues)


def test_rules_check_prints_all_ten_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEXT, encoding="utf-8")
    assert main(["check", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "10 error(s); rules not loaded"
    for (line, fragment), printed in zip(EXPECTED, lines[:-1], strict=True):
        assert printed.startswith(f"{bad}:{line}: ") and fragment in printed

    assert main(["check", str(tmp_path), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    check(data["errors"])
