"""Finds the tests whose outcome could depend on the time, the date or a time zone, by reading the
test sources: a test touches a time feature when its own text, or the text of what it uses from its
module, its helpers' modules and its conftest fixtures, names one (quiet hours, schedules, SLAs...).

tests/test_clock_discipline.py requires each such test to carry `@pytest.mark.clock` (tests/conftest.py),
or to be listed there with the reason it needs none.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# What a test's text says when the hub's answer depends on the clock. Each is the name of a feature
# (as the hub spells it in settings, rules, API fields and keys), not a word of prose.
FEATURES: dict[str, re.Pattern[str]] = {
    "quiet hours": re.compile(r"quiet_hours|held_until"),
    "marketing sends (held in quiet hours)": re.compile(r"""purpose["']?\s*[:=,]\s*["']?marketing"""),
    "campaigns and their schedule": re.compile(r"""post\(\s*["']/v1/campaigns["']|\bstart_at\b|\bper_minute\b"""),
    "scheduled sends": re.compile(r"\bsend_at\b|\bnot_before\b"),
    "rule schedules": re.compile(r"\bschedule\b\W{0,3}:|\bScheduler\b|keys\.SCHEDULER|next_fire"),
    "birthdays and is_today": re.compile(r"birthday|is_today"),
    "rule timers": re.compile(r"start_timer|keys\.CLOCK"),
    "relative rule operators": re.compile(r"op\W{1,3}(within|older_than)\b|\bolder_than\b"),
    "SLA breaches": re.compile(r"sla_breached|sla\.warning"),
    "offers and their timeout": re.compile(r"offer_timeout|expires_in_s|offer_expired"),
    "escalation": re.compile(r"\bescalate\b"),
    "token and session expiry": re.compile(r"\bexpires_at\b|revoke_key|disable_user|session_ttl"),
    "signature freshness windows": re.compile(r"\bstale\("),
    "idle sessions": re.compile(r"session_idle"),
    "leases and retention": re.compile(r"lease_until|retention_days|rotate_seconds"),
    # The score weighs how recent the last purchase is: a test reading it, or recency itself.
    "value score": re.compile(r"recency|\[[\"']value_score[\"']\]"),
    "replay window": re.compile(r"--since|\breplay\("),
    "time zones": re.compile(r"ZoneInfo\(|\b(America|Europe|Australia)/[A-Z]"),
}
# Reading the wall clock directly, which a test said to give the code its own clock must not do.
WALL_CLOCK = re.compile(r"datetime\.now\(|\.utcnow\(|\btime\.time\(|date\.today\(")
MARKER = re.compile(r"\bmark\.clock\b")
# A test may also travel by itself to a fixed instant (not to "now plus something").
FIXED_TRAVEL = re.compile(r"time_machine\.travel\((?![^)\n]*now\()")


@dataclass
class Module:
    path: Path
    source: str
    tree: ast.Module
    defs: dict[str, ast.AST] = field(default_factory=dict)  # top-level functions, classes, assignments
    imported: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (module, name)
    lines: list[str] = field(default_factory=list)
    texts: dict[int, str] = field(default_factory=dict)  # id(node) -> its source with decorators
    refs: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # id(node) -> names it uses
    features: dict[int, dict[str, str]] = field(default_factory=dict)  # id(node) -> features it names

    def text(self, node: ast.AST) -> str:
        if id(node) not in self.texts:
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            self.texts[id(node)] = "\n".join(self.lines[first - 1:node.end_lineno])
        return self.texts[id(node)]

    def features_of(self, node: ast.AST) -> dict[str, str]:
        """The time features the node's own text names: feature -> the words that name it."""
        if id(node) not in self.features:
            text = self.text(node)
            self.features[id(node)] = {f: m.group(0) for f, pattern in FEATURES.items() if (m := pattern.search(text))}
        return self.features[id(node)]

    def names_used(self, node: ast.AST) -> list[tuple[str, str]]:
        """(module, attr) for `module.attr`, ("<name>", x) for a name, ("<arg>", x) for a parameter."""
        if id(node) not in self.refs:
            # A name the function assigns itself (`hub = await aiohttp_client(...)`) is its own, not
            # the module's fixture of that name.
            local = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                local = set()
            found = []
            for n in ast.walk(node):
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
                    found.append((n.value.id, n.attr))
                elif isinstance(n, ast.Name) and n.id not in local:
                    found.append(("<name>", n.id))
                elif isinstance(n, ast.arg):
                    found.append(("<arg>", n.arg))
            self.refs[id(node)] = list(dict.fromkeys(found))
        return self.refs[id(node)]

    @property
    def marked(self) -> bool:
        node = self.defs.get("pytestmark")
        return node is not None and bool(MARKER.search(self.text(node)))


@cache
def load(path: Path) -> Module:
    source = path.read_text(encoding="utf-8")
    module = Module(path, source, ast.parse(source), lines=source.splitlines())
    for node in module.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            module.defs[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        module.defs[name.id] = node
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tests":
            for alias in node.names:
                module.imported[alias.asname or alias.name] = (node.module, alias.name)
    return module


def module_path(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _resolve(module: Module, name: str) -> tuple[Module, ast.AST] | None:
    """The definition `name` stands for in `module`: its own, or one it imports from tests."""
    if name in module.defs:
        return module, module.defs[name]
    if name not in module.imported:
        return None
    dotted, attr = module.imported[name]
    submodule = module_path(f"{dotted}.{attr}")
    if submodule is not None:  # `from tests.hub import payloads`: the names used off it are resolved below
        return None
    source = module_path(dotted)
    return _resolve(load(source), attr) if source else None


def _used_module(module: Module, name: str) -> Module | None:
    if name not in module.imported:
        return None
    dotted, attr = module.imported[name]
    path = module_path(f"{dotted}.{attr}")
    return load(path) if path else None


def conftests(path: Path) -> list[Module]:
    """The conftest.py files whose fixtures a test module sees, nearest first."""
    found = []
    for folder in [path.parent, *path.parent.parents]:
        if (folder / "conftest.py").is_file():
            found.append(load(folder / "conftest.py"))
        if folder == TESTS:
            break
    return found


def reached(module: Module, node: ast.AST) -> list[tuple[Module, ast.AST]]:
    """A test and everything it uses, followed through its module, the test helpers it imports and
    its conftest fixtures (by parameter name)."""
    found: list[tuple[Module, ast.AST]] = []
    seen: set[tuple[Path, str]] = set()
    fixtures = conftests(module.path)

    def visit(owner: Module, target: ast.AST) -> None:
        found.append((owner, target))
        for kind, name in owner.names_used(target):
            if kind not in ("<name>", "<arg>"):  # `module.attr`: followed into a test helper module
                used = _used_module(owner, kind)
                if used is not None:
                    follow(used, name)
            elif not follow(owner, name) and kind == "<arg>":
                for conftest in fixtures:
                    if follow(conftest, name):
                        break

    def follow(owner: Module, name: str) -> bool:
        resolved = _resolve(owner, name)
        if resolved is None:
            return False
        where, target = resolved
        if (where.path, name) not in seen:
            seen.add((where.path, name))
            visit(where, target)
        return True

    visit(module, node)
    return found


@dataclass(frozen=True)
class ClockUse:
    nodeid: str
    features: dict[str, str]  # feature -> the text that names it
    fixed_clock: bool  # marked `clock`, or travelling to a fixed instant itself


def _decorated_with_clock(module: Module, node: ast.AST) -> bool:
    return any(MARKER.search(ast.get_source_segment(module.source, d) or "") for d in node.decorator_list)


def collected_tests(module: Module):
    """(nodeid suffix, node, marked by its class) for each test function pytest would collect."""
    for node in module.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            yield node.name, node, False
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test"):
                    yield f"{node.name}::{item.name}", item, _decorated_with_clock(module, node)


def scan(path: Path) -> list[ClockUse]:
    """Each test in the module at `path`: the time features it touches, and whether its clock is fixed."""
    module = load(path)
    uses = []
    for name, node, class_marked in collected_tests(module):
        features: dict[str, str] = {}
        travels = False
        for owner, target in reached(module, node):
            for feature, text in owner.features_of(target).items():
                features.setdefault(feature, text)
            travels = travels or bool(FIXED_TRAVEL.search(owner.text(target)))
        fixed = module.marked or class_marked or _decorated_with_clock(module, node) or travels
        uses.append(ClockUse(f"{path.relative_to(ROOT).as_posix()}::{name}", features, fixed))
    return uses


def all_test_modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts)
