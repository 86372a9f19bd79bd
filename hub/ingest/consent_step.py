"""The ingest step that applies a consent change the customer made by writing to us (SMS STOP/START).

The adapter marks the interaction (`metadata.consent_change`); the change is written in the same
transaction as the interaction, so the STOP is on the timeline exactly when the opt-out is in force.
An opt-out covers every purpose on the channel (after STOP, Twilio refuses to deliver anything from
that sender); an opt-in restores both.
"""

from __future__ import annotations

import functools

from hub.ingest.batch_write import IngestContext
from hub.profiles import store as profiles_repo
from schemas import CONSENT_CHANGE_KEY

PURPOSES = ("marketing", "transactional")


def consent_step(ctx: IngestContext) -> None:
    change = ctx.interaction.metadata.get(CONSENT_CHANGE_KEY)
    pid = ctx.interaction.profile_id
    if change not in ("opt_out", "opt_in") or pid is None:
        return
    consent = {"granted": change == "opt_in", "at": ctx.interaction.occurred_at.isoformat(),
               "source": f"{ctx.interaction.channel} keyword"}
    consents = {f"{ctx.interaction.channel}:{purpose}": consent for purpose in PURPOSES}
    ctx.writes.append(functools.partial(_apply, pid=pid, consents=consents, now=ctx.now))


def _apply(conn, *, pid, consents, now) -> None:
    profiles_repo.patch(conn, pid, {"consents": consents}, if_version=None, now=now, source="keyword")
