"""What a scrape reads live: this node's backends, admission's decisions, members and gossip.

Rules:
- Read at scrape time, through callables the app hands over (the config in force, admission,
  the gossip service once started), so these figures cost nothing between scrapes and are
  never stale.
- Labels are closed sets: backends from this node's own config, lanes from
  `hubhop.core.tiers`, member states from `hubhop.core.members`, drop reasons from
  DROP_REASONS (each a sum of the gossip's own counters), admission's outcomes and reasons
  from `hubhop.core.admission`. Nothing a peer names (a node, an address) becomes a label:
  a cluster of thousands scrapes as small as a cluster of two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hubhop import __version__
from hubhop.core.admission import Admission, backend_slots
from hubhop.core.config import NodeConfig
from hubhop.core.members import MemberState
from hubhop.core.tiers import LANES

if TYPE_CHECKING:
    from hubhop.io.gossip_service import GossipService

# Drop reasons of gossip input. From the secure channel (hubhop.core.secure_channel):
# malformed, version, oversize, bad_key (no installed key opens it: a wrong key or a tampered
# byte), replay, stale (a previous life of its sender). Inside an authentic datagram or
# stream: malformed again, and unknown_type (a newer peer's message). From the transport: a
# full send buffer, streams refused for being too many at once, streams that failed.
DROP_REASONS = (
    "bad_key",
    "replay",
    "stale",
    "malformed",
    "version",
    "oversize",
    "unknown_type",
    "send_buffer_full",
    "too_many_streams",
    "stream_failed",
)
# The gossip counters (GossipService.counters) each drop reason sums; a stream's failures are
# counted by exception type, so those go by prefix (_STREAM_FAILED).
_DROP_COUNTERS: dict[str, tuple[str, ...]] = {
    "bad_key": ("dropped_bad_key",),
    "replay": ("dropped_replay",),
    "stale": ("dropped_stale",),
    "malformed": ("dropped_malformed", "msg_malformed", "stream_malformed"),
    "version": ("dropped_version",),
    "oversize": ("dropped_oversize",),
    "unknown_type": ("msg_unknown_type",),
    "send_buffer_full": ("transport_udp_send_dropped",),
    "too_many_streams": ("transport_streams_refused",),
}
_STREAM_FAILED = ("transport_stream_in_failed_", "transport_stream_out_failed_")
MEMBER_STATES = tuple(state.value for state in MemberState)


class NodeCollector(Collector):
    """The figures read at scrape time from admission, the config and the gossip service."""

    def __init__(
        self,
        config: Callable[[], NodeConfig],
        admission: Callable[[], Admission | None],
        gossip: Callable[[], GossipService | None],
    ) -> None:
        self._config = config
        self._admission = admission
        self._gossip = gossip

    def describe(self) -> list[Metric]:
        # Nothing declared up front: collect() reads live state, which is not there to read
        # when the registry is built.
        return []

    def collect(self) -> Iterator[Metric]:
        config = self._config()
        info = GaugeMetricFamily(
            "hubhop_node_info",
            "This node: its name, role and place, and the hubhop version; always 1.",
            labels=("node", "role", "region", "city", "version"),
        )
        node = config.node
        info.add_metric((node.name, node.role, node.region, node.city, __version__), 1)
        yield info
        admission = self._admission()
        if admission is not None:
            yield from backend_metrics(config, admission)
        gossip = self._gossip()
        if gossip is not None and gossip.node is not None and gossip.transport is not None:
            states = [m.state for m in gossip.node.members()]
            yield from gossip_metrics(gossip.counters(), states)


def backend_metrics(config: NodeConfig, admission: Admission) -> Iterator[Metric]:
    """Slots, reserve, busy slots, queues per lane and service time of this node's backends,
    and admission's decisions. Backends come from this node's config: a bounded set."""
    slots = GaugeMetricFamily(
        "hubhop_backend_slots", "Concurrent requests a backend takes.", labels=("backend",)
    )
    reserve = GaugeMetricFamily(
        "hubhop_backend_emergency_reserve_slots",
        "Slots of a backend only the emergency lane may take.",
        labels=("backend",),
    )
    busy = GaugeMetricFamily(
        "hubhop_backend_busy_slots", "Slots of a backend held now.", labels=("backend",)
    )
    queued = GaugeMetricFamily(
        "hubhop_backend_queued_requests",
        "Requests waiting for a slot of a backend, per lane.",
        labels=("backend", "lane"),
    )
    service = GaugeMetricFamily(
        "hubhop_backend_service_seconds",
        "A backend's smoothed service time, as admission measured it (absent until measured).",
        labels=("backend",),
    )
    for name, (total, emergency) in backend_slots(config.backends).items():
        slots.add_metric((name,), total)
        reserve.add_metric((name,), emergency)
    for name, (held, queues, service_ms) in admission.load().items():
        busy.add_metric((name,), held)
        for lane, waiting in zip(LANES, queues, strict=True):
            queued.add_metric((name, lane), waiting)
        if service_ms > 0:
            service.add_metric((name,), service_ms / 1000.0)
    decisions = CounterMetricFamily(
        "hubhop_admission_decisions",
        "Admission's decisions on this node's backends: admitted, queued, refused, released,"
        " cancelled, by lane and reason.",
        labels=("decision", "lane", "reason"),
    )
    for (decision, lane, reason), count in sorted(admission.counts().items()):
        decisions.add_metric((decision, lane, reason), count)
    yield from (slots, reserve, busy, queued, service, decisions)


def gossip_metrics(counters: Mapping[str, int], states: Sequence[str]) -> Iterator[Metric]:
    """Members by state, and the gossip's traffic and drops, from GossipService.counters()."""
    members = GaugeMetricFamily(
        "hubhop_members", "Members as this node sees them (itself included), by state.",
        labels=("state",),
    )  # fmt: skip
    for state in MEMBER_STATES:
        members.add_metric((state,), sum(1 for s in states if s == state))
    yield members
    for name, what, keys in (
        ("datagrams", "Gossip UDP datagrams", ("datagrams_received", "datagrams_sent")),
        ("bytes", "Bytes of gossip UDP datagrams", ("bytes_received", "bytes_sent")),
        ("streams", "Push-pull TCP streams completed", ("streams_in", "streams_out")),
    ):
        family = CounterMetricFamily(
            f"hubhop_gossip_{name}", f"{what}, in and out.", labels=("direction",)
        )
        for direction, key in zip(("in", "out"), keys, strict=True):
            family.add_metric((direction,), counters.get(f"transport_{key}", 0))
        yield family
    dropped = CounterMetricFamily(
        "hubhop_gossip_dropped",
        "Gossip input refused or lost, by reason (see hubhop.io.node_collector).",
        labels=("reason",),
    )
    for reason, count in drop_counts(counters).items():
        dropped.add_metric((reason,), count)
    yield dropped


def drop_counts(counters: Mapping[str, int]) -> dict[str, int]:
    """Every drop reason in DROP_REASONS with its count (0 included), from the gossip's own
    counters."""
    counts = {
        reason: sum(counters.get(key, 0) for key in keys) for reason, keys in _DROP_COUNTERS.items()
    }
    counts["stream_failed"] = sum(v for k, v in counters.items() if k.startswith(_STREAM_FAILED))
    return {reason: counts[reason] for reason in DROP_REASONS}
