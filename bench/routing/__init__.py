"""routing: routing quality against what operators run today, on 24 real daemons.

The question (issue 7): "on my network, under my hospitals' load, does hubhop put requests in
their tier and answer them sooner than the balancers I could run instead, and how far is it
from the best any router could do?"

What runs, all on loopback (addresses in `plan.py`):
- A 24-site slice of the shipped Hubei topology (`plan.py`): 24 `hubhop run` daemons with the
  emulated WAN on, each fronting one demo backend of its site's class (mixed chips, slots,
  prices, green shares: `hubhop.lab.profiles`).
- The routing gateway (`gateway.py`, one process): WAN relays that put the same emulated
  latency on the baselines' hops as the daemons put on theirs, and the oracle.
- One HAProxy (Debian) with a frontend per baseline policy and hospital (`haproxy_config.py`):
  random, round-robin, least-connections, and static nearest-by-config.
- The load (`plan.py`), from `hubhop loadgen`'s open-loop runner in this process, through the
  same four hospital entry points for every system: emergency CT reads (4 MiB tensors), streamed
  chat, long batch jobs; three phases: unloaded, skew (Wuhan sends most), flood (batch at 3x
  the batch capacity).

Rules of the measurement:
- Systems are interleaved: each round runs each phase on every system, the order rotated by one
  per round and phase. Percentiles pool every round; each round's own p99 is kept beside.
- Between two runs the network is idle again (every backend empty), bounded.
- Tiers are judged by the truth (`measure.py`); p99 counts every request sent (`summary.py`).
- Every process is started here and stopped by its PID; every load is bounded in time.
Exit status: 0 when the run completed (the verdicts are figures, not a pass/fail), 1 when it
could not run, 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import _haproxy
from bench._report import add_run_arguments, load_average, machine_info, write_json
from bench.routing import haproxy_config, measure, plan, plot, summary
from bench.routing.summary import markdown_tables
from hubhop.demo.readiness import NotReady, wait_routable
from hubhop.lab import processes
from hubhop.lab.backends import BackendFleet, slice_network
from hubhop.lab.cluster import WanCluster, address_in, localise_topology
from hubhop.lab.network_slice import choose_slice
from hubhop.loadgen.request_shapes import route_ask
from hubhop.wan.model import WanModel
from hubhop.wan.topology import load_topology

__all__ = ["SUMMARY", "add_arguments", "markdown_tables", "run"]

NAME = "routing"
SUMMARY = "routing quality on 24 daemons: hubhop vs HAProxy balancers, static, and an oracle"
# A node tells its peers the links it measured every 5 s here (30 s in production), so the
# hospitals route on measured links within seconds of start, as in `hubhop demo`.
LINKS_REPUBLISH_S = 5.0
# 24 daemons come up and measure their links in well under a minute on 2 cores; 3 is stuck.
CONVERGE_TIMEOUT_S = 180.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, NAME, "one round of shorter phases (about 6 minutes)")
    parser.add_argument("--seed", type=int, help=f"the load's seed (default {plan.FULL.seed})")
    parser.add_argument(
        "--systems",
        default=",".join(plan.SYSTEMS),
        help=f"which systems, comma-separated (default all: {','.join(plan.SYSTEMS)})",
    )
    parser.add_argument(
        "--install", action="store_true", help="apt-get install haproxy when it is missing"
    )
    parser.add_argument("--no-haproxy", action="store_true", help="run without the baselines")
    parser.add_argument("--keep-lab", action="store_true", help="keep configs and logs in OUT/lab")


def run(ns: argparse.Namespace) -> int:
    chosen_plan = plan.QUICK if ns.quick else plan.FULL
    seed = chosen_plan.seed if ns.seed is None else ns.seed
    systems = [s.strip() for s in ns.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in plan.SYSTEMS]
    if unknown or not systems:
        print(f"routing: unknown systems {unknown}; choose from {plan.SYSTEMS}", file=sys.stderr)
        return 2
    binary, note = _haproxy.find_or_install(skip=ns.no_haproxy, install=ns.install)
    if binary is None:
        print(f"routing: the HAProxy baselines are {note}")
        systems = [s for s in systems if s not in plan.BASELINE_PORTS]
    out: Path = ns.out
    lab = out / "lab" if ns.keep_lab else Path(tempfile.mkdtemp(prefix="hubhop-bench-routing-"))
    shutil.rmtree(lab, ignore_errors=True)
    try:
        return _Bench(chosen_plan, seed, systems, binary, lab.resolve(), out, ns.quick).run()
    finally:
        if not ns.keep_lab:
            shutil.rmtree(lab, ignore_errors=True)


class _Bench:
    def __init__(
        self,
        chosen_plan: plan.Plan,
        seed: int,
        systems: list[str],
        haproxy: str | None,
        lab: Path,
        out: Path,
        quick: bool,
    ) -> None:
        self.plan = chosen_plan
        self.seed = seed
        self.systems = systems
        self.haproxy = haproxy
        self.lab = lab
        self.out = out
        self.quick = quick
        self.runs: list[dict[str, Any]] = []
        self.machine = machine_info()
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.0f} s] {text}", flush=True)

    def run(self) -> int:
        topology_path = localise_topology(self.lab, plan.DAEMON_NET)
        self.model = model = WanModel(load_topology(topology_path))
        self.slice = chosen = choose_slice(
            model, plan.SLICE_CITIES, plan.SLICE_KEY_CITIES, plan.SLICE_HUBS, plan.SLICE_PROVINCE
        )
        self.profiles, fleet, cluster = slice_network(
            self.lab, topology_path, model, chosen, plan.BACKEND_NET, LINKS_REPUBLISH_S,
            backend_workdir=self.lab / "backends",
        )  # fmt: skip
        self.flood_rate = plan.FLOOD_FACTOR * plan.batch_capacity(self.profiles)
        extra: list[processes.Proc] = []
        try:
            self.say(f"starting {len(chosen.sites)} demo backends and daemons")
            fleet.start_all()
            cluster.start_all()
            extra += self._start_baselines(fleet)
            self._converge(cluster)
            self.entry_urls = self._entry_urls(cluster)
            self._measure(fleet)
        except (processes.LaunchError, NotReady, OSError) as exc:
            print(f"routing: {exc}", file=sys.stderr)
            return 1
        finally:
            processes.stop_all(extra)
            cluster.stop_all()
            fleet.stop_all()
        return self._report()

    # --- setting up ---------------------------------------------------------------------------

    def _start_baselines(self, fleet: BackendFleet) -> list[processes.Proc]:
        from bench.routing.gateway import gateway_config, start_routing_gateway

        backend_urls = {
            site: fleet.procs[(site, p[0].name)].url for site, p in self.profiles.items()
        }
        document = gateway_config(
            self.model,
            self.profiles,
            backend_urls,
            self.slice.entries,
            self.slice.sites,
            plan.RELAY_NET,
            plan.SOURCE_NET,
            plan.ORACLE_NET,
            plan.GATEWAY_PORT,
        )
        config_path = self.lab / "gateway.json"
        config_path.write_text(json.dumps(document, indent=1))
        started = [start_routing_gateway(self.lab, config_path)]
        self.gateway = started[0]
        if self.haproxy is not None and any(s in plan.BASELINE_PORTS for s in self.systems):
            text = haproxy_config.config_text(self.model, self.profiles, self.slice.entries)
            cfg = self.lab / "haproxy.cfg"
            cfg.write_text(text)
            first = self.slice.entries[0]
            host = self._address(plan.SOURCE_NET, first)
            port = plan.BASELINE_PORTS[next(s for s in self.systems if s in plan.BASELINE_PORTS)]
            started.append(
                processes.start_listening_process(
                    "haproxy", _haproxy.haproxy_argv(self.haproxy, cfg), self.lab, host, port
                )
            )
            self.haproxy_version = _haproxy.haproxy_version(self.haproxy)
        return started

    def _converge(self, cluster: WanCluster) -> None:
        workload = self._workload("skew", self._hubhop_urls(cluster), 1.0, self.seed)
        asks = [route_ask(stream) for stream in workload.streams]
        unique = [dict(a) for a in {json.dumps(a, sort_keys=True): a for a in asks}.values()]
        waited = wait_routable(cluster, self.slice.entries, unique, CONVERGE_TIMEOUT_S)
        self.say(f"every hospital routes every stream after {waited:.0f} s")

    def _address(self, net: str, site: str) -> str:
        return address_in(net, self.model.topology.site(site).host)

    def _hubhop_urls(self, cluster: WanCluster) -> dict[str, str]:
        return {e: cluster.procs[e].url for e in self.slice.entries}

    def _entry_urls(self, cluster: WanCluster) -> dict[str, dict[str, str]]:
        urls = {"hubhop": self._hubhop_urls(cluster)}
        urls["oracle"] = {
            e: f"http://{self._address(plan.ORACLE_NET, e)}:{plan.GATEWAY_PORT}"
            for e in self.slice.entries
        }
        for policy, port in plan.BASELINE_PORTS.items():
            urls[policy] = {
                e: f"http://{self._address(plan.SOURCE_NET, e)}:{port}" for e in self.slice.entries
            }
        return urls

    def _workload(self, phase: str, urls: Mapping[str, str], duration: float, seed: int) -> Any:
        return plan.phase_workload(
            phase, self.slice.entries, urls, duration, self.plan, self.flood_rate, seed
        )

    # --- measuring ----------------------------------------------------------------------------

    def _backend_stats(self, fleet: BackendFleet) -> dict[str, dict[str, Any]]:
        return {site: fleet.stats(site, p[0].name) for site, p in self.profiles.items()}

    def _one(
        self, fleet: BackendFleet, system: str, phase: str, duration: float, seed: int
    ) -> dict[str, Any]:
        waited, busy = measure.wait_idle(
            lambda: self._backend_stats(fleet), self.plan.settle_timeout_s
        )
        workload = self._workload(phase, self.entry_urls[system], duration, seed)
        entry_of_stream = [s.name.split("@", 1)[1] for s in workload.streams]
        load_before = load_average()
        stats, elapsed = measure.run_phase(workload, entry_of_stream, self.model.one_way_ms)
        groups = {g.lane: g for g in stats.groups.values()}
        rows = summary.run_figures(groups, stats.merged())
        return {
            "system": system,
            "phase": phase,
            "seed": seed,
            "elapsed_s": round(elapsed, 2),
            "settle_s": round(waited, 2),
            "busy_at_start": busy,
            "load_average_before": load_before,
            "unjudged_answers": stats.unknown_nodes,
            "rows": rows,
        }

    def _measure(self, fleet: BackendFleet) -> None:
        for system in self.systems:
            self._one(fleet, system, "unloaded", self.plan.warmup_s, self.seed + 1000)
        self.say(f"warmed up every system ({self.plan.warmup_s:g} s each); measuring")
        for round_index in range(self.plan.rounds):
            for phase_index, phase in enumerate(plan.PHASES):
                shift = round_index + phase_index
                order = (
                    self.systems[shift % len(self.systems) :]
                    + self.systems[: shift % len(self.systems)]
                )
                for system in order:
                    seed = self.seed + round_index
                    run = self._one(fleet, system, phase, self.plan.duration(phase), seed)
                    run["round"] = round_index
                    self.runs.append(run)
                    self.say(_run_line(run))

    # --- the result ---------------------------------------------------------------------------

    def _report(self) -> int:
        results = summary.pooled(self.runs)
        document: dict[str, Any] = {
            "benchmark": NAME,
            "machine": self.machine,
            "quick": self.quick,
            "seed": self.seed,
            "plan": self.plan.as_dict(),
            "config": {
                "systems": self.systems,
                "slice": {k: list(v) for k, v in vars(self.slice).items()},
                "rates_per_entry": {
                    "ct": vars(plan.CT_RATES),
                    "chat": vars(plan.CHAT_RATES),
                    "batch": vars(plan.BATCH_RATES),
                },
                "flood_rate": round(self.flood_rate, 2),
                "batch_capacity": round(self.flood_rate / plan.FLOOD_FACTOR, 2),
                "haproxy": getattr(self, "haproxy_version", None),
                "links_republish_s": LINKS_REPUBLISH_S,
            },
            "daemons": len(self.slice.sites),
            "load_average_at_end": load_average(),
            "wall_s": round(time.monotonic() - self.started, 1),
            "results": results,
            "verdicts": summary.verdicts(results),
            "runs": self.runs,
        }
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / f"{NAME}.json", document)
        print()
        print(summary.text_report(document))
        note = plot.write_png(self.out / f"{NAME}.png", document)
        print(f"\nwrote {self.out / (NAME + '.json')}" + (f"; {note}" if note else ""))
        return 0


def _run_line(run: Mapping[str, Any]) -> str:
    rows = run["rows"]
    parts = []
    for lane in (*summary.LANES, "all"):
        if lane in rows:
            row = rows[lane]
            p99 = row["p99_ms"]
            parts.append(
                f"{lane} {row['ok']}/{row['sent']} p99 {'-' if p99 is None else f'{p99:.0f}'} ms"
            )
    busy = f" (started busy: {run['busy_at_start']})" if run["busy_at_start"] else ""
    return (
        f"round {run['round'] + 1} {run['phase']:8s} {run['system']:14s} " + ", ".join(parts) + busy
    )
