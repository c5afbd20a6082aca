"""RepublishPolicy: one test per rule, and the quiet case that must not publish."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hubhop.core.capacity import BackendState, CapacityRecord
from hubhop.core.republish import RepublishPolicy
from tests.gossip.test_capacity import backend, record

POLICY = RepublishPolicy()
T0 = 100.0
SOON = T0 + 1.0  # past min_interval_s, well before max_interval_s
NET_SOON = T0 + POLICY.network_min_interval_s  # network changes may publish from here


def with_backend(base: CapacityRecord | None = None, **changes: Any) -> CapacityRecord:
    """`base` (the sample record) with its first backend changed."""
    base = base or record()
    first = dataclasses.replace(base.backends[0], **changes)
    return dataclasses.replace(base, backends=(first, *base.backends[1:]))


def publishes(
    current: CapacityRecord, last: CapacityRecord | None = None, now: float = SOON
) -> bool:
    return POLICY.should_publish(record() if last is None else last, current, T0, now)


def test_first_publish_always() -> None:
    assert POLICY.should_publish(None, record(), None, T0)
    assert POLICY.should_publish(record(), record(), None, T0)


def test_an_unchanged_record_is_never_republished() -> None:
    assert not publishes(record())
    assert not publishes(record(), now=T0 + POLICY.max_interval_s)
    assert not publishes(record(), now=T0 + 100 * POLICY.max_interval_s)


def test_drift_below_every_threshold_is_published_after_the_interval() -> None:
    drifted = with_backend(busy=record().backends[0].busy + 0.5)  # under one slot: not news
    assert not publishes(drifted)
    assert not publishes(drifted, now=T0 + POLICY.max_interval_s - 0.01)
    assert publishes(drifted, now=T0 + POLICY.max_interval_s)


def test_default_max_interval_is_ten_seconds() -> None:
    assert RepublishPolicy().max_interval_s == 10.0


@pytest.mark.parametrize(
    "changes",
    [
        {"node": "other-node"},
        {"role": "city"},
        {"region": "hunan"},
        {"city": "yichang"},
        {"http_addr": "127.0.1.1:8081"},
        {"gossip_addr": "127.0.1.2:7946"},
        {"backends": record().backends[:1]},
        {"backends": (*record().backends, backend(name="extra"))},
        {"backends": tuple(reversed(record().backends))},
    ],
)
def test_identity_changes_publish_at_once(changes: dict[str, Any]) -> None:
    current = dataclasses.replace(record(), **changes)
    assert POLICY.identity_changed(record(), current)
    assert publishes(current, now=T0)  # even inside min_interval_s


@pytest.mark.parametrize(
    "changes",
    [
        {"models": ("ct-triage",)},
        {"protocols": ("openai",)},
        {"chip": "nvidia-a100"},
        {"slots": 9},
        {"emergency_reserve": 2},
        {"price": 0.9},
        {"green_share": 0.5},
    ],
)
def test_backend_static_changes_publish_at_once(changes: dict[str, Any]) -> None:
    assert publishes(with_backend(**changes), now=T0)


# Sample backend: slots 8, busy 3, queue (0, 2, 5), service 42.5 ms.


@pytest.mark.parametrize(
    ("busy", "expected"),
    [(3.5, False), (3.99, False), (4.0, True), (2.0, True), (0.0, True)],
)
def test_busy_threshold_is_one_slot_on_small_backends(busy: float, expected: bool) -> None:
    assert publishes(with_backend(busy=busy)) is expected


def test_busy_threshold_is_a_tenth_of_slots_on_large_backends() -> None:
    big = with_backend(slots=100, emergency_reserve=12, busy=50.0)
    assert not POLICY.should_publish(big, with_backend(big, busy=59.0), T0, SOON)
    assert POLICY.should_publish(big, with_backend(big, busy=60.0), T0, SOON)
    assert POLICY.should_publish(big, with_backend(big, busy=40.0), T0, SOON)


def test_any_emergency_queue_change_of_one_publishes() -> None:
    assert publishes(with_backend(queue=(1.0, 2.0, 5.0)))
    assert not publishes(with_backend(queue=(0.5, 2.0, 5.0)))


@pytest.mark.parametrize("lane", [1, 2])
def test_standard_and_batch_queues_need_a_step(lane: int) -> None:
    base = (0.0, 2.0, 5.0)

    def plus(d: float) -> tuple[float, float, float]:
        q = list(base)
        q[lane] += d
        return (q[0], q[1], q[2])

    assert not publishes(with_backend(queue=plus(0.9)))
    assert publishes(with_backend(queue=plus(1.0)))
    assert publishes(with_backend(queue=plus(-1.0)))


def test_long_queues_need_a_tenth_of_themselves() -> None:
    last = with_backend(queue=(0.0, 200.0, 0.0))
    assert not POLICY.should_publish(last, with_backend(queue=(0.0, 219.0, 0.0)), T0, SOON)
    assert POLICY.should_publish(last, with_backend(queue=(0.0, 220.0, 0.0)), T0, SOON)


def test_large_backends_scale_the_queue_step_with_slots() -> None:
    big = with_backend(slots=100, emergency_reserve=12, queue=(0.0, 0.0, 0.0))
    assert not POLICY.should_publish(big, with_backend(big, queue=(0.0, 9.0, 0.0)), T0, SOON)
    assert POLICY.should_publish(big, with_backend(big, queue=(0.0, 10.0, 0.0)), T0, SOON)


def test_service_time_changes() -> None:
    assert not publishes(with_backend(service_ms=50.0))  # +18%
    assert publishes(with_backend(service_ms=51.0))  # +20%
    assert publishes(with_backend(service_ms=30.0))
    unknown = with_backend(service_ms=0.0)
    assert POLICY.should_publish(unknown, with_backend(service_ms=1.0), T0, SOON)
    assert publishes(unknown)  # known -> unknown


def test_coordinate_moves() -> None:
    base = record()
    assert base.coordinate is not None
    nudged = (base.coordinate[0] + 0.3, *base.coordinate[1:])
    moved = (base.coordinate[0] + 0.5, *base.coordinate[1:])
    assert not publishes(dataclasses.replace(base, coordinate=nudged), now=NET_SOON)
    assert publishes(dataclasses.replace(base, coordinate=moved), now=NET_SOON)
    assert publishes(dataclasses.replace(base, height=base.height + 0.5), now=NET_SOON)
    assert publishes(dataclasses.replace(base, coordinate=None), now=NET_SOON)
    assert POLICY.should_publish(dataclasses.replace(base, coordinate=None), base, T0, NET_SOON)
    # The error estimate alone is not news.
    assert not publishes(dataclasses.replace(base, coordinate_error=0.9), now=NET_SOON)


def test_link_changes() -> None:
    # Sample links: wuhan-city 0.3 ms, hub-1 12.5 ms.
    def links(city: float, hub: float) -> CapacityRecord:
        return dataclasses.replace(record(), links=(("wuhan-city", city), ("hub-1", hub)))

    assert not publishes(links(0.45, 12.5), now=NET_SOON)  # below the 0.2 ms floor
    assert publishes(links(0.5, 12.5), now=NET_SOON)
    assert not publishes(links(0.3, 13.5), now=NET_SOON)  # below 10% of 12.5
    assert publishes(links(0.3, 13.75), now=NET_SOON)
    fewer = dataclasses.replace(record(), links=(("wuhan-city", 0.3),))
    assert publishes(fewer, now=NET_SOON)
    more = dataclasses.replace(record(), links=(*record().links, ("hub-2", 9.0)))
    assert publishes(more, now=NET_SOON)
    # Order alone is not a change.
    swapped = dataclasses.replace(record(), links=tuple(reversed(record().links)))
    assert not publishes(swapped, now=NET_SOON)


def test_network_changes_wait_longer_than_load_changes() -> None:
    moved = dataclasses.replace(record(), links=(("wuhan-city", 3.0), ("hub-1", 12.5)))
    assert not publishes(moved, now=T0 + POLICY.network_min_interval_s - 0.01)
    assert publishes(moved, now=T0 + POLICY.network_min_interval_s)
    assert POLICY.min_interval_s < POLICY.network_min_interval_s


def test_network_noise_below_the_thresholds_never_republishes() -> None:
    # Probe jitter and a wandering coordinate are not drift: only load drift refreshes a record.
    base = record()
    assert base.coordinate is not None
    noisy = dataclasses.replace(
        base,
        coordinate=(base.coordinate[0] + 0.3, *base.coordinate[1:]),
        links=(("wuhan-city", 0.4), ("hub-1", 13.0)),
    )
    assert not publishes(noisy, now=T0 + 100 * POLICY.max_interval_s)


def test_load_and_network_changes_wait_for_the_minimum_interval() -> None:
    busy = with_backend(busy=8.0)
    assert not publishes(busy, now=T0 + POLICY.min_interval_s - 0.01)
    assert publishes(busy, now=T0 + POLICY.min_interval_s)


def test_a_steady_stream_of_small_changes_does_not_republish_every_request() -> None:
    # 100 requests a second nudge busy by fractions of a slot around the published value.
    last, last_time, published = record(), T0, 0
    for step in range(1, 500):
        now = T0 + step * 0.01
        current = with_backend(busy=3.0 + 0.5 * ((step % 3) - 1))
        if POLICY.should_publish(last, current, last_time, now):
            last, last_time, published = current, now, published + 1
    assert published == 0  # 5 s of jitter: below every threshold and the 10 s interval


def test_a_one_slot_backend_flapping_is_rate_limited() -> None:
    one = dataclasses.replace(record(), backends=(backend(slots=1, emergency_reserve=0, busy=0),))
    last, last_time, published = one, T0, 0
    for step in range(1, 1001):  # 10 s of requests, every 10 ms busy flips 0 <-> 1
        now = T0 + step * 0.01
        current = with_backend(one, busy=float(step % 2))
        if POLICY.should_publish(last, current, last_time, now):
            last, last_time, published = current, now, published + 1
    assert published <= 10 / POLICY.min_interval_s + 1


def test_the_rules_apply_over_backends_present_in_both() -> None:
    other = backend(name="other", busy=0.0)
    last = dataclasses.replace(record(), backends=(other,))
    current: CapacityRecord = dataclasses.replace(record(), backends=(backend(name="new"),))
    assert not POLICY.load_changed(last, current)  # nothing in common to compare
    assert POLICY.identity_changed(last, current)


def test_thresholds_are_settable() -> None:
    eager = RepublishPolicy(max_interval_s=1.0, min_interval_s=0.0, busy_fraction=0.0)
    drifted = with_backend(busy=record().backends[0].busy + 0.5)
    assert eager.should_publish(record(), drifted, T0, T0 + 1.0)
    assert not POLICY.should_publish(record(), drifted, T0, T0 + 1.0)
    assert eager.should_publish(record(), with_backend(busy=4.0), T0, T0)
    assert isinstance(with_backend().backends[0], BackendState)
