"""`hubhop demo`: the whole network on one laptop, as real processes, under real load.

What it does, in order:
1. picks a slice of the topology (`hubhop.lab.network_slice`: hospitals in a few cities of the
   home region, those cities' data centres, the nearest key cities and hub clusters) and moves
   its addresses into the demo's own /24s: daemons on --net, demo backends on the next /24;
2. starts a demo backend per site (`hubhop.lab.profiles`: mixed chips, slots, prices and green
   shares) and a `hubhop run` daemon per site with the emulated WAN on (`hubhop.lab.cluster`);
3. waits, bounded, until every hospital routes every stream of the mix (`readiness`);
4. sends the mix from the hospitals with `hubhop loadgen`'s open-loop runner, a progress bar on
   stderr;
5. stops every process it started, by PID, then prints the table per lane and tier and per
   site, and checks that every request sent is counted exactly once; writes demo.json,
   latency-cdf.png and map.png into --out (configs and logs of every process under OUT/lab/).

Exit codes: 0 the run completed and its counts add up; 1 a process did not start, the network
did not become ready, nothing was served, or the counts do not add up; 2 a bad command-line
value; 78 a faulty topology or mix file (one line per fault); 130 interrupted (Ctrl-C or
SIGTERM), after every process was stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from hubhop.io.loop import LOOP_KINDS, LoopUnavailable
from hubhop.io.loop import run as run_loop
from hubhop.lab.cluster import NET_PATTERN, SHIPPED_TOPOLOGY
from hubhop.loadgen.workload import Workload, WorkloadError

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2
EX_CONFIG = 78
EX_INTERRUPTED = 130

WORKLOADS = Path(__file__).resolve().parents[1] / "loadgen" / "workloads"
# The hospital mix: emergency CT reads, streamed chat, batch jobs (README, `hubhop loadgen`).
DEFAULT_MIX = "hospital"
# Beside wherever it is run (the repository, for `make demo`); git ignores it there.
DEFAULT_OUT = Path("demo-out")
# Daemons on 127.0.42.x, backends on 127.0.43.x: /24s nothing else in the project uses
# (topologies/README.md lists who has which), so a demo can run beside the tests.
DEFAULT_NET = "127.0.42"
# A freshly started network measures its links within ~10 s and routes on them a republish
# later (readiness); several times that on a loaded 2-core box, then the demo says what is
# missing.
CONVERGE_TIMEOUT_S = 90.0
# A node tells its peers the links it measured at most every 30 s in production (network
# changes are slow, and every version is relayed by every node); a demo of a dozen daemons on one
# machine waits 5 s, so the hospitals route on measured links seconds after start, not ~40.
LINKS_REPUBLISH_S = 5.0
# A demo, not a soak test: longer runs belong to `hubhop loadgen` against a network of one's own.
MAX_DURATION_S = 600.0
MAX_RATE = 1000.0


@dataclass(frozen=True)
class Size:
    """How much of the network runs, and for how long."""

    cities: int  # home-region cities with a hospital entry point
    key_cities: int  # data centres outside the home region
    hubs: int  # hub clusters
    duration_s: float


# 4 hospitals, 5 data centres, 2 key cities, 3 hubs: 14 daemons and 14 backends, about 2.5 GB
# of memory and ~10 s to start on 2 cores. 60 s of the hospital mix is ~600 requests, a p99 per
# lane with a few answers beyond it (the mix's own duration); start, convergence, load and stop
# end in about 90 s, half the 3 minutes issue 7 allows, which leaves room for a slower machine
# and a first run that compiles the kernels.
FULL = Size(cities=4, key_cities=2, hubs=3, duration_s=60.0)
# --quick: 2 hospitals, 3 data centres, 1 hub, 10 s: the whole path in about half a minute.
QUICK = Size(cities=2, key_cities=0, hubs=1, duration_s=10.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    names = ", ".join(sorted(path.stem for path in WORKLOADS.glob("*.toml")))
    knobs: list[tuple[str, dict[str, Any]]] = [
        ("--topology", {"type": Path, "default": SHIPPED_TOPOLOGY, "metavar": "FILE",
            "help": "the emulated network (default: the shipped Hubei topology)"}),
        ("--mix", {"default": DEFAULT_MIX, "metavar": "NAME|FILE",
            "help": f"the workload: a loadgen workload file, or a shipped one by name ({names}); "
            f"default {DEFAULT_MIX}"}),
        ("--duration", {"type": float, "metavar": "S",
            "help": f"seconds of load (default {FULL.duration_s:g}; "
            f"--quick {QUICK.duration_s:g})"}),
        ("--rate", {"type": float, "metavar": "R",
            "help": "total requests/s, shared by the mix's streams in its proportions "
            "(default: the mix's own; hospital: 10)"}),
        ("--seed", {"type": int, "metavar": "N", "help": "the mix's seed instead of its own"}),
    ]  # fmt: skip
    for knob, what in (
        ("cities", "cities with a hospital entry point"),
        ("key-cities", "data centres outside the home region"),
        ("hubs", "hub clusters"),
    ):
        field = knob.replace("-", "_")
        default = f"default {getattr(FULL, field)}; --quick {getattr(QUICK, field)}"
        knobs.append((f"--{knob}", {"type": int, "metavar": "N", "help": f"{what} ({default})"}))
    knobs += [
        ("--quick", {"action": "store_true",
            "help": "a short pass: fewer sites and seconds (any knob given still wins)"}),
        ("--out", {"type": Path, "default": DEFAULT_OUT, "metavar": "DIR",
            "help": f"where demo.json and the plots go (default {DEFAULT_OUT}/); OUT/lab/ holds "
            "every process's config and log, replaced on each run"}),
        ("--net", {"default": DEFAULT_NET, "metavar": "127.A.B",
            "help": f"the daemons' /24 (default {DEFAULT_NET}); the backends take the next one"}),
        ("--loop", {"choices": LOOP_KINDS, "default": "auto",
            "help": "the load's event loop (auto: uvloop when present)"}),
    ]  # fmt: skip
    for flag, options in knobs:
        p.add_argument(flag, **options)


def _size(ns: argparse.Namespace) -> Size:
    base = QUICK if ns.quick else FULL
    return Size(
        cities=base.cities if ns.cities is None else ns.cities,
        key_cities=base.key_cities if ns.key_cities is None else ns.key_cities,
        hubs=base.hubs if ns.hubs is None else ns.hubs,
        duration_s=base.duration_s if ns.duration is None else ns.duration,
    )


def backend_net(net: str) -> str:
    """The /24 after `net` (127.A.B -> 127.A.B+1)."""
    head, _, last = net.rpartition(".")
    return f"{head}.{int(last) + 1}"


def _usage_fault(ns: argparse.Namespace, size: Size) -> str | None:
    if not 0.0 < size.duration_s <= MAX_DURATION_S:
        return f"--duration must be more than 0 and at most {MAX_DURATION_S:g} s"
    if ns.rate is not None and not 0.0 < ns.rate <= MAX_RATE:
        return f"--rate must be more than 0 and at most {MAX_RATE:g} requests/s"
    if ns.seed is not None and ns.seed < 0:
        return "--seed must be 0 or more"
    if size.cities < 1 or size.key_cities < 0 or size.hubs < 0:
        return "--cities must be at least 1, --key-cities and --hubs at least 0"
    if not NET_PATTERN.fullmatch(ns.net) or max(int(x) for x in ns.net.split(".")) > 254:
        return f"--net: {ns.net!r} is not a /24 of 127.0.0.0/8 written as 127.A.B (B below 255)"
    return None


def mix_path(value: str) -> Path:
    """--mix: a file, or the name of a shipped workload; ValueError naming the choices."""
    given = Path(value)
    if given.suffix == ".toml" or given.exists():
        return given
    shipped = WORKLOADS / f"{value}.toml"
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(path.stem for path in WORKLOADS.glob("*.toml")))
    raise ValueError(f"--mix: {value!r} is neither a file nor a shipped mix ({names})")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the demo as Ctrl-C does: every process stopped


def run(ns: argparse.Namespace) -> int:
    """`hubhop demo`; see the module header."""
    from hubhop.loadgen.command import load_workload
    from hubhop.wan.topology import TopologyError, load_topology

    size = _size(ns)
    fault = _usage_fault(ns, size)
    try:
        mix_file = mix_path(ns.mix)
    except ValueError as exc:
        fault = fault or str(exc)
    if fault:
        print(f"hubhop demo: {fault}", file=sys.stderr)
        return EX_USAGE
    try:
        load_topology(ns.topology)  # whole-file check before anything starts
        mix = load_workload(str(mix_file))
    except (TopologyError, WorkloadError) as error:
        for line in error.faults:
            print(line, file=sys.stderr)
        return EX_CONFIG
    # The report (stdout) and the progress (stderr) interleave in order even through a pipe.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _Demo(ns, size, mix).run()
    except KeyboardInterrupt:
        print("hubhop demo: interrupted; every process it started was stopped", file=sys.stderr)
        return EX_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Demo:
    """One run of the demo: its network, its load, its report."""

    def __init__(self, ns: argparse.Namespace, size: Size, mix: Workload) -> None:
        from hubhop.demo.progress import Progress

        self.ns = ns
        self.size = size
        self.mix = mix
        self.out: Path = ns.out
        # Absolute: every daemon's config names the topology copy in it, which must be.
        self.lab = (self.out / "lab").resolve()
        self.shown_lab = self.out / "lab"  # as the user gave it, for the lines printed
        self.progress = Progress(sys.stderr)
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    def _lap(self, name: str, since: float) -> None:
        self.timings[name] = round(time.monotonic() - since, 2)

    def run(self) -> int:
        from hubhop.demo.readiness import NotReady
        from hubhop.lab.backends import slice_network
        from hubhop.lab.cluster import localise_topology
        from hubhop.lab.network_slice import choose_slice
        from hubhop.lab.processes import LaunchError
        from hubhop.wan.model import WanModel
        from hubhop.wan.topology import load_topology

        shutil.rmtree(self.lab, ignore_errors=True)  # OUT/lab is the demo's own, each run
        try:  # a topology that cannot move into one /24, or give the slice asked for
            topology_path = localise_topology(self.lab, self.ns.net, self.ns.topology)
            self.model = model = WanModel(load_topology(topology_path))
            chosen = choose_slice(model, self.size.cities, self.size.key_cities, self.size.hubs)
        except ValueError as exc:  # SliceError is one
            print(f"hubhop demo: {exc}", file=sys.stderr)
            return EX_USAGE
        self.slice = chosen
        self.profiles, fleet, cluster = slice_network(
            self.lab, topology_path, model, chosen, backend_net(self.ns.net), LINKS_REPUBLISH_S
        )
        self._say_plan()
        try:
            self._start(fleet, cluster)
            self._converge(cluster)
            result, stats = self._load(cluster)
            backend_served = self._backend_served(fleet)
        except (LaunchError, NotReady, LoopUnavailable, OSError) as exc:
            self.progress.done(f"hubhop demo: {exc}")
            print(
                f"hubhop demo: configs and logs of every process: {self.shown_lab}/",
                file=sys.stderr,
            )
            return EX_FAILED
        finally:
            self._stop(cluster, fleet)
        return self._report(result, stats, backend_served)

    # --- the phases -------------------------------------------------------------------------

    def _say_plan(self) -> None:
        s = self.slice
        streams = ", ".join(
            f"{st.name} {st.group[0]}/{st.group[1]} {st.rate * self._rate_scale():.3g} req/s"
            for st in self.mix.streams
        )
        shown = topology = Path(self.ns.topology).resolve()
        if topology.is_relative_to(Path.cwd()):
            shown = topology.relative_to(Path.cwd())
        print(
            f"hubhop demo: {len(s.sites)} daemons and {len(s.sites)} demo backends of {shown} "
            f"(daemons on {self.ns.net}.x, backends on {backend_net(self.ns.net)}.x)"
        )
        print(f"  hospitals (entry points): {', '.join(s.entries)}")
        print(f"  data centres: {', '.join(s.datacentres)}")
        if s.key_cities:
            print(f"  key cities: {', '.join(s.key_cities)}")
        if s.hubs:
            print(f"  hub clusters: {', '.join(s.hubs)}")
        print(f"  load: {Path(self.mix.source).stem} mix for {self.size.duration_s:g} s: {streams}")
        print(f"  configs and logs: {self.shown_lab}/", flush=True)

    def _start(self, fleet: Any, cluster: Any) -> None:
        since = time.monotonic()
        total = 2 * len(self.slice.sites)
        up: list[str] = []

        def ready(site: str) -> None:
            up.append(site)
            elapsed = time.monotonic() - since
            self.progress.update(
                "starting  ", len(up) / total, f"{len(up)}/{total} up, {elapsed:.0f} s"
            )

        fleet.start_all(ready)
        cluster.start_all(on_ready=ready)
        self._lap("start_s", since)
        self.progress.done(
            f"started {len(self.slice.sites)} daemons and {len(fleet.procs)} demo backends "
            f"in {self.timings['start_s']:.1f} s"
        )

    def _converge(self, cluster: Any) -> None:
        from hubhop.demo.readiness import wait_routable
        from hubhop.loadgen.request_shapes import route_ask

        asks = [route_ask(stream) for stream in self.mix.streams]

        def polled(elapsed: float, met: int, total: int) -> None:
            self.progress.update(
                "converging", met / total,
                f"{met}/{total} entry x stream routes, {elapsed:.0f} s "
                f"(at most {CONVERGE_TIMEOUT_S:g} s)",
            )  # fmt: skip

        waited = wait_routable(cluster, self.slice.entries, asks, CONVERGE_TIMEOUT_S, polled)
        self.timings["converge_s"] = round(waited, 2)
        self.progress.done(
            f"every hospital routes every stream after {waited:.1f} s (links measured, tiers known)"
        )

    def _rate_scale(self) -> float:
        return 1.0 if self.ns.rate is None else self.ns.rate / self.mix.rate

    def _load(self, cluster: Any) -> tuple[Any, Any]:
        from hubhop.loadgen import runner
        from hubhop.loadgen.stats import RunStats

        entries = tuple(cluster.procs[entry].url for entry in self.slice.entries)
        self.workload = workload = self.mix.adjusted(
            duration_s=self.size.duration_s,
            rate_scale=self._rate_scale(),
            seed=self.ns.seed,
            entries=entries,
        )
        stats = RunStats(workload)
        since = time.monotonic()

        async def tick() -> None:
            while True:
                elapsed = time.monotonic() - since
                every = stats.merged()
                detail = (
                    f"{min(elapsed, workload.duration_s):.0f}/{workload.duration_s:g} s, "
                    f"answered {every.sent}: {every.ok} served, {every.shed} shed, "
                    f"{every.sent - every.ok - every.shed} failed"
                )
                if elapsed > workload.duration_s:
                    detail += "; waiting for the last answers"
                self.progress.update("load      ", elapsed / workload.duration_s, detail)
                await asyncio.sleep(0.2)

        async def load() -> Any:
            ticker = asyncio.create_task(tick())
            try:
                return await runner.run(workload, None, stats)
            finally:
                ticker.cancel()

        result = run_loop(load(), self.ns.loop)
        self._lap("load_s", since)
        self.progress.done(
            f"sent {result.stats.sent} requests from {len(entries)} hospitals in "
            f"{self.timings['load_s']:.1f} s"
        )
        return result, stats

    def _backend_served(self, fleet: Any) -> dict[str, int]:
        """What each site's backend says it ran (hedged copies included), before it stops."""
        return {
            site: sum(int(fleet.stats(site, p.name)["served"]) for p in backends)
            for site, backends in self.profiles.items()
        }

    def _stop(self, cluster: Any, fleet: Any) -> None:
        since = time.monotonic()
        daemons = cluster.stop_all()
        backends = fleet.stop_all()
        self._lap("stop_s", since)
        self.stopped = {"daemons": daemons, "backends": backends}
        codes = {**daemons, **backends}
        if not codes:
            return
        unclean = {pid: code for pid, code in codes.items() if code != 0}
        how = (
            "all exited 0"
            if not unclean
            else "exit status by PID: " + ", ".join(f"{p} {c}" for p, c in unclean.items())
        )
        self.progress.note(
            f"stopped {len(codes)} processes by PID ({len(daemons)} daemons, {len(backends)} "
            f"demo backends) in {self.timings['stop_s']:.1f} s: {how}"
        )

    # --- the report -------------------------------------------------------------------------

    def _report(self, result: Any, stats: Any, backend_served: dict[str, int]) -> int:
        from hubhop.demo import table
        from hubhop.loadgen import report

        summary = report.run_summary(self.workload, stats, result.elapsed_s)
        faults = table.accounting_faults(summary)
        sites = [
            table.SiteRow(
                name=name, role=self.model.topology.site(name).role,
                city=self.model.topology.site(name).city, chip=backends[0].chip,
                slots=backends[0].slots, price=backends[0].price,
                green_share=backends[0].green_share,
            )
            for name, backends in self.profiles.items()
        ]  # fmt: skip
        print()
        print(
            f"hubhop demo: {Path(self.workload.source).stem} mix, {self.workload.duration_s:g} s "
            f"at {self.workload.rate:.3g} req/s from {len(self.slice.entries)} hospitals; "
            f"sent {summary['sent']}"
        )
        print()
        for line in table.lane_lines(summary):
            print(line)
        print()
        for line in table.site_lines(summary, sites):
            print(line)
        print()
        print(table.accounting_line(summary) if not faults else "COUNTS DO NOT ADD UP:")
        for line in faults:
            print(f"  {line}")
        written = self._write_files(summary, stats, backend_served, faults)
        print(f"wrote {', '.join(str(p) for p in written)}")
        total = time.monotonic() - self.started
        print(
            f"hubhop demo: done in {total:.0f} s (start {self.timings['start_s']:.0f} s, "
            f"convergence {self.timings['converge_s']:.0f} s, load {self.timings['load_s']:.0f} s)"
        )
        if not summary["all"]["ok"]:
            print(
                f"hubhop demo: not one request was served; the errors are above, every "
                f"process's log in {self.shown_lab}/",
                file=sys.stderr,
            )
        if faults or not summary["all"]["ok"]:
            return EX_FAILED
        return EX_OK

    def _write_files(
        self,
        summary: dict[str, Any],
        stats: Any,
        backend_served: dict[str, int],
        faults: list[str],
    ) -> list[Path]:
        from hubhop.demo import plots, table
        from hubhop.loadgen import output, report

        args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.ns).items()}
        args.pop("func", None)
        document = report.document(self.workload, summary, args=args, machine=output.machine())
        document["demo"] = self._demo_json(summary, backend_served, faults)
        written = [self.out / "demo.json"]
        output.write_json(written[0], document)
        title = (
            f"hubhop demo: {len(self.slice.sites)} sites, "
            f"{self.workload.rate:.3g} req/s for {self.workload.duration_s:g} s"
        )
        cdf = self.out / "latency-cdf.png"
        drew = output.write_cdf_png(cdf, report.cdf_series(stats), title)
        lane_routes: dict[str, dict[tuple[str, ...], int]] = {}
        for row in summary["groups"]:
            mine = lane_routes.setdefault(row["lane"], {})
            for path, n in row["paths"].items():
                hops = tuple(path.split(">"))
                mine[hops] = mine.get(hops, 0) + n
        served = {site: sum(c.values()) for site, c in table.served_by_site(summary).items()}
        where = self.out / "map.png"
        drew = drew and plots.write_map_png(
            where, self.model.topology, self.slice.sites, served, lane_routes,
            title + ": sites coloured by requests served, lines are the routes taken",
        )  # fmt: skip
        if drew:
            written += [cdf, where]
        else:
            print(output.NO_MATPLOTLIB, file=sys.stderr)
        return written

    def _demo_json(
        self, summary: dict[str, Any], backend_served: dict[str, int], faults: list[str]
    ) -> dict[str, Any]:
        from hubhop.demo import table

        topology = self.model.topology
        return {
            "topology": str(self.ns.topology),
            "net": self.ns.net,
            "backend_net": backend_net(self.ns.net),
            "slice": {
                "entries": list(self.slice.entries),
                "datacentres": list(self.slice.datacentres),
                "key_cities": list(self.slice.key_cities),
                "hubs": list(self.slice.hubs),
            },
            "sites": [
                {
                    "name": name,
                    "role": topology.site(name).role,
                    "city": topology.site(name).city,
                    "region": topology.site(name).region,
                    "lat": topology.site(name).lat,
                    "lon": topology.site(name).lon,
                    "host": topology.site(name).host,
                    "backends": [vars(p) for p in backends],
                    "backend_served": backend_served.get(name),
                }
                for name, backends in self.profiles.items()
            ],
            "table": [
                {"row": table.label(r), **table.counts(r)}
                for r in [*summary["groups"], summary["all"]]
            ],
            "routes": [
                {"path": list(path), "count": n} for path, n in table.routes(summary).most_common()
            ],
            "accounting_faults": faults,
            "timings_s": self.timings,
            "stopped": {kind: dict(codes) for kind, codes in self.stopped.items()},
        }
