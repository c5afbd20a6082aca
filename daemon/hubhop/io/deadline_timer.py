"""One loop timer for a sans-IO state machine's next deadline.

Rules:
- `arm(at)` keeps one timer for the moment `at` (on the caller's clock; None: no timer). Armed
  again for the same moment it does nothing; for another, the old timer is cancelled first.
- When it fires it calls `fire(now)` with `now` = max(the clock, `at`): a loop timer may fire
  a hair early (loop clock resolution), and the moment it was armed for has come, so the state
  machine is driven as of then rather than re-armed for a sliver.
- `cancel()` drops it (the loop is going away). Armed only on a running loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DeadlineTimer:
    def __init__(self, fire: Callable[[float], None], clock: Callable[[], float]) -> None:
        """`clock`: the clock the deadlines are read on."""
        self._fire = fire
        self._clock = clock
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def arm(self, at: float | None) -> None:
        if at == self._at:
            return
        self.cancel()
        if at is not None:
            delay = max(0.0, at - self._clock())
            self._handle = asyncio.get_running_loop().call_later(delay, self._fired, at)
            self._at = at

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._at = None

    def _fired(self, at: float) -> None:
        self._handle = self._at = None
        self._fire(max(self._clock(), at))
