"""The simulator part of the gossip benchmark: an update and a failure through 1,000s of nodes.

Run as a child process (`python -m bench.gossip.simulate --sizes 1000,10000 --out FILE`) so
the main benchmark can give it low priority and a time bound. It drives hubhop's own sans-IO
core through `hubhop.sim.Simulator` (virtual clock, 2 ms +- 1 ms links, no loss), at the
daemon's default settings:

- N nodes join through one seed, 10 ms apart, and run until every node lists all N alive;
- after 5 simulated seconds of quiet, node n2 publishes a new 300-byte record (the size of a
  one-backend capacity record); the time at which each other node stores it gives 50/99/100%;
  rounds are those times over the gossip interval (one round = one gossip tick);
- then node n7 is killed; the time at which each other node declares it dead gives
  50/99/100%; rounds are those times over the probe interval.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

RECORD_BYTES = 300
# Joins 10 ms apart: each joiner's alive news spreads before the next, so the cluster converges
# by gossip right after the last join instead of waiting for a push-pull round (90 s at 1,000).
JOIN_STAGGER_S = 0.01
CONVERGE_LIMIT_S = 600.0  # simulated; a cluster that has not converged by then is reported
SPREAD_LIMIT_S = 60.0
DETECT_LIMIT_S = 120.0


def _at(times: list[float], fraction: float, total: int) -> float | None:
    need = max(1, math.ceil(fraction * total - 1e-9))
    return times[need - 1] if len(times) >= need else None


def _figures(times: list[float], total: int, round_s: float) -> dict[str, Any]:
    times = sorted(times)
    out: dict[str, Any] = {"population": total, "reached": len(times), "round_s": round_s}
    for p in (50, 99, 100):
        t = _at(times, p / 100, total)
        out[f"seconds_{p}"] = None if t is None else round(t, 4)
        out[f"rounds_{p}"] = None if t is None else round(t / round_s, 2)
    return out


def measure(nodes: int, seed: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    from hubhop.core.members import MemberState
    from hubhop.sim import Simulator

    started = time.perf_counter()
    sim = Simulator(seed=seed, record_events=False)
    settings = sim.settings
    sim.add_nodes(nodes, stagger_s=JOIN_STAGGER_S)
    joined = sim.now

    def everyone_alive() -> bool:
        return all(sn.node.count(MemberState.ALIVE) == nodes for sn in sim.live())

    converge = sim.run_until_true(everyone_alive, CONVERGE_LIMIT_S, check_every_s=1.0)
    join = {
        # Peak RSS of this process so far: the simulator holds N^2 member entries.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "joins_over_s": round(joined, 3),
        "converged_after_last_join_s": converge,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    sim.run_for(5.0)

    t0 = time.perf_counter()
    origin = sim.nodes["n2"]
    version = origin.node.update_record(b"r" * RECORD_BYTES, sim.now)
    sim.touch(origin.name)
    sim.track_record(origin.name, version)
    start = sim.now
    sim.run_until_true(lambda: len(sim.arrivals[origin.name]) >= nodes - 1, SPREAD_LIMIT_S, 0.05)
    arrivals = [t - start for name, t in sim.arrivals[origin.name].items() if name != origin.name]
    spread = _figures(arrivals, nodes - 1, settings.gossip_interval_s)
    spread["wall_s"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    victim = "n7"
    sim.kill(victim)
    killed_at = sim.now
    sim.run_until_true(
        lambda: len(sim.dead_at.get(victim, {})) >= nodes - 1, DETECT_LIMIT_S, check_every_s=0.25
    )
    dead = [t - killed_at for t in sim.dead_at.get(victim, {}).values()]
    suspected = sim.suspected_at.get(victim, {})
    failure = _figures(dead, nodes - 1, settings.probe_interval_s)
    failure["first_suspect_s"] = (
        round(min(suspected.values()) - killed_at, 4) if suspected else None
    )
    failure["wall_s"] = round(time.perf_counter() - t0, 1)
    return join, spread, failure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    ns = parser.parse_args()
    from hubhop.core.swim import GossipSettings

    document: dict[str, Any] = {
        "method": __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        "settings": {
            k: v for k, v in asdict(GossipSettings()).items() if isinstance(v, int | float)
        },
        "join": {},
        "dissemination": {},
        "failure": {},
    }
    for n in (int(x) for x in ns.sizes.split(",")):
        started = time.perf_counter()
        join, spread, failure = measure(n, ns.seed)
        document["join"][str(n)] = join
        document["dissemination"][str(n)] = spread
        document["failure"][str(n)] = failure
        print(
            f"simulator N={n}: update 100% in {spread['rounds_100']} rounds, "
            f"failure seen by all in {failure['seconds_100']} s "
            f"({time.perf_counter() - started:.0f} s real)",
            flush=True,
        )
        ns.out.write_text(json.dumps(document, indent=2) + "\n")  # partial results survive


if __name__ == "__main__":
    main()
