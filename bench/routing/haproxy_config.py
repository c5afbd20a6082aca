"""The baselines: HAProxy configured as an operator would, one frontend per hospital and policy.

What an operator without hubhop writes, knowing the network as well as a planning sheet does:
- One frontend per (policy, hospital), on the hospital's entry address (SOURCE_NET) and the
  policy's port. Requests go to a pool by model, told apart by path in this mix: KServe calls
  name the model in theirs (`/v2/models/ct-triage/...`), chat is `/v1/chat/completions` and the
  batch jobs are `/v1/completions`.
- Each pool holds every site whose backend serves the model within the lane's tier from that
  hospital, by the true one-way latency (`pools`): the CT pool only the city's, the chat pool
  the province's, the batch pool everything. So a baseline never breaks a tier by itself; what
  it lacks is a view of load beyond its own connections, and lanes.
- A server's `maxconn` is its backend's slots, so HAProxy queues a request rather than
  overfilling a backend (its queue times out at 60 s, the client's own timeout); `abortonclose`
  passes a client's cancel on, so a backend does not work for nobody.
- Servers are the gateway's WAN relays (one per site), and every connection leaves from the
  hospital's address, so the relay adds that hospital's emulated latency to that site both
  ways, as hubhop's daemons do on their hops.
- Policies: `random(1)` (one draw: plain random; HAProxy's default of two draws is already a
  power-of-two-choices balancer), `roundrobin`, `leastconn`, and static nearest: the nearest
  data centre of the pool as the only active server, the rest backups (used only when it is
  down), which is how a static "send it to the nearest DC" configuration behaves.
- Pure: text out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench.routing.plan import BASELINE_PORTS, GATEWAY_PORT, RELAY_NET, SOURCE_NET, TIER_OF
from hubhop.core.tiers import tier_bound_ms
from hubhop.lab.cluster import address_in
from hubhop.lab.profiles import BackendProfile
from hubhop.wan.model import WanModel

BALANCE = {
    "least-conn": "leastconn",
    "round-robin": "roundrobin",
    "random": "random(1)",
    "static-nearest": "first",  # one active server: the others are backups
}
# The path prefix that carries each model of the mix.
MODEL_PATHS = {
    "ct-triage": "/v2/models/ct-triage/",
    "chat-7b": "/v1/chat/completions",
    "seq-align": "/v1/completions",
}
# HAProxy's own limits: far above the flood's thousands of waiting requests; the machine allows
# 20,000 open files.
GLOBAL_MAXCONN = 8000


def pools(
    model: WanModel,
    profiles: Mapping[str, tuple[BackendProfile, ...]],
    entries: Sequence[str],
) -> dict[tuple[str, str], list[str]]:
    """(entry, model) -> the sites serving it within its lane's tier from the entry, nearest
    first (by the true one-way latency; ties in site order)."""
    out: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        for name, tier in TIER_OF.items():
            bound = tier_bound_ms(tier)
            found = [
                site
                for site, backends in profiles.items()
                if any(name in p.models for p in backends)
                and model.one_way_ms(entry, site) <= bound
            ]
            out[(entry, name)] = sorted(found, key=lambda s: model.one_way_ms(entry, s))
    return out


def static_choice(pool: Sequence[str], roles: Mapping[str, str]) -> str:
    """The static baseline's server: the nearest data centre (not a hospital's own CPU box: no
    operator points a city's chat at two CPU slots); the nearest of all if there is none."""
    return next((s for s in pool if roles[s] != "edge"), pool[0])


def config_text(
    model: WanModel,
    profiles: Mapping[str, tuple[BackendProfile, ...]],
    entries: Sequence[str],
    policies: Sequence[str] = tuple(BASELINE_PORTS),
) -> str:
    """The whole haproxy.cfg for `policies` at every entry."""
    hosts = {s.name: s.host for s in model.topology.sites}
    roles = {s.name: s.role for s in model.topology.sites}
    slots = {site: sum(p.slots for p in backends) for site, backends in profiles.items()}
    found = pools(model, profiles, entries)
    lines = [
        "global",
        f"    maxconn {GLOBAL_MAXCONN}",
        "    nbthread 1",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 120s",
        "    timeout server 120s",
        "    timeout queue 60s",
        "    option abortonclose",
        "    option http-keep-alive",
        "    http-reuse always",
    ]
    for policy in policies:
        for entry in entries:
            tag = f"{policy}_{entry}"
            source = address_in(SOURCE_NET, hosts[entry])
            lines += [
                f"frontend fe_{tag}",
                f"    bind {source}:{BASELINE_PORTS[policy]}",
            ]
            for name, prefix in MODEL_PATHS.items():
                lines.append(f"    use_backend be_{tag}_{name} if {{ path_beg {prefix} }}")
            for name in MODEL_PATHS:
                pool = found[(entry, name)]
                lines += [f"backend be_{tag}_{name}", f"    balance {BALANCE[policy]}"]
                active = static_choice(pool, roles) if policy == "static-nearest" else None
                for site in pool:
                    relay = f"{address_in(RELAY_NET, hosts[site])}:{GATEWAY_PORT}"
                    backup = " backup" if active is not None and site != active else ""
                    lines.append(
                        f"    server {site} {relay} source {source} maxconn {slots[site]}{backup}"
                    )
    return "\n".join(lines) + "\n"
