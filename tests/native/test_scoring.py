"""The scoring kernel against its NumPy reference, and each routing rule as an operator sees it.

Every rule test runs on both implementations (ids `numba` and `numpy`); the property tests check
that the two agree on random tables and requests. With NUMBA_DISABLE_JIT=1 the same tests run the
kernel as plain Python.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubhop_native import columns as col
from hubhop_native import reasons as rs
from hubhop_native import rng, scoring, scoring_ref
from tests.native.tables import Decide, Decision, Request, Table, build_table, choices, run

IMPLS = [
    pytest.param(scoring.decide, id="numba"),
    pytest.param(scoring_ref.decide, id="numpy"),
]
INF = math.inf
NAN = math.nan


# --- the reason bits and the generator ------------------------------------------------------


def test_reason_bits_are_distinct_and_named() -> None:
    bits = list(rs.REASON_NAMES)
    assert len(set(bits)) == 7
    assert all(bit & (bit - 1) == 0 for bit in bits)
    assert rs.describe(0) == []
    assert rs.describe(rs.CHIP_MISMATCH | rs.DEAD) == ["dead", "chip mismatch"]
    assert rs.describe(1 << 20) == ["unknown reason 0x100000"]


def test_model_words_and_bits() -> None:
    assert [col.model_words(n) for n in (0, 1, 64, 65, 128, 129)] == [1, 1, 1, 2, 2, 3]
    models = np.zeros((2, 2), np.uint64)
    col.set_model_bit(models, 1, 65)
    col.set_model_bit(models, 1, 0)
    assert models[1].tolist() == [1, 2] and models[0].tolist() == [0, 0]
    with pytest.raises(ValueError):
        col.set_model_bit(models, 0, 128)


@given(st.integers(0, 2**64 - 1), st.integers(1, 1000))
@settings(max_examples=100, deadline=None)
def test_rng_twins_agree(seed: int, k: int) -> None:
    compiled = np.array([seed], np.uint64)
    python = np.array([seed], np.uint64)
    for _ in range(3):
        assert rng.next_u64(compiled) == rng.next_u64_py(python)
        assert compiled[0] == python[0]
        index = rng.uniform_index(compiled, k)
        assert index == rng.uniform_index_py(python, k)
        assert 0 <= index < k


def test_rng_known_values_and_zero_state() -> None:
    state = np.array([0], np.uint64)
    first = rng.next_u64_py(state)
    x = 0x9E3779B97F4A7C15  # the zero state is replaced by this constant, then stepped
    x ^= x >> 12
    x ^= (x << 25) & (2**64 - 1)
    x ^= x >> 27
    assert int(state[0]) == x
    assert first == (x * 0x2545F4914F6CDD1D) % 2**64
    compiled = np.array([0], np.uint64)
    assert rng.next_u64(compiled) == first and int(compiled[0]) == x


# --- kernel and reference agree -------------------------------------------------------------

LATENCIES = st.one_of(st.sampled_from([0.0, 0.4, 1.0, 3.4, 5.0, INF, NAN]), st.floats(0.0, 20.0))
NEAR_LATENCIES = st.sampled_from([0.4, 0.4, 0.5, 1.0, 3.4])  # finite, often equal
CHEAP = st.sampled_from([0.0, 1.0, 2.5, 10.0])  # few distinct values: many equal costs
ALL_MODELS = 2**64 - 1


@st.composite
def random_tables(draw: st.DrawFn) -> Table:
    """Random tables of two moods: anything goes (most rows fail something), or friendly (most
    rows feasible, costs often equal), so near sets of several rows and ties come up often."""
    n_rows = draw(st.integers(0, 60))
    words = draw(st.integers(1, 2))
    n_nodes = draw(st.integers(1, 8))
    friendly = draw(st.booleans())

    def column(anything: st.SearchStrategy[Any], kind: st.SearchStrategy[Any]) -> list[Any]:
        values = kind if friendly else anything
        return draw(st.lists(values, min_size=n_rows, max_size=n_rows))

    word_values = st.one_of(
        st.sampled_from([0, 1, ALL_MODELS, 0b1011, 1 << 63]), st.integers(0, ALL_MODELS)
    )
    friendly_words = st.sampled_from([ALL_MODELS] * 5 + [0b1011])
    row_models = np.array(
        column(
            st.lists(word_values, min_size=words, max_size=words),
            st.lists(friendly_words, min_size=words, max_size=words),
        ),
        dtype=np.uint64,
    ).reshape(n_rows, words)
    fields = {  # (anything, friendly)
        col.ROW_PRICE: (st.one_of(CHEAP, st.floats(0.0, 20.0)), CHEAP),
        col.ROW_GREEN: (st.floats(0.0, 1.0), st.sampled_from([0.0, 0.5, 1.0])),
        col.ROW_SLOTS: (st.integers(0, 8), st.integers(4, 8)),
        col.ROW_RESERVE: (st.integers(0, 3), st.integers(0, 1)),
        col.ROW_BUSY: (st.integers(0, 6), st.integers(0, 2)),
        col.ROW_QUEUE_EMERGENCY: (st.integers(0, 3), st.integers(0, 1)),
        col.ROW_QUEUE_STANDARD: (st.integers(0, 5), st.integers(0, 3)),
        col.ROW_QUEUE_BATCH: (st.integers(0, 5), st.integers(0, 3)),
        col.ROW_SERVICE_MS: (st.one_of(CHEAP, st.floats(0.1, 100.0)), CHEAP),
        col.ROW_LOCAL_INFLIGHT: (st.integers(0, 3), st.integers(0, 1)),
    }
    row_num = np.zeros((col.ROW_FIELDS, n_rows), np.float64)
    for index, (anything, kind) in fields.items():
        row_num[index] = column(anything, kind)
    latencies = NEAR_LATENCIES if friendly else LATENCIES
    return Table(
        row_node=np.array(
            column(st.integers(0, n_nodes - 1), st.integers(0, n_nodes - 1)), np.int32
        ),
        row_alive=np.array(
            column(st.sampled_from([0, 1, 1]), st.sampled_from([0] + [1] * 9)), np.uint8
        ),
        row_chip=np.array(column(st.integers(0, 2), st.sampled_from([0, 0, 0, 1])), np.int32),
        row_models=row_models,
        row_num=row_num,
        node_latency_ms=np.array(
            draw(st.lists(latencies, min_size=n_nodes, max_size=n_nodes)), np.float64
        ),
    )


REQUESTS = st.builds(
    Request,
    model_id=st.sampled_from([0, 0, 1, 3, 63, 64, 65, 127, 128, 500, -1]),
    chip_id=st.sampled_from([rs.NO_CHIP, rs.NO_CHIP, 0, 1, 2]),
    lane=st.sampled_from([rs.LANE_EMERGENCY, rs.LANE_STANDARD, rs.LANE_BATCH]),
    tier_ms=st.one_of(st.just(INF), st.sampled_from([1.0, 5.0, 7.0, 10.0]), st.floats(0, 20)),
    budget=st.one_of(st.just(INF), st.sampled_from([1.0, 2.5, 10.0]), st.floats(0.0, 20.0)),
    price_weight_ms=st.one_of(st.just(0.0), st.floats(0.0, 5.0)),
    green_weight_ms=st.one_of(st.just(0.0), st.floats(0.0, 20.0)),
    margin_frac=st.one_of(st.sampled_from([0.0, 0.1, 0.5]), st.floats(0.0, 0.5)),
)
SEEDS = st.one_of(st.just(0), st.integers(1, 2**64 - 1))


def same_floats(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> None:
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.array_equal(np.isinf(a) & (a > 0), np.isinf(b) & (b > 0))
    assert np.allclose(a, b, rtol=1e-12, atol=0.0, equal_nan=True)


def assert_agree(table: Table, request: Request, seed: int) -> Decision:
    kernel = run(scoring.decide, table, request, seed)
    reference = run(scoring_ref.decide, table, request, seed)
    assert np.array_equal(kernel.reasons, reference.reasons)
    same_floats(kernel.expected_ms, reference.expected_ms)
    same_floats(kernel.cost, reference.cost)
    assert (kernel.chosen, kernel.fallback) == (reference.chosen, reference.fallback)
    assert kernel.rng_after == reference.rng_after
    check_invariants(kernel, request)
    return kernel


def check_invariants(decision: Decision, request: Request) -> None:
    """What holds for every decision, whatever the table."""
    feasible = decision.reasons == 0
    assert np.all(np.isinf(decision.cost[~feasible]))
    if decision.chosen >= 0:
        assert feasible[decision.chosen] and decision.fallback == -1
        best = decision.cost[feasible & ~np.isnan(decision.cost)].min()
        bound = max(best, best + request.margin_frac * best)
        assert decision.cost[decision.chosen] <= bound
    if decision.fallback >= 0:
        assert decision.chosen == -1
        assert decision.reasons[decision.fallback] == rs.OVER_TIER


@given(random_tables(), REQUESTS, SEEDS)
@settings(max_examples=150, deadline=None)
def test_kernel_matches_reference(table: Table, request: Request, seed: int) -> None:
    assert_agree(table, request, seed)


def test_agree_on_empty_table() -> None:
    decision = assert_agree(build_table([]), Request(), 5)
    assert (decision.chosen, decision.fallback, decision.rng_after) == (-1, -1, 5)


def test_agree_when_nothing_is_feasible() -> None:
    table = build_table(
        [
            {"alive": False},
            {"models": (1,)},
            {"latency_ms": INF},
            {"price": 9.0, "latency_ms": 9.0},
        ]
    )
    decision = assert_agree(table, Request(budget=1.0, tier_ms=5.0), 9)
    assert (decision.chosen, decision.fallback) == (-1, -1)
    assert np.all(decision.reasons != 0)


def test_agree_when_every_row_is_over_the_tier() -> None:
    table = build_table(
        [{"latency_ms": 3.4}, {"latency_ms": 3.0}, {"latency_ms": 3.0}, {"latency_ms": 8.0}]
    )
    decision = assert_agree(table, Request(tier_ms=1.0), 9)
    assert decision.chosen == -1
    assert decision.fallback == 1  # nearest; of the two at 3.0 ms the lower row
    assert decision.why(0) == ["over tier"]


def test_agree_on_ties() -> None:
    table = build_table([{"latency_ms": 1.0}] * 6)
    for seed in range(1, 40):
        decision = assert_agree(table, Request(), seed)
        assert decision.rng_after != seed  # a tie is a near set of 6: the generator was used


# --- the rules, as an operator sees them ----------------------------------------------------


@pytest.mark.parametrize("decide", IMPLS)
def test_city_tier_rejects_a_far_row_and_chooses_a_near_one(decide: Decide) -> None:
    table = build_table([{"latency_ms": 3.4}, {"latency_ms": 0.4}])
    decision = run(decide, table, Request(tier_ms=1.0))
    assert decision.chosen == 1
    assert decision.why(0) == ["over tier"]
    assert decision.expected_ms.tolist() == [2 * 3.4 + 10.0, 2 * 0.4 + 10.0]
    assert decision.cost[0] == INF


@pytest.mark.parametrize("decide", IMPLS)
def test_chip_must_match_when_asked_for(decide: Decide) -> None:
    table = build_table([{"chip": 0, "latency_ms": 0.1}, {"chip": 2, "latency_ms": 0.9}])
    assert run(decide, table, Request(chip_id=2)).chosen == 1
    assert run(decide, table, Request(chip_id=2)).why(0) == ["chip mismatch"]
    assert run(decide, table, Request(chip_id=rs.NO_CHIP)).chosen == 0
    nobody = run(decide, table, Request(chip_id=7))
    assert (nobody.chosen, nobody.fallback) == (-1, -1)


@pytest.mark.parametrize("decide", IMPLS)
def test_budget_rejects_dear_rows(decide: Decide) -> None:
    table = build_table([{"price": 5.0, "latency_ms": 0.1}, {"price": 2.0, "latency_ms": 0.9}])
    decision = run(decide, table, Request(budget=2.0))  # price == budget is within it
    assert decision.chosen == 1
    assert decision.why(0) == ["over budget"]
    assert run(decide, table, Request(budget=INF)).chosen == 0


@pytest.mark.parametrize("decide", IMPLS)
def test_emergency_reserve_is_for_emergencies(decide: Decide) -> None:
    # 4 slots, 1 reserved for emergencies, 3 busy: no slot left outside the reserve.
    full = {"slots": 4, "reserve": 1, "busy": 3, "latency_ms": 0.3}
    table = build_table([full])
    for lane in (rs.LANE_STANDARD, rs.LANE_BATCH):
        decision = run(decide, table, Request(lane=lane))
        assert decision.chosen == -1
        assert decision.why(0) == ["no headroom"]
    decision = run(decide, table, Request(lane=rs.LANE_EMERGENCY))
    assert decision.chosen == 0
    assert decision.expected_ms[0] == 2 * 0.3 + 10.0  # the reserved slot is free: no wait


@pytest.mark.parametrize("decide", IMPLS)
def test_in_flight_requests_use_headroom_too(decide: Decide) -> None:
    table = build_table([{"slots": 4, "reserve": 1, "busy": 1, "local_inflight": 2}])
    assert run(decide, table, Request()).why(0) == ["no headroom"]


@pytest.mark.parametrize("decide", IMPLS)
def test_dead_node_is_not_chosen(decide: Decide) -> None:
    table = build_table([{"alive": False, "latency_ms": 0.1}, {"latency_ms": 0.8}])
    decision = run(decide, table, Request())
    assert decision.chosen == 1
    assert decision.why(0) == ["dead"]


@pytest.mark.parametrize("decide", IMPLS)
def test_unreachable_node_is_not_chosen(decide: Decide) -> None:
    table = build_table([{"latency_ms": NAN}, {"latency_ms": INF}, {"latency_ms": 4.0}])
    decision = run(decide, table, Request())
    assert decision.chosen == 2
    assert decision.why(0) == ["unreachable"] and decision.why(1) == ["unreachable"]
    assert decision.expected_ms[:2].tolist() == [INF, INF]
    # Under a finite tier an infinite latency is over it as well; unknown (nan) is not "over".
    bounded = run(decide, table, Request(tier_ms=5.0))
    assert bounded.why(1) == ["over tier", "unreachable"] and bounded.why(0) == ["unreachable"]


@pytest.mark.parametrize("decide", IMPLS)
def test_model_not_served(decide: Decide) -> None:
    table = build_table([{"models": (0, 70), "latency_ms": 0.1}, {"models": (3,)}])
    assert run(decide, table, Request(model_id=3)).chosen == 1
    assert run(decide, table, Request(model_id=3)).why(0) == ["model not served"]
    assert run(decide, table, Request(model_id=70)).chosen == 0
    beyond = run(decide, table, Request(model_id=128))  # past the bitset: nobody serves it
    assert beyond.chosen == -1 and beyond.why(0) == beyond.why(1) == ["model not served"]
    assert run(decide, table, Request(model_id=-1)).why(0) == ["model not served"]


@pytest.mark.parametrize("decide", IMPLS)
def test_every_reason_is_reported_at_once(decide: Decide) -> None:
    table = build_table(
        [
            {"alive": False, "models": (1,), "chip": 1, "price": 9.0, "busy": 4, "latency_ms": 3.0},
            {"latency_ms": INF},
        ]
    )
    decision = run(decide, table, Request(chip_id=0, budget=1.0, tier_ms=1.0))
    assert decision.why(0) == [
        "dead",
        "model not served",
        "chip mismatch",
        "over tier",
        "over budget",
        "no headroom",
    ]
    assert decision.reasons[1] == rs.UNREACHABLE | rs.OVER_TIER
    assert (decision.chosen, decision.fallback) == (-1, -1)  # no row fails only on the tier


@pytest.mark.parametrize("decide", IMPLS)
def test_batch_lane_prefers_green_power(decide: Decide) -> None:
    table = build_table([{"green": 0.1}, {"green": 0.9}])  # same latency, same load
    batch = run(decide, table, Request(lane=rs.LANE_BATCH, green_weight_ms=5.0))
    assert batch.chosen == 1
    assert batch.cost.tolist() == [11.0 + 5.0 * 0.9, 11.0 + 5.0 * (1.0 - 0.9)]
    standard = run(decide, table, Request(lane=rs.LANE_STANDARD, green_weight_ms=5.0))
    assert standard.cost[0] == standard.cost[1]  # green power weighs only in the batch lane


@pytest.mark.parametrize("decide", IMPLS)
def test_price_weight_moves_the_choice(decide: Decide) -> None:
    table = build_table([{"latency_ms": 0.4, "price": 10.0}, {"latency_ms": 1.0, "price": 0.0}])
    assert run(decide, table, Request(price_weight_ms=0.0)).chosen == 0
    pricey = run(decide, table, Request(price_weight_ms=1.0))
    assert pricey.chosen == 1
    assert pricey.cost.tolist() == [2 * 0.4 + 10.0 + 10.0, 2 * 1.0 + 10.0]


@pytest.mark.parametrize("decide", IMPLS)
def test_local_in_flight_steers_away_from_a_loaded_node(decide: Decide) -> None:
    # Both backends: 4 slots, 4 requests queued in the standard lane (as last gossiped).
    row = {"slots": 4, "queue_standard": 4}
    table = build_table([{**row, "latency_ms": 0.4}, {**row, "latency_ms": 0.5}])
    assert run(decide, table, Request()).chosen == 0  # idle from here: the nearer one
    table.row_num[col.ROW_LOCAL_INFLIGHT, 0] = 2  # this entry already sent it two requests
    decision = run(decide, table, Request())
    assert decision.chosen == 1
    # ahead = 2 + 4 queued, usable 4: waits (6 + 1 - 4) / 4 rounds of 10 ms vs (4 + 1 - 4) / 4.
    assert decision.expected_ms.tolist() == [0.8 + 7.5 + 10.0, 1.0 + 2.5 + 10.0]


@pytest.mark.parametrize("decide", IMPLS)
def test_queue_counts_only_lanes_served_before_or_with_the_request(decide: Decide) -> None:
    table = build_table([{"slots": 2, "queue_emergency": 1, "queue_standard": 4, "queue_batch": 8}])
    expected = {
        rs.LANE_EMERGENCY: 1.0 + 0.0 + 10.0,  # 1 ahead, 2 usable: no wait
        rs.LANE_STANDARD: 1.0 + (5 + 1 - 2) / 2 * 10.0 + 10.0,
        rs.LANE_BATCH: 1.0 + (13 + 1 - 2) / 2 * 10.0 + 10.0,
    }
    for lane, ms in expected.items():
        assert run(decide, table, Request(lane=lane)).expected_ms[0] == ms


@pytest.mark.parametrize("decide", IMPLS)
def test_same_rng_state_gives_the_same_choices(decide: Decide) -> None:
    table = build_table([{"latency_ms": 0.50 + 0.01 * i} for i in range(5)])
    request = Request(margin_frac=0.1)
    first = choices(decide, table, request, seed=1234, count=50)
    assert first == choices(decide, table, request, seed=1234, count=50)
    assert len(set(first)) > 1
    assert first == choices(scoring_ref.decide, table, request, seed=1234, count=50)


NEAR_EQUAL = [{"latency_ms": 0.50 + 0.01 * i} for i in range(4)]  # 11.00 .. 11.06 ms expected
OUTSIDE = {"latency_ms": 2.0}  # 14 ms: beyond 11.00 + 10 %


@pytest.mark.parametrize("decide", IMPLS)
def test_p2c_on_one_snapshot(decide: Decide) -> None:
    """Many entries deciding on the same gossip snapshot: margin 0 sends them all to one node,
    power of two choices spreads them: a row wins the pairs it is drawn into against costlier
    rows, so over the 6 equally likely pairs rows win 3, 2, 1 and 0 of 6."""
    table = build_table([*NEAR_EQUAL, OUTSIDE])
    assert set(choices(decide, table, Request(margin_frac=0.0), seed=7, count=2000)) == {0}
    counts = Counter(choices(decide, table, Request(margin_frac=0.1), seed=7, count=2000))
    assert counts[4] == 0 and counts[3] == 0
    for row, share in ((0, 3 / 6), (1, 2 / 6), (2, 1 / 6)):
        assert abs(counts[row] / 2000 - share) < 0.05


@pytest.mark.parametrize("decide", IMPLS)
def test_p2c_spreads_load_fairly(decide: Decide) -> None:
    """One entry routing 2000 requests: each is counted in flight on its row until 8 later
    requests were sent. Every near-equal row takes a fair share; the far row none."""
    rows = [{**row, "slots": 16, "queue_standard": 20} for row in [*NEAR_EQUAL, OUTSIDE]]
    table = build_table(rows)
    state = np.array([99], np.uint64)
    in_flight: deque[int] = deque()
    counts: Counter[int] = Counter()
    for _ in range(2000):
        chosen = run(decide, table, Request(margin_frac=0.1), state).chosen
        counts[chosen] += 1
        table.row_num[col.ROW_LOCAL_INFLIGHT, chosen] += 1
        in_flight.append(chosen)
        if len(in_flight) > 8:
            table.row_num[col.ROW_LOCAL_INFLIGHT, in_flight.popleft()] -= 1
    assert counts[4] == 0 and counts[-1] == 0
    for row in range(4):
        assert 0.15 <= counts[row] / 2000 <= 0.35, counts
