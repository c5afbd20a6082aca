"""Opening the emulated WAN a node's config names: read the topology, find this node's site.

Rules:
- Off unless the config has a `[wan]` section; a real network brings its own latency.
- The topology is read once, when the config is checked (`hubhop check-config`, and `hubhop
  run` before anything starts), so a bad file stops the node with exit 78 and one line per
  fault, like any other config fault.
- This node's site is `wan.site` when given, else the site whose host is the gossip bind
  address; either way that site's host must be the address the node binds, because peers find
  a datagram's site by the address it came to.
"""

from __future__ import annotations

import random

from hubhop.core.config import ConfigError, NodeConfig
from hubhop.io.wan_delay import WanDelay
from hubhop.wan.model import WanModel
from hubhop.wan.topology import TopologyError, load_topology


def wan_model(config: NodeConfig) -> tuple[WanModel, str] | None:
    """The topology's model and this node's site in it; None when the WAN is off.

    Raises ConfigError naming the file and every fault."""
    wan = config.wan
    if wan is None or config.gossip is None:
        return None
    try:
        topology = load_topology(wan.topology)
    except TopologyError as exc:
        raise ConfigError(list(exc.faults)) from None
    host = config.gossip.bind.host
    here = f"wan.site: {wan.site!r}" if wan.site else f"gossip.bind host {host}"
    site = wan.site or topology.site_of_host(host)
    if site is None:
        raise ConfigError([f"{wan.topology}: no site has host {host} ({here})"])
    if site not in topology.site_names:
        raise ConfigError([f"{wan.topology}: no site is called {site!r} ({here})"])
    if topology.site(site).host != host:
        raise ConfigError(
            [
                f"{wan.topology}: site {site!r} has host {topology.site(site).host}, but this "
                f"node binds {host}: peers would not know where its datagrams come from"
            ]
        )
    return WanModel(topology), site


def open_wan(config: NodeConfig) -> WanDelay | None:
    """The delay line this node sends through; None when the WAN is off."""
    found = wan_model(config)
    if found is None:
        return None
    model, site = found
    assert config.wan is not None
    seed = config.wan.seed
    return WanDelay(model, site, random.Random(seed))
