"""Real hubhop daemons on an emulated WAN: one per site of a topology, each on its site's address.

Used by `hubhop demo`, the latency benchmark and the multi-process tests, so all of them run the
same cluster.

Rules:
- The topology is copied into the work directory with every site's host moved into the
  caller's /24 (`net`), so a demo, a test run and a benchmark run never share addresses; the
  copy (and the places file beside it) is what every daemon loads, and what `model` reads the
  truth from.
- Site `s` runs node `s`: its role, city and region from the topology, HTTP and gossip on the
  site's host, the first site of the list as the seed, the emulated WAN on.
- Every process is started here and stopped by its PID; a daemon is registered the moment it
  is started, before it is ready, so an interrupted start still stops it.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from hubhop.lab import processes
from hubhop.wan.model import WanModel
from hubhop.wan.topology import DEFAULT_PLACES, Topology, load_topology

# The shipped topology is package data (hubhop/wan/topologies/), so an installed hubhop has it;
# the repository's topologies/ is a link to that folder.
TOPOLOGIES = Path(__file__).resolve().parents[1] / "wan" / "topologies"
SHIPPED_TOPOLOGY = TOPOLOGIES / "hubei.toml"
SHIPPED_NET = "127.0.40"
# A lab key; gossip is always encrypted, the run is not a deployment.
KEY = base64.b64encode(bytes(range(48, 80))).decode()
GOSSIP_PORT = 7946
# A members or peers view from a loaded 2-core box answers in milliseconds; 10 s is stuck.
VIEW_TIMEOUT_S = 10.0
# Daemons started at once: each cold start imports numpy, aiohttp and numba on 2 shared cores,
# so more at once only makes each of them slower.
LAUNCH_PARALLEL = 6
NET_PATTERN = re.compile(r"127\.\d{1,3}\.\d{1,3}")


def address_in(net: str, host: str) -> str:
    """`host` moved into `net` (127.A.B), keeping its last octet: how a lab gives each site
    one address per kind of process, and how an address names its site."""
    return f"{net}.{host.rsplit('.', 1)[1]}"


def localise_topology(workdir: Path, net: str, source: Path = SHIPPED_TOPOLOGY) -> Path:
    """Copy `source` (and its places file) into `workdir` with every site's host moved into
    `net` (127.A.B), keeping its last octet; returns the copy's path."""
    if not NET_PATTERN.fullmatch(net):
        raise ValueError(f"{net!r} is not a /24 of 127.0.0.0/8 written as 127.A.B")
    topology = load_topology(source)
    moved = {address_in(net, site.host) for site in topology.sites}
    if len(moved) != len(topology.sites):
        raise ValueError(f"{source}: sites share a last octet, so they cannot move into one /24")
    text = source.read_text()
    for site in topology.sites:
        text = text.replace(f'"{site.host}"', f'"{address_in(net, site.host)}"')
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / source.name
    target.write_text(text)
    places = tomllib.loads(text).get("topology", {}).get("places", DEFAULT_PLACES)
    if (source.parent / places).is_file():
        shutil.copy(source.parent / places, workdir / places)
    return target


def label(text: str) -> str:
    """A topology's city or region name as a node label (lowercase, dashes)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


class WanCluster(processes.Owner):
    """Daemons for `sites` of the topology at `topology_path`, the emulated WAN on; leaving a
    `with` block stops them all (each log stays beside its config in the work directory)."""

    def __init__(
        self,
        workdir: Path,
        topology_path: Path,
        sites: Sequence[str],
        hubs: Sequence[str] = (),
        extra_config: str = "",
        site_config: Callable[[str], str] | None = None,
        links_republish_s: float | None = None,
    ) -> None:
        self.workdir = workdir
        self.topology_path = topology_path
        self.topology: Topology = load_topology(topology_path)
        self.model = WanModel(self.topology)
        unknown = [s for s in sites if s not in self.model.sites]
        if unknown:
            raise ValueError(f"not sites of {topology_path}: {', '.join(unknown)}")
        self.sites = list(sites)
        self.hubs = list(hubs)
        self.extra_config = extra_config
        # Per-site TOML appended after extra_config (a site's backends, say); None adds nothing.
        self.site_config = site_config
        # [latency] links_republish_s: None leaves the daemon's own (30 s).
        self.links_republish_s = links_republish_s
        self.procs: dict[str, processes.Proc] = {}
        self.started_at: dict[str, float] = {}

    def host(self, site: str) -> str:
        return self.topology.site(site).host

    def config_text(self, site: str) -> str:
        s = self.topology.site(site)
        seed = self.host(self.sites[0])
        hubs = ", ".join(f'"{h}"' for h in self.hubs)
        latency = (f"hubs = [{hubs}]\n" if hubs else "") + (
            f"links_republish_s = {self.links_republish_s}\n"
            if self.links_republish_s is not None
            else ""
        )
        return (
            f'[node]\nname = "{site}"\nrole = "{s.role}"\n'
            f'region = "{label(s.region)}"\ncity = "{label(s.city)}"\n'
            f'[http]\nlisten = "{s.host}:0"\n'
            "[lifecycle]\ndrain_grace_s = 1.0\n"  # stopped after the load: leave quickly
            f'[gossip]\nbind = "{s.host}:{GOSSIP_PORT}"\nseeds = ["{seed}:{GOSSIP_PORT}"]\n'
            f'keys = ["{KEY}"]\n'
            "[tls]\nplaintext = true\n"  # every daemon of a lab is on this one machine
            + (f"[latency]\n{latency}" if latency else "")
            + f'[wan]\ntopology = "{self.topology_path}"\n'
            + self.extra_config
            + (self.site_config(site) if self.site_config is not None else "")
        )

    def start(self, site: str) -> None:
        path = self.workdir / f"{site}.toml"
        path.write_text(self.config_text(site))
        self.procs[site] = proc = processes.launch_hubhop_node(path)
        processes.wait_ready_line(proc, processes.HUBHOP_READY)
        self.started_at[site] = time.monotonic()

    def start_all(
        self, sites: Sequence[str] | None = None, on_ready: Callable[[str], None] | None = None
    ) -> None:
        """Start the seed, then the rest a few at a time; LaunchError if one does not come up.
        `on_ready(site)` is called (from a launcher thread) as each daemon says it is ready."""

        def start(site: str) -> None:
            self.start(site)
            if on_ready is not None:
                on_ready(site)

        todo = list(self.sites if sites is None else sites)
        if self.sites[0] in todo and self.sites[0] not in self.procs:
            start(self.sites[0])
            todo.remove(self.sites[0])
        processes.run_parallel([partial(start, s) for s in todo], LAUNCH_PARALLEL)

    def get(self, site: str, path: str) -> dict[str, Any]:
        url = self.procs[site].url + path
        with urllib.request.urlopen(url, timeout=VIEW_TIMEOUT_S) as response:
            document: dict[str, Any] = json.loads(response.read())
        return document

    def route(self, site: str, ask: dict[str, Any]) -> dict[str, Any]:
        """The node's routing decision for `ask` (POST /hubhop/v1/route: model, hints and
        protocol as JSON fields), or its error body when it answers 4xx/5xx."""
        request = urllib.request.Request(
            self.procs[site].url + "/hubhop/v1/route",
            data=json.dumps(ask).encode(),
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=VIEW_TIMEOUT_S) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            return dict(json.loads(exc.read()))

    def peers(self, site: str) -> dict[str, Any]:
        """The node's peers view: its own probe status ("self") and one entry per member."""
        return self.get(site, "/hubhop/v1/peers")

    def views(self, sites: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Every running node's peers view, fetched in parallel."""
        chosen = [s for s in (self.sites if sites is None else sites) if s in self.procs]
        views: dict[str, dict[str, Any]] = {}

        def fetch(site: str) -> None:
            views[site] = self.peers(site)

        processes.run_parallel([partial(fetch, s) for s in chosen], 8)
        return {site: views[site] for site in chosen}
