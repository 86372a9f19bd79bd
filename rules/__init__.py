"""The rules engine: YAML rule files -> a compiled, indexed Ruleset -> evaluate() -> actions as data.

Pure: it reads an event, an interaction, a profile, a task and a clock value, and returns what
should happen. The hub performs the actions, persists timers and runs the schedules.
"""

from pathlib import Path

from .actions import (
    Action,
    AddSegment,
    AddTag,
    AutoReply,
    Escalate,
    NoRoute,
    Publish,
    Route,
    SendMessage,
    SetPriority,
    SetProfile,
    StartTimer,
    Stop,
    action_to_dict,
)
from .compiler import Ruleset, load_ruleset, loads_ruleset
from .conditions import AllOf, AnyOf, Condition, Not, Predicate
from .durations import format_duration, parse_duration
from .errors import Issue, RulesError, SpecError
from .evaluate import Evaluation, Failure, RuleTrace, evaluate
from .fields import MISSING
from .model import TRIGGERS, Rule
from .operators import Operator
from .sample import Sample, SampleError, parse_sample
from .schedule import Schedule, next_fire, parse_schedule
from .timers import TimerOutcome, cancels, due_at, fire_timer

EXAMPLES_DIR = Path(__file__).parent / "examples"

__all__ = [
    "EXAMPLES_DIR",
    "MISSING",
    "TRIGGERS",
    "Action",
    "AddSegment",
    "AddTag",
    "AllOf",
    "AnyOf",
    "AutoReply",
    "Condition",
    "Escalate",
    "Evaluation",
    "Failure",
    "Issue",
    "Not",
    "Operator",
    "Predicate",
    "NoRoute",
    "Publish",
    "Route",
    "Rule",
    "RuleTrace",
    "RulesError",
    "Ruleset",
    "Sample",
    "SampleError",
    "Schedule",
    "SendMessage",
    "SetPriority",
    "SetProfile",
    "SpecError",
    "StartTimer",
    "Stop",
    "TimerOutcome",
    "action_to_dict",
    "cancels",
    "due_at",
    "evaluate",
    "fire_timer",
    "format_duration",
    "load_ruleset",
    "loads_ruleset",
    "next_fire",
    "parse_duration",
    "parse_sample",
    "parse_schedule",
]
