"""Local health awareness (Lifeguard): how much this node should distrust its own judgement.

Rules:
- A score in 0..max_multiplier-1, starting at 0 (healthy).
- +1 for each sign that *we* are the slow one: a failed probe with no peer to vouch for it, each
  nack we expected from an indirect helper and did not get, having to refute a suspicion of
  ourselves. -1 for each successful probe.
- Probe timeouts and the probe interval are multiplied by (score + 1): a node starved of CPU or
  network probes more patiently, so it stops accusing healthy peers of its own problems.
"""

from __future__ import annotations


class Awareness:
    def __init__(self, max_multiplier: int) -> None:
        if max_multiplier < 1:
            raise ValueError("max_multiplier must be at least 1")
        self._max = max_multiplier
        self._score = 0

    @property
    def score(self) -> int:
        return self._score

    def apply_delta(self, delta: int) -> None:
        self._score = min(max(self._score + delta, 0), self._max - 1)

    def scale(self, timeout: float) -> float:
        """`timeout` stretched by the current health score."""
        return timeout * (self._score + 1)
