"""The per-peer RTT estimator against known sequences, its table, and tier classification."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubhop.core.rtt_estimator import (
    EstimatorSettings,
    PeerRtt,
    RttSnapshot,
    RttTable,
)
from hubhop.core.tiers import TIER_BOUNDS_MS, TIERS, tier_of

T0 = 1000.0  # monotonic seconds; any value works, a non-zero one catches "age = now" mistakes
SETTINGS = EstimatorSettings()


def fed(samples: list[float], settings: EstimatorSettings = SETTINGS) -> RttSnapshot:
    """A fresh estimator fed `samples` one second apart, snapshotted at the last one."""
    peer = PeerRtt("wuhan-2", settings)
    for i, rtt in enumerate(samples):
        peer.add_sample(rtt, T0 + i)
    snap = peer.snapshot(T0 + len(samples) - 1)
    assert snap is not None
    return snap


# Smoothing ---------------------------------------------------------------------------------------


def test_constant_rtt_settles_with_no_variance() -> None:
    snap = fed([10.0] * 100)
    assert snap.srtt_ms == 10.0
    assert snap.rttvar_ms < 1e-9
    assert snap.min_ms == snap.p50_ms == snap.p99_ms == 10.0
    assert snap.one_way_ms == 5.0
    assert snap.conservative_one_way_ms == pytest.approx(5.0, abs=1e-9)
    assert snap.samples == 100
    assert snap.loss_rate == 0.0


def test_first_sample_sets_srtt_and_half_of_it_as_variance() -> None:
    snap = fed([8.0])
    assert (snap.srtt_ms, snap.rttvar_ms) == (8.0, 4.0)


def test_step_change_is_tracked_at_the_rfc_6298_rate() -> None:
    before = [10.0] * 50
    rttvar = fed(before).rttvar_ms
    for n in range(1, 21):
        snap = fed(before + [20.0] * n)
        # srtt closes an eighth of the remaining gap per sample.
        assert snap.srtt_ms == pytest.approx(20.0 - 10.0 * (7 / 8) ** n)
    # rttvar: 3/4 of the old value plus a quarter of the first sample's surprise (10 ms).
    first = fed([*before, 20.0])
    assert first.rttvar_ms == pytest.approx(0.75 * rttvar + 0.25 * 10.0)


def test_custom_gains_are_used() -> None:
    settings = EstimatorSettings(alpha=0.5, beta=0.5)
    snap = fed([10.0, 20.0], settings)
    assert snap.srtt_ms == 15.0
    assert snap.rttvar_ms == pytest.approx(0.5 * 5.0 + 0.5 * 10.0)


# Window statistics and loss ------------------------------------------------------------------


def test_min_p50_p99_come_from_the_last_window_of_samples() -> None:
    snap = fed([float(x) for x in range(1, 101)])  # the 64-sample window holds 37..100
    assert snap.min_ms == 37.0
    assert snap.p50_ms == pytest.approx(68.5)
    assert snap.p99_ms == pytest.approx(37.0 + 0.99 * 63.0)


def test_percentiles_of_a_small_window() -> None:
    snap = fed([4.0, 1.0, 3.0, 2.0], EstimatorSettings(window=4))
    assert snap.p50_ms == pytest.approx(2.5)
    assert snap.p99_ms == pytest.approx(3.97)
    assert snap.min_ms == 1.0


def test_minimum_forgets_a_route_that_got_longer() -> None:
    snap = fed([1.0] * 10 + [3.0] * 64)
    assert snap.min_ms == 3.0


def test_loss_rate_over_the_loss_window() -> None:
    peer = PeerRtt("enshi-1", SETTINGS)
    for i in range(7):
        peer.add_sample(6.5, T0 + i)
    for i in range(3):
        peer.add_loss(T0 + 7 + i)
    snap = peer.snapshot(T0 + 10)
    assert snap is not None
    assert snap.loss_rate == pytest.approx(0.3)
    assert snap.samples == 7


def test_losses_age_out_of_the_loss_window() -> None:
    peer = PeerRtt("enshi-1", EstimatorSettings(loss_window=10))
    for i in range(10):
        peer.add_loss(T0 + i)
    for i in range(10):
        peer.add_sample(6.5, T0 + 10 + i)
    snap = peer.snapshot(T0 + 20)
    assert snap is not None
    assert snap.loss_rate == 0.0


def test_nothing_to_report_before_the_first_answer() -> None:
    peer = PeerRtt("hub-zw", SETTINGS)
    assert peer.snapshot(T0) is None
    peer.add_loss(T0)
    assert peer.snapshot(T0) is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.5])
def test_unusable_samples_are_ignored(bad: float) -> None:
    peer = PeerRtt("wuhan-2", SETTINGS)
    peer.add_sample(bad, T0)
    assert peer.snapshot(T0) is None
    peer.add_sample(2.0, T0)
    peer.add_sample(bad, T0 + 1)
    snap = peer.snapshot(T0 + 1)
    assert snap is not None
    assert (snap.samples, snap.srtt_ms, snap.p99_ms) == (1, 2.0, 2.0)
    assert snap.last_sample_age_s == 1.0


def test_a_zero_rtt_is_a_real_sample() -> None:
    snap = fed([0.0, 0.0])
    assert snap.samples == 2
    assert snap.one_way_ms == snap.conservative_one_way_ms == 0.0


# Freshness -----------------------------------------------------------------------------------


def test_peer_turns_stale_after_stale_after_s() -> None:
    peer = PeerRtt("xiangyang-1", EstimatorSettings(stale_after_s=30.0))
    peer.add_sample(4.0, T0)
    peer.add_loss(T0 + 20.0)  # a lost probe is not a fresh measurement
    at_limit = peer.snapshot(T0 + 30.0)
    past = peer.snapshot(T0 + 30.5)
    assert at_limit is not None and past is not None
    assert at_limit.fresh and at_limit.last_sample_age_s == 30.0
    assert not past.fresh and past.last_sample_age_s == 30.5
    peer.add_sample(4.0, T0 + 31.0)
    again = peer.snapshot(T0 + 31.0)
    assert again is not None and again.fresh


def test_a_clock_read_before_the_sample_gives_age_zero() -> None:
    peer = PeerRtt("xiangyang-1", SETTINGS)
    peer.add_sample(4.0, T0)
    snap = peer.snapshot(T0 - 1.0)
    assert snap is not None
    assert snap.last_sample_age_s == 0.0 and snap.fresh


# Best and conservative one-way estimates -----------------------------------------------------


def test_a_jittery_link_gets_a_wider_margin_than_a_steady_one() -> None:
    steady = fed([1.9] * 40)
    jittery = fed([1.2, 2.6] * 20)  # same median RTT 1.9 ms, so both are 0.95 ms one-way at best
    assert steady.one_way_ms == pytest.approx(jittery.one_way_ms)
    assert steady.conservative_one_way_ms == pytest.approx(steady.one_way_ms, abs=1e-3)
    assert jittery.conservative_one_way_ms > steady.conservative_one_way_ms + 0.3
    # What a router sees: the steady link is inside the city tier, the jittery one is not.
    assert tier_of(steady.conservative_one_way_ms) == "city"
    assert tier_of(jittery.one_way_ms) == "city"
    assert tier_of(jittery.conservative_one_way_ms) == "province"


def test_one_sample_does_not_pass_a_tight_tier() -> None:
    snap = fed([1.5])
    assert tier_of(snap.one_way_ms) == "city"
    assert snap.conservative_one_way_ms == 1.5  # treated as up to twice as far
    assert tier_of(snap.conservative_one_way_ms) == "province"


def test_a_lone_spike_moves_the_best_estimate_not_at_all() -> None:
    snap = fed([1.6] * 30 + [40.0] + [1.6] * 3)
    assert snap.one_way_ms == 0.8
    assert tier_of(snap.one_way_ms) == "city"


def test_a_longer_route_stops_passing_the_tier_within_a_few_probes() -> None:
    before = [1.6] * 60  # 0.8 ms one-way: city
    snap = fed([*before, 3.0, 3.0, 3.0, 3.0])
    assert tier_of(snap.one_way_ms) == "city"  # the window's median has not moved yet
    assert tier_of(snap.conservative_one_way_ms) == "province"  # the recent median has


def test_a_few_probes_delayed_by_a_busy_host_do_not_push_a_steady_link_out_of_its_tier() -> None:
    samples = [0.9] * 60
    for i in (7, 19, 33, 41, 58):  # five probes held up for milliseconds by a busy host
        samples[i] = 6.0
    snap = fed(samples)
    assert snap.rttvar_ms > 0.5  # TCP's mean deviation jumps on each of them ...
    assert tier_of(snap.conservative_one_way_ms) == "city"  # ... the robust spread does not


@given(st.lists(st.floats(min_value=0.0, max_value=1e4), min_size=1, max_size=200))
def test_conservative_is_never_below_the_best_estimate(samples: list[float]) -> None:
    snap = fed(samples)
    assert snap.conservative_one_way_ms >= snap.one_way_ms
    assert snap.min_ms <= snap.p50_ms <= snap.p99_ms
    assert 0.0 <= snap.loss_rate <= 1.0


# Settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"alpha": 0.0},
        {"alpha": 1.5},
        {"beta": math.nan},
        {"window": 0},
        {"window": 2.5},
        {"loss_window": 0},
        {"margin_k": -1.0},
        {"margin_k": math.inf},
        {"stale_after_s": 0.0},
        {"stale_after_s": math.nan},
    ],
)
def test_bad_settings_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        EstimatorSettings(**changes)  # type: ignore[arg-type]


def test_every_fault_is_named_at_once() -> None:
    with pytest.raises(ValueError, match=r"alpha.*window.*stale_after_s"):
        EstimatorSettings(alpha=2.0, window=0, stale_after_s=-1.0)


# The table -----------------------------------------------------------------------------------


def test_table_tracks_peers_independently() -> None:
    table = RttTable()
    table.add_sample("b", 4.0, T0)
    table.add_sample("a", 1.0, T0)
    table.add_loss("c", T0)
    assert table.peers() == ["a", "b", "c"]
    assert [s.peer for s in table.snapshots(T0)] == ["a", "b"]  # c never answered
    b = table.snapshot("b", T0)
    assert b is not None and b.srtt_ms == 4.0
    assert table.snapshot("c", T0) is None
    assert table.snapshot("nobody", T0) is None


def test_table_ignores_unusable_samples_without_creating_peers() -> None:
    table = RttTable()
    table.add_sample("a", math.nan, T0)
    table.add_sample("a", -1.0, T0)
    table.add_loss("b", math.nan)
    assert table.peers() == []


def test_forget_drops_a_peer() -> None:
    table = RttTable()
    table.add_sample("a", 1.0, T0)
    table.forget("a")
    table.forget("never-seen")
    assert "a" not in table
    assert table.snapshot("a", T0) is None


def test_table_is_bounded_and_evicts_the_stalest() -> None:
    table = RttTable(max_peers=3)
    table.add_sample("old", 1.0, T0)
    table.add_sample("mid", 1.0, T0 + 1)
    table.add_sample("new", 1.0, T0 + 2)
    table.add_loss("old", T0 + 3)  # a loss is not an answer: "old" is still the stalest
    table.add_sample("newest", 1.0, T0 + 4)
    assert table.peers() == ["mid", "new", "newest"]
    assert (len(table), table.evicted) == (3, 1)


def test_a_peer_that_never_answered_is_evicted_first() -> None:
    table = RttTable(max_peers=2)
    table.add_sample("answered", 1.0, T0)
    table.add_loss("silent", T0 + 5)
    table.add_sample("another", 1.0, T0 + 6)
    assert "silent" not in table
    assert "answered" in table and "another" in table


def test_table_refuses_a_zero_bound() -> None:
    with pytest.raises(ValueError):
        RttTable(max_peers=0)


# Tiers ---------------------------------------------------------------------------------------

FINITE_TIERS = [(t, b) for t, b in TIER_BOUNDS_MS.items() if math.isfinite(b)]


@pytest.mark.parametrize(("tier", "bound"), FINITE_TIERS)
def test_tier_of_at_and_around_every_bound(tier: str, bound: float) -> None:
    looser = TIERS[TIERS.index(tier) + 1]
    assert tier_of(bound) == tier  # bounds are inclusive
    assert tier_of(bound - 1e-9) == tier
    assert tier_of(math.nextafter(bound, math.inf)) == looser
    assert tier_of(bound + 0.01) == looser


def test_tier_of_the_extremes() -> None:
    assert tier_of(0.0) == "city"
    assert tier_of(0.999) == "city"
    assert tier_of(10_000.0) == "any"
    assert tier_of(math.inf) == "any"


@pytest.mark.parametrize("bad", [math.nan, -0.1])
def test_tier_of_refuses_nonsense(bad: float) -> None:
    with pytest.raises(ValueError):
        tier_of(bad)


def test_tier_of_with_other_bounds() -> None:
    bounds = {"near": 2.0, "far": 20.0}
    assert tier_of(2.0, bounds) == "near"
    assert tier_of(3.0, bounds) == "far"
    with pytest.raises(ValueError, match="no tier"):
        tier_of(21.0, bounds)
