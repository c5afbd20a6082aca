"""The demo backends of an emulated network's sites: one `hubhop demo-backend` process per
backend profile, each on its own loopback address, stopped by its PID.

Rules:
- A site's backends listen on the caller's backend /24 (`net`) with the site's own last octet
  (each on a port the kernel picks), so a backend's address names its site, and the daemons'
  /24 stays theirs.
- Every process is registered the moment it is started, before it is ready, so an interrupted
  start still stops it. `site_config` gives each daemon's [[backends]] once all are ready.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from hubhop.lab import processes
from hubhop.lab.cluster import WanCluster, address_in
from hubhop.lab.network_slice import NetworkSlice
from hubhop.lab.profiles import BackendProfile, backend_toml, demo_backend_args, profiles
from hubhop.wan.model import WanModel

# Backends start at once: each imports aiohttp alone (well under a second), far lighter than a
# daemon's cold start.
LAUNCH_PARALLEL = 8
# A demo backend's stats come from memory; 5 s only bounds a hung process.
STATS_TIMEOUT_S = 5.0


class BackendFleet(processes.Owner):
    """Demo backends for `profiles` (by site), site `s` on `net`.<last octet of hosts[s]>."""

    def __init__(
        self,
        workdir: Path,
        net: str,
        profiles: Mapping[str, tuple[BackendProfile, ...]],
        hosts: Mapping[str, str],
    ) -> None:
        self.workdir = workdir
        self.net = net
        self.profiles = dict(profiles)
        self.hosts = dict(hosts)
        # (site, backend name) -> its process; registered at launch
        self.procs: dict[tuple[str, str], processes.Proc] = {}

    def host(self, site: str) -> str:
        return address_in(self.net, self.hosts[site])

    def _start(self, profile: BackendProfile, on_ready: Callable[[str], None] | None) -> None:
        name = f"{profile.site}-{profile.name}"  # its log's name
        args = demo_backend_args(profile, self.host(profile.site))
        proc = processes.launch_demo_backend(self.workdir, *args, name=name)
        self.procs[(profile.site, profile.name)] = proc
        processes.wait_ready_line(proc, processes.DEMO_BACKEND_READY)
        if on_ready is not None:
            on_ready(profile.site)

    def start_all(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Start every backend; LaunchError if one does not come up. `on_ready(site)` is called
        (from a launcher thread) as each says it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        jobs = [
            partial(self._start, profile, on_ready)
            for backends in self.profiles.values()
            for profile in backends
        ]
        processes.run_parallel(jobs, LAUNCH_PARALLEL)

    def site_config(self, site: str) -> str:
        """The [[backends]] entries of `site`'s daemon config."""
        return "".join(
            backend_toml(p, self.procs[(site, p.name)].url) for p in self.profiles.get(site, ())
        )

    def stats(self, site: str, backend: str) -> dict[str, Any]:
        """The backend's own counters (`GET /demo/stats`: served, rejected, in flight...)."""
        url = self.procs[(site, backend)].url + "/demo/stats"
        with urllib.request.urlopen(url, timeout=STATS_TIMEOUT_S) as response:
            document: dict[str, Any] = json.loads(response.read())
        return document


def slice_network(
    workdir: Path,
    topology_path: Path,
    model: WanModel,
    chosen: NetworkSlice,
    backend_net: str,
    links_republish_s: float | None,
    backend_workdir: Path | None = None,
) -> tuple[dict[str, tuple[BackendProfile, ...]], BackendFleet, WanCluster]:
    """The processes of a slice of the (localised) topology at `topology_path`, not started:
    each site's backend profiles, their demo backends on `backend_net`, and the daemons that
    front them, the slice's hubs as every daemon's hubs. One definition for `hubhop demo` and
    the routing benchmark, so both run the same network."""
    every = profiles(model.topology)
    found = {site: every[site] for site in chosen.sites}
    hosts = {site.name: site.host for site in model.topology.sites}
    fleet = BackendFleet(backend_workdir or workdir, backend_net, found, hosts)
    cluster = WanCluster(
        workdir,
        topology_path,
        chosen.sites,
        chosen.hubs,
        site_config=fleet.site_config,
        links_republish_s=links_republish_s,
    )
    return found, fleet, cluster
