"""A progress bar for the CLI's long jobs (`import pos`, `rules replay`, `dlq replay`), drawn by tqdm
on stderr, only for a person at a terminal: with either stream redirected or with `--json`, a
script reading the output gets none of it.

The jobs themselves take a plain `(done, total)` callback and know nothing of bars.
"""

from __future__ import annotations

import sys
from types import TracebackType

from tqdm import tqdm


def at_a_terminal() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


class Progress:
    """`with Progress("importing", "line", quiet=args.json) as progress: job(progress=progress)`."""

    def __init__(self, what: str, unit: str, *, quiet: bool = False) -> None:
        # leave=False: the bar clears itself when the job ends, before the job's report is printed.
        self._bar = tqdm(desc=what, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                         disable=quiet or not at_a_terminal())

    @property
    def shown(self) -> bool:
        return not self._bar.disable

    def __call__(self, done: int, total: int | None = None) -> None:
        """`done` of `total` so far (a total once known; None keeps the one given before)."""
        if total is not None:
            self._bar.total = total
        self._bar.update(done - self._bar.n)  # drawn at most every 0.1 s
        if self._bar.total is not None and self._bar.n >= self._bar.total:
            self._bar.refresh()  # the end is always drawn, however fast the job got there

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.close()
