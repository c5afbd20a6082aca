"""Admission's state machine with a fake clock: slots, reserve, lanes, shedding, time, load."""

from __future__ import annotations

import pytest

from hubhop.core.admission import (
    Admission,
    AdmissionLimits,
    Ticket,
    TicketState,
)
from hubhop.core.config import BackendConfig

ADMITTED, QUEUED, REFUSED = TicketState.ADMITTED, TicketState.QUEUED, TicketState.REFUSED


def fill(admission: Admission, backend: str, lane: str, n: int, now: float = 0.0) -> list[Ticket]:
    tickets = []
    for _ in range(n):
        ticket, settled = admission.offer(backend, lane, now)
        assert settled == []
        tickets.append(ticket)
    return tickets


def states(tickets: list[Ticket]) -> list[TicketState]:
    return [t.state for t in tickets]


def test_slots_are_respected_and_a_release_admits_the_next() -> None:
    admission = Admission({"gpu": (2, 0)})
    first, second, third = fill(admission, "gpu", "standard", 3)
    assert states([first, second, third]) == [ADMITTED, ADMITTED, QUEUED]
    assert admission.pending == 3
    settled = admission.release(first, 1.0, 0.5)
    assert [(t.id, t.state) for t in settled] == [(third.id, ADMITTED)]
    assert admission.release(second, 1.0) == []
    assert admission.release(settled[0], 1.0) == []
    assert admission.pending == 0
    with pytest.raises(ValueError, match="holds no slot"):
        admission.release(first, 2.0)


def test_the_reserve_is_kept_for_emergency() -> None:
    admission = Admission({"gpu": (4, 1)})
    assert states(fill(admission, "gpu", "standard", 3)) == [ADMITTED] * 3
    # The fourth slot is the reserve: standard and batch wait, emergency takes it.
    assert admission.offer("gpu", "standard", 0.0)[0].state is QUEUED
    assert admission.offer("gpu", "batch", 0.0)[0].state is QUEUED
    assert admission.offer("gpu", "emergency", 0.0)[0].state is ADMITTED
    assert admission.offer("gpu", "emergency", 0.0)[0].state is QUEUED
    assert admission.load()["gpu"][:2] == (4.0, (1.0, 1.0, 1.0))


def test_the_reserve_counts_slots_held_by_emergencies_too() -> None:
    admission = Admission({"gpu": (4, 1)})
    held = fill(admission, "gpu", "emergency", 3)
    assert states(held) == [ADMITTED] * 3
    # 3 busy = slots - reserve: a standard request must leave the last slot free.
    assert admission.offer("gpu", "standard", 0.0)[0].state is QUEUED


def test_for_backends_takes_the_published_reserve() -> None:
    config = BackendConfig("gpu", "http://127.0.0.1:1", ("openai",), ("m",), slots=8)
    admission = Admission.for_backends([config])
    assert states(fill(admission, "gpu", "standard", 8)) == [ADMITTED] * 7 + [QUEUED]


def test_emergency_jumps_the_queues_and_lanes_are_fifo() -> None:
    admission = Admission({"gpu": (1, 0)})
    (holder,) = fill(admission, "gpu", "batch", 1)
    batch = fill(admission, "gpu", "batch", 2)
    standard = fill(admission, "gpu", "standard", 2)
    (emergency,) = fill(admission, "gpu", "emergency", 1)
    order = []
    current = holder
    while True:
        settled = admission.release(current, 0.5, 0.1)
        if not settled:
            break
        assert states(settled) == [ADMITTED]
        current = settled[0]
        order.append(current.id)
    assert order == [emergency.id, *(t.id for t in standard), *(t.id for t in batch)]


def test_a_full_lane_answers_429_with_retry_after() -> None:
    limits = AdmissionLimits(queue_per_slot=(1.0, 2.0, 1.0))
    admission = Admission({"gpu": (1, 0)}, limits)
    fill(admission, "gpu", "standard", 3)  # one holds the slot, two wait
    ticket, settled = admission.offer("gpu", "standard", 0.0)
    assert settled == []
    assert (ticket.state, ticket.status, ticket.reason) == (REFUSED, 429, "queue-full")
    assert ticket.retry_after_s >= 1 and isinstance(ticket.retry_after_s, int)
    assert "standard queue" in ticket.detail and "retry after" in ticket.detail
    # Batch has its own queue, and its own room.
    assert admission.offer("gpu", "batch", 0.0)[0].state is QUEUED
    assert admission.offer("gpu", "batch", 0.0)[0].status == 429


def test_retry_after_follows_the_queue_and_the_service_estimate() -> None:
    limits = AdmissionLimits(queue_per_slot=(1.0, 10.0, 1.0), max_retry_after_s=30)
    admission = Admission({"gpu": (2, 0)}, limits)
    held = fill(admission, "gpu", "standard", 2)
    admission.release(held[0], 0.0, 4.0)  # service estimate: 4 s
    fill(admission, "gpu", "standard", 1 + 20)  # retakes the slot, then 20 wait (the bound)
    refused, _ = admission.offer("gpu", "standard", 0.0)
    assert refused.status == 429
    assert refused.retry_after_s == 30  # (20 + 1) * 4 s / 2 slots = 42 s, capped at 30


def test_an_emergency_at_full_queues_sheds_the_newest_batch_waiter() -> None:
    limits = AdmissionLimits(queue_per_slot=(1.0, 1.0, 2.0))
    admission = Admission({"gpu": (1, 0)}, limits)
    fill(admission, "gpu", "standard", 2)  # holder + a full standard queue
    old_batch, new_batch = fill(admission, "gpu", "batch", 2)
    fill(admission, "gpu", "emergency", 1)  # fills the emergency queue
    assert admission.offer("gpu", "batch", 0.0)[0].status == 429
    assert admission.offer("gpu", "standard", 0.0)[0].status == 429

    ticket, settled = admission.offer("gpu", "emergency", 0.0)
    assert ticket.state is QUEUED
    assert [(t.id, t.state, t.status, t.reason) for t in settled] == [
        (new_batch.id, REFUSED, 503, "shed")
    ]
    assert settled[0].retry_after_s >= 1
    assert admission.load()["gpu"][1] == (2.0, 1.0, 1.0)

    # Then the other batch waiter, then standard; never another emergency.
    assert admission.offer("gpu", "emergency", 0.0)[1][0].id == old_batch.id
    assert admission.offer("gpu", "emergency", 0.0)[1][0].lane == "standard"
    ticket, settled = admission.offer("gpu", "emergency", 0.0)
    assert (ticket.status, ticket.reason, settled) == (429, "queue-full", [])
    counts = admission.counts()
    assert counts["refused", "batch", "shed"] == 2
    assert counts["refused", "standard", "shed"] == 1


def test_a_passed_deadline_is_refused_at_once() -> None:
    admission = Admission({"gpu": (1, 0)})
    ticket, _ = admission.offer("gpu", "emergency", 5.0, deadline=5.0)
    assert (ticket.state, ticket.status, ticket.reason) == (REFUSED, 503, "deadline")
    assert admission.pending == 0


def test_waiters_expire_at_their_deadline_or_longest_wait() -> None:
    limits = AdmissionLimits(max_wait_s=(1.0, 10.0, 30.0))
    admission = Admission({"gpu": (1, 0)}, limits)
    (holder,) = fill(admission, "gpu", "standard", 1)
    (standard,) = fill(admission, "gpu", "standard", 1, now=0.0)
    late_deadline, _ = admission.offer("gpu", "batch", 0.0, deadline=100.0)
    early_deadline, _ = admission.offer("gpu", "batch", 0.0, deadline=4.0)
    assert admission.next_deadline() == 4.0
    assert admission.expire(3.9) == []

    (expired,) = admission.expire(4.0)
    assert (expired.id, expired.status, expired.reason) == (early_deadline.id, 503, "deadline")
    assert admission.next_deadline() == 10.0
    (expired,) = admission.expire(12.0)
    assert (expired.id, expired.reason) == (standard.id, "max-wait")
    assert "waited 12.0 s" in expired.detail and "standard lane" in expired.detail
    # Batch waits longest: 30 s, before its own deadline of 100.
    assert admission.next_deadline() == 30.0
    # A release after the time is up must not admit the expired waiter.
    settled = admission.release(holder, 31.0, 1.0)
    assert [(t.id, t.state, t.reason) for t in settled] == [(late_deadline.id, REFUSED, "max-wait")]
    assert admission.next_deadline() is None
    assert admission.pending == 0


def test_cancel_frees_a_place_or_a_slot() -> None:
    admission = Admission({"gpu": (1, 0)})
    holder, first, second = fill(admission, "gpu", "standard", 3)
    assert admission.cancel(first, 1.0) == []
    assert admission.load()["gpu"][1] == (0.0, 1.0, 0.0)
    settled = admission.cancel(holder, 1.0)
    assert [(t.id, t.state) for t in settled] == [(second.id, ADMITTED)]
    assert admission.cancel(holder, 1.0) == []  # twice is harmless
    assert admission.load()["gpu"] == (1.0, (0.0, 0.0, 0.0), 0.0)  # no measurement from cancel
    assert admission.next_deadline() is None


def test_draining_refuses_new_requests_and_serves_the_queued() -> None:
    admission = Admission({"gpu": (1, 0)})
    holder, waiter = fill(admission, "gpu", "standard", 2)
    admission.set_draining()
    assert admission.draining
    ticket, _ = admission.offer("gpu", "emergency", 0.0)
    assert (ticket.state, ticket.status, ticket.reason) == (REFUSED, 503, "draining")
    assert ticket.retry_after_s >= 1
    assert [t.id for t in admission.release(holder, 1.0, 0.2)] == [waiter.id]
    admission.set_draining(False)
    assert admission.offer("gpu", "batch", 1.0)[0].state is QUEUED


def test_unknown_backend_and_lane() -> None:
    admission = Admission({"gpu": (1, 0)})
    ticket, _ = admission.offer("tpu", "standard", 0.0)
    assert (ticket.state, ticket.status, ticket.reason) == (REFUSED, 503, "unknown-backend")
    assert ticket.retry_after_s == admission.limits.max_retry_after_s
    with pytest.raises(ValueError):
        admission.offer("gpu", "urgent", 0.0)


def test_load_and_the_service_time_estimate() -> None:
    admission = Admission({"gpu": (2, 0), "cpu": (1, 0)}, AdmissionLimits(service_gain=0.5))
    assert admission.load() == {
        "gpu": (0.0, (0.0, 0.0, 0.0), 0.0),
        "cpu": (0.0, (0.0, 0.0, 0.0), 0.0),
    }
    a, b, _ = fill(admission, "gpu", "standard", 3)
    fill(admission, "gpu", "emergency", 1)
    assert admission.load()["gpu"] == (2.0, (1.0, 1.0, 0.0), 0.0)
    (emergency,) = admission.release(a, 0.5, 0.100)  # the first sample sets the estimate
    assert admission.load()["gpu"][2] == pytest.approx(100.0)
    admission.release(b, 0.5, 0.300)  # halfway to it, with gain 0.5
    assert admission.load()["gpu"][2] == pytest.approx(200.0)
    admission.release(emergency, 0.5, float("nan"))  # not a measurement
    assert admission.load()["gpu"][2] == pytest.approx(200.0)
    assert admission.load()["cpu"][2] == 0.0
    counts = admission.counts()
    assert counts["released", "standard", "measured"] == 2
    assert counts["released", "emergency", "unmeasured"] == 1
    assert counts["admitted", "standard", "free-slot"] == 2
    assert counts["admitted", "emergency", "from-queue"] == 1


def test_limits_and_backends_are_validated() -> None:
    with pytest.raises(ValueError, match="service_gain"):
        AdmissionLimits(service_gain=0.0)
    with pytest.raises(ValueError, match="max_wait_s"):
        AdmissionLimits(max_wait_s=(1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="reserve"):
        Admission({"gpu": (2, 2)})


def test_a_reload_with_more_slots_admits_waiters_and_keeps_everyone() -> None:
    admission = Admission({"gpu": (1, 0)}, AdmissionLimits(service_gain=1.0))
    holder, _, second = fill(admission, "gpu", "standard", 3)
    admission.release(holder, 0.5, 0.2)  # a service-time estimate, which the reload keeps
    settled = admission.reconfigure({"gpu": (3, 0), "npu": (1, 0)}, 1.0)
    assert [(t.id, t.state) for t in settled] == [(second.id, ADMITTED)]
    assert admission.load() == {
        "gpu": (2.0, (0.0, 0.0, 0.0), pytest.approx(200.0)),
        "npu": (0.0, (0.0, 0.0, 0.0), 0.0),
    }
    assert admission.offer("npu", "batch", 1.0)[0].state is ADMITTED


def test_a_reload_with_fewer_slots_lets_holders_finish_before_admitting_more() -> None:
    admission = Admission({"gpu": (3, 0)})
    held = fill(admission, "gpu", "standard", 3)
    assert admission.reconfigure({"gpu": (1, 0)}, 0.0) == []
    assert admission.load()["gpu"][0] == 3.0  # the load a record publishes stays true
    waiter, _ = admission.offer("gpu", "standard", 0.0)
    assert waiter.state is QUEUED
    assert admission.release(held[0], 1.0) == []
    assert admission.release(held[1], 1.0) == []  # still 1 busy: the one slot is taken
    assert [t.id for t in admission.release(held[2], 1.0)] == [waiter.id]


def test_a_backend_taken_out_by_a_reload_refuses_its_waiters_and_lets_holders_finish() -> None:
    admission = Admission({"gpu": (1, 0), "npu": (1, 0)})
    holder, waiter = fill(admission, "gpu", "standard", 2)
    settled = admission.reconfigure({"npu": (1, 0)}, 0.0)
    assert [(t.id, t.state, t.status, t.reason) for t in settled] == [
        (waiter.id, REFUSED, 503, "unknown-backend")
    ]
    assert "taken out" in settled[0].detail
    assert admission.release(holder, 1.0, 0.1) == []
    assert set(admission.load()) == {"npu"}
    assert admission.offer("gpu", "standard", 1.0)[0].reason == "unknown-backend"
    with pytest.raises(ValueError, match="reserve"):
        admission.reconfigure({"npu": (1, 1)}, 1.0)


def test_a_backend_out_of_rotation_refuses_newcomers_and_waiters_while_holders_finish() -> None:
    admission = Admission({"gpu": (1, 0), "npu": (1, 0)})
    holder, waiter = fill(admission, "gpu", "standard", 2)
    settled = admission.set_ejected("gpu", "backend 'gpu' is out of rotation", 1.0)
    assert [(t.id, t.state, t.status, t.reason) for t in settled] == [
        (waiter.id, REFUSED, 503, "ejected")
    ]
    refused, _ = admission.offer("gpu", "emergency", 1.0)
    assert (refused.status, refused.reason) == (503, "ejected")
    assert "out of rotation" in refused.detail
    assert admission.offer("npu", "standard", 1.0)[0].state is ADMITTED  # only gpu is out
    assert admission.release(holder, 2.0, 0.1) == []  # the holder finished as usual
    assert admission.set_ejected("gpu", "", 3.0) == []
    assert admission.offer("gpu", "standard", 3.0)[0].state is ADMITTED
