"""Tables the rules engine needs (issue 5): timers, actions waiting for a module to carry them out,
the once-per-day record of scheduled rules, and the rulesets that decided interactions.

They share `metadata` with hub.storage.models so migrations and test resets see one schema.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text, UniqueConstraint, Uuid, text

from hub.storage.models import UTCDateTime, metadata

TIMER_STATES = ("pending", "fired", "cancelled")

# A `start_timer` action, persisted so it survives restarts and fires once. `key` is the
# conversation it watches (its conversation_key, else "profile:<id>"): an interaction on the same
# conversation or profile whose event is in the timer's cancel_on cancels it.
timers = Table(
    "timers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("rule", String(100), nullable=False),
    Column("name", String(100), nullable=False),
    Column("key", String(512), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("interaction_id", Uuid),
    Column("profile_id", Uuid),
    Column("ruleset_version", String(64), nullable=False),
    Column("state", String(16), nullable=False, server_default=text("'pending'")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    # Why it ended: "fired", "cancelled by interaction.sent", "unless held", "rule removed".
    Column("reason", String(200)),
    Index("ix_timers_due", "due_at", sqlite_where=text("state = 'pending'"),
          postgresql_where=text("state = 'pending'")),
    Index("ix_timers_key", "key"),
    Index("ix_timers_profile_id", "profile_id"),
)

# send_message, auto_reply and anything a fired timer or a schedule asks for that no module carries
# out yet: kept, so a later outbound or routing module can deliver them and nothing is lost.
scheduled_actions = Table(
    "scheduled_actions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("rule", String(100)),
    Column("payload", Text, nullable=False),  # action_to_dict() as JSON
    Column("profile_id", Uuid),
    Column("interaction_id", Uuid),
    Column("due_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False, server_default=text("'pending'")),
    # What became of it once taken (done or failed): the message queued, or the refusal.
    Column("outcome", Text),
    Index("ix_scheduled_actions_due", "due_at", sqlite_where=text("state = 'pending'"),
          postgresql_where=text("state = 'pending'")),
)

# One row per (rule, profile, local day) a scheduled rule acted on: the unique constraint is what
# makes a second scan of the same day, or a scan resumed after a restart, send nothing twice.
schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("rule", String(100), nullable=False),
    Column("profile_id", Uuid, nullable=False),
    Column("day", String(10), nullable=False),  # ISO date in the ruleset's timezone
    Column("ran_at", UTCDateTime, nullable=False),
    UniqueConstraint("rule", "profile_id", "day", name="uq_schedule_runs_rule_profile_day"),
)

# The sources of every ruleset the hub has run, by version, so `rules replay` can re-derive what
# the live rules decided for an interaction (rules are a pure function of their inputs).
rulesets = Table(
    "rulesets",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("timezone", String(64), nullable=False),
    Column("sources", Text, nullable=False),  # JSON [[file, text], ...]
    Column("loaded_at", UTCDateTime, nullable=False),
)
