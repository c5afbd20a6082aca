"""What the routing benchmark runs: the slice of the network, the systems, the phases and the load.

Rules:
- The network is a slice of the shipped topology (`hubhop.lab.network_slice`): hospitals in the
  four Hubei cities that have one (the load's entry points), those cities' data centres, the
  six other Hubei data centres nearest Wuhan, four key cities and five hub clusters: 24 sites,
  each one real daemon and one demo backend (`hubhop.lab.profiles`).
- Every system is offered the same load, from the same seeds, through the same four entry
  points, onto the same 24 backends; only who decides differs.
- Phases (each a `hubhop loadgen` workload): `unloaded`, the emergency CT reads alone (each
  system's own reference for its emergency p99); `skew`, the hospital mix with Wuhan sending
  most of it, so that the Wuhan metro's data centres are over-asked; `flood`, the CT reads again
  under a batch flood at FLOOD_FACTOR times the network's batch capacity.
- Pure: builds workloads and numbers; starting anything is the package's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hubhop.core.service_time import ServiceTimeDistribution
from hubhop.lab.profiles import BATCH, CHAT, CT, BackendProfile
from hubhop.loadgen.workload import Stream, Workload

# Each kind of process on its own /24 of loopback, this benchmark's alone (topologies/README.md
# lists who has which): daemons, demo backends, the gateway's WAN relays (one per site), the
# baselines' entry points (HAProxy frontends, and the source address of HAProxy's connections,
# which tells a relay which hospital a request came from), and the oracle's entry points.
DAEMON_NET = "127.0.52"
BACKEND_NET = "127.0.53"
RELAY_NET = "127.0.54"
SOURCE_NET = "127.0.55"
ORACLE_NET = "127.0.56"
GATEWAY_PORT = 8080
# One HAProxy frontend port per baseline policy on each entry's address.
BASELINE_PORTS = {"least-conn": 8081, "round-robin": 8082, "random": 8083, "static-nearest": 8084}
# hubhop, the floor, then the baselines (best expected first). A round runs each phase on every
# system, the order rotated by one each round, so noise lands on all of them alike.
SYSTEMS: tuple[str, ...] = ("hubhop", "oracle", *BASELINE_PORTS)

# The slice: 4 hospitals (every Hubei city with a hospital and a data centre), 5 data centres in
# their cities, 6 more Hubei data centres (the Wuhan metro's and Suizhou: where Wuhan's load can
# go within the city and province tiers), the 4 nearest key cities and 5 nearest hubs: 24 sites,
# issue 7's "at least 24 real daemons", in about 6 GB.
SLICE_CITIES = 4
SLICE_PROVINCE = 6
SLICE_KEY_CITIES = 4
SLICE_HUBS = 5

# The hospital mix's three kinds of request (as in hubhop/loadgen/workloads/hospital.toml), each
# lane with its tier. CT reads: 4 MiB binary tensors (eight 512x512 16-bit slices), in the city
# or nowhere, due within 10 s. Chat: streamed, 32 tokens, within the province. Batch: long jobs
# (480 tokens: 6-8 s on an accelerator) anywhere, cheapest first.
CT_BODY_BYTES = 4 * 1024 * 1024
CHAT_BODY_BYTES = 2048
CHAT_TOKENS = 32
BATCH_BODY_BYTES = 16384
BATCH_TOKENS = 480
LANE_OF = {CT: "emergency", CHAT: "standard", BATCH: "batch"}
TIER_OF = {CT: "city", CHAT: "province", BATCH: "any"}
# The batch flood: three times what every batch slot of the slice can finish per second.
FLOOD_FACTOR = 3.0


@dataclass(frozen=True)
class Rates:
    """Requests/s per entry point: `hot` for the first (Wuhan's hospital), `cold` for others."""

    hot: float
    cold: float

    def at(self, index: int) -> float:
        return self.hot if index == 0 else self.cold


# The skew: Wuhan's hospital sends four to eight times what each other hospital does. Chat
# from Wuhan alone asks about as many slots as the Wuhan metro's DCs have; with its batch jobs
# and the other cities', the metro is over-asked unless work goes elsewhere. Rates stay where two
# shared cores carry 24 daemons, 24 backends and the client without becoming the bottleneck
# (about 30 requests/s and 30 MB/s of CT tensors).
CT_RATES = Rates(hot=3.0, cold=1.0)
CHAT_RATES = Rates(hot=16.0, cold=2.0)
BATCH_RATES = Rates(hot=3.0, cold=0.5)


@dataclass(frozen=True)
class Plan:
    rounds: int  # each phase runs on every system once per round
    unloaded_s: float
    skew_s: float
    flood_s: float
    warmup_s: float  # per system before round 1, thrown away: connections, JIT, caches
    # After the last send, answers still due get this long, then count as timeouts: a batch
    # job (8 s) and a queue of them, without waiting out a flooded baseline's whole backlog.
    drain_s: float
    # Between two runs the backends must be idle (nothing in flight or queued); a flooded
    # baseline's backlog takes a while to drain or be cancelled.
    settle_timeout_s: float
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def duration(self, phase: str) -> float:
        return {"unloaded": self.unloaded_s, "skew": self.skew_s, "flood": self.flood_s}[phase]


PHASES = ("unloaded", "skew", "flood")
# Two rounds: A B A B, each round's p99 kept and every request pooled for the percentiles
# (~250 CT reads per system per phase, ~1,300 chat answers under skew); about 20 minutes.
FULL = Plan(
    rounds=2, unloaded_s=20, skew_s=30, flood_s=20, warmup_s=4, drain_s=20,
    settle_timeout_s=60, seed=7,
)  # fmt: skip
# A short pass: one round, every system and phase, figures good to tens of percent.
QUICK = Plan(
    rounds=1, unloaded_s=8, skew_s=15, flood_s=10, warmup_s=2, drain_s=10,
    settle_timeout_s=40, seed=7,
)  # fmt: skip


def expected_service_s(profile: BackendProfile, tokens: int) -> float:
    """A request's median time in a slot: the prefill's median plus the tokens' decode."""
    median_ms = ServiceTimeDistribution.parse(profile.service_ms).median_ms
    return median_ms / 1000.0 + tokens / profile.token_rate


def batch_capacity(profiles: Mapping[str, tuple[BackendProfile, ...]]) -> float:
    """Batch jobs/s every batch slot of the slice finishes, all busy (emergency reserve aside)."""
    return sum(
        p.slots / expected_service_s(p, BATCH_TOKENS)
        for backends in profiles.values()
        for p in backends
        if BATCH in p.models
    )


def _stream(model: str, entry: str, url: str, rate: float) -> Stream:
    common: dict[str, Any] = {
        "name": f"{LANE_OF[model]}@{entry}",
        "entries": (url,),
        "model": model,
        "rate": rate,
        "arrival": "poisson",
        "lane": LANE_OF[model],
        "tier": TIER_OF[model],
    }
    if model == CT:
        return Stream(protocol="kserve_v2_binary", spill="none", deadline_ms=10000.0,
                      body_bytes=CT_BODY_BYTES, **common)  # fmt: skip
    if model == CHAT:
        return Stream(protocol="openai_chat", deadline_ms=5000.0, body_bytes=CHAT_BODY_BYTES,
                      stream=True, max_tokens=CHAT_TOKENS, **common)  # fmt: skip
    return Stream(protocol="openai_completion", body_bytes=BATCH_BODY_BYTES,
                  max_tokens=BATCH_TOKENS, **common)  # fmt: skip


def phase_workload(
    phase: str,
    entries: Sequence[str],
    urls: Mapping[str, str],
    duration_s: float,
    plan: Plan,
    flood_rate: float,
    seed: int,
) -> Workload:
    """The `phase` load from `entries` (Wuhan's first), sent to each entry's URL `urls[entry]`
    (the system's entry point there); `flood_rate`: the flood's batch jobs/s, all entries."""
    streams = [_stream(CT, e, urls[e], CT_RATES.at(i)) for i, e in enumerate(entries)]
    if phase == "skew":
        streams += [_stream(CHAT, e, urls[e], CHAT_RATES.at(i)) for i, e in enumerate(entries)]
        streams += [_stream(BATCH, e, urls[e], BATCH_RATES.at(i)) for i, e in enumerate(entries)]
    elif phase == "flood":
        share = flood_rate / len(entries)
        streams += [_stream(BATCH, e, urls[e], share) for e in entries]
    elif phase != "unloaded":
        raise ValueError(f"unknown phase {phase!r}")
    return Workload(
        source=f"bench/routing {phase}",
        streams=tuple(streams),
        duration_s=duration_s,
        seed=seed,
        timeout_s=60.0,  # a CT read is due in 10 s; a flooded batch job may wait a minute
        drain_s=plan.drain_s,
    )
