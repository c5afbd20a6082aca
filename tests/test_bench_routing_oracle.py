"""The routing benchmark's oracle (bench/routing/oracle.py): a central scheduler with perfect
knowledge, and the gateway config it is built from (bench/routing/gateway.py). Pure: no sockets,
no clock."""

from __future__ import annotations

import random

import pytest
from bench.routing.gateway import (
    GatewayConfigError,
    gateway_config,
    parse_gateway_config,
)
from bench.routing.oracle import (
    MIN_RETRY_AFTER_S,
    Ask,
    Backend,
    Dispatch,
    OracleScheduler,
    Queued,
    Shed,
    Unroutable,
)

from hubhop.core.capacity import default_emergency_reserve
from hubhop.core.service_time import ServiceTimeDistribution
from hubhop.lab.cluster import SHIPPED_TOPOLOGY
from hubhop.lab.profiles import profiles
from hubhop.wan.model import WanModel
from hubhop.wan.topology import load_topology

CHAT, CT, BATCH, SOLO = "chat-7b", "ct-triage", "seq-align", "solo"
# One entry, E, and five sites around it: a slow CPU box next door, a fast GPU data centre in
# the city, one across the province, a cheap far hub, and a one-slot box for queue tests.
BACKENDS = (
    Backend("edge-cpu", (CHAT,), "cpu", 2, 0.0, 0.0, 80.0, 40.0),
    Backend("city-gpu", (CT, CHAT), "ascend-910b", 8, 2.0, 0.2, 35.0, 60.0),
    Backend("province-dc", (CHAT, BATCH), "nvidia-a100", 4, 1.5, 0.3, 35.0, 60.0),
    Backend("far-hub", (BATCH,), "nvidia-h100", 16, 0.4, 0.8, 25.0, 80.0),
    Backend("solo-box", (SOLO,), "cpu", 1, 1.0, 0.0, 10.0, 50.0),
)
ONE_WAY = {
    "E": {
        "edge-cpu": (0.2, 0.2),
        "city-gpu": (0.5, 0.5),
        "province-dc": (3.0, 3.0),
        "far-hub": (8.5, 8.5),
        "solo-box": (0.3, 0.3),
    }
}


def scheduler(queue_turns: int = 1) -> OracleScheduler:
    return OracleScheduler(BACKENDS, ONE_WAY, queue_turns)


def dispatched(outcome: object) -> Dispatch:
    assert isinstance(outcome, Dispatch), outcome
    return outcome


def fill(oracle: OracleScheduler, first_id: int, count: int, ask: Ask) -> list[int]:
    ids = list(range(first_id, first_id + count))
    for request_id in ids:
        dispatched(oracle.offer(request_id, "E", ask))
    return ids


def test_standard_takes_the_fastest_expected_completion_not_the_nearest() -> None:
    oracle = scheduler()
    # The CPU box is 0.3 ms nearer, but its prefill and decode are far slower.
    chosen = dispatched(oracle.offer(1, "E", Ask(CHAT, tokens=32)))
    assert chosen.site == "city-gpu"
    assert chosen.tier == "city" and not chosen.spilled
    assert chosen.expected_ms == pytest.approx(0.5 + 0.5 + 35.0 + 1000.0 * 32 / 60.0)


def test_batch_takes_the_cheapest_then_the_fastest() -> None:
    oracle = scheduler()
    assert dispatched(oracle.offer(1, "E", Ask(BATCH, lane="batch"))).site == "far-hub"
    # The same model on the standard lane goes where it completes first.
    assert dispatched(oracle.offer(2, "E", Ask(BATCH))).site == "province-dc"


def test_a_tier_without_a_free_slot_queues_with_spill_none_and_spills_one_tier_with_next() -> None:
    oracle = scheduler()
    city_chat = Ask(CHAT, max_one_way_ms=1.0, spill="none")
    # Fill the city's chat capacity for the standard lane (reserves kept free).
    usable = sum(b.slots - default_emergency_reserve(b.slots) for b in BACKENDS[:2])
    fill(oracle, 1, usable, city_chat)
    assert oracle.in_flight("province-dc") == 0
    assert isinstance(oracle.offer(100, "E", city_chat), Queued)
    spilled = dispatched(oracle.offer(101, "E", Ask(CHAT, max_one_way_ms=1.0, spill="next")))
    assert (spilled.site, spilled.tier, spilled.spilled) == ("province-dc", "province", True)


def test_a_tier_with_no_candidate_is_unroutable_unless_the_spill_reaches_one() -> None:
    oracle = scheduler()
    # Batch is served at 3 ms (province) and 8.5 ms (national), nothing in the city.
    assert isinstance(
        oracle.offer(1, "E", Ask(BATCH, max_one_way_ms=1.0, spill="none")), Unroutable
    )
    one_tier = dispatched(oracle.offer(2, "E", Ask(BATCH, max_one_way_ms=1.0, spill="next")))
    assert one_tier.site == "province-dc" and one_tier.spilled
    # `next` goes one tier looser only: batch would rather the cheap hub, 8.5 ms away.
    one_tier_batch = Ask(BATCH, lane="batch", max_one_way_ms=1.0, spill="next")
    assert dispatched(oracle.offer(3, "E", one_tier_batch)).site == "province-dc"
    anywhere = Ask(BATCH, lane="batch", max_one_way_ms=1.0, spill="any")
    assert dispatched(oracle.offer(4, "E", anywhere)).site == "far-hub"
    missing = oracle.offer(5, "E", Ask("no-such-model"))
    assert isinstance(missing, Unroutable) and "no backend serves" in missing.reason
    counters = oracle.counters()
    assert counters["unroutable"] == 2 and counters["dispatched"] == 3


def test_the_emergency_reserve_is_kept_from_batch_and_given_to_emergency() -> None:
    oracle = scheduler()
    slots = BACKENDS[1].slots
    reserve = default_emergency_reserve(slots)
    assert reserve == 1
    fill(oracle, 1, slots - reserve, Ask(CT, lane="batch"))
    assert isinstance(oracle.offer(50, "E", Ask(CT, lane="batch")), Queued)
    assert isinstance(oracle.offer(51, "E", Ask(CT)), Queued)
    emergency = dispatched(oracle.offer(52, "E", Ask(CT, lane="emergency")))
    assert emergency.site == "city-gpu"
    assert oracle.in_flight("city-gpu") == slots
    assert isinstance(oracle.offer(53, "E", Ask(CT, lane="emergency")), Queued)


def test_a_release_goes_to_the_emergency_head_before_an_older_batch_head() -> None:
    oracle = scheduler()
    solo = BACKENDS[4]
    assert default_emergency_reserve(solo.slots) == 0
    dispatched(oracle.offer(1, "E", Ask(SOLO)))
    for request_id, lane in ((2, "batch"), (3, "standard"), (4, "emergency")):
        assert isinstance(oracle.offer(request_id, "E", Ask(SOLO, lane=lane)), Queued)
    order = []
    running = 1
    for _ in range(3):
        (went,) = oracle.release(running)
        order.append(went.request_id)
        running = went.request_id
        assert oracle.in_flight("solo-box") == 1
    assert order == [4, 3, 2]
    assert oracle.release(running) == []
    assert oracle.in_flight("solo-box") == 0 and oracle.waiting == 0


def test_a_full_queue_sheds_with_retry_after() -> None:
    oracle = scheduler(queue_turns=2)
    dispatched(oracle.offer(1, "E", Ask(SOLO)))
    # Two turns of a one-slot backend: two may wait.
    assert [type(oracle.offer(i, "E", Ask(SOLO))) for i in (2, 3)] == [Queued, Queued]
    shed = oracle.offer(4, "E", Ask(SOLO))
    assert isinstance(shed, Shed)
    assert (shed.waiting, shed.limit, shed.retry_after_s) == (2, 2, MIN_RETRY_AFTER_S)
    # Other lanes queue apart.
    assert isinstance(oracle.offer(5, "E", Ask(SOLO, lane="emergency")), Queued)
    counters = oracle.counters()
    assert (counters["shed"], counters["waiting"], counters["max_waiting"]) == (1, 3, 3)
    assert counters["lanes"]["standard"]["shed"] == 1


def test_a_long_job_shed_is_told_to_retry_when_one_could_have_finished() -> None:
    oracle = scheduler()
    long_batch = Ask(BATCH, lane="batch", tokens=480, max_one_way_ms=5.0, spill="none")
    usable = BACKENDS[2].slots - default_emergency_reserve(BACKENDS[2].slots)
    fill(oracle, 1, usable, long_batch)
    assert [type(oracle.offer(i, "E", long_batch)) for i in (11, 12, 13)] == [Queued] * 3
    shed = oracle.offer(14, "E", long_batch)
    # 3 + 3 + 35 ms and 480 tokens at 60/s: 8.041 s, rounded up.
    assert isinstance(shed, Shed) and shed.retry_after_s == 9


def test_cancel_removes_a_waiting_request_and_releases_a_dispatched_one() -> None:
    oracle = scheduler(queue_turns=3)
    dispatched(oracle.offer(1, "E", Ask(SOLO)))
    for request_id in (2, 3):
        assert isinstance(oracle.offer(request_id, "E", Ask(SOLO)), Queued)
    assert oracle.cancel(2) == []
    assert oracle.waiting == 1
    (went,) = oracle.release(1)
    assert went.request_id == 3
    # A dispatched request cancelled is released; an id no longer held is ignored.
    assert oracle.cancel(3) == [] and oracle.cancel(3) == [] and oracle.cancel(99) == []
    assert oracle.in_flight("solo-box") == 0
    with pytest.raises(ValueError, match="not in flight"):
        oracle.release(3)
    counters = oracle.counters()
    assert (counters["cancelled"], counters["dispatched"], counters["waiting"]) == (1, 2, 0)


def test_never_more_than_slots_and_every_offer_accounted_for() -> None:
    oracle = scheduler(queue_turns=2)
    rng = random.Random(7)
    asks = [
        Ask(CHAT, lane="standard", tokens=32),
        Ask(CHAT, lane="emergency", max_one_way_ms=1.0, spill="none"),
        Ask(CT, lane="emergency", max_one_way_ms=1.0, spill="none"),
        Ask(CT, lane="standard"),
        Ask(BATCH, lane="batch", tokens=480),
        Ask(SOLO, lane="batch"),
    ]
    running: list[int] = []
    waiting: set[int] = set()
    slots = {b.site: b.slots for b in BACKENDS}
    for request_id in range(1, 2001):
        roll = rng.random()
        if roll < 0.5:
            outcome = oracle.offer(request_id, "E", rng.choice(asks))
            if isinstance(outcome, Dispatch):
                running.append(request_id)
            elif isinstance(outcome, Queued):
                waiting.add(request_id)
            went = []
        elif roll < 0.9 and running:
            went = oracle.release(running.pop(rng.randrange(len(running))))
        elif waiting:
            leaving = rng.choice(sorted(waiting))
            waiting.discard(leaving)
            went = oracle.cancel(leaving)
        else:
            went = []
        for dispatch in went:
            waiting.discard(dispatch.request_id)
            running.append(dispatch.request_id)
        for site, limit in slots.items():
            assert 0 <= oracle.in_flight(site) <= limit
        counters = oracle.counters()
        assert counters["in_flight"] == len(running)
        assert counters["waiting"] == oracle.waiting
        assert counters["offered"] == (
            counters["dispatched"] + counters["shed"] + counters["unroutable"]
            + counters["cancelled"] + counters["waiting"]
        )  # fmt: skip
    assert counters["dispatched"] > 500 and counters["shed"] > 0 and counters["cancelled"] > 0


# --- the gateway's config ----------------------------------------------------------------------


def test_the_config_builder_carries_the_topology_s_true_one_way_latencies() -> None:
    model = WanModel(load_topology(SHIPPED_TOPOLOGY))
    found = profiles(model.topology)
    serving = ["wuhan-dc-1", "wuhan-hospital", "shiyan"]
    entries = ["wuhan-hospital"]
    urls = {site: f"http://127.0.53.{i}:9000" for i, site in enumerate(serving, 1)}
    document = gateway_config(
        model, found, urls, entries, serving, "127.0.54", "127.0.55", "127.0.56", 8080
    )
    one_way = document["one_way_ms"]["wuhan-hospital"]
    assert one_way["wuhan-dc-1"] == [model.one_way_ms("wuhan-hospital", "wuhan-dc-1")] * 2
    assert one_way["wuhan-dc-1"][0] == pytest.approx(0.2)
    assert one_way["shiyan"][0] == pytest.approx(model.one_way_ms("wuhan-hospital", "shiyan"))
    assert 2.5 < one_way["shiyan"][0] < 5.0  # across the province
    assert one_way["wuhan-hospital"] == [0.0, 0.0]
    assert document["entries"] == [
        {"site": "wuhan-hospital", "source_ip": "127.0.55.3", "oracle_host": "127.0.56.3"}
    ]
    dc = document["sites"][0]
    assert (dc["relay_host"], dc["backend"], dc["prefill_ms"]) == (
        "127.0.54.1", urls["wuhan-dc-1"], 35.0
    )  # fmt: skip
    config = parse_gateway_config(document)
    assert [s.backend.site for s in config.sites] == serving
    assert config.sites[1].backend.chip == "cpu" and config.sites[1].backend.prefill_ms == 80.0


def test_the_config_parser_names_every_faulty_field() -> None:
    document = {
        "port": 0,
        "sites": [
            {"site": "a", "relay_host": "127.0.57.2", "backend": "http://127.0.57.1:1",
             "models": ["m"], "chip": "cpu", "slots": 0, "price": 1, "green_share": 2,
             "prefill_ms": 1, "token_rate": 50},
        ],
        "entries": [{"site": "e", "source_ip": "nowhere", "oracle_host": "127.0.57.2"}],
        "one_way_ms": {"e": {"a": [1.0]}},
        "extra": True,
    }  # fmt: skip
    with pytest.raises(GatewayConfigError) as caught:
        parse_gateway_config(document, "gw.json")
    faults = "\n".join(caught.value.faults)
    for field in ("extra: unknown field", "port:", "sites[0].slots:", "sites[0].green_share:",
                  "entries[0].source_ip:", "one_way_ms.e.a:"):  # fmt: skip
        assert f"gw.json: {field}" in faults, faults


def test_median_of_a_service_time_spec() -> None:
    median = ServiceTimeDistribution.parse
    assert median("lognormal:35,0.3").median_ms == 35.0
    assert median("const:1").median_ms == 1.0
    assert median("uniform:10,30").median_ms == 20.0
