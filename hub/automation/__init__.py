"""The hub side of rules (rules/): loading and reloading rule files (runtime.py) into the live
ruleset every reader shares (live.py), turning actions into stored effects (effects.py), time
triggers and schedules (scheduler.py), replaying stored interactions against a ruleset
(replay.py, `omnihub rules replay`), and the `omnihub rules` commands (cli.py).

The ingest step that evaluates rules on each interaction belongs to ingest/ (rules_step.py); it
reads the live ruleset from here.

May import: outbound (templates), profiles (segments, profile view), broker (event rows), storage,
the utilities, and the rules package. Must not import: ingest, assignment, channels, backoffice, api.
"""
