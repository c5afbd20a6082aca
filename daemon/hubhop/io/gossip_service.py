"""Gossip in the daemon: membership and the capacity table, kept live and fed to the router.

Rules:
- The keyring comes from the config (inline keys or a keyring file, one base64 key per line),
  or from the keyring state file a rotation left (hubhop.io.keyring_state); a node never
  gossips in the clear.
- The channel's epoch is the wall-clock boot time in ns, so a restarted node's datagrams are
  newer than its previous life's and a replay of the old ones is refused.
- This node publishes its own capacity record at start, then checks every
  REPUBLISH_CHECK_S whether its load changed meaningfully or the maximum interval passed
  (`hubhop.core.republish`); it never republishes per request.
- Membership and record events update the scoring bridge: rows for every backend a record
  names, liveness from membership, links and coordinates for the path map.
- Latency: a LatencyMonitor (hubhop.core.latency_monitor) picks whom to probe; every probe
  reply and direct SWIM ack feeds it; our Vivaldi coordinate goes into every probe reply and,
  with the fresh measured links, into our record (republished when they move notably).
- On shutdown the node leaves (a LEFT broadcast, so peers mark it left, not failed) and gives
  that LEAVE_WAIT_S to go out before closing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from hubhop.core import swim
from hubhop.core.capacity import CapacityRecord, encode_record, host_of, record_from_config
from hubhop.core.capacity_table import CapacityTable, RecordRemoved, RecordUpdated
from hubhop.core.config import BackendConfig, NodeConfig
from hubhop.core.latency_monitor import Estimate, LatencyMonitor, ProbeSettings, to_wire
from hubhop.core.republish import RepublishPolicy
from hubhop.core.secure_channel import SecureChannel
from hubhop.core.vivaldi import Coordinate
from hubhop.io.emulated_wan import open_wan
from hubhop.io.gossip_transport import GossipTransport
from hubhop.io.keyring_state import keyring_saver, load_gossip_keyring
from hubhop.io.wan_delay import WanDelay
from hubhop.scoring.candidates import BackendLoad
from hubhop.scoring.route import scoring_model
from hubhop.scoring.scorer import Scorer

log = logging.getLogger(__name__)

# How often the node compares its live load with what it last published. The policy decides
# whether to publish; a second is fine-grained next to the gossip's own sub-second spread.
REPUBLISH_CHECK_S = 1.0
# A LEFT broadcast goes out on the next gossip ticks (0.1 s apart by default); half a second
# lets several go before the sockets close.
LEAVE_WAIT_S = 0.5

# A record publishes service_ms 0 until its node has measured one. The router then assumes a
# typical single inference on an accelerator: it only orders candidates whose other figures
# tie, and is replaced as soon as the node publishes a measurement.
UNMEASURED_SERVICE_MS = 50.0

SettingsT = TypeVar("SettingsT")
LoadSampler = Callable[[], Mapping[str, tuple[float, tuple[float, float, float], float]]]


def with_overrides(defaults: SettingsT, tuning: tuple[tuple[str, float], ...]) -> SettingsT:
    """Settings `defaults` with a config section's overrides, each in its default's type."""
    overrides: dict[str, Any] = {
        name: type(getattr(defaults, name))(value) for name, value in tuning
    }
    return dataclasses.replace(defaults, **overrides)  # type: ignore[type-var]  # any dataclass


def republish_policy(config: NodeConfig) -> RepublishPolicy:
    """The republish policy, with the config's interval for network changes if it gives one."""
    interval = config.latency.links_republish_s
    if interval is None:
        return RepublishPolicy()
    return RepublishPolicy(network_min_interval_s=interval)


class GossipService:
    def __init__(
        self,
        config: NodeConfig,
        http_addr: str,
        sample_load: LoadSampler,
        scorer: Scorer,
        in_rotation: Callable[[tuple[BackendConfig, ...]], tuple[BackendConfig, ...]] | None = None,
        grpc_addr: str = "",
    ) -> None:
        """`in_rotation`: the backends as the node offers them now (outlier detection: the
        ejected left out, fewer slots in slow start), for its record."""
        assert config.gossip is not None
        self.config = config
        self.in_rotation = in_rotation
        self.gossip = config.gossip
        self.http_addr = http_addr
        self.grpc_addr = grpc_addr  # "IP:PORT" of this node's gRPC server, "" for none
        self.sample_load = sample_load
        self.scorer = scorer
        self.table = CapacityTable()
        self.policy = republish_policy(config)
        keyring, self.keyring_source = load_gossip_keyring(self.gossip)
        self.channel = SecureChannel(keyring, config.node.name, time.time_ns(), random.Random())
        bind = (self.gossip.bind.host, self.gossip.bind.port)
        self.node: swim.GossipNode | None = None
        self.transport: GossipTransport | None = None
        self._bind = bind
        self._published: CapacityRecord | None = None
        self._published_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        # Members that membership says are dead or gone: a record about them, arriving late,
        # must not make them routable again.
        self._down: set[str] = set()
        self.latency: LatencyMonitor | None = None
        self._probe_task: asyncio.Task[None] | None = None
        # Each record's HTTP host: forwarded requests are taken only from these addresses.
        self._http_hosts: dict[str, str] = {}

    def peer_addr(self, node: str) -> str | None:
        """Where `node`'s daemon takes requests ("IP:PORT", its record's), None if unknown."""
        record = self.table.record(node)
        return None if record is None else record.http_addr

    def peer_grpc_addr(self, node: str) -> str | None:
        """Where `node`'s gRPC server takes calls ("IP:PORT"), None if unknown or none."""
        record = self.table.record(node)
        return None if record is None or not record.grpc_addr else record.grpc_addr

    def keys(self) -> tuple[bytes, ...]:
        """The keyring as it stands (a rotation changes it), primary first."""
        keyring = self.channel.keyring
        return (keyring.primary, *(k for k in keyring.keys if k != keyring.primary))

    def is_member_host(self, host: str) -> bool:
        """Does a member's record name `host` as its HTTP address?"""
        return host in self._http_hosts.values()

    @property
    def wan(self) -> WanDelay | None:
        return None if self.transport is None else self.transport.wan

    async def start(self) -> None:
        self.node = swim.GossipNode(
            self.config.node.name,
            self._bind,
            with_overrides(swim.GossipSettings(), self.gossip.tuning),
            self.channel,
            self.table,
            random.Random(),
            time.monotonic(),
        )
        # Key commands (hubhop keys) judge freshness by the wall clock; a rotation is saved.
        self.node.wall_offset_s = time.time() - time.monotonic()
        if self.gossip.keyring_state_file:
            self.node.key_commands.save = keyring_saver(self.gossip.keyring_state_file)
        self.latency = LatencyMonitor(
            self.config.node.name,
            self.config.latency.hubs,
            random.Random(),
            time.monotonic(),
            with_overrides(ProbeSettings(), self.config.latency.tuning),
        )
        self.transport = GossipTransport(self.node, self._bind, open_wan(self.config))
        self.transport.subscribe(self._on_event)
        await self.transport.start()
        self.publish(force=True)
        seeds = [(s.host, s.port) for s in self.gossip.seeds if (s.host, s.port) != self._bind]
        if seeds:
            self.node.join(seeds, time.monotonic())
        self.transport.pump()
        self._task = asyncio.create_task(self._republish_loop())
        self._probe_task = asyncio.create_task(self._probe_loop())

    def current_record(self) -> CapacityRecord:
        coordinate: tuple[float, ...] | None = None
        error, height = 0.0, 0.0
        links: tuple[tuple[str, float], ...] = ()
        if self.latency is not None and self.latency.vivaldi.updates > 0:
            c = self.latency.coordinate
            coordinate, error, height = c.vec, c.error, c.height
            links = self.latency.links(self.transport.now if self.transport else 0.0)
        config = self.config
        if self.in_rotation is not None:
            config = dataclasses.replace(config, backends=self.in_rotation(config.backends))
        return record_from_config(
            config,
            str(self.gossip.bind),
            self.http_addr,
            self.sample_load(),
            coordinate=coordinate,
            coordinate_error=error,
            height=height,
            links=links,
            grpc_addr=self.grpc_addr,
        )

    def publish(self, force: bool = False) -> bool:
        """Publish this node's record when it changed meaningfully (or when forced)."""
        assert self.node is not None and self.transport is not None
        now = self.transport.now
        record = self.current_record()
        if not force and not self.policy.should_publish(
            self._published, record, self._published_at, now
        ):
            return False
        if log.isEnabledFor(logging.DEBUG):
            log.debug("publishing record: %s", self._why_publish(record, force))
        self.node.update_record(encode_record(record), now)
        self._published, self._published_at = record, now
        self.transport.pump()
        return True

    def _why_publish(self, record: CapacityRecord, force: bool) -> str:
        last, policy = self._published, self.policy
        if force or last is None:
            return "forced" if force else "first"
        rules = (
            ("identity", policy.identity_changed),
            ("load", policy.load_changed),
            ("network", policy.network_changed),
        )
        return ", ".join(name for name, changed in rules if changed(last, record)) or "drift"

    async def _probe_loop(self) -> None:
        """Send the latency probes the monitor asks for, when it asks."""
        assert self.node is not None and self.transport is not None and self.latency is not None
        while True:
            try:
                for name in self.latency.due(self.transport.now):
                    # Stamped as it leaves, not before due() chose it: choosing a round's
                    # targets estimates every member, which takes longer than a city's RTT.
                    stamp = self.transport.now
                    if self.node.send_probe(name, stamp):
                        self.transport.pump(made_at=stamp)  # the node learns when it left
                wait = self.latency.next_deadline() - self.transport.now
            except Exception:
                log.exception("latency probing failed")
                wait = 1.0
            await asyncio.sleep(max(0.01, wait))

    def rtt_json(self, a: str, b: str) -> dict[str, Any] | None:
        """The estimate between members `a` and `b`, as the API shows it (None: unknown)."""
        if self.latency is None or self.transport is None:
            return None
        estimate = self.latency.estimate_between(a, b, self.transport.now)
        return None if estimate is None else estimate_json(estimate)

    def probe_status(self) -> dict[str, Any]:
        """This node's side of probing: its coordinate, what its probes cost, the emulated WAN."""
        if self.latency is None or self.transport is None or self.node is None:
            return {}
        c = self.latency.coordinate
        counters = self.node.counters
        status: dict[str, Any] = {
            "coordinate": {
                "vec": [round(x, 5) for x in c.vec],
                "height": round(c.height, 5),
                "error": round(c.error, 4),
                "adjustment": round(c.adjustment, 5),
                "updates": self.latency.vivaldi.updates,
            },
            "hubs": sorted(self.latency.hubs),
            "probes_sent": counters["latency_probes"],
            "probes_answered": counters["probes_answered"],
            # Bytes of probe and reply datagrams beyond the gossip they carried along.
            "probe_bytes_sent": counters["latency_probe_bytes"],
            "wan": None,
        }
        wan = self.transport.wan
        if wan is not None:
            status["wan"] = {
                "topology": wan.model.topology.name,
                "site": wan.own_site,
                "precise": wan.precise,
                "lateness_ms": wan.lateness_ms,
                **dataclasses.asdict(wan.counters),
            }
        return status

    def peers(self) -> list[dict[str, Any]]:
        """The probe table: per member, what the probes measured and what this node estimates."""
        if self.latency is None or self.transport is None or self.node is None:
            return []
        now = self.transport.now
        out = []
        for member in sorted(self.node.members(), key=lambda m: m.name):
            if member.name == self.config.node.name:
                continue
            entry: dict[str, Any] = {"name": member.name, "state": member.state}
            snap = self.latency.rtt.snapshot(member.name, now)
            if snap is not None:
                entry["probe"] = {
                    "samples": snap.samples,
                    "min_ms": round(snap.min_ms, 4),
                    "srtt_ms": round(snap.srtt_ms, 4),
                    "rttvar_ms": round(snap.rttvar_ms, 4),
                    "p50_ms": round(snap.p50_ms, 4),
                    "p99_ms": round(snap.p99_ms, 4),
                    "loss_rate": round(snap.loss_rate, 4),
                    "last_sample_age_s": round(snap.last_sample_age_s, 3),
                    "fresh": snap.fresh,
                }
            estimate = self.latency.estimate(member.name, now)
            if estimate is not None:
                entry["estimate"] = estimate_json(estimate)
            out.append(entry)
        return out

    async def _republish_loop(self) -> None:
        while True:
            await asyncio.sleep(REPUBLISH_CHECK_S)
            try:
                self.publish()
            except Exception:
                log.exception("republishing this node's record failed")

    def reconfigure(self, config: NodeConfig) -> None:
        """A reloaded config changes what this node fronts (and which hubs it probes):
        publish it at once."""
        self.config = config
        self.policy = republish_policy(config)
        if self.latency is not None:
            self.latency.set_hubs(config.latency.hubs)
        self.publish(force=True)

    def _on_event(self, event: swim.GossipEvent) -> None:
        if isinstance(event, swim.RecordChanged):
            self._drain_table()
            return
        if isinstance(event, swim.RttSample):
            if self.latency is not None and self.transport is not None and self.node is not None:
                self.latency.on_sample(
                    event.name, event.rtt_ms, event.coordinate, self.transport.now
                )
                self.node.coordinate = to_wire(self.latency.coordinate)  # what replies carry
            return
        name = getattr(event, "name", None)
        if name is None or name == self.config.node.name:
            return
        if isinstance(event, swim.MemberJoined | swim.MemberAlive):
            self._down.discard(name)
            self.scorer.table.set_alive(name, True)
            if self.latency is not None:
                self.latency.member_up(name)
        elif isinstance(event, swim.MemberDead | swim.MemberLeft):
            self._down.add(name)
            self.scorer.table.set_alive(name, False)
            if self.latency is not None:
                self.latency.member_down(name)
        elif isinstance(event, swim.MemberReaped):
            self._down.discard(name)
            self.scorer.table.remove_node(name)
            self.scorer.paths.remove_node(name)
        if not isinstance(event, swim.MemberSuspect):
            log.info("member %s: %s", name, type(event).__name__)

    def _drain_table(self) -> None:
        while (change := self.table.next_event()) is not None:
            if isinstance(change, RecordUpdated):
                self._apply_record(change.record)
            elif isinstance(change, RecordRemoved):
                self._http_hosts.pop(change.name, None)
                self.scorer.table.remove_node(change.name)
                self.scorer.paths.remove_node(change.name)

    def _apply_record(self, record: CapacityRecord) -> None:
        self._http_hosts[record.node] = host_of(record.http_addr)
        scorer = self.scorer
        scorer.table.remove_node(record.node)
        alive = record.node not in self._down
        for backend in record.backends:
            scorer.table.upsert(
                record.node,
                backend.name,
                BackendLoad(
                    models=tuple(
                        scoring_model(p, m) for p in backend.protocols for m in backend.models
                    ),
                    chip=backend.chip,
                    price=backend.price,
                    green_share=backend.green_share,
                    slots=backend.slots,
                    emergency_reserve=backend.emergency_reserve,
                    busy=backend.busy,
                    queue=backend.queue,
                    service_ms=backend.service_ms or UNMEASURED_SERVICE_MS,
                    alive=alive,
                ),
            )
        scorer.paths.remove_links_from(record.node)  # a link the node no longer reports is gone
        for peer, rtt_ms in record.links:
            scorer.paths.set_link(record.node, peer, rtt_ms)
        if record.coordinate is not None:
            scorer.paths.set_coordinate(record.node, record.coordinate, record.height)
            if self.latency is not None:
                # records carry no Vivaldi adjustment term: estimates from them go without it
                coordinate = Coordinate(
                    record.coordinate, record.height, record.coordinate_error, 0.0
                )
                self.latency.set_coordinate(record.node, coordinate)

    def members(self) -> list[dict[str, Any]]:
        """Members as this node sees them, with what each one's record says."""
        assert self.node is not None
        records = self.table.records()
        out = []
        for member in sorted(self.node.members(), key=lambda m: m.name):
            entry: dict[str, Any] = {
                "name": member.name,
                "addr": f"{member.addr[0]}:{member.addr[1]}",
                "state": member.state,
                "incarnation": member.incarnation,
            }
            held = records.get(member.name)
            if held is not None:
                version, record = held
                entry.update(
                    record_version=version,
                    role=record.role,
                    region=record.region,
                    city=record.city,
                    http=record.http_addr,
                    backends=[b.name for b in record.backends],
                    models=sorted({m for b in record.backends for m in b.models}),
                    # Its Vivaldi coordinate (ms of round trip): where a map places it.
                    coordinate=None if record.coordinate is None else list(record.coordinate),
                )
            out.append(entry)
        return out

    def counters(self) -> dict[str, int]:
        assert self.node is not None and self.transport is not None
        merged: dict[str, int] = dict(self.node.counters)
        merged.update({f"transport_{k}": v for k, v in self.transport.counters.items()})
        merged.update({f"drop_{k}": v for k, v in self.channel.drops.items()})
        return merged

    async def stop(self) -> None:
        for task in (self._task, self._probe_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.transport is not None:
            await self.transport.leave(LEAVE_WAIT_S)
            await self.transport.close()


def estimate_json(estimate: Estimate) -> dict[str, Any]:
    """An estimate as the API shows it (one-way figures are half the round trip)."""
    return {
        "rtt_ms": round(estimate.rtt_ms, 4),
        "one_way_ms": round(estimate.one_way_ms, 4),
        "conservative_one_way_ms": round(estimate.conservative_one_way_ms, 4),
        "tier": estimate.tier,
        "source": estimate.source,
        "samples": estimate.samples,
        "uncertainty": round(estimate.uncertainty, 4),
    }
