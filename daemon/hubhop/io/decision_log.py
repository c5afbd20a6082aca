"""The recent routing decisions of the requests that entered at this node, by request id.

`Explain` (gRPC) answers "why did request X go where it went" from here, and the live view
(`/ui`) shows the newest. Each entry is the audit line of one request (hubhop.io.request_trace
`AuditFacts`): what it asked, where it was served and by which path, its times, and the
decision's reason (expected network, queue and service time, the runners-up, the nearest
rejected candidates and why).

Rules:
- Bounded: the oldest entry goes when a new one comes past `capacity`, so memory is fixed
  whatever the load. An entry is found by its request id while it is kept; a request id
  given twice (a client reusing one) finds the newest.
- Most entries are never read, and the routed request path is the hot one, so an entry may be
  recorded as a function that builds it (`record_later`), called the first time the entry is
  read (`get`, `recent`, a listener), and its `reason` as another: listing a decision's
  alternates and rejections costs far more than the decision did. A reason still to be worked
  out holds its decision (what the kernel call saw), so only the newest `reason_window`
  entries keep one; an older entry read later says its reason was not kept.
- Listeners hear every entry as it is recorded (the table watch passes them on); a listener
  must not block: it is called on the event loop, inside the request's own completion.
- Only entries of this node's own clients: a request a peer passed on was decided at its entry,
  and is explained there.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

Entry = dict[str, Any]
Listener = Callable[[Entry], None]
Reason = Callable[[], Any]
Build = Callable[[], Entry]

# Enough to explain what happened in the last minutes at a busy edge node (some 10 requests a
# second), at about 1 kB an entry: 1 MB of memory.
DEFAULT_CAPACITY = 1000
# Decisions whose reasons are kept to be worked out: the last few seconds of a busy node, which
# is when an operator asks "why did that go there"; each holds its kernel call's arrays.
DEFAULT_REASON_WINDOW = 100
REASON_NOT_KEPT = {"not_kept": "only the newest decisions keep their reasons"}


class DecisionLog:
    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, reason_window: int = DEFAULT_REASON_WINDOW
    ) -> None:
        if capacity < 1:
            raise ValueError("a decision log keeps at least one entry")
        self.capacity = capacity
        self.reason_window = reason_window
        self._entries: OrderedDict[str, Entry | Build] = OrderedDict()
        # request id -> its reason, not worked out yet; oldest first
        self._reasons: OrderedDict[str, Reason] = OrderedDict()
        self._reasons_dropped: set[str] = set()  # their reasons left the window unread
        self._listeners: list[Listener] = []

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, entry: Entry, reason: Reason | None = None) -> None:
        """Keep `entry` (it carries its `request_id`; its `reason` from `reason()` when first
        read, if given) and tell the listeners."""
        self.record_later(str(entry.get("request_id", "")), entry, reason)

    def record_later(self, request_id: str, entry: Entry | Build, reason: Reason | None) -> None:
        """Keep the entry of `request_id`, or the function that builds it when first read."""
        self._forget(request_id)
        self._entries[request_id] = entry
        if reason is not None:
            self._reasons[request_id] = reason
            if len(self._reasons) > self.reason_window:
                unread, _ = self._reasons.popitem(last=False)
                self._reasons_dropped.add(unread)
        while len(self._entries) > self.capacity:
            self._forget(next(iter(self._entries)))
        if self._listeners:
            read = self._read(request_id)
            for listener in list(self._listeners):
                listener(read)

    def get(self, request_id: str) -> Entry | None:
        """The entry of `request_id` while it is kept."""
        return self._read(request_id) if request_id in self._entries else None

    def recent(self, n: int) -> list[Entry]:
        """The newest `n` entries, oldest first."""
        if n <= 0:
            return []
        ids = list(self._entries)[-n:]
        return [self._read(i) for i in ids]

    def _forget(self, request_id: str) -> None:
        self._entries.pop(request_id, None)
        self._reasons.pop(request_id, None)
        self._reasons_dropped.discard(request_id)

    def _read(self, request_id: str) -> Entry:
        held = self._entries[request_id]
        entry = held if isinstance(held, dict) else held()
        self._entries[request_id] = entry
        reason = self._reasons.pop(request_id, None)
        if reason is not None:
            entry["reason"] = reason()
        elif request_id in self._reasons_dropped:
            self._reasons_dropped.discard(request_id)
            entry["reason"] = REASON_NOT_KEPT
        return entry

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every entry recorded from now on; returns how to stop."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop
