"""The asyncio admission gate with real tasks: waiting, cancelling, refusals and the timer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hubhop.app import Node
from hubhop.core.admission import Admission, AdmissionLimits
from hubhop.core.config import parse_config
from hubhop.io.admission_gate import AdmissionGate, Refused
from hubhop.io.sd_notify import SdNotifier
from tests.procs import node_config

# Every test finishes in milliseconds; this only bounds a hang.
BOUND_S = 2.0


async def hold(gate: AdmissionGate, lane: str, entered: asyncio.Event, leave: asyncio.Event) -> str:
    async with gate.slot("gpu", lane) as ticket:
        entered.set()
        await leave.wait()
        return ticket.lane


async def test_a_second_request_waits_until_the_first_leaves() -> None:
    gate = AdmissionGate(Admission({"gpu": (1, 0)}))
    first_in, first_out = asyncio.Event(), asyncio.Event()
    second_in, second_out = asyncio.Event(), asyncio.Event()
    async with asyncio.timeout(BOUND_S), asyncio.TaskGroup() as tasks:
        tasks.create_task(hold(gate, "standard", first_in, first_out))
        await first_in.wait()
        tasks.create_task(hold(gate, "standard", second_in, second_out))
        await asyncio.sleep(0)
        assert not second_in.is_set()
        assert gate.admission.load()["gpu"][:2] == (1.0, (0.0, 1.0, 0.0))
        first_out.set()
        await second_in.wait()
        busy, queue, service_ms = gate.admission.load()["gpu"]
        assert (busy, queue) == (1.0, (0.0, 0.0, 0.0))
        assert service_ms > 0.0  # the first one's holding time was measured
        second_out.set()
    assert gate.admission.pending == 0
    gate.close()


async def test_a_cancelled_waiter_frees_its_place() -> None:
    gate = AdmissionGate(
        Admission({"gpu": (1, 0)}, AdmissionLimits(queue_per_slot=(1.0, 1.0, 1.0)))
    )
    entered, leave = asyncio.Event(), asyncio.Event()
    never = asyncio.Event()
    async with asyncio.timeout(BOUND_S):
        holder = asyncio.create_task(hold(gate, "standard", entered, leave))
        await entered.wait()
        waiter = asyncio.create_task(hold(gate, "standard", never, never))
        await asyncio.sleep(0)
        with pytest.raises(Refused):  # the one place in the queue is taken
            await hold(gate, "standard", never, never)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gate.admission.load()["gpu"][1] == (0.0, 0.0, 0.0)
        # The place is free again, and the slot goes to the next one when the holder leaves.
        second_in, second_out = asyncio.Event(), asyncio.Event()
        second = asyncio.create_task(hold(gate, "standard", second_in, second_out))
        await asyncio.sleep(0)
        leave.set()
        await second_in.wait()
        second_out.set()
        assert await second == "standard"
        assert await holder == "standard"
    assert not never.is_set()
    assert gate.admission.pending == 0


async def test_a_waiter_cancelled_as_its_slot_arrives_passes_it_on() -> None:
    gate = AdmissionGate(Admission({"gpu": (1, 0)}))
    entered, leave = asyncio.Event(), asyncio.Event()
    never = asyncio.Event()
    unlucky: asyncio.Task[str] | None = None

    async def leave_then_cancel_the_next() -> None:
        async with gate.slot("gpu", "standard"):
            entered.set()
            await leave.wait()
        # The release just handed the slot to `unlucky`, which has not run yet.
        assert unlucky is not None
        unlucky.cancel()

    async with asyncio.timeout(BOUND_S):
        holder = asyncio.create_task(leave_then_cancel_the_next())
        await entered.wait()
        unlucky = asyncio.create_task(hold(gate, "standard", never, never))
        third_in, third_out = asyncio.Event(), asyncio.Event()
        third = asyncio.create_task(hold(gate, "standard", third_in, third_out))
        await asyncio.sleep(0)
        leave.set()
        await holder
        with pytest.raises(asyncio.CancelledError):
            await unlucky
        await third_in.wait()
        third_out.set()
        await third
    assert not never.is_set()
    assert gate.admission.counts()["cancelled", "standard", "holding"] == 1
    assert gate.admission.pending == 0


async def test_a_refusal_raises_with_status_and_retry_after() -> None:
    gate = AdmissionGate(Admission({"gpu": (1, 0)}))
    gate.admission.set_draining()
    with pytest.raises(Refused) as refused:
        async with gate.slot("gpu", "batch"):
            pytest.fail("a draining node must not admit")
    assert (refused.value.status, refused.value.reason) == (503, "draining")
    assert refused.value.retry_after_s >= 1
    assert refused.value.headers == {"Retry-After": str(refused.value.retry_after_s)}


async def test_a_failed_body_releases_without_a_measurement() -> None:
    gate = AdmissionGate(Admission({"gpu": (1, 0)}))
    with pytest.raises(RuntimeError):
        async with gate.slot("gpu", "standard"):
            raise RuntimeError("upstream failed")
    assert gate.admission.load()["gpu"] == (0.0, (0.0, 0.0, 0.0), 0.0)


async def test_the_timer_expires_a_waiter_at_its_deadline() -> None:
    gate = AdmissionGate(Admission({"gpu": (1, 0)}))
    entered, leave = asyncio.Event(), asyncio.Event()
    async with asyncio.timeout(BOUND_S):
        holder = asyncio.create_task(hold(gate, "standard", entered, leave))
        await entered.wait()
        started = time.monotonic()
        with pytest.raises(Refused) as refused:
            async with gate.slot("gpu", "standard", deadline=started + 0.005):
                pytest.fail("the slot is held for the whole test")
        assert time.monotonic() - started >= 0.004
        assert (refused.value.status, refused.value.reason) == (503, "deadline")
        assert gate.admission.next_deadline() is None
        leave.set()
        await holder
    gate.close()


async def test_a_reload_that_changes_slots_keeps_the_requests_holding_them(
    tmp_path: Path, backend_url: str
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(node_config(backend_url))  # one backend, "demo", 4 slots
    node = Node(parse_config(path.read_text(), str(path)), path, SdNotifier.from_environ({}))
    await node.start()
    try:
        gate = node.state.gate
        assert gate is not None
        async with gate.slot("demo", "standard"):
            path.write_text(node_config(backend_url).replace("slots = 4", "slots = 8"))
            assert node.reload()
            assert node.state.gate is gate  # the same gate, resized: nobody forgotten
            busy, _, _ = node.sample_load()["demo"]
            assert busy == 1.0
            assert gate.admission.load()["demo"][0] == 1.0
        assert node.sample_load()["demo"][0] == 0.0
    finally:
        await node.drain_and_stop()
