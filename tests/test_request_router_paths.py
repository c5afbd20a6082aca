"""Which path a routed call takes: the decision's relays, unless there are more than a call may
pass, when it goes straight to the serving node (the relays would refuse it with 508)."""

from __future__ import annotations

from hubhop.io.request_router import MAX_HOPS, carried_path


def test_a_path_within_the_hop_bound_is_taken_as_decided() -> None:
    assert carried_path(("edge", "hub")) == ("edge", "hub")
    relayed = ("edge", "city", "region", "hub")
    assert len(relayed) == MAX_HOPS and carried_path(relayed) == relayed


def test_a_longer_path_goes_straight_to_the_serving_node() -> None:
    assert carried_path(("edge", "a", "b", "c", "hub")) == ("edge", "hub")
