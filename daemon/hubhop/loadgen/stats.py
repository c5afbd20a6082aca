"""What a run measured, per (lane, tier): counts, errors by kind, and HDR latency histograms.

Rules:
- One row per (lane, tier) asked, in the order the workload's streams first name it; the
  `all` row merges them. Every outcome is recorded once, in its stream's row.
- Where each ok answer was served (x-hubhop-node) and the path it took (x-hubhop-path) are
  counted per row.
- Latency goes into HDR histograms (the `hdrhistogram` package): time to first byte and total,
  of ok answers only, in microseconds. An error's latency says how fast it failed, which is
  not what a percentile of service should mix in; errors are counted by kind instead.
- The client's own lag (sent - planned) has its own histogram over every request, so a report
  can tell a slow server from a client that could not keep its schedule.
- Rates are per second of the run's planned duration: the load was offered over that span.
- Pure: no clock; outcomes carry their times.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram

from hubhop.loadgen.outcome import Outcome, is_shed, within_deadline, within_tier
from hubhop.loadgen.workload import Stream, Workload

# Microseconds: a loopback answer takes tens of them, so anything coarser would round a fast
# server to zero.
US_PER_S = 1_000_000
# A day: above any timeout a workload may set, so no latency is ever out of range.
HIGHEST_US = 24 * 3600 * US_PER_S
# Three significant figures: a value is kept within 0.1%, far inside the 5% a report is held to,
# in a few hundred kB per histogram.
SIGNIFICANT_FIGURES = 3
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99_9", 99.9),
)


def new_histogram() -> Any:
    return HdrHistogram(1, HIGHEST_US, SIGNIFICANT_FIGURES)


def record_seconds(histogram: Any, seconds: float) -> None:
    histogram.record_value(min(HIGHEST_US, max(0, round(seconds * US_PER_S))))


def latency_summary(histogram: Any) -> dict[str, float | None]:
    """Percentiles, min, mean and max in milliseconds; None for each when nothing was recorded."""
    names = [name for name, _ in PERCENTILES] + ["min", "mean", "max"]
    if histogram.get_total_count() == 0:
        return dict.fromkeys(names)
    ms = {name: histogram.get_value_at_percentile(p) / 1000.0 for name, p in PERCENTILES}
    ms["min"] = histogram.get_min_value() / 1000.0
    ms["mean"] = histogram.get_mean_value() / 1000.0
    ms["max"] = histogram.get_max_value() / 1000.0
    return {name: round(value, 3) for name, value in ms.items()}


def cdf_points(histogram: Any) -> list[tuple[float, float]]:
    """(latency ms, fraction of answers at or below it) at every recorded value: the CDF."""
    total = histogram.get_total_count()
    if total == 0:
        return []
    return [
        (step.value_iterated_to / 1000.0, step.total_count_to_this_value / total)
        for step in histogram.get_recorded_iterator()
    ]


class GroupStats:
    """The counters and histograms of one (lane, tier) row."""

    def __init__(self, lane: str, tier: str) -> None:
        self.lane = lane
        self.tier = tier
        self.sent = 0
        self.ok = 0
        self.within_tier = 0
        self.tier_unknown = 0
        self.within_deadline = 0
        self.goodput = 0
        self.errors: Counter[str] = Counter()
        self.served_by: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()  # x-hubhop-path of ok answers
        self.ttfb = new_histogram()
        self.total = new_histogram()

    @property
    def label(self) -> str:
        return f"{self.lane}/{self.tier}"

    @property
    def shed(self) -> int:
        """Requests the network turned away (429, 503, no route): part of the failed ones."""
        return sum(n for kind, n in self.errors.items() if is_shed(kind))

    def record(self, outcome: Outcome, stream: Stream) -> None:
        self.sent += 1
        if not outcome.ok:
            self.errors[outcome.error or "other"] += 1
            return
        self.ok += 1
        if outcome.node:
            self.served_by[outcome.node] += 1
        if outcome.path:
            self.paths[outcome.path] += 1
        if outcome.ttfb_s is not None:
            record_seconds(self.ttfb, outcome.ttfb_s)
        record_seconds(self.total, outcome.total_s)
        in_tier = within_tier(stream.asked_tier, outcome.served_tier, outcome.spilled)
        if in_tier is None:
            self.tier_unknown += 1
        in_deadline = within_deadline(outcome, stream.deadline_ms)
        self.within_tier += bool(in_tier)
        self.within_deadline += in_deadline
        self.goodput += bool(in_tier) and in_deadline

    def absorb(self, other: GroupStats) -> None:
        """Add `other`'s counts and histograms to this row's (for the `all` row)."""
        for name in ("sent", "ok", "within_tier", "tier_unknown", "within_deadline", "goodput"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)
        self.served_by.update(other.served_by)
        self.paths.update(other.paths)
        self.ttfb.add(other.ttfb)
        self.total.add(other.total)

    def summary(self, duration_s: float) -> dict[str, Any]:
        def share(count: int) -> float | None:
            return round(count / self.ok, 4) if self.ok else None

        return {
            "lane": self.lane,
            "tier": self.tier,
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.sent - self.ok,  # every request not answered ok, shed included
            "shed": self.shed,
            "errors": dict(sorted(self.errors.items())),
            "throughput_rps": round(self.ok / duration_s, 3),
            "within_tier": self.within_tier,
            "within_tier_share": share(self.within_tier),
            "tier_unknown": self.tier_unknown,
            "within_deadline": self.within_deadline,
            "within_deadline_share": share(self.within_deadline),
            "goodput": self.goodput,
            "goodput_rps": round(self.goodput / duration_s, 3),
            "ttfb_ms": latency_summary(self.ttfb),
            "total_ms": latency_summary(self.total),
            "served_by": dict(self.served_by.most_common()),
            "paths": dict(self.paths.most_common()),
            "hdr": {
                "ttfb_us": self.ttfb.encode().decode("ascii"),
                "total_us": self.total.encode().decode("ascii"),
            },
        }


class RunStats:
    """Every outcome of a run, recorded as it arrives, so memory stays bounded by the rows."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.groups: dict[tuple[str, str], GroupStats] = {}
        for stream in workload.streams:
            if stream.group not in self.groups:
                self.groups[stream.group] = GroupStats(*stream.group)
        self.lag = new_histogram()
        self.first_error: dict[str, str] = {}

    def record(self, outcome: Outcome) -> None:
        stream = self.workload.streams[outcome.stream]
        self.groups[stream.group].record(outcome, stream)
        record_seconds(self.lag, outcome.lag_s)
        if outcome.error and outcome.error not in self.first_error:
            self.first_error[outcome.error] = outcome.detail

    @property
    def sent(self) -> int:
        return sum(g.sent for g in self.groups.values())

    def merged(self) -> GroupStats:
        every = GroupStats("all", "all")
        for group in self.groups.values():
            every.absorb(group)
        return every
