"""The scoring bridge on a small slice of Hubei: what a routing decision tells an operator.

The entry node is a Wuhan hospital edge. A Wuhan data center is 0.2 ms away (one way), Shiyan
3.4 ms, Xiangyang reachable directly at 2.5 ms or through the Wuhan data center faster, and
Enshi has no measured link, only network coordinates.
"""

from __future__ import annotations

import pytest

from hubhop.core.routing_hints import RouteAsk
from hubhop.core.tiers import tier_bound_ms
from hubhop.scoring.candidates import BackendLoad
from hubhop.scoring.route import decide_route, route_json
from hubhop.scoring.scorer import Request, Scorer

ENTRY = "wuhan-edge-1"


def load(models: tuple[str, ...], chip: str = "ascend-910b", **changes: object) -> BackendLoad:
    fields: dict[str, object] = {
        "models": models,
        "chip": chip,
        "price": 1.0,
        "green_share": 0.3,
        "slots": 8,
        "emergency_reserve": 1,
        "busy": 0.0,
        "queue": (0.0, 0.0, 0.0),
        "service_ms": 40.0,
    }
    fields.update(changes)
    return BackendLoad(**fields)  # type: ignore[arg-type]


@pytest.fixture
def scorer() -> Scorer:
    s = Scorer(ENTRY, seed=42)
    s.paths.set_link(ENTRY, "wuhan-dc1", 0.4)
    s.paths.set_link(ENTRY, "shiyan-2", 6.8)
    s.paths.set_link(ENTRY, "xiangyang-1", 5.0)
    s.paths.set_link("wuhan-dc1", "xiangyang-1", 3.0)
    origin = (0.0,) * 8
    s.paths.set_coordinate(ENTRY, origin, 0.1)
    s.paths.set_coordinate("enshi-1", (7.0,) + (0.0,) * 7, 0.1)
    s.table.upsert("wuhan-dc1", "npu-0", load(("ct-triage", "chat-7b")))
    s.table.upsert("wuhan-dc1", "gpu-0", load(("chat-7b",), chip="nvidia-h100"))
    s.table.upsert("shiyan-2", "npu-0", load(("ct-triage", "seq-align")))
    s.table.upsert("xiangyang-1", "npu-0", load(("render",)))
    s.table.upsert("enshi-1", "cpu-0", load(("seq-align",), chip="cpu", price=0.2))
    return s


def test_city_tier_emergency_ct_goes_to_the_city_data_center(scorer: Scorer) -> None:
    request = Request("ct-triage", lane="emergency", tier_ms=tier_bound_ms("city"),
                      chip="ascend-910b")  # fmt: skip
    decision = scorer.decide(request)
    assert decision.chosen is not None
    assert (decision.chosen.node, decision.chosen.backend) == ("wuhan-dc1", "npu-0")
    assert decision.chosen.network_ms == pytest.approx(0.4)
    assert decision.chosen.service_ms == 40.0
    assert decision.chosen.path == (ENTRY, "wuhan-dc1")
    assert "shiyan-2/npu-0: 3.4 ms > tier 1 ms" in decision.explain(request.tier_ms)
    assert "wuhan-dc1/gpu-0: model not served; chip mismatch" in decision.explain(request.tier_ms)


def test_relay_through_a_city_node_when_faster(scorer: Scorer) -> None:
    decision = scorer.decide(Request("render", tier_ms=tier_bound_ms("province")))
    assert decision.chosen is not None
    assert decision.chosen.path == (ENTRY, "wuhan-dc1", "xiangyang-1")
    # 0.2 + 1.5 one way plus the relay's 0.1, against 2.5 direct.
    assert decision.chosen.one_way_ms == pytest.approx(1.8)
    assert not decision.chosen.estimated


def test_unmeasured_node_is_scored_on_its_coordinate_estimate(scorer: Scorer) -> None:
    decision = scorer.decide(Request("seq-align", lane="batch", chip="cpu"))
    assert decision.chosen is not None
    assert decision.chosen.node == "enshi-1"
    assert decision.chosen.estimated
    assert decision.chosen.one_way_ms == pytest.approx((7.0 + 0.2) / 2)


def test_nothing_in_tier_reports_the_best_outside_it(scorer: Scorer) -> None:
    decision = scorer.decide(Request("seq-align", tier_ms=tier_bound_ms("city")))
    assert decision.chosen is None
    assert decision.fallback is not None
    assert decision.fallback.node == "shiyan-2"  # 3.4 ms measured beats enshi's 3.6 estimate
    assert decision.fallback.reasons == ("over tier",)


def test_unknown_model_and_unknown_chip_match_nothing_and_say_so(scorer: Scorer) -> None:
    decision = scorer.decide(Request("no-such-model"))
    assert decision.chosen is None and decision.fallback is None
    assert all("model not served" in c.reasons for c in decision.rejected)
    decision = scorer.decide(Request("chat-7b", chip="tpu-v9"))
    assert decision.chosen is None
    assert all("chip mismatch" in c.reasons for c in decision.rejected)


def test_table_changes_take_effect_and_arrays_stay_put_between_them(scorer: Scorer) -> None:
    request = Request("ct-triage", tier_ms=tier_bound_ms("province"))
    first = scorer.decide(request)
    arrays = scorer.table.row_num
    scorer.decide(request)
    assert scorer.table.row_num is arrays  # no rebuild when nothing changed
    assert first.chosen is not None and first.chosen.node == "wuhan-dc1"

    scorer.table.set_alive("wuhan-dc1", False)
    moved = scorer.decide(request)
    assert moved.chosen is not None and moved.chosen.node == "shiyan-2"
    assert scorer.table.row_num is arrays  # liveness is written in place

    scorer.table.remove_node("shiyan-2")
    scorer.table.upsert("wuhan-dc2", "npu-1", load(("ct-triage",)))
    scorer.paths.set_link(ENTRY, "wuhan-dc2", 0.6)
    replaced = scorer.decide(request)
    assert replaced.chosen is not None and replaced.chosen.node == "wuhan-dc2"
    assert ("shiyan-2", "npu-0") not in scorer.table.keys


def test_a_decision_explains_itself_later_as_it_was_made(scorer: Scorer) -> None:
    """Alternates and rejections are built only when asked; asked after other decisions and a
    table rebuild, they still describe the decision they belong to."""
    bound = tier_bound_ms("city")
    decision = scorer.decide(Request("ct-triage", lane="emergency", tier_ms=bound))
    nothing = scorer.decide(Request("seq-align", tier_ms=bound))
    scorer.table.remove_node("wuhan-dc1")
    scorer.table.upsert("wuhan-dc3", "npu-0", load(("ct-triage",)))
    scorer.paths.set_link(ENTRY, "wuhan-dc3", 0.2)
    after = scorer.decide(Request("ct-triage", tier_ms=bound))
    assert after.chosen is not None and after.chosen.node == "wuhan-dc3"

    assert decision.chosen is not None and decision.chosen.node == "wuhan-dc1"
    assert decision.alternates == ()
    assert "shiyan-2/npu-0: 3.4 ms > tier 1 ms" in decision.explain(bound)
    assert "wuhan-dc1/gpu-0: model not served" in decision.explain(bound)
    assert not any(c.node == "wuhan-dc3" for c in decision.rejected)
    assert nothing.chosen is None and nothing.queued is None
    assert nothing.fallback is not None and nothing.fallback.node == "shiyan-2"
    assert nothing.fallback.path == (ENTRY, "shiyan-2")


def test_a_full_node_is_left_to_emergencies(scorer: Scorer) -> None:
    scorer.table.upsert("wuhan-dc1", "npu-0", load(("ct-triage", "chat-7b"), busy=7.0))
    request = Request("ct-triage", tier_ms=tier_bound_ms("province"))
    standard = scorer.decide(request)
    assert standard.chosen is not None and standard.chosen.node == "shiyan-2"
    emergency = scorer.decide(Request("ct-triage", lane="emergency", tier_ms=request.tier_ms))
    assert emergency.chosen is not None and emergency.chosen.node == "wuhan-dc1"


def test_when_every_fitting_backend_is_busy_the_least_loaded_one_is_named_to_queue_at(
    scorer: Scorer,
) -> None:
    # Both ct-triage backends are busy up to their reserve; shiyan's queue is shorter.
    scorer.table.upsert("wuhan-dc1", "npu-0", load(("ct-triage",), busy=7.0, queue=(0, 6, 0)))
    scorer.table.upsert("shiyan-2", "npu-0", load(("ct-triage",), busy=7.0))
    decision = scorer.decide(Request("ct-triage", tier_ms=tier_bound_ms("province")))
    assert decision.chosen is None
    assert decision.queued is not None and decision.queued.node == "shiyan-2"
    assert decision.queued.queue_ms > 0
    # A row short of more than headroom (here: outside the tier) is no place to queue.
    city = scorer.decide(Request("ct-triage", tier_ms=tier_bound_ms("city")))
    assert city.queued is not None and city.queued.node == "wuhan-dc1"
    assert scorer.decide(Request("seq-align", tier_ms=tier_bound_ms("city"))).queued is None


def test_a_busy_node_inside_the_tier_queues_the_request_rather_than_spilling_it(
    scorer: Scorer,
) -> None:
    # Routes name models by protocol (hubhop.scoring.route.scoring_model).
    scorer.table.upsert("wuhan-dc1", "npu-0", load(("openai:ct-triage",), busy=7.0))
    scorer.table.upsert("shiyan-2", "npu-0", load(("openai:ct-triage",)))
    bound = tier_bound_ms("city")
    ask = RouteAsk(model="ct-triage", lane="standard", tier="city", max_one_way_ms=bound)
    route = decide_route(scorer, ask, "openai")
    assert route.chosen is not None and route.chosen.node == "wuhan-dc1"
    assert route.queued and not route.spilled and route_json(route)["queued"] is True
    # Refused there (its queue was full): now the request spills to the next tier.
    rerouted = decide_route(scorer, ask, "openai", refused=[("wuhan-dc1", "npu-0")])
    assert rerouted.chosen is not None and rerouted.chosen.node == "shiyan-2"
    assert rerouted.spilled and not rerouted.queued


def test_entry_nodes_own_in_flight_requests_steer_away(scorer: Scorer) -> None:
    request = Request("chat-7b", tier_ms=tier_bound_ms("city"))
    scorer.decide(request)  # materialize
    npu = scorer.table.row_of("wuhan-dc1", "npu-0")
    assert npu is not None
    for _ in range(8):  # all its unreserved slots, as far as this entry node knows
        scorer.table.add_local_inflight(npu, +1)
    decision = scorer.decide(request)
    assert decision.chosen is not None
    assert (decision.chosen.node, decision.chosen.backend) == ("wuhan-dc1", "gpu-0")


def test_same_seed_same_choices() -> None:
    def run() -> list[str]:
        s = Scorer(ENTRY, seed=7)
        for i in range(4):
            s.paths.set_link(ENTRY, f"wuhan-dc{i}", 0.4)
            s.table.upsert(f"wuhan-dc{i}", "npu-0", load(("chat-7b",)))
        return [s.decide(Request("chat-7b")).chosen.node for _ in range(50)]  # type: ignore[union-attr]

    first = run()
    assert first == run()
    assert len(set(first)) > 1  # near-equal rows share the load


def test_unreachable_node_is_explained_once(scorer: Scorer) -> None:
    scorer.table.upsert("lhasa-9", "npu-0", load(("ct-triage",)))  # no link, no coordinate
    decision = scorer.decide(Request("ct-triage", tier_ms=tier_bound_ms("city")))
    assert "lhasa-9/npu-0: unreachable" in decision.explain(tier_bound_ms("city"))


def test_links_a_node_stops_reporting_leave_the_path_map(scorer: Scorer) -> None:
    request = Request("render", tier_ms=tier_bound_ms("province"))
    relayed = scorer.decide(request)
    assert relayed.chosen is not None and len(relayed.chosen.path) == 3
    scorer.paths.remove_links_from("wuhan-dc1")
    direct = scorer.decide(request)
    assert direct.chosen is not None
    assert direct.chosen.path == (ENTRY, "xiangyang-1")
    assert direct.chosen.one_way_ms == pytest.approx(2.5)
