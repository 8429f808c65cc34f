"""Progress display on stderr for long runs (stdout stays clean for --json)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.status import Status


class ConsoleProgress:
    """A :class:`~paramverify.options.ProgressSink` that shows the bracket closing.

    On a terminal it keeps one live status line; elsewhere (logs, CI) it
    prints a line at most every ``interval_s`` seconds.
    """

    def __init__(self, enabled: bool = True, interval_s: float = 2.0) -> None:
        self.enabled = enabled
        self.interval_s = interval_s
        self._console = Console(stderr=True, highlight=False)
        self._live = enabled and sys.stderr.isatty()
        self._status: Status | None = None
        self._last = 0.0
        self._t0 = time.monotonic()

    def __enter__(self) -> ConsoleProgress:
        if self._live:
            self._status = self._console.status("starting ...")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def update(self, message: str, lower: float | None = None, upper: float | None = None) -> None:
        if not self.enabled:
            return
        text = message
        if lower is not None or upper is not None:
            lo = "?" if lower is None else f"{lower:.7g}"
            hi = "?" if upper is None else f"{upper:.7g}"
            text += f"  [{lo}, {hi}]"
        text = f"{time.monotonic() - self._t0:6.1f}s  {text}"
        if self._status is not None:
            self._status.update(text)
            return
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._console.print(text, markup=False)

    def note(self, message: str) -> None:
        """A line that is always printed (a finished step)."""
        if self.enabled:
            self._console.print(message, markup=False)
