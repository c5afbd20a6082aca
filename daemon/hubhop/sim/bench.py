"""Simulated figures at scale: `python -m hubhop.sim.bench --nodes 1000`.

Joins N nodes through one seed, waits for convergence, publishes one record and times its
spread (50/99/100% of nodes, in seconds and gossip rounds), then kills one node and times its
detection (first suspicion, first and last DEAD). Prints the figures and the real time taken.
"""

from __future__ import annotations

import argparse
import time

from hubhop.core.members import MemberState
from hubhop.sim.network import Simulator


def run(nodes: int, seed: int, join_stagger_s: float) -> dict[str, float | int | None]:
    started = time.perf_counter()
    sim = Simulator(seed=seed, record_events=False)
    sim.add_nodes(nodes, stagger_s=join_stagger_s)
    joined_at = sim.now
    want = nodes

    def everyone_alive() -> bool:
        return all(sn.node.count(MemberState.ALIVE) == want for sn in sim.live())

    converge = sim.run_until_true(everyone_alive, 600.0, check_every_s=1.0)
    out: dict[str, float | int | None] = {
        "nodes": nodes,
        "join_s": joined_at,
        "converge_s": converge,
        "real_join_s": time.perf_counter() - started,
    }
    sim.run_for(5.0)
    origin = sim.nodes["n2"]
    t0 = time.perf_counter()
    sim_t0 = sim.now
    version = origin.node.update_record(b"x" * 200, sim.now)
    sim.touch(origin.name)
    sim.track_record(origin.name, version)
    sim.run_until_true(lambda: len(sim.arrivals[origin.name]) >= nodes - 1, 60.0, 0.05)
    d = sim.dissemination(origin.name)
    out.update(
        record_t50_s=d.t50,
        record_t99_s=d.t99,
        record_t100_s=d.t100,
        record_rounds50=d.rounds(d.t50),
        record_rounds99=d.rounds(d.t99),
        record_rounds100=d.rounds(d.t100),
    )
    victim = "n7"
    sim.kill(victim)
    killed_at = sim.now
    sim.run_until_true(
        lambda: len(sim.dead_at.get(victim, {})) >= nodes - 1, 120.0, check_every_s=0.25
    )
    suspected = sim.suspected_at.get(victim, {})
    dead = sim.dead_at.get(victim, {})
    out.update(
        first_suspect_s=(min(suspected.values()) - killed_at) if suspected else None,
        first_dead_s=(min(dead.values()) - killed_at) if dead else None,
        all_dead_s=(max(dead.values()) - killed_at) if len(dead) >= nodes - 1 else None,
    )
    out["simulated_s"] = sim.now
    out["real_s"] = time.perf_counter() - started
    out["real_steady_s_per_sim_s"] = (time.perf_counter() - t0) / max(sim.now - sim_t0, 1e-9)
    out["datagrams"] = sim.delivered
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stagger", type=float, default=0.001, help="seconds between joins")
    args = parser.parse_args()
    for key, value in run(args.nodes, args.seed, args.stagger).items():
        print(f"{key:28} {value:.3f}" if isinstance(value, float) else f"{key:28} {value}")


if __name__ == "__main__":
    main()
