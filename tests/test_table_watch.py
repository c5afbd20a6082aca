"""The decision log and the table watch: what a dashboard following a node sees."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hubhop.io.decision_log import REASON_NOT_KEPT, DecisionLog
from hubhop.io.table_watch import TableWatch

# A change is compared every interval; the tests wait for each event at most this long.
INTERVAL_S = 0.01
WAIT_S = 5.0


def entry(request_id: str, node: str = "city-1") -> dict[str, Any]:
    return {"request_id": request_id, "served_by": node, "outcome": "served"}


def test_the_log_keeps_the_newest_entries_and_finds_them_by_request_id() -> None:
    log = DecisionLog(capacity=3)
    heard: list[str] = []
    stop = log.listen(lambda e: heard.append(e["request_id"]))
    for n in range(5):
        log.record(entry(f"r{n}"))
    assert len(log) == 3
    assert log.get("r0") is None and log.get("r1") is None
    assert log.get("r4") == entry("r4")
    assert [e["request_id"] for e in log.recent(2)] == ["r3", "r4"]
    log.record(entry("r3", node="hub-1"))  # an id given again: the newest wins
    assert log.get("r3") == entry("r3", node="hub-1")
    stop()
    log.record(entry("r9"))
    assert heard == ["r0", "r1", "r2", "r3", "r4", "r3"]
    with pytest.raises(ValueError):
        DecisionLog(capacity=0)


def test_entries_and_reasons_are_worked_out_when_read_and_old_reasons_are_let_go() -> None:
    built: list[str] = []

    def later(request_id: str) -> Any:
        def build() -> dict[str, Any]:
            built.append(request_id)
            return entry(request_id)

        return build

    log = DecisionLog(capacity=10, reason_window=2)
    for n in range(4):
        log.record_later(f"r{n}", later(f"r{n}"), lambda n=n: {"why": n})
    assert built == []  # nothing built on the request path
    assert log.get("r3") == {**entry("r3"), "reason": {"why": 3}}
    assert log.get("r3") is log.get("r3") and built == ["r3"]  # built once, then kept
    # r0 and r1 fell out of the reason window: where they went is kept, why is not.
    assert log.get("r0")["reason"] == REASON_NOT_KEPT  # type: ignore[index]
    assert log.get("r2")["reason"] == {"why": 2}  # type: ignore[index]


class View:
    """A node's table and members that the test changes."""

    def __init__(self) -> None:
        self.rows = [{"node": "a", "backend": "b0", "busy": 0}, {"node": "b", "backend": "b0"}]
        self.members = [{"name": "a", "state": "alive"}, {"name": "b", "state": "alive"}]
        self.calls = 0

    def __call__(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        self.calls += 1
        return [dict(r) for r in self.rows], [dict(m) for m in self.members]


async def next_event(events: Any) -> dict[str, Any]:
    event: dict[str, Any] = await asyncio.wait_for(anext(events), WAIT_S)
    return event


async def test_a_watcher_gets_a_snapshot_then_each_change() -> None:
    view, log = View(), DecisionLog()
    log.record(entry("before"))
    watch = TableWatch("a", view, log, interval_s=INTERVAL_S)
    events = watch.events()
    first = await next_event(events)
    assert first["kind"] == "snapshot" and first["node"] == "a"
    assert first["rows"] == view.rows and first["members"] == view.members
    assert [d["request_id"] for d in first["decisions"]] == ["before"]

    view.rows[0]["busy"] = 3
    assert await next_event(events) == {"kind": "row", "row": view.rows[0]}
    view.members[1]["state"] = "dead"
    assert await next_event(events) == {"kind": "member", "member": view.members[1]}
    del view.rows[1]
    del view.members[1]
    changes = [await next_event(events), await next_event(events)]
    assert {"kind": "member_removed", "name": "b"} in changes
    assert {"kind": "row_removed", "node": "b", "backend": "b0"} in changes
    log.record(entry("after"))
    assert await next_event(events) == {"kind": "decision", "decision": entry("after")}
    await events.aclose()
    assert watch.watchers == 0


async def test_nothing_is_compared_while_nobody_watches() -> None:
    view = View()
    watch = TableWatch("a", view, interval_s=INTERVAL_S)
    await asyncio.sleep(INTERVAL_S * 5)
    assert view.calls == 0
    events = watch.events()
    await next_event(events)
    await events.aclose()
    calls = view.calls
    await asyncio.sleep(INTERVAL_S * 5)
    assert view.calls == calls


async def test_a_watcher_that_falls_behind_gets_a_fresh_snapshot_not_a_backlog() -> None:
    view, log = View(), DecisionLog()
    watch = TableWatch("a", view, log, interval_s=3600.0, max_pending=4)
    events = watch.events()
    await next_event(events)
    for n in range(10):  # more than it may hold, while it reads nothing
        log.record(entry(f"r{n}"))
    resync = await next_event(events)
    assert resync["kind"] == "snapshot"
    assert [d["request_id"] for d in resync["decisions"]][-1] == "r9"
    log.record(entry("r10"))
    assert (await next_event(events))["decision"]["request_id"] == "r10"
    await events.aclose()


async def test_closing_ends_every_stream_and_refuses_new_watchers() -> None:
    watch = TableWatch("a", View(), interval_s=INTERVAL_S)
    events = watch.events()
    await next_event(events)
    watch.close()
    with pytest.raises(StopAsyncIteration):
        await next_event(events)
    assert [e async for e in watch.events()] == []
