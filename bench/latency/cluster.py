"""Real hubhop daemons on an emulated WAN, one per site of a topology: `hubhop.lab.cluster`,
shared with `hubhop demo` and the tests, under the name the latency benchmark has used."""

from __future__ import annotations

from hubhop.lab.cluster import (
    GOSSIP_PORT,
    KEY,
    SHIPPED_NET,
    SHIPPED_TOPOLOGY,
    VIEW_TIMEOUT_S,
    WanCluster,
    localise_topology,
)

__all__ = [
    "GOSSIP_PORT",
    "KEY",
    "SHIPPED_NET",
    "SHIPPED_TOPOLOGY",
    "VIEW_TIMEOUT_S",
    "WanCluster",
    "localise_topology",
]
