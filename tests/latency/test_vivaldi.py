"""Vivaldi on known geometry, against garbage from peers, and at the edges (zero RTTs).

The geometry: nodes placed in a plane with an access-link height each; the true RTT between two
is their Euclidean distance plus both heights, which a coordinate with heights can represent
exactly. The plane is 20 x 20 ms, about the span of the network this is built for.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from dataclasses import dataclass

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from hubhop.core.vivaldi import (
    Coordinate,
    VivaldiClient,
    VivaldiSettings,
    coordinate_fault,
    origin,
    relative_error,
)

SETTINGS = VivaldiSettings()
DIMS = SETTINGS.dimensions
N_NODES = 30
ROUNDS = 300  # each node updates against one random peer per round: 9,000 updates in all


@dataclass
class Site:
    x: float
    y: float
    height: float


def true_rtt(a: Site, b: Site) -> float:
    return math.hypot(a.x - b.x, a.y - b.y) + a.height + b.height


def random_site(rng: random.Random) -> Site:
    return Site(rng.uniform(0.0, 20.0), rng.uniform(0.0, 20.0), rng.uniform(0.1, 1.0))


@dataclass
class Cluster:
    sites: list[Site]
    clients: list[VivaldiClient]

    def run_round(self, rng: random.Random, jitter_ms: float = 0.0) -> None:
        """Every node observes one random peer; `jitter_ms` is the mean of an exponential delay
        added to each direction of the measured round trip (truth stays the base RTT)."""
        n = len(self.sites)
        for i in range(n):
            j = rng.randrange(n - 1)
            j += j >= i
            rtt = true_rtt(self.sites[i], self.sites[j])
            if jitter_ms > 0.0:
                rtt += rng.expovariate(1.0 / jitter_ms) + rng.expovariate(1.0 / jitter_ms)
            self.clients[i].update(f"n{j}", self.clients[j].coordinate, rtt)

    def median_error(self) -> float:
        n = len(self.sites)
        return statistics.median(
            relative_error(
                self.clients[i].coordinate.distance_ms(self.clients[j].coordinate),
                true_rtt(self.sites[i], self.sites[j]),
            )
            for i in range(n)
            for j in range(i + 1, n)
        )


def new_cluster(seed: int) -> tuple[Cluster, random.Random]:
    rng = random.Random(seed)
    sites = [random_site(rng) for _ in range(N_NODES)]
    clients = [VivaldiClient(SETTINGS, random.Random(seed * 1000 + i)) for i in range(N_NODES)]
    return Cluster(sites, clients), rng


@pytest.fixture(scope="module")
def converged() -> Cluster:
    cluster, rng = new_cluster(seed=7)
    for _ in range(ROUNDS):
        cluster.run_round(rng)
    return cluster


# Known geometry --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_thirty_nodes_on_a_plane_converge_under_five_percent(seed: int) -> None:
    cluster, rng = new_cluster(seed)
    errors = []
    for _ in range(ROUNDS // 50):
        for _ in range(50):
            cluster.run_round(rng)
        errors.append(cluster.median_error())
    # Figures seen with these seeds: 26 to 30 % after 10 rounds, under 5 % from round 99 to 114
    # on, 2.2 to 2.5 % after 200 and 1.1 to 1.3 % after 300.
    assert errors[-1] < 0.05
    assert errors[-1] < errors[0]
    confidences = [c.coordinate.error for c in cluster.clients]
    assert statistics.median(confidences) < 0.2  # the nodes know they are accurate


def test_jitter_on_the_probes_still_converges_under_five_percent() -> None:
    cluster, rng = new_cluster(seed=4)
    for _ in range(ROUNDS):
        cluster.run_round(rng, jitter_ms=0.1)  # the emulated WAN's order of jitter
    assert cluster.median_error() < 0.05


def test_a_new_node_is_placed_within_twenty_samples(converged: Cluster) -> None:
    assert converged.median_error() < 0.05
    rng = random.Random(99)
    needed = []
    for trial in range(10):
        site = random_site(rng)
        newcomer = VivaldiClient(SETTINGS, random.Random(trial))
        errors = []
        for _ in range(20):
            j = rng.randrange(N_NODES)
            peer = converged.clients[j]
            newcomer.update(f"n{j}", peer.coordinate, true_rtt(site, converged.sites[j]))
            errors.append(
                statistics.median(
                    relative_error(newcomer.coordinate.distance_ms(c.coordinate), true_rtt(site, s))
                    for c, s in zip(converged.clients, converged.sites, strict=True)
                )
            )
        assert errors[-1] < 0.20, f"trial {trial}: {errors}"
        needed.append(next(k + 1 for k, e in enumerate(errors) if e < 0.20))
        assert newcomer.coordinate.error < SETTINGS.error_max / 2  # and it knows it improved
    # The paper places a new node in fewer than 10 samples; so do we, typically. Seen here:
    # 3 to 17 samples to get under 20 % (median 7.5), 1 to 13 % after 20.
    assert statistics.median(needed) <= 10, needed


def test_same_seed_same_coordinates() -> None:
    a, rng_a = new_cluster(seed=5)
    b, rng_b = new_cluster(seed=5)
    for _ in range(20):
        a.run_round(rng_a)
        b.run_round(rng_b)
    assert [c.coordinate for c in a.clients] == [c.coordinate for c in b.clients]


# Garbage from peers ----------------------------------------------------------------------------

GOOD_PEER = Coordinate(vec=(3.0,) + (0.0,) * (DIMS - 1), height=0.2, error=0.1, adjustment=0.0)

GARBAGE = {
    "nan in vec": dataclasses.replace(GOOD_PEER, vec=(math.nan,) + (0.0,) * (DIMS - 1)),
    "inf in vec": dataclasses.replace(GOOD_PEER, vec=(0.0,) * (DIMS - 1) + (math.inf,)),
    "-inf in vec": dataclasses.replace(GOOD_PEER, vec=(-math.inf,) * DIMS),
    "huge vec": dataclasses.replace(GOOD_PEER, vec=(1e300,) * DIMS),
    "too few dimensions": dataclasses.replace(GOOD_PEER, vec=(1.0,) * (DIMS - 1)),
    "too many dimensions": dataclasses.replace(GOOD_PEER, vec=(1.0,) * (DIMS + 1)),
    "no dimensions": dataclasses.replace(GOOD_PEER, vec=()),
    "negative height": dataclasses.replace(GOOD_PEER, height=-0.5),
    "nan height": dataclasses.replace(GOOD_PEER, height=math.nan),
    "inf height": dataclasses.replace(GOOD_PEER, height=math.inf),
    "nan error": dataclasses.replace(GOOD_PEER, error=math.nan),
    "negative error": dataclasses.replace(GOOD_PEER, error=-1.0),
    "inf error": dataclasses.replace(GOOD_PEER, error=math.inf),
    "nan adjustment": dataclasses.replace(GOOD_PEER, adjustment=math.nan),
    "huge adjustment": dataclasses.replace(GOOD_PEER, adjustment=-1e300),
}


def warmed_client(seed: int = 3) -> VivaldiClient:
    client = VivaldiClient(SETTINGS, random.Random(seed))
    for _ in range(5):
        client.update("good", GOOD_PEER, 4.0)
    return client


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_peer_coordinates_never_change_ours(name: str) -> None:
    client = warmed_client()
    twin = warmed_client()  # sees only the good observations
    before = client.coordinate
    with pytest.raises(ValueError):
        client.update("evil", GARBAGE[name], 4.0)
    assert client.coordinate == before
    with pytest.raises(ValueError):
        client.estimate_rtt_ms(GARBAGE[name])
    assert coordinate_fault(GARBAGE[name], SETTINGS) is not None
    # Nothing hidden changed either: the next good observations land exactly where the twin's do.
    for _ in range(3):
        assert client.update("good", GOOD_PEER, 5.0) == twin.update("good", GOOD_PEER, 5.0)


@pytest.mark.parametrize("rtt", [math.nan, math.inf, -math.inf, -1.0, 1e7])
def test_garbage_rtts_never_change_our_coordinate(rtt: float) -> None:
    client = warmed_client()
    twin = warmed_client()
    before = client.coordinate
    with pytest.raises(ValueError, match="rtt"):
        client.update("good", GOOD_PEER, rtt)
    assert client.coordinate == before
    assert client.update("good", GOOD_PEER, 5.0) == twin.update("good", GOOD_PEER, 5.0)


def test_the_fault_is_named() -> None:
    client = warmed_client()
    with pytest.raises(ValueError, match="peer 'evil': coordinate has 7 dimensions"):
        client.update("evil", GARBAGE["too few dimensions"], 4.0)
    with pytest.raises(ValueError, match="height"):
        client.update("evil", GARBAGE["negative height"], 4.0)


LIMIT = SETTINGS.max_rtt_ms
IN_RANGE = st.floats(min_value=-LIMIT, max_value=LIMIT)
NON_NEGATIVE = st.one_of(st.floats(min_value=0.0, max_value=LIMIT), st.sampled_from([0.0, 1e-12]))
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
# Valid peer coordinates (anywhere in range, up to the limits) and garbage ones, in equal parts.
PEER_COORDINATES = st.one_of(
    st.builds(
        Coordinate,
        st.lists(IN_RANGE, min_size=DIMS, max_size=DIMS).map(tuple),
        NON_NEGATIVE,
        NON_NEGATIVE,
        IN_RANGE,
    ),
    st.builds(
        Coordinate,
        st.lists(ANY_FLOAT, min_size=0, max_size=DIMS + 1).map(tuple),
        ANY_FLOAT,
        ANY_FLOAT,
        ANY_FLOAT,
    ),
)
RTTS = st.one_of(NON_NEGATIVE, ANY_FLOAT)
PEERS = st.sampled_from(["a", "b", "c"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(PEERS, PEER_COORDINATES, RTTS), min_size=10, max_size=40),
    st.integers(min_value=0, max_value=2**32),
)
def test_random_updates_never_produce_a_non_finite_coordinate(
    updates: list[tuple[str, Coordinate, float]], seed: int
) -> None:
    client = VivaldiClient(SETTINGS, random.Random(seed))
    accepted = 0
    for peer, peer_coord, rtt in updates:
        before = client.coordinate
        try:
            client.update(peer, peer_coord, rtt)
            accepted += 1
        except ValueError:
            assert client.coordinate == before
        ours = client.coordinate
        assert all(math.isfinite(x) for x in ours.vec)
        assert math.isfinite(ours.adjustment)
        assert SETTINGS.height_min_ms <= ours.height < math.inf
        assert 0.0 <= ours.error <= SETTINGS.error_max
        assert coordinate_fault(ours, SETTINGS) is None  # peers would accept what we publish
    assert client.updates + client.discarded == accepted
    event(f"inputs accepted: {min(accepted, 10)}{'+' if accepted >= 10 else ''}")


# Zero and tiny RTTs ----------------------------------------------------------------------------


@pytest.mark.parametrize("rtt", [0.0, 1e-9, 1e-4])
def test_two_nodes_in_one_place_end_up_close(rtt: float) -> None:
    a = VivaldiClient(SETTINGS, random.Random(1))
    b = VivaldiClient(SETTINGS, random.Random(2))
    for _ in range(50):
        a.update("b", b.coordinate, rtt)
        b.update("a", a.coordinate, rtt)
    estimate = a.estimate_rtt_ms(b.coordinate)
    assert math.isfinite(estimate)
    assert estimate < 0.1  # well inside the city tier's 2 ms round trip
    assert a.coordinate.height < 5 * SETTINGS.height_min_ms


def test_a_zero_rtt_from_a_distant_peer_keeps_us_finite() -> None:
    client = warmed_client()
    far = dataclasses.replace(GOOD_PEER, vec=(9_000.0,) * DIMS, error=0.0)
    for _ in range(10):
        client.update("far", far, 0.0)
    assert all(math.isfinite(x) for x in client.coordinate.vec)
    assert client.coordinate.error <= SETTINGS.error_max


# Filters and forgetting --------------------------------------------------------------------------


def test_the_latency_filter_drops_a_single_spike() -> None:
    spiked = warmed_client()
    clean = warmed_client()
    spiked.update("good", GOOD_PEER, 400.0)  # median of (4, 4, 400) is 4
    clean.update("good", GOOD_PEER, 4.0)
    assert spiked.coordinate == clean.coordinate


def test_forget_drops_the_filter_of_a_peer() -> None:
    forgetful = warmed_client()
    forgetful.forget("good")
    forgetful.forget("never-seen")
    clean = warmed_client()
    forgetful.update("good", GOOD_PEER, 400.0)  # a filter of one sample: taken as it is
    clean.update("good", GOOD_PEER, 4.0)
    assert forgetful.coordinate != clean.coordinate
    assert forgetful.estimate_rtt_ms(GOOD_PEER) > clean.estimate_rtt_ms(GOOD_PEER)


def test_filters_are_bounded_to_max_peers() -> None:
    bounded = VivaldiClient(dataclasses.replace(SETTINGS, max_peers=1), random.Random(3))
    roomy = VivaldiClient(SETTINGS, random.Random(3))
    for client in (bounded, roomy):
        for _ in range(5):
            client.update("good", GOOD_PEER, 4.0)
        client.update("other", GOOD_PEER, 4.0)  # the bounded client drops "good"'s filter
        client.update("good", GOOD_PEER, 400.0)  # so only the roomy one filters this spike
    assert bounded.estimate_rtt_ms(GOOD_PEER) > roomy.estimate_rtt_ms(GOOD_PEER) + 10.0


# Distances, settings, the metric -----------------------------------------------------------------


def test_distance_is_euclidean_plus_heights_plus_adjustments() -> None:
    a = Coordinate(vec=(3.0, 0.0), height=0.5, error=0.1, adjustment=0.25)
    b = Coordinate(vec=(0.0, 4.0), height=1.0, error=0.1, adjustment=0.25)
    assert a.distance_ms(b) == b.distance_ms(a) == pytest.approx(5.0 + 1.5 + 0.5)
    # An adjustment that would make the estimate non-positive is ignored.
    c = dataclasses.replace(a, vec=(0.0, 4.0), height=0.0, adjustment=-5.0)
    d = dataclasses.replace(b, height=0.0, adjustment=0.0)
    assert c.distance_ms(d) == 0.0
    with pytest.raises(ValueError, match="dimension"):
        a.distance_ms(Coordinate(vec=(0.0,), height=0.0, error=0.0, adjustment=0.0))


def test_a_new_node_starts_at_the_origin_knowing_nothing() -> None:
    client = VivaldiClient(SETTINGS, random.Random(0))
    assert client.coordinate == origin(SETTINGS)
    assert client.coordinate.vec == (0.0,) * 8
    assert client.coordinate.error == 1.5
    assert client.coordinate.height > 0.0


@pytest.mark.parametrize(
    "changes",
    [
        {"dimensions": 0},
        {"error_max": 0.0},
        {"ce": 0.0},
        {"cc": 1.5},
        {"adjustment_window": -1},
        {"height_min_ms": 0.0},
        {"latency_filter_size": 0},
        {"gravity_rho_ms": math.inf},
        {"max_rtt_ms": math.nan},
        {"max_peers": 0},
    ],
)
def test_bad_settings_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        VivaldiSettings(**changes)  # type: ignore[arg-type]


def test_no_adjustment_window_means_no_adjustment() -> None:
    client = VivaldiClient(dataclasses.replace(SETTINGS, adjustment_window=0), random.Random(0))
    for _ in range(10):
        client.update("good", GOOD_PEER, 9.0)
    assert client.coordinate.adjustment == 0.0


def test_relative_error() -> None:
    assert relative_error(11.0, 10.0) == pytest.approx(0.1)
    assert relative_error(9.0, 10.0) == pytest.approx(0.1)
    assert relative_error(10.0, 10.0) == 0.0
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            relative_error(1.0, bad)
