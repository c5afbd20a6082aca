"""The recent routing decisions of the requests that entered at this node, by request id.

`Explain` (gRPC) answers "why did request X go where it went" from here, and the live view
(`/ui`) shows the newest. Each entry is the audit line of one request (hubhop.io.request_trace
`audit_line`): what it asked, where it was served and by which path, its times, and the
decision's reason (expected network, queue and service time, the runners-up, the nearest
rejected candidates and why).

Rules:
- Bounded: the oldest entry goes when a new one comes past `capacity`, so memory is fixed
  whatever the load. An entry is found by its request id while it is kept; a request id
  given twice (a client reusing one) finds the newest.
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

# Enough to explain what happened in the last minutes at a busy edge node (some 10 requests a
# second), at about 1 kB an entry: 1 MB of memory.
DEFAULT_CAPACITY = 1000


class DecisionLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("a decision log keeps at least one entry")
        self.capacity = capacity
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._listeners: list[Listener] = []

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, entry: Entry) -> None:
        """Keep `entry` (it carries its `request_id`) and tell the listeners."""
        request_id = str(entry.get("request_id", ""))
        self._entries.pop(request_id, None)
        self._entries[request_id] = entry
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        for listener in list(self._listeners):
            listener(entry)

    def get(self, request_id: str) -> Entry | None:
        """The entry of `request_id` while it is kept."""
        return self._entries.get(request_id)

    def recent(self, n: int) -> list[Entry]:
        """The newest `n` entries, oldest first."""
        if n <= 0:
            return []
        entries = list(self._entries.values())
        return entries[-n:]

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every entry recorded from now on; returns how to stop."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop
