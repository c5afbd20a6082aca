"""What `GET /metrics` shows: one node's figures in the Prometheus exposition format.

Rules:
- One registry per node (`NodeMetrics.registry`), never prometheus-client's global one: tests
  and embedders run several nodes in one process, and each node's scrape shows only its own.
- Two kinds of figures. Counted as they happen, here: requests by lane, tier and outcome
  (`hubhop.io.request_trace` decides the outcome), the routing decision's time and the
  latency hubhop adds (histograms with sub-millisecond buckets), and the RTT of every latency
  sample. Read at scrape time (`hubhop.io.node_collector`): backends, admission, members and
  gossip.
- Added latency is the `route` figure of the entry's server-timing: at each daemon on the
  request's path, from its handler starting to the request going out again, summed. It holds
  parsing, the decision, the tries a re-route threw away, the hedge delay before a copy that
  won, and at the entry the reading of an OpenAI body (held whole to learn its model: a slow
  upload shows here). It leaves out the
  wait for an admission slot, the network and the backend; the answer's way back (a header
  rewrite per hop) falls inside the network and backend figures, which end at the answer head.
- The request path pays for one dict increment and at most two bucket increments: plain ints
  in lists and dicts (`LoopHistogram`), turned into metric families only when scraped.
  prometheus-client's own Counter and Histogram take a lock per update and walk the buckets
  one by one: 4 µs a request, against 1 µs here. No lock is needed: the daemon is one event
  loop, and both the updates and the scrape run on it.
- Every label is a closed set: lanes and tiers from `hubhop.core.tiers` (anything else is
  "unknown"), outcomes from OUTCOMES, peer roles from the config's roles. No label carries
  what a client or a peer chose (a model name, a node name, an address), so a hostile client
  or a cluster of thousands cannot multiply the series.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from hubhop.core.admission import Admission
from hubhop.core.config import ROLES, NodeConfig
from hubhop.core.gossip_events import RttSample
from hubhop.core.tiers import LANES, TIERS
from hubhop.io.node_collector import NodeCollector

if TYPE_CHECKING:
    from hubhop.io.gossip_service import GossipService

# What became of a request this node took from an app (hubhop.io.request_trace says which):
# served in its tier; served outside it (spilled); refused for want of capacity (admission
# full, draining: retry later or elsewhere); no node serves the model within what the request
# allows; rejected by hubhop as bad (a 4xx of ours: bad hint, body too large, bad JSON);
# failed (a 5xx: backend unreachable, broken or too slow); the client left before its answer.
OUTCOMES = ("served", "spilled", "refused", "no_route", "rejected", "failed", "client_gone")
# A lane or tier the request never got to say (it was refused before its hints were read).
UNKNOWN = "unknown"

# Decision buckets, 10 µs to 50 ms: a decision over a few hundred rows takes tens of
# microseconds with the kernels warm; milliseconds mean a table of thousands or a cold path.
DECISION_BUCKETS_S = (
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
)  # fmt: skip
# Added-latency buckets, 25 µs to 1 s: hubhop's own share of a request is tens to hundreds of
# microseconds; the top buckets catch an OpenAI body that was slow to arrive and re-routes.
ADDED_BUCKETS_S = (
    25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3,
    250e-3, 1.0,
)  # fmt: skip
# Round-trip buckets, 100 µs to 1 s, with edges at twice each tier's one-way bound (city 2 ms,
# province 10 ms, region 14 ms, national 20 ms), so a bucket boundary says which tier a link
# is in; below, loopback and LAN fractions of a millisecond.
RTT_BUCKETS_S = (
    100e-6, 250e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 14e-3, 20e-3, 30e-3, 50e-3, 100e-3,
    250e-3, 1.0,
)  # fmt: skip


class LoopHistogram:
    """A histogram updated from the event loop only: a count per bucket (the last one past the
    highest bound) and the sum, made cumulative when scraped."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as Prometheus's `le` (value <= bound) counts.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, +Inf last, as HistogramMetricFamily takes them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            out.append(("+Inf" if math.isinf(bound) else repr(bound), running))
        return out


# Why a request was turned away at the door (hubhop.io.local_endpoint's middleware).
TURNED_AWAY_REASONS = ("unauthorized", "rate_limited")


class NodeMetrics(Collector):
    """One node's metrics: the request-path hooks and the registry a scrape reads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.forwarded: dict[tuple[str, str], int] = {}
        # Requests turned away before any handler read them: by why (a closed set).
        self.turned_away: dict[str, int] = {}
        self.decision_seconds = LoopHistogram(DECISION_BUCKETS_S)
        self.added_seconds = LoopHistogram(ADDED_BUCKETS_S)
        self.rtt_seconds = {role: LoopHistogram(RTT_BUCKETS_S) for role in (*ROLES, UNKNOWN)}
        self.registry.register(self)

    def count_request(self, lane: str, tier: str, outcome: str) -> None:
        """One request taken from an app, finished with `outcome` (one of OUTCOMES)."""
        key = (lane if lane in LANES else UNKNOWN, tier if tier in TIERS else UNKNOWN, outcome)
        self.requests[key] = self.requests.get(key, 0) + 1

    def count_forwarded(self, lane: str, outcome: str) -> None:
        """One request a peer sent here, finished with `outcome`; the lane is the peer's word,
        so anything but a known lane is counted as unknown."""
        key = (lane if lane in LANES else UNKNOWN, outcome)
        self.forwarded[key] = self.forwarded.get(key, 0) + 1

    def count_turned_away(self, reason: str) -> None:
        """One request refused at the door (TURNED_AWAY_REASONS), before it was read or routed."""
        reason = reason if reason in TURNED_AWAY_REASONS else UNKNOWN
        self.turned_away[reason] = self.turned_away.get(reason, 0) + 1

    def watch_node(
        self,
        config: Callable[[], NodeConfig],
        admission: Callable[[], Admission | None],
        gossip: Callable[[], GossipService | None],
    ) -> None:
        """Read the node's live figures at every scrape, through these (the config in force,
        admission, the gossip service once started)."""
        self.registry.register(NodeCollector(config, admission, gossip))

    def watch_gossip(self, gossip: GossipService) -> None:
        """Observe every RTT sample the gossip node measures, by its peer's role."""
        assert gossip.transport is not None, "watch_gossip() after the service started"
        by_role = self.rtt_seconds
        unknown = by_role[UNKNOWN]

        def on_event(event: object) -> None:
            if isinstance(event, RttSample):
                record = gossip.table.record(event.name)
                histogram = unknown if record is None else by_role.get(record.role, unknown)
                histogram.observe(event.rtt_ms / 1000.0)

        gossip.transport.subscribe(on_event)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape's body and content type, in the format the scraper's Accept asks for
        (the Prometheus text format unless it asks for OpenMetrics)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type

    def describe(self) -> list[Metric]:
        return []  # the families are made at each scrape (collect)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "hubhop_requests",
            "Inference requests this node took from apps, by lane, tier asked and outcome.",
            labels=("lane", "tier", "outcome"),
        )
        for key, count in sorted(self.requests.items()):
            requests.add_metric(key, count)
        yield requests
        forwarded = CounterMetricFamily(
            "hubhop_forwarded_requests",
            "Inference requests peer daemons sent here to serve or relay, by lane and outcome.",
            labels=("lane", "outcome"),
        )
        for pair, count in sorted(self.forwarded.items()):
            forwarded.add_metric(pair, count)
        yield forwarded
        turned_away = CounterMetricFamily(
            "hubhop_turned_away_requests",
            "Requests refused before they were read or routed (no valid token, over the client's"
            " rate), by reason; not in hubhop_requests_total.",
            labels=("reason",),
        )
        for reason, count in sorted(self.turned_away.items()):
            turned_away.add_metric((reason,), count)
        yield turned_away
        yield _histogram(
            "hubhop_route_decision_seconds",
            "Time spent deciding a request's route (every decision, re-routes included).",
            self.decision_seconds,
        )
        yield _histogram(
            "hubhop_added_latency_seconds",
            "Time hubhop held an answered request before sending it on, summed over the daemons"
            " it passed (server-timing's route): reading and checking it, deciding, re-routing;"
            " not the admission queue, the network or the backend.",
            self.added_seconds,
        )
        rtt = HistogramMetricFamily(
            "hubhop_probe_rtt_seconds",
            "Round trips measured to peers (latency probes and SWIM acks), by the peer's role.",
            labels=("peer_role",),
        )
        for role, histogram in self.rtt_seconds.items():
            rtt.add_metric((role,), histogram.buckets(), histogram.total)
        yield rtt


def _histogram(name: str, documentation: str, histogram: LoopHistogram) -> Metric:
    family = HistogramMetricFamily(name, documentation)
    family.add_metric((), histogram.buckets(), histogram.total)
    return family
