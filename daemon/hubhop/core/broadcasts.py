"""The broadcast queue: what this node still has to tell others, piggybacked on its datagrams.

Rules (memberlist's TransmitLimitedQueue):
- Each broadcast is an encoded message with a key (the member or record it is about). A newer
  broadcast with the same key replaces (invalidates) the older one: nobody needs stale news.
- Each is sent at most `scale * retransmit_mult * ceil(log10(n + 1))` times (n = members known),
  then dropped. With every node sending a broadcast L times to random members, a given node
  misses it with probability about e^-L: at scale 1 that is ~1% per node at 8 members and
  ~0.03% at 64, so small news (membership changes, record announcements) is queued at a larger
  scale (the caller says which), while bulky records keep scale 1 and are repaired by pull.
- Fewer-transmitted broadcasts go first (fresh news spreads fastest); among equals, newer first.
- `take(budget)` packs as many as fit in `budget` bytes.
- Bounded: beyond MAX_QUEUED broadcasts the most-transmitted ones are dropped (push-pull repairs
  whatever was lost).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

# 8192 broadcasts of ~100 bytes is under 1 MB; a backlog that size means a mass join or a
# partition healing, which push-pull anti-entropy repairs anyway.
MAX_QUEUED = 8192
# Stop scanning for a broadcast small enough once this little room is left: no message is smaller.
_MIN_MESSAGE_BYTES = 8


def retransmit_limit(mult: int, n: int) -> int:
    return mult * math.ceil(math.log10(n + 1))


@dataclass(slots=True)
class _Item:
    key: Hashable
    data: bytes
    transmits: int
    scale: int


class BroadcastQueue:
    def __init__(self, max_queued: int = MAX_QUEUED) -> None:
        self._max = max_queued
        self._items: dict[Hashable, _Item] = {}
        # transmits -> items with that many transmissions, oldest first (dicts keep order)
        self._buckets: dict[int, dict[Hashable, _Item]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def queue(self, key: Hashable, data: bytes, scale: int = 1) -> None:
        """Queue `data`, replacing any older broadcast about the same `key`; it is sent up to
        `scale` times the limit `take` is given."""
        self._discard(key)
        item = _Item(key, data, 0, max(1, scale))
        self._items[key] = item
        self._buckets.setdefault(0, {})[key] = item
        if len(self._items) > self._max:
            worst = max(self._buckets)
            self._discard(next(iter(self._buckets[worst])))

    def discard(self, key: Hashable) -> None:
        """Forget any broadcast about `key`."""
        self._discard(key)

    def _discard(self, key: Hashable) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            bucket = self._buckets[old.transmits]
            del bucket[key]
            if not bucket:
                del self._buckets[old.transmits]

    def take(self, budget: int, limit: int) -> list[bytes]:
        """Broadcasts that fit in `budget` bytes in total, counting one transmission each;
        `limit` is the transmission limit at scale 1."""
        if not self._items or budget < _MIN_MESSAGE_BYTES:
            return []
        chosen: list[_Item] = []
        room = budget
        for transmits in sorted(self._buckets):
            for item in reversed(self._buckets[transmits].values()):
                if len(item.data) <= room:
                    chosen.append(item)
                    room -= len(item.data)
                    if room < _MIN_MESSAGE_BYTES:
                        break
            if room < _MIN_MESSAGE_BYTES:
                break
        for item in reversed(chosen):  # re-added oldest first: newest stays first among equals
            self._discard(item.key)
            item.transmits += 1
            if item.transmits < limit * item.scale:
                self._items[item.key] = item
                self._buckets.setdefault(item.transmits, {})[item.key] = item
        return [item.data for item in chosen]
