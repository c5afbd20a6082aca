"""Record pulls: which records we know exist at a newer version than we hold, and whom to ask.

Why: a record is pushed by gossip a limited number of times, so now and then a node misses it
(about 1% of nodes per record at 8 members, see broadcasts.py) and would wait for the next
push-pull, tens of seconds. Beside every record, gossip therefore carries a tiny announcement,
RECORD_VERSION (name, version), sent three times as often; a node that hears of a version it
does not hold asks the announcer for it with RECORD_WANT. This is Plumtree's lazy push (IHAVE /
GRAFT) on top of SWIM's eager push.

Rules:
- `announced(name, version, source, now)`: a want is opened, due after `delay_s` (the record
  itself usually rides in the same datagram or the next, and then no want is ever sent). A later
  announcement of a higher version raises the wanted version; any announcement refreshes the
  source, so a retry asks the most recent announcer.
- `due(now)` returns the wants whose time has come and schedules each one's retry after
  `retry_s`; after `attempts` asks a want is dropped (push-pull anti-entropy repairs what is
  left).
- The owner calls `satisfied` whenever it stores a record: a want the stored version covers is
  dropped there, so every want still open is for a record still missing.
- Bounded: at most MAX_WANTS open; beyond, new announcements are ignored and counted by the
  caller (push-pull repairs them).

Pure: `now` is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubhop.core.members import Address

# One open want per record name; 4,096 is far above the records that change at once in a
# cluster of thousands (each node publishes at most a few versions per second).
MAX_WANTS = 4096


@dataclass(slots=True)
class _Want:
    version: int
    source: Address
    due: float
    asked: int = 0


class RecordWants:
    def __init__(self, delay_s: float, retry_s: float, attempts: int) -> None:
        self.delay_s = delay_s
        self.retry_s = retry_s
        self.attempts = attempts
        self._wants: dict[str, _Want] = {}

    def __len__(self) -> int:
        return len(self._wants)

    def announced(self, name: str, version: int, source: Address, now: float) -> bool:
        """Note that `source` holds `name` at `version` (which we lack); False when full."""
        want = self._wants.get(name)
        if want is None:
            if len(self._wants) >= MAX_WANTS:
                return False
            self._wants[name] = _Want(version, source, now + self.delay_s)
            return True
        if version > want.version:
            want.version = version
        want.source = source
        return True

    def satisfied(self, name: str, held: int) -> None:
        """We now hold `name` at `held`: drop the want if that is enough."""
        want = self._wants.get(name)
        if want is not None and held >= want.version:
            del self._wants[name]

    def forget(self, name: str) -> None:
        self._wants.pop(name, None)

    def next_deadline(self) -> float | None:
        if not self._wants:
            return None
        return min(w.due for w in self._wants.values())

    def due(self, now: float) -> list[tuple[str, int, Address]]:
        """(name, version, source) to ask now; retries scheduled, exhausted wants dropped."""
        out: list[tuple[str, int, Address]] = []
        for name, want in list(self._wants.items()):
            if want.due > now:
                continue
            if want.asked >= self.attempts:
                del self._wants[name]
                continue
            want.asked += 1
            want.due = now + self.retry_s
            out.append((name, want.version, want.source))
        return out
