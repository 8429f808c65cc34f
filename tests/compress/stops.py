"""A deadline for resume tests: it expires after ``n`` checks (the compress loops check once per episode/evaluation)."""

from __future__ import annotations


class StopAfter:
    def __init__(self, n: int) -> None:
        self.left = n

    def expired(self) -> bool:
        self.left -= 1
        return self.left < 0
