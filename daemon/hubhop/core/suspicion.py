"""Suspicion timers with Lifeguard's dynamic timeouts.

Rules:
- A suspected member is declared dead when its timer fires. The timer starts at the maximum,
  `max_timeout = max_mult * min_timeout`, and shrinks toward `min_timeout` as independent
  confirmations (SUSPECT messages from other members than the first accuser) arrive:
      timeout = max(min, max - (max - min) * log(c + 1) / log(k + 1))
  with c confirmations seen and k confirmations expected. With k < 1 there is nobody to confirm
  and the timer is simply `min`.
- `min_timeout = mult * max(1, log10(max(1, n))) * probe_interval` (memberlist's formula): a
  bigger cluster needs longer for the suspicion to reach the suspect so it can refute. The
  max(1, ...) floor keeps tiny clusters from getting a zero timeout.
- Each member confirms at most once; the accuser who started the timer never confirms.
"""

from __future__ import annotations

import math


def suspicion_min_timeout(mult: float, n: int, probe_interval: float) -> float:
    """The shortest a suspicion may last in a cluster of `n` members."""
    node_scale = max(1.0, math.log10(max(1, n)))
    return mult * node_scale * probe_interval


class Suspicion:
    """One suspected member's timer."""

    def __init__(
        self, accuser: str, k: int, min_timeout: float, max_timeout: float, start: float
    ) -> None:
        self.k = max(0, k)
        self.min_timeout = min_timeout
        self.max_timeout = max(max_timeout, min_timeout)
        self.start = start
        self._confirmers: set[str] = {accuser}
        self.confirmations = 0
        self.deadline = start + self._timeout()

    def _timeout(self) -> float:
        if self.k < 1:
            return self.min_timeout
        frac = math.log(self.confirmations + 1) / math.log(self.k + 1)
        raw = self.max_timeout - frac * (self.max_timeout - self.min_timeout)
        return max(self.min_timeout, raw)

    def confirm(self, confirmer: str) -> bool:
        """Count an independent confirmation; True when it is new (and worth re-gossiping)."""
        if self.confirmations >= self.k or confirmer in self._confirmers:
            return False
        self._confirmers.add(confirmer)
        self.confirmations += 1
        self.deadline = self.start + self._timeout()
        return True
