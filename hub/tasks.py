"""Background asyncio tasks of the hub's services."""

from __future__ import annotations

import asyncio
import contextlib
import logging


async def cancel_and_wait(task: asyncio.Task[object] | None) -> None:
    """Cancel a service's background task and wait until it has unwound."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class PollingWorker:
    """A service that runs `step()` in the background: again at once while a step says there is
    more to do, else after `notify()` or `poll_interval_s`, and never more often than
    `min_interval_s` (a notify may come after every ingest commit)."""

    name = "omnihub-worker"

    def __init__(self, *, poll_interval_s: float, min_interval_s: float = 0.0) -> None:
        self._poll = poll_interval_s
        self._min_interval = min_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> bool:
        """One round of work; True when there is more to do right away."""
        raise NotImplementedError

    def notify(self) -> None:
        """Something was committed: look now, not at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                more = await self.step()
            except Exception:
                logging.getLogger("omnihub.tasks").exception("background step failed", extra={"worker": self.name})
                more = False
            if not more:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                except TimeoutError:
                    pass
                if self._min_interval:
                    await asyncio.sleep(self._min_interval)
