"""What becomes of a message the IMAP poller cannot take: its failures counted per UID, its copy
into `failed_mailbox` (the dead letter), and the record of those passed over without a copy.

The poll loop (adapters.email.imap_poller) decides that a message failed, and whether the failure
counts; this module owns what follows, and the two state keys it is kept under, so that the rules
for counting, dead-lettering and passing over, and the formats of what they save, are in one place.

Nothing the poller cannot take holds up the mail after it, and nothing is passed over silently: it
goes to `failed_mailbox` (CREATEd if missing) by UID COPY, is logged as an error with its UID and
why, and its UID is saved as done. The original stays where it is, unflagged. That happens at once
for a message that is not one (PayloadError) and for one larger than `max_message_bytes` (copied
without fetching its body), and after `max_attempts` failures for a message the hub refuses or the
server will not FETCH (a NO or BAD answer; an OK without the message; a BYE naming the FETCH, which
is how Dovecot answers a message it cannot read). Failures are counted per UID in `deps.state`, so a
restart keeps the count; each one ends the session and the poller reconnects with backoff
(adapters.email.retry), starting again from the last saved UID.

If the server refuses the COPY itself (or the CREATE of failed_mailbox) `max_attempts` times for
one UID, that message is passed over without a copy: logged as an error with its UID and the
server's answer, saying that the original stays in the mailbox unflagged, and listed (the last
100, with the UIDVALIDITY) in `deps.state` under `email.imap.passed_over:...`. To have it read
again, copy it into the mailbox once the cause is fixed: the copy gets a new, higher UID.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from adapters.base import StateStore

from .config import ImapConfig
from .imap_wire import Client, ImapError, already_exists, mailbox_arg, ok, until_closed

# The poller's logger: what happens to one message is read in one stream.
log = logging.getLogger("omnihub.adapters.email.imap")

_PASSED_OVER_KEPT = 100  # UIDs listed in the passed-over record; older ones are only in the logs


class TryLater(Exception):
    """A failure counted against one message (ingest, FETCH or the COPY into failed_mailbox); the
    session ends and the poller tries the message again after reconnecting. Says only the UID, the
    count and the error's type: the error itself may quote the message."""


@dataclass(frozen=True)
class Failing:
    """The UID whose handling has been failing, as saved in the state store."""

    uid: int
    attempts: int = 0  # failed ingests and refused FETCHes
    error: str = ""  # the last error's type name, or why it is dead-lettered
    copy_failures: int = 0  # refused UID COPYs (or CREATEs) into failed_mailbox


class Failures:
    """The failure record of one mailbox; `where` is "<user>@<host>:<port>/<mailbox>"."""

    def __init__(self, config: ImapConfig, state: StateStore, where: str) -> None:
        self.config = config
        self.state = state
        # "<uidvalidity>:<uid>:<attempts>:<last error type>:<copy failures>", for the one failing UID
        self.attempts_key = f"email.imap.attempts:{where}"
        # "<uidvalidity>:<uid>,<uid>,...": passed over without a copy in failed_mailbox
        self.passed_over_key = f"email.imap.passed_over:{where}"

    async def failing(self, validity: str) -> Failing | None:
        saved = await self.state.get(self.attempts_key)
        parts = (saved or "").split(":")
        parts += ["0"] * (5 - len(parts))  # saved before copy failures were counted: none
        if len(parts) == 5 and parts[0] == validity and all(p.isdigit() for p in (parts[1], parts[2], parts[4])):
            return Failing(int(parts[1]), int(parts[2]), parts[3], int(parts[4]))
        return None

    async def count(self, client: Client, validity: str, record: Failing, exc: Exception,
                    reason: str | None = None) -> None:
        """One more failure of this message; dead-letters it at max_attempts, else raises TryLater.
        `reason` is logged only where it cannot quote the message (the server's answer)."""
        record = replace(record, attempts=record.attempts + 1, error=type(exc).__name__)
        await self._save(validity, record)
        # On a connection the server closed (its answer to a FETCH it cannot serve), the copy into
        # failed_mailbox waits for the next session, which starts with it.
        if record.attempts >= self.config.max_attempts and not client.protocol.closed.is_set():
            await self.dead_letter(client, validity, record)
            return
        log.warning("imap message not ingested", extra={
            "uid": record.uid, "attempt": record.attempts, "max_attempts": self.config.max_attempts,
            "error": record.error, **({"reason": reason} if reason else {})})
        raise TryLater(f"uid {record.uid}: attempt {record.attempts} of {self.config.max_attempts} "
                       f"failed ({record.error})")

    async def dead_letter(self, client: Client, validity: str, record: Failing) -> None:
        """UID COPY into failed_mailbox, creating it on the first refusal. The original is left as
        it is: the poller never changes the mailbox it reads (a copy made twice, after a crash
        between the COPY and saving the UID, is the price). A refused COPY is counted; after
        max_attempts refusals the message is passed over without a copy."""
        try:
            await self._copy(client, record.uid)
        except ImapError as exc:  # the server's refusal; a lost connection propagates, not counted
            await self._copy_refused(validity, replace(record, copy_failures=record.copy_failures + 1), exc)
            return
        log.error("imap message dead-lettered: copied to failed_mailbox and passed over", extra={
            "uid": record.uid, "attempts": record.attempts, "error": record.error,
            "failed_mailbox": self.config.failed_mailbox})

    async def _save(self, validity: str, record: Failing) -> None:
        await self.state.set(self.attempts_key, f"{validity}:{record.uid}:{record.attempts}:"
                                                f"{record.error}:{record.copy_failures}")

    async def _copy(self, client: Client, uid: int) -> None:
        mailbox, timeout = mailbox_arg(self.config.failed_mailbox), self.config.timeout_s
        copied = await until_closed(client, client.uid("copy", str(uid), mailbox), timeout)
        if copied.result != "OK":  # [TRYCREATE] when it is missing (RFC 3501 6.4.7), or another NO
            created = await until_closed(client, client.create(mailbox), timeout)
            if created.result != "OK" and not already_exists(created):
                raise ImapError(f"CREATE: {created.result} {created.lines[-1:]!r}")
            ok(await until_closed(client, client.uid("copy", str(uid), mailbox), timeout), "UID COPY")

    async def _copy_refused(self, validity: str, record: Failing, exc: ImapError) -> None:
        await self._save(validity, record)
        extra = {"uid": record.uid, "error": record.error, "copy_attempt": record.copy_failures,
                 "max_attempts": self.config.max_attempts, "failed_mailbox": self.config.failed_mailbox,
                 "reason": str(exc)}
        if record.copy_failures < self.config.max_attempts:
            log.warning("imap copy to failed_mailbox refused", extra=extra)
            raise TryLater(f"uid {record.uid}: copy {record.copy_failures} of {self.config.max_attempts} "
                           f"into failed_mailbox refused") from None
        await self._note_passed_over(validity, record.uid)
        log.error("imap message passed over WITHOUT a copy in failed_mailbox (the server refused it); "
                  "the original stays in the mailbox, unflagged", extra=extra)

    async def _note_passed_over(self, validity: str, uid: int) -> None:
        saved_validity, _, uids = (await self.state.get(self.passed_over_key) or "").partition(":")
        kept = uids.split(",") if uids and saved_validity == validity else []
        kept = [*kept, str(uid)][-_PASSED_OVER_KEPT:]
        await self.state.set(self.passed_over_key, f"{validity}:{','.join(kept)}")
