"""Errors of the rules package: every load problem is collected, then raised once with all of them.

A rules author fixing a file wants the whole list in one pass (like a compiler), not one error per
reload; so the loader gathers `Issue`s and raises a single `RulesError`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from schemas import OmnihubError


@dataclass(frozen=True, slots=True)
class Issue:
    """One mistake in a rule file, pinned to a 1-based line."""

    file: str
    line: int
    rule: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: [{self.rule}] {self.message}" if self.rule else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class RulesError(OmnihubError):
    """A ruleset was refused; `issues` lists every problem found, in file and line order."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line))
        head = f"{len(self.issues)} error(s) in rules"
        super().__init__("\n".join([head, *map(str, self.issues)]))


class SpecError(OmnihubError, ValueError):
    """A single value in a rule spec is malformed (a duration, a schedule, an operator's value).

    Raised by the small parsers; the loader turns it into an `Issue` at the offending line.
    """
