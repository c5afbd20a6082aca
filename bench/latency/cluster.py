"""Real hubhop daemons on an emulated WAN: one per site of a topology, each on its site's address.

Used by the latency benchmark and by the multi-process tests, so both judge the same cluster.

Rules:
- The topology is copied into the work directory with every site's host moved into the
  caller's /24 (`net`), so a test run and a benchmark run never share addresses; the copy (and
  the places file beside it) is what every daemon loads, and what `model` reads the truth from.
- Site `s` runs node `s`: its role, city and region from the topology, HTTP and gossip on the
  site's host, the first site of the list as the seed, the emulated WAN on.
- Every process is started here and stopped by its PID.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import _launch
from hubhop.wan.model import WanModel
from hubhop.wan.topology import Topology, load_topology

REPO = Path(__file__).resolve().parents[2]
SHIPPED_TOPOLOGY = REPO / "topologies" / "hubei.toml"
SHIPPED_NET = "127.0.40"
# A lab key; gossip is always encrypted, the run is not a deployment.
KEY = base64.b64encode(bytes(range(48, 80))).decode()
GOSSIP_PORT = 7946
# A members or peers view from a loaded 2-core box answers in milliseconds; 10 s is stuck.
VIEW_TIMEOUT_S = 10.0
# Daemons started at once: each cold start imports numpy, aiohttp and numba on 2 shared cores,
# so more at once only makes each of them slower.
LAUNCH_PARALLEL = 6


def localise_topology(workdir: Path, net: str, source: Path = SHIPPED_TOPOLOGY) -> Path:
    """Copy `source` (and its places file) into `workdir` with hosts moved from 127.0.40.x
    to `net`.x; returns the copy's path."""
    if not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}", net):
        raise ValueError(f"{net!r} is not a /24 of 127.0.0.0/8 written as 127.A.B")
    workdir.mkdir(parents=True, exist_ok=True)
    text = source.read_text().replace(f'"{SHIPPED_NET}.', f'"{net}.')
    target = workdir / source.name
    target.write_text(text)
    shutil.copy(source.parent / "places.csv", workdir / "places.csv")
    return target


def _label(text: str) -> str:
    """A topology's city or region name as a node label (lowercase, dashes)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


class WanCluster:
    """Daemons for `sites` of the topology at `topology_path`, the emulated WAN on."""

    def __init__(
        self,
        workdir: Path,
        topology_path: Path,
        sites: Sequence[str],
        hubs: Sequence[str] = (),
        extra_config: str = "",
        site_config: Callable[[str], str] | None = None,
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
        self.procs: dict[str, _launch.Proc] = {}
        self.started_at: dict[str, float] = {}

    def host(self, site: str) -> str:
        return self.topology.site(site).host

    def config_text(self, site: str) -> str:
        s = self.topology.site(site)
        seed = self.host(self.sites[0])
        hubs = ", ".join(f'"{h}"' for h in self.hubs)
        return (
            f'[node]\nname = "{site}"\nrole = "{s.role}"\n'
            f'region = "{_label(s.region)}"\ncity = "{_label(s.city)}"\n'
            f'[http]\nlisten = "{s.host}:0"\n'
            "[lifecycle]\ndrain_grace_s = 1.0\n"  # no requests in flight: leave quickly
            f'[gossip]\nbind = "{s.host}:{GOSSIP_PORT}"\nseeds = ["{seed}:{GOSSIP_PORT}"]\n'
            f'keys = ["{KEY}"]\n'
            + (f"[latency]\nhubs = [{hubs}]\n" if hubs else "")
            + f'[wan]\ntopology = "{self.topology_path}"\n'
            + self.extra_config
            + (self.site_config(site) if self.site_config is not None else "")
        )

    def start(self, site: str) -> None:
        path = self.workdir / f"{site}.toml"
        path.write_text(self.config_text(site))
        self.procs[site] = _launch.run_hubhop_node(path)
        self.started_at[site] = time.monotonic()

    def start_all(self, sites: Sequence[str] | None = None) -> None:
        """Start the seed, then the rest a few at a time; LaunchError if one does not come up."""
        todo = list(self.sites if sites is None else sites)
        if self.sites[0] in todo and self.sites[0] not in self.procs:
            self.start(self.sites[0])
            todo.remove(self.sites[0])
        with ThreadPoolExecutor(LAUNCH_PARALLEL) as pool:
            for future in [pool.submit(self.start, s) for s in todo]:
                future.result()

    def get(self, site: str, path: str) -> dict[str, Any]:
        url = self.procs[site].url + path
        with urllib.request.urlopen(url, timeout=VIEW_TIMEOUT_S) as response:
            document: dict[str, Any] = json.loads(response.read())
        return document

    def peers(self, site: str) -> dict[str, Any]:
        """The node's peers view: its own probe status ("self") and one entry per member."""
        return self.get(site, "/hubhop/v1/peers")

    def views(self, sites: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Every running node's peers view, fetched in parallel."""
        chosen = [s for s in (self.sites if sites is None else sites) if s in self.procs]
        with ThreadPoolExecutor(8) as pool:
            return dict(zip(chosen, pool.map(self.peers, chosen), strict=True))

    def stop_all(self) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda p: p.stop(), self.procs.values()))
        self.procs.clear()

    def __enter__(self) -> WanCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        """Whatever happened, every daemon started is stopped (each log stays beside its
        config in the work directory)."""
        self.stop_all()
