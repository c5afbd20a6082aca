"""The capacity table: newest valid own records only, counted refusals, bounded events."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubhop.core.capacity import MAX_RECORD_BYTES, encode_record
from hubhop.core.capacity_table import (
    DEFAULT_MAX_EVENTS,
    CapacityTable,
    RecordEvent,
    RecordRemoved,
    RecordUpdated,
)
from tests.gossip.test_capacity import backend, record


def payload(node: str = "wuhan-edge-1", **overrides: Any) -> bytes:
    return encode_record(record(node=node, **overrides))


def drain(table: CapacityTable) -> list[RecordEvent]:
    events = []
    while (event := table.next_event()) is not None:
        events.append(event)
    return events


def test_a_valid_record_is_stored_and_announced() -> None:
    table = CapacityTable()
    data = payload()
    assert table.offer("wuhan-edge-1", 1, data)
    assert table.get("wuhan-edge-1") == (1, data)
    assert table.digest() == {"wuhan-edge-1": 1}
    assert table.records() == {"wuhan-edge-1": (1, record())}
    assert table.record("wuhan-edge-1") == record()
    assert "wuhan-edge-1" in table and len(table) == 1
    assert drain(table) == [RecordUpdated("wuhan-edge-1", 1, record())]
    assert not table.rejected


def test_a_newer_version_replaces_the_old_one() -> None:
    table = CapacityTable()
    table.offer("wuhan-edge-1", 1, payload())
    busier = payload(backends=(backend(busy=7.0),))
    assert table.offer("wuhan-edge-1", 5, busier)
    assert table.get("wuhan-edge-1") == (5, busier)
    assert [e.version for e in drain(table) if isinstance(e, RecordUpdated)] == [1, 5]


def test_equal_and_older_versions_are_refused_and_counted() -> None:
    table = CapacityTable()
    table.offer("wuhan-edge-1", 5, payload())
    drain(table)
    other = payload(backends=(backend(busy=7.0),))
    assert not table.offer("wuhan-edge-1", 5, other)
    assert not table.offer("wuhan-edge-1", 4, other)
    assert table.get("wuhan-edge-1") == (5, payload())
    assert table.rejected == {"duplicate": 1, "stale": 1}
    assert drain(table) == []


def test_a_node_can_only_write_its_own_record() -> None:
    table = CapacityTable()
    assert not table.offer("hub-1", 1, payload(node="wuhan-edge-1"))
    assert table.get("hub-1") is None and table.digest() == {}
    assert table.rejected == {"not_own": 1}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "malformed"),
        (b"\xc1\xc1", "malformed"),
        (b"\x90", "layout"),
        (b"\x00" * (MAX_RECORD_BYTES + 1), "oversize"),
    ],
)
def test_undecodable_payloads_are_refused_by_reason(data: bytes, reason: str) -> None:
    table = CapacityTable()
    assert not table.offer("wuhan-edge-1", 1, data)
    assert table.rejected == {reason: 1}
    assert table.digest() == {}


def test_an_invalid_field_is_counted_as_invalid() -> None:
    table = CapacityTable()
    good = payload()
    bad = good.replace(b"hubei", b"HUBEI")
    assert not table.offer("wuhan-edge-1", 1, bad)
    assert table.rejected == {"invalid": 1}


def test_an_invalid_newer_version_keeps_the_old_record() -> None:
    table = CapacityTable()
    table.offer("wuhan-edge-1", 1, payload())
    assert not table.offer("wuhan-edge-1", 2, b"junk")
    assert table.get("wuhan-edge-1") == (1, payload())
    # The valid version 2, arriving later, is still taken.
    assert table.offer("wuhan-edge-1", 2, payload())


@pytest.mark.parametrize("version", [-1, True, 1.0, "2", None])
def test_a_bad_version_is_refused(version: Any) -> None:
    table = CapacityTable()
    assert not table.offer("wuhan-edge-1", version, payload())
    assert table.rejected == {"version": 1}


@pytest.mark.parametrize("name", [None, ["wuhan-edge-1"], 7])
def test_a_bad_name_is_refused(name: Any) -> None:
    table = CapacityTable()
    assert not table.offer(name, 1, payload())
    assert table.rejected == {"name": 1}


def test_forget_removes_and_announces_once() -> None:
    table = CapacityTable()
    table.offer("wuhan-edge-1", 3, payload())
    drain(table)
    table.forget("wuhan-edge-1")
    table.forget("wuhan-edge-1")
    table.forget("never-seen")
    assert table.get("wuhan-edge-1") is None and table.digest() == {}
    assert drain(table) == [RecordRemoved("wuhan-edge-1")]
    # After forgetting, the member's record is taken again (membership decides; no tombstone).
    assert table.offer("wuhan-edge-1", 1, payload())


def test_events_are_bounded_and_the_oldest_are_dropped() -> None:
    table = CapacityTable(max_events=3)
    for version in range(1, 6):
        table.offer("wuhan-edge-1", version, payload())
    assert table.events_dropped == 2
    assert [e.version for e in drain(table) if isinstance(e, RecordUpdated)] == [3, 4, 5]
    assert table.next_event() is None


def test_default_event_bound_holds_a_large_cluster_join() -> None:
    assert DEFAULT_MAX_EVENTS >= 10_000
    with pytest.raises(ValueError):
        CapacityTable(max_events=0)


def test_returned_views_are_copies() -> None:
    table = CapacityTable()
    table.offer("wuhan-edge-1", 1, payload())
    table.digest()["wuhan-edge-1"] = 99
    table.records().clear()
    assert table.digest() == {"wuhan-edge-1": 1}


def test_many_nodes_each_keep_their_own_newest() -> None:
    table = CapacityTable()
    for i in range(20):
        for version in (2, 1, 3):
            table.offer(f"edge-{i}", version, payload(node=f"edge-{i}", links=()))
    assert table.digest() == {f"edge-{i}": 3 for i in range(20)}
    assert table.rejected == {"stale": 20}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20), st.integers(-5, 2**64), st.binary(max_size=600))
def test_offer_never_raises(name: str, version: int, data: bytes) -> None:
    table = CapacityTable()
    table.offer("wuhan-edge-1", 1, payload())
    result = table.offer(name, version, data)
    assert result is False or table.get(name) == (version, data)
