"""The email adapter's tenacity policies, in one place: sending retries transient SMTP failures a
few times within one send() call; the IMAP poller reconnects with capped exponential backoff for
as long as it runs."""

from __future__ import annotations

import logging

from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential,
    wait_random,
)

from adapters.base import TransientSendError


def send_retrying(attempts: int, wait_s: float, log: logging.Logger) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(TransientSendError),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=wait_s, max=max(wait_s, 30.0)) + wait_random(0, wait_s / 2),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,  # the last TransientSendError, not tenacity's RetryError
    )


def reconnect_retrying(max_wait_s: float, log: logging.Logger) -> AsyncRetrying:
    """Retries every Exception (not cancellation, which is how the poller is stopped)."""
    return AsyncRetrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, Exception)),
        stop=stop_never,
        wait=wait_exponential(multiplier=0.5, max=max_wait_s) + wait_random(0, 0.5),
        before_sleep=before_sleep_log(log, logging.WARNING, exc_info=False),
        reraise=True,
    )
