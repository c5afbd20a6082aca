"""The load generator's arrival schedule, outcome judgments, statistics and printed report (pure).

The schedule is what makes the generator open loop: decided from a seed and a clock origin
before anything is sent, it is the same whatever the server does. These tests check its counts
and rates, its determinism, and that the figures built from outcomes count every request once.
"""

from __future__ import annotations

import itertools
import random
import statistics
from typing import Any

import pytest

from hubhop.loadgen import report
from hubhop.loadgen.outcome import (
    Outcome,
    http_error_kind,
    sse_complete,
    within_deadline,
    within_tier,
)
from hubhop.loadgen.schedule import Planned, arrival_offsets, plan
from hubhop.loadgen.stats import RunStats, latency_summary, new_histogram, record_seconds
from hubhop.loadgen.workload import Stream, Workload


def stream(name: str, rate: float, arrival: str = "fixed", **fields: object) -> Stream:
    entries = fields.pop("entries", ("http://127.0.0.1:1",))
    return Stream(
        name=name, entries=entries, protocol="openai_chat", model="m", rate=rate,
        arrival=arrival, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def workload(*streams: Stream, duration_s: float = 10.0, seed: int = 1) -> Workload:
    return Workload("w.toml", tuple(streams), duration_s=duration_s, seed=seed)


# --- schedule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "duration"), [(50.0, 3.0), (1.0, 60.0), (7.0, 1.0), (0.5, 4.0)])
def test_fixed_rate_sends_exactly_rate_times_duration_evenly_spaced(
    rate: float, duration: float
) -> None:
    for seed in range(5):
        times = list(arrival_offsets(rate, "fixed", duration, random.Random(seed)))
        assert len(times) == round(rate * duration)
        assert 0.0 <= times[0] < 1.0 / rate and times[-1] < duration
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap == pytest.approx(1.0 / rate) for gap in gaps)


def test_poisson_arrivals_keep_the_mean_rate_and_exponential_gaps() -> None:
    rate, duration = 200.0, 100.0
    times = list(arrival_offsets(rate, "poisson", duration, random.Random(42)))
    # 20,000 expected; the count's standard deviation is sqrt(20,000) ~ 141: 3% is ~4 sigma.
    assert len(times) == pytest.approx(rate * duration, rel=0.03)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert statistics.fmean(gaps) == pytest.approx(1.0 / rate, rel=0.03)
    # Exponential: the standard deviation equals the mean (a fixed rate's would be zero).
    assert statistics.pstdev(gaps) == pytest.approx(1.0 / rate, rel=0.05)
    assert all(0.0 <= t < duration for t in times)


def test_the_plan_is_the_same_for_a_seed_and_differs_for_another() -> None:
    w = workload(stream("a", 20.0, "poisson"), stream("b", 5.0))
    first = list(plan(w, random.Random(3), origin=100.0))
    again = list(plan(w, random.Random(3), origin=100.0))
    other = list(plan(w, random.Random(4), origin=100.0))
    assert first == again
    assert first != other
    shifted = list(plan(w, random.Random(3), origin=200.0))
    assert [p.at - 100.0 for p in shifted] == pytest.approx([p.at for p in first])


def test_the_plan_merges_streams_in_time_order_and_takes_entries_in_turn() -> None:
    entries = ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
    w = workload(stream("a", 10.0, entries=entries), stream("b", 30.0, "poisson"), duration_s=5.0)
    planned = list(plan(w, random.Random(0), origin=0.0))
    assert [p.at for p in planned] == sorted(p.at for p in planned)
    of_a = [p for p in planned if p.stream == 0]
    assert len(of_a) == 50
    assert [p.entry for p in of_a[:6]] == [0, 1, 2, 0, 1, 2]
    assert {p.entry for p in planned if p.stream == 1} == {0}


def test_one_streams_arrivals_do_not_move_when_another_streams_rate_changes() -> None:
    slow = workload(stream("a", 10.0, "poisson"), stream("b", 1.0, "poisson"))
    fast = workload(stream("a", 10.0, "poisson"), stream("b", 50.0, "poisson"))

    def of_a(w: Workload) -> list[Planned]:
        return [p for p in plan(w, random.Random(8), 0.0) if p.stream == 0]

    assert of_a(slow) == of_a(fast)


# --- judging one outcome ----------------------------------------------------------------------


def test_error_kinds_of_http_answers() -> None:
    assert http_error_kind(429, b"{}") == "http_429"
    assert http_error_kind(500, b"oops") == "http_500"
    openai_no_route = b'{"error": {"message": "x", "code": "no_route"}, "route": {}}'
    kserve_no_route = b'{"error": "nothing fits", "route": {"chosen": null}}'
    assert http_error_kind(503, openai_no_route) == "no_route"
    assert http_error_kind(503, kserve_no_route) == "no_route"
    chose = b'{"error": {"code": "backend_unavailable"}, "route": {"chosen": {"node": "a"}}}'
    assert http_error_kind(503, chose) == "http_503"
    assert http_error_kind(503, b"draining") == "http_503"


def test_a_streamed_answer_is_whole_only_with_its_done_event() -> None:
    assert sse_complete(b'data: {"x": 1}\n\ndata: [DONE]\n\n')
    assert not sse_complete(b'data: {"x": 1}\n\n')


@pytest.mark.parametrize(
    ("asked", "served", "spilled", "expected"),
    [
        ("city", "city", False, True),
        ("province", "city", False, True),  # tighter than asked is within
        ("city", "province", False, False),
        ("city", "city", True, False),  # a spilled answer is not within its tier
        (None, None, False, True),  # asked nothing: any answer is within
        ("any", "national", False, True),
        ("city", None, False, None),  # no x-hubhop-tier: cannot be told
        ("city", "moon", False, None),
    ],
)
def test_within_tier(
    asked: str | None, served: str | None, spilled: bool, expected: object
) -> None:
    assert within_tier(asked, served, spilled) is expected


def outcome(
    total_s: float, error: str | None = None, *, stream: int = 0, sent: float = 1.0, **more: Any
) -> Outcome:
    """An outcome planned at 1.0 s on the clock, its first byte half way through."""
    return Outcome(stream, 1.0, sent, total_s, total_s / 2, error=error, **more)


def test_within_deadline_needs_an_ok_answer_inside_the_deadline() -> None:
    assert within_deadline(outcome(0.05), 50.0)
    assert not within_deadline(outcome(0.051), 50.0)
    assert within_deadline(outcome(9.0), None)
    assert not within_deadline(outcome(0.01, "http_429"), 50.0)


# --- statistics and the report ----------------------------------------------------------------


def test_histograms_report_percentiles_in_ms_within_their_precision() -> None:
    histogram = new_histogram()
    for ms in range(1, 1001):
        record_seconds(histogram, ms / 1000.0)
    summary = latency_summary(histogram)
    assert summary["p50"] == pytest.approx(500.0, rel=0.002)
    assert summary["p99"] == pytest.approx(990.0, rel=0.002)
    assert summary["p99_9"] == pytest.approx(999.0, rel=0.002)
    assert summary["min"] == pytest.approx(1.0, rel=0.002)
    assert latency_summary(new_histogram())["p50"] is None


def test_every_outcome_is_counted_once_in_its_lane_and_tier_row() -> None:
    w = workload(
        stream("ct", 1.0, lane="emergency", tier="city", deadline_ms=100.0),
        stream("chat", 1.0, lane="standard", tier="province"),
        stream("chat2", 1.0, lane="standard", tier="province"),
    )
    stats = RunStats(w)
    stats.record(outcome(0.05, served_tier="city", node="n1"))  # in tier, in deadline
    stats.record(outcome(0.20, served_tier="city", node="n1"))  # in tier, late
    stats.record(outcome(0.03, served_tier="province", node="n2"))  # looser than asked
    stats.record(outcome(0.03, served_tier="city", spilled=True))  # spilled
    stats.record(outcome(0.01, "http_429", detail="429 full"))
    stats.record(outcome(0.01, "timeout", sent=1.5))
    stats.record(outcome(0.04, stream=1))  # no x-hubhop-tier: unknown
    stats.record(outcome(0.04, "no_route", stream=2))
    summary = report.run_summary(w, stats, elapsed_s=1.0)
    ct, chat = summary["groups"]
    assert (ct["lane"], ct["tier"], chat["lane"], chat["tier"]) == (
        "emergency", "city", "standard", "province",
    )  # fmt: skip
    assert (ct["sent"], ct["ok"], ct["failed"]) == (6, 4, 2)
    assert ct["errors"] == {"http_429": 1, "timeout": 1}
    assert (ct["within_tier"], ct["within_deadline"], ct["goodput"]) == (2, 3, 1)
    assert ct["served_by"] == {"n1": 2, "n2": 1}
    assert (chat["sent"], chat["ok"], chat["tier_unknown"], chat["within_tier"]) == (2, 1, 1, 0)
    assert chat["errors"] == {"no_route": 1}
    every = summary["all"]
    assert every["sent"] == summary["sent"] == 8
    assert every["ok"] + sum(every["errors"].values()) == 8
    assert every["total_ms"]["max"] == pytest.approx(200.0, rel=0.002)
    assert summary["client_lag_ms"]["max"] == pytest.approx(500.0, rel=0.002)
    assert summary["first_error"]["http_429"] == "429 full"
    assert ct["throughput_rps"] == pytest.approx(4 / w.duration_s)


def test_the_printed_report_has_a_row_per_lane_and_tier_and_names_the_errors() -> None:
    w = workload(stream("ct", 1.0, lane="emergency", tier="city"), stream("b", 1.0))
    stats = RunStats(w)
    stats.record(outcome(0.05, served_tier="city"))
    stats.record(outcome(0.05, "http_429", stream=1, detail="429 full"))
    text = "\n".join(report.lines(w, report.run_summary(w, stats, 10.2)))
    assert "sent 2 (0.2 req/s)" in text
    assert "emergency/city" in text and "default/default" in text
    assert "errors by kind:" in text and "default/default: http_429 1" in text
    assert "first http_429: 429 full" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("all ")]
    assert rows[0][:4] == ["all", "2", "1", "1"]  # sent, ok, failed
