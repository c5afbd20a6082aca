"""The capacity table: the newest valid record of every node, as gossip delivered them.

The membership protocol (`hubhop.core.swim`) owns the spreading; it hands every record it hears
to this table through the RecordStore protocol (offer/get/digest/forget) and asks it what it
holds when it runs anti-entropy. The router's bridge reads the table's events.

Rules:
- A record is stored only when it is NEWER than what the table holds for that name (a strictly
  greater version), DECODES and VALIDATES (`hubhop.core.capacity.decode_record`), and is the
  node's OWN: its `node` field equals the name it is offered under, so a member can only ever
  write its own entry. Anything else is refused (offer returns False) and counted in
  `rejected` by reason: "name" (not a string), "version" (not a non-negative integer),
  "duplicate" (the version held: the common case, as one broadcast reaches a node from several
  peers), "stale" (older than held), "not_own", and the decoder's reasons ("oversize",
  "malformed", "layout", "invalid").
- The exact payload bytes are kept, so what this node passes on in push-pull is byte for byte
  what the owner signed off, and re-gossiping costs no re-encoding.
- Nothing offered can raise out of `offer`: it is on the receive path.
- Events (RecordUpdated, RecordRemoved) queue in a BOUNDED deque. When subscribers do not poll,
  the oldest events are dropped and counted in `events_dropped`: memory must not grow with a
  peer's chattiness, and the dropped events are the stale ones (a later event or the table
  itself, `records()`, holds the newer state), so a lagging subscriber resyncs from `records()`.
- `forget` (a member reaped) removes the record and emits RecordRemoved. No tombstone is kept:
  whether an old record may come back is the membership protocol's call (it only offers
  records of members it knows).

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from hubhop.core.capacity import CapacityRecord, RecordError, decode_record

# Events held for subscribers that have not polled yet. One push-pull with a seed brings the
# whole cluster's records at once; 16384 is above the largest cluster we simulate (10,000 nodes),
# so a join never drops events, while bounding what a subscriber that stopped polling can pin.
DEFAULT_MAX_EVENTS = 16384


@dataclass(frozen=True)
class RecordUpdated:
    name: str
    version: int
    record: CapacityRecord


@dataclass(frozen=True)
class RecordRemoved:
    name: str


RecordEvent = RecordUpdated | RecordRemoved


@dataclass(frozen=True)
class _Entry:
    version: int
    payload: bytes
    record: CapacityRecord


class CapacityTable:
    """Implements hubhop.core.swim.RecordStore."""

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self._entries: dict[str, _Entry] = {}
        self._events: deque[RecordEvent] = deque(maxlen=max_events)
        self.rejected: Counter[str] = Counter()
        self.events_dropped = 0

    # RecordStore -----------------------------------------------------------------------------

    def offer(self, name: str, version: int, payload: bytes) -> bool:
        """Store `payload` as `name`'s record at `version` if newer, valid and its own."""
        if not isinstance(name, str):
            self.rejected["name"] += 1
            return False
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            self.rejected["version"] += 1
            return False
        held = self._entries.get(name)
        if held is not None and version <= held.version:
            self.rejected["duplicate" if version == held.version else "stale"] += 1
            return False
        try:
            record = decode_record(payload)
        except RecordError as exc:
            self.rejected[exc.reason] += 1
            return False
        if record.node != name:
            self.rejected["not_own"] += 1
            return False
        self._entries[name] = _Entry(version, bytes(payload), record)
        self._emit(RecordUpdated(name, version, record))
        return True

    def get(self, name: str) -> tuple[int, bytes] | None:
        held = self._entries.get(name)
        return None if held is None else (held.version, held.payload)

    def digest(self) -> dict[str, int]:
        """Name -> version held, for anti-entropy."""
        return {name: entry.version for name, entry in self._entries.items()}

    def forget(self, name: str) -> None:
        if self._entries.pop(name, None) is not None:
            self._emit(RecordRemoved(name))

    # Readers ---------------------------------------------------------------------------------

    def records(self) -> dict[str, tuple[int, CapacityRecord]]:
        """Name -> (version, record) of every record held (a copy)."""
        return {name: (entry.version, entry.record) for name, entry in self._entries.items()}

    def record(self, name: str) -> CapacityRecord | None:
        held = self._entries.get(name)
        return None if held is None else held.record

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def next_event(self) -> RecordEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def _emit(self, event: RecordEvent) -> None:
        if len(self._events) == self._events.maxlen:
            self.events_dropped += 1  # the deque drops the oldest on append
        self._events.append(event)
