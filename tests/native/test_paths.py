"""shortest_paths: the numba kernel against its plain-Python reference, and by hand.

Property tests draw small, messy link maps (duplicates, self-loops, broken RTTs, disconnected
parts, missing coordinates, out-of-range sources) and demand identical outputs from kernel and
reference, plus latencies that agree with an independent Bellman-Ford. Hand-built tests read like
an operator's questions: is the relay taken when it is faster, and only then? Also run with
NUMBA_DISABLE_JIT=1.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubhop_native import paths, paths_ref
from hubhop_native.csr import links_to_csr

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
U8 = npt.NDArray[np.uint8]

INF = math.inf
NAN = math.nan


@dataclass
class Graph:
    n: int
    src: list[int]
    dst: list[int]
    rtt: list[float]
    source: int
    relay: float
    coords: F64
    heights: F64
    has_coord: U8

    def csr(self) -> tuple[I32, I32, F64]:
        return links_to_csr(
            self.n,
            np.array(self.src, dtype=np.int32),
            np.array(self.dst, dtype=np.int32),
            np.array(self.rtt, dtype=np.float64),
        )


@dataclass
class Result:
    latency: F64
    pred: I32
    first_hop: I32
    estimated: U8


def run(fn: Callable[..., None], g: Graph) -> Result:
    indptr, indices, rtt = g.csr()
    # Garbage in the outputs: every entry must be written.
    out = Result(
        latency=np.full(g.n, -7.0),
        pred=np.full(g.n, 99, dtype=np.int32),
        first_hop=np.full(g.n, 99, dtype=np.int32),
        estimated=np.full(g.n, 9, dtype=np.uint8),
    )
    fn(
        indptr,
        indices,
        rtt,
        g.source,
        g.relay,
        g.coords,
        g.heights,
        g.has_coord,
        out.latency,
        out.pred,
        out.first_hop,
        out.estimated,
    )
    return out


def graph(
    n: int,
    links: list[tuple[int, int, float]],
    source: int = 0,
    relay: float = 0.0,
    coords: list[tuple[float, float]] | None = None,
    heights: list[float] | None = None,
    has_coord: list[int] | None = None,
    undirected: bool = True,
) -> Graph:
    src = [a for a, _, _ in links]
    dst = [b for _, b, _ in links]
    rtt = [r for _, _, r in links]
    if undirected:
        src, dst, rtt = src + dst, dst + src, rtt + rtt
    return Graph(
        n=n,
        src=src,
        dst=dst,
        rtt=rtt,
        source=source,
        relay=relay,
        coords=np.array(coords if coords else [(0.0, 0.0)] * n, dtype=np.float64).reshape(n, 2),
        heights=np.array(heights if heights else [0.0] * n, dtype=np.float64),
        has_coord=np.array(has_coord if has_coord else [0] * n, dtype=np.uint8),
    )


def assert_same(a: Result, b: Result) -> None:
    np.testing.assert_array_equal(np.isinf(a.latency), np.isinf(b.latency))
    finite = np.isfinite(a.latency)
    np.testing.assert_allclose(a.latency[finite], b.latency[finite], rtol=1e-12, atol=0.0)
    np.testing.assert_array_equal(a.pred, b.pred)
    np.testing.assert_array_equal(a.first_hop, b.first_hop)
    np.testing.assert_array_equal(a.estimated, b.estimated)


def both(g: Graph) -> Result:
    """Run kernel and reference, demand the same answer, return the kernel's."""
    got = run(paths.shortest_paths, g)
    assert_same(got, run(paths_ref.shortest_paths, g))
    return got


def bellman_ford(g: Graph) -> F64:
    """Measured-path latencies by an independent method (inf where no measured path)."""
    dist = np.full(g.n, INF)
    if not 0 <= g.source < g.n:
        return dist
    relay = g.relay if g.relay >= 0.0 else 0.0
    dist[g.source] = 0.0
    for _ in range(g.n):
        for u, v, r in zip(g.src, g.dst, g.rtt, strict=True):
            if not (0.0 <= r < INF) or not math.isfinite(dist[u]):
                continue
            cand = dist[u] + r / 2 + (0.0 if u == g.source else relay)
            dist[v] = min(dist[v], cand)
    return dist


# ---------------------------------------------------------------- property tests

RTTS = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0]),  # small integers: many exact ties
    st.floats(min_value=0.0, max_value=50.0),
    st.sampled_from([NAN, INF, -INF, -1.0, -0.0]),  # broken probes
)
RELAYS = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    st.floats(min_value=0.0, max_value=2.0),
    st.sampled_from([NAN, -1.0, INF]),
)


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    n = draw(st.integers(0, 40))
    n_links = draw(st.integers(0, 4 * n)) if n else 0
    node = st.integers(0, max(n - 1, 0))
    src = draw(st.lists(node, min_size=n_links, max_size=n_links))
    dst = draw(st.lists(node, min_size=n_links, max_size=n_links))
    if n_links and draw(st.booleans()):
        dst[0] = src[0]  # a self-loop
    rtt = draw(st.lists(RTTS, min_size=n_links, max_size=n_links))
    dims = draw(st.integers(0, 3))
    coord = st.one_of(st.integers(-5, 5).map(float), st.floats(-100.0, 100.0))
    coords = np.array(
        draw(st.lists(coord, min_size=n * dims, max_size=n * dims)), dtype=np.float64
    ).reshape(n, dims)
    heights = np.array(
        draw(st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n)), dtype=np.float64
    )
    has_coord = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.uint8)
    return Graph(
        n=n,
        src=src,
        dst=dst,
        rtt=rtt,
        source=draw(st.integers(-2, n + 1)),
        relay=draw(RELAYS),
        coords=coords,
        heights=heights,
        has_coord=has_coord,
    )


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_kernel_matches_reference(g: Graph) -> None:
    both(g)


@settings(max_examples=100, deadline=None)
@given(graphs())
def test_measured_latency_matches_bellman_ford_and_paths_hold(g: Graph) -> None:
    got = both(g)
    measured = bellman_ford(g)
    reached = np.isfinite(measured)
    np.testing.assert_array_equal(reached, np.isfinite(got.latency) & (got.estimated == 0))
    np.testing.assert_allclose(got.latency[reached], measured[reached], rtol=1e-12, atol=1e-12)
    links = {(u, v) for u, v, r in zip(g.src, g.dst, g.rtt, strict=True) if 0.0 <= r < INF}
    for v in range(g.n):
        path = paths.path_to(got.pred, v)
        np.testing.assert_array_equal(path, paths_ref.path_to(got.pred, v))
        if not math.isfinite(got.latency[v]):
            assert got.pred[v] == -1 and got.first_hop[v] == -1 and got.estimated[v] == 0
            continue
        assert path[0] == g.source and path[-1] == v
        if v == g.source:
            assert got.latency[v] == 0.0 and got.first_hop[v] == v and got.pred[v] == -1
        elif got.estimated[v]:
            assert list(path) == [g.source, v] and got.first_hop[v] == v
        else:
            assert got.first_hop[v] == path[1]
            assert all((int(a), int(b)) in links for a, b in itertools.pairwise(path))


# ---------------------------------------------------------------- an operator's questions

A, B, C, D = 0, 1, 2, 3


def test_relay_is_chosen_when_faster() -> None:
    # A-C measures 8 ms RTT (4 ms one way); A-B-C is 1 + 1 one way plus 0.5 ms for B to relay.
    g = graph(3, [(A, C, 8.0), (A, B, 2.0), (B, C, 2.0)], relay=0.5)
    got = both(g)
    assert got.latency[C] == 2.5
    assert got.pred[C] == B and got.first_hop[C] == B and got.estimated[C] == 0
    assert list(paths.path_to(got.pred, C)) == [A, B, C]
    assert got.latency[A] == 0.0 and got.first_hop[A] == A and got.pred[A] == -1


def test_relay_is_not_chosen_when_its_cost_makes_it_slower() -> None:
    # Via B: 1 + 1 + 2.5 = 4.5 ms one way; direct: 4 ms.
    got = both(graph(3, [(A, C, 8.0), (A, B, 2.0), (B, C, 2.0)], relay=2.5))
    assert got.latency[C] == 4.0
    assert got.pred[C] == A and got.first_hop[C] == C
    assert list(paths.path_to(got.pred, C)) == [A, C]


def test_relay_cost_is_charged_for_every_intermediate_node() -> None:
    # A-B-C-D: three links of 1 ms one way, two relays of 0.25 ms.
    got = both(graph(4, [(A, B, 2.0), (B, C, 2.0), (C, D, 2.0)], relay=0.25))
    assert list(got.latency) == [0.0, 1.0, 2.25, 3.5]
    assert list(got.first_hop) == [A, B, B, B]
    assert list(paths.path_to(got.pred, D)) == [A, B, C, D]


def test_a_measured_path_beats_a_smaller_coordinate_estimate() -> None:
    # The coordinates say C is 1 ms RTT away; the only measured path says 20 ms. Measured wins.
    g = graph(
        3,
        [(A, B, 10.0), (B, C, 10.0)],
        coords=[(0.0, 0.0), (5.0, 0.0), (1.0, 0.0)],
        has_coord=[1, 1, 1],
    )
    got = both(g)
    assert got.latency[C] == 10.0 and got.estimated[C] == 0 and got.pred[C] == B


def test_an_unlinked_node_with_coordinates_gets_an_estimate() -> None:
    # D has no measured link; distance 5 (3-4-5 triangle) + heights 0.5 + 1.5 = 7 ms RTT.
    g = graph(
        4,
        [(A, B, 2.0)],
        coords=[(0.0, 0.0), (1.0, 0.0), (9.0, 9.0), (3.0, 4.0)],
        heights=[0.5, 0.0, 0.0, 1.5],
        has_coord=[1, 1, 0, 1],
    )
    got = both(g)
    assert got.latency[D] == 3.5 and got.estimated[D] == 1
    assert got.pred[D] == A and got.first_hop[D] == D
    assert list(paths.path_to(got.pred, D)) == [A, D]
    # C has no coordinates: no measured path, no estimate.
    assert got.latency[C] == INF and got.pred[C] == -1 and got.first_hop[C] == -1
    assert got.estimated[C] == 0


def test_without_source_coordinates_nothing_is_estimated() -> None:
    g = graph(3, [], coords=[(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)], has_coord=[0, 1, 1])
    got = both(g)
    assert list(got.latency) == [0.0, INF, INF]
    assert list(got.pred) == [-1, -1, -1] and list(got.first_hop) == [A, -1, -1]
    assert list(got.estimated) == [0, 0, 0]


def test_broken_links_are_ignored() -> None:
    g = graph(
        4,
        [(A, B, NAN), (A, C, INF), (A, D, -3.0), (A, B, 6.0)],
        undirected=False,
    )
    got = both(g)
    assert got.latency[B] == 3.0 and got.pred[B] == A
    assert got.latency[C] == INF and got.latency[D] == INF
    assert got.pred[C] == -1 and got.pred[D] == -1


def test_of_duplicate_links_the_lowest_rtt_counts() -> None:
    got = both(graph(2, [(A, B, 9.0), (A, B, 4.0), (A, B, 6.0)], undirected=False))
    assert got.latency[B] == 2.0


def test_links_are_directed() -> None:
    got = both(graph(2, [(B, A, 2.0)], undirected=False))
    assert got.latency[B] == INF


def test_equal_latency_keeps_the_path_through_the_lower_index() -> None:
    # A reaches D through B or C, both 1 + 1 ms one way: the tie rule keeps B (settled first).
    got = both(graph(4, [(A, C, 2.0), (A, B, 2.0), (C, D, 2.0), (B, D, 2.0)]))
    assert got.latency[D] == 2.0 and got.pred[D] == B and got.first_hop[D] == B


def test_infinite_relay_cost_means_direct_links_only() -> None:
    got = both(graph(3, [(A, B, 2.0), (B, C, 2.0)], relay=INF))
    assert got.latency[B] == 1.0 and got.latency[C] == INF


@pytest.mark.parametrize("source", [-1, 3, 100])
def test_out_of_range_source_leaves_everything_unreachable(source: int) -> None:
    g = graph(3, [(A, B, 2.0)], source=source, has_coord=[1, 1, 1])
    got = both(g)
    assert list(got.latency) == [INF] * 3
    assert list(got.pred) == [-1] * 3 and list(got.first_hop) == [-1] * 3
    assert list(got.estimated) == [0] * 3


def test_no_nodes_is_no_error() -> None:
    got = both(graph(0, [], source=0))
    assert got.latency.shape == (0,)


def test_mismatched_arrays_are_refused() -> None:
    indptr, indices, rtt = links_to_csr(
        3, np.array([0], np.int32), np.array([1], np.int32), np.array([2.0])
    )
    for fn in (paths.shortest_paths, paths_ref.shortest_paths):
        with pytest.raises(ValueError):
            fn(
                indptr,
                indices,
                rtt,
                0,
                0.0,
                np.zeros((2, 2)),  # one row short
                np.zeros(3),
                np.ones(3, np.uint8),
                np.empty(3),
                np.empty(3, np.int32),
                np.empty(3, np.int32),
                np.empty(3, np.uint8),
            )


def test_path_to_edge_cases() -> None:
    pred = np.array([-1, 0, 1, -1], dtype=np.int32)
    for fn in (paths.path_to, paths_ref.path_to):
        assert list(fn(pred, 2)) == [0, 1, 2]
        assert list(fn(pred, 0)) == [0]
        assert list(fn(pred, 3)) == [3]  # unreachable: latency tells it from the source
        assert fn(pred, 4).shape == (0,) and fn(pred, -1).shape == (0,)
        assert fn(np.array([1, 0], dtype=np.int32), 0).shape == (0,)  # a cycle
        assert fn(pred, 2).dtype == np.int32


def test_large_random_graph_agrees_with_reference() -> None:
    rng = np.random.default_rng(20240605)
    n, per_node = 2000, 10
    src = np.repeat(np.arange(n, dtype=np.int32), per_node // 2)
    dst = rng.integers(0, n, size=src.shape[0]).astype(np.int32)
    rtt = rng.uniform(0.2, 30.0, size=src.shape[0]).round(1)  # rounded: some exact ties
    rtt[rng.random(rtt.shape[0]) < 0.01] = NAN
    coords = rng.uniform(0.0, 50.0, size=(n, 3))
    heights = rng.uniform(0.0, 2.0, size=n)
    has_coord = (rng.random(n) < 0.9).astype(np.uint8)
    g = Graph(
        n=n,
        src=[*src.tolist(), *dst.tolist()],
        dst=[*dst.tolist(), *src.tolist()],
        rtt=[*rtt.tolist(), *rtt.tolist()],
        source=17,
        relay=0.3,
        coords=coords,
        heights=heights,
        has_coord=has_coord,
    )
    got = both(g)
    assert np.isfinite(got.latency).sum() > n // 2
    assert got.estimated.sum() < n // 10


# ---------------------------------------------------------------- csr helper


def test_links_to_csr_is_stable_and_keeps_duplicates() -> None:
    indptr, indices, rtt = links_to_csr(
        4,
        np.array([2, 0, 2, 0, 2], np.int32),
        np.array([1, 3, 1, 1, 0], np.int32),
        np.array([5.0, 1.0, 4.0, NAN, 3.0]),
    )
    assert indptr.dtype == np.int32 and indices.dtype == np.int32 and rtt.dtype == np.float64
    assert list(indptr) == [0, 2, 2, 5, 5]
    assert list(indices) == [3, 1, 1, 1, 0]
    np.testing.assert_array_equal(rtt, [1.0, NAN, 5.0, 4.0, 3.0])


def test_links_to_csr_empty_and_bad_input() -> None:
    empty = np.array([], np.int32)
    indptr, indices, rtt = links_to_csr(0, empty, empty, np.array([]))
    assert list(indptr) == [0] and indices.shape == (0,) and rtt.shape == (0,)
    indptr, _, _ = links_to_csr(3, empty, empty, np.array([]))
    assert list(indptr) == [0, 0, 0, 0]
    with pytest.raises(ValueError):
        links_to_csr(2, np.array([0], np.int32), np.array([2], np.int32), np.array([1.0]))
    with pytest.raises(ValueError):
        links_to_csr(2, np.array([0, 1], np.int32), np.array([1], np.int32), np.array([1.0]))
