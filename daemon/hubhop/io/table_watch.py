"""A live feed of the capacity table, the members and the routing decisions, for watchers.

gRPC's `WatchTable` and the live view (`/ui`, over server-sent events) follow the network
through this one feed, so both show the same thing.

Rules:
- A watcher first gets a snapshot: `{"kind": "snapshot", "node", "rows", "members",
  "decisions"}` (rows as `GET /hubhop/v1/table` gives them, members as `GET /hubhop/v1/members`,
  the newest decisions of the decision log), then the changes as they happen:
  `{"kind": "row", "row"}`, `{"kind": "row_removed", "node", "backend"}`,
  `{"kind": "member", "member"}`, `{"kind": "member_removed", "name"}`,
  `{"kind": "decision", "decision"}`.
- Rows and members change with gossip and load, many times a second under traffic, so they are
  compared every `interval_s` against what was last sent, and only what differs goes out: a
  watcher sees each state that lasted an interval, not every flicker. Decisions go out as they
  are recorded.
- Each watcher has a bounded queue. One that falls `max_pending` events behind is not
  buffered without bound: its queue is emptied and it gets a fresh snapshot, which holds
  everything it missed.
- Comparing costs a table build per interval, so it runs only while someone watches.
- `close()` (the node draining) ends every watcher's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from hubhop.io.decision_log import DecisionLog

Event = dict[str, Any]
# What the node shows now: its table rows and its members.
Snapshot = Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]

# Twice a second: a dashboard sees a join, a death or a load change within half a second, and
# a table build (about a millisecond for a hundred rows) twice a second costs nothing.
DEFAULT_INTERVAL_S = 0.5
# A snapshot of a few hundred rows is cheaper to send than more than this many changes.
DEFAULT_MAX_PENDING = 512
# How many recent decisions a snapshot carries: what a live view lists.
SNAPSHOT_DECISIONS = 50
_END: Event = {"kind": "end"}


def _row_key(row: dict[str, Any]) -> tuple[str, str]:
    return (str(row.get("node")), str(row.get("backend")))


class _Watcher:
    def __init__(self, max_pending: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(max_pending)
        self.behind = False  # fell behind: owes a fresh snapshot


class TableWatch:
    def __init__(
        self,
        node: str,
        snapshot: Snapshot,
        decisions: DecisionLog | None = None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.node = node
        self._snapshot = snapshot
        self._decisions = decisions
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._watchers: set[_Watcher] = set()
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        self._members: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._stop_listening: Callable[[], None] | None = None

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def snapshot_event(self) -> Event:
        rows, members = self._snapshot()
        decisions = [] if self._decisions is None else self._decisions.recent(SNAPSHOT_DECISIONS)
        return {
            "kind": "snapshot",
            "node": self.node,
            "rows": rows,
            "members": members,
            "decisions": decisions,
        }

    async def events(self) -> AsyncIterator[Event]:
        """The snapshot, then every change, until the node closes the watch."""
        if self._closed:
            return
        watcher = _Watcher(self.max_pending)
        first = self.snapshot_event()
        if not self._watchers:
            self._remember(first)
        self._watchers.add(watcher)
        self._start()
        try:
            yield first
            while True:
                event = await watcher.queue.get()
                if event is _END:
                    return
                if watcher.behind:  # what was queued is stale: one snapshot holds it all
                    watcher.behind = False
                    _empty(watcher.queue)
                    event = self.snapshot_event()
                yield event
        finally:
            self._watchers.discard(watcher)
            if not self._watchers:
                self._stop()

    def close(self) -> None:
        """End every watcher's stream (the node is draining)."""
        self._closed = True
        self._stop()
        for watcher in self._watchers:
            _empty(watcher.queue)
            watcher.queue.put_nowait(_END)

    # ---- the comparing task --------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._compare_loop())
            if self._decisions is not None:
                self._stop_listening = self._decisions.listen(self._on_decision)

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None

    async def _compare_loop(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.interval_s)
                rows, members = self._snapshot()
                for event in self._changes(rows, members):
                    self._send(event)

    def _remember(self, snapshot: Event) -> None:
        self._rows = {_row_key(row): row for row in snapshot["rows"]}
        self._members = {str(m.get("name")): m for m in snapshot["members"]}

    def _changes(self, rows: list[dict[str, Any]], members: list[dict[str, Any]]) -> list[Event]:
        events: list[Event] = []
        new_members = {str(m.get("name")): m for m in members}
        for name, member in new_members.items():
            if self._members.get(name) != member:
                events.append({"kind": "member", "member": member})
        for name in self._members.keys() - new_members.keys():
            events.append({"kind": "member_removed", "name": name})
        new_rows = {_row_key(row): row for row in rows}
        for key, row in new_rows.items():
            if self._rows.get(key) != row:
                events.append({"kind": "row", "row": row})
        for node, backend in sorted(self._rows.keys() - new_rows.keys()):
            events.append({"kind": "row_removed", "node": node, "backend": backend})
        self._rows, self._members = new_rows, new_members
        return events

    def _on_decision(self, entry: dict[str, Any]) -> None:
        self._send({"kind": "decision", "decision": entry})

    def _send(self, event: Event) -> None:
        for watcher in self._watchers:
            if watcher.behind:
                continue
            try:
                watcher.queue.put_nowait(event)
            except asyncio.QueueFull:
                watcher.behind = True
                _empty(watcher.queue)
                watcher.queue.put_nowait(event)  # wakes it; it resynchronises first


def _empty(queue: asyncio.Queue[Event]) -> None:
    while not queue.empty():
        queue.get_nowait()
