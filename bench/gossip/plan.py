"""How much the gossip benchmark does: the full run and the `--quick` one.

Every figure has its reason beside it. Both plans are bounded: by counts, and by a wall-clock
time limit on every wait (a cluster that never converges is reported as such, not waited for).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Plan:
    # Cluster sizes of real processes on loopback (the 8, 32, 64).
    sizes: tuple[int, ...]
    # Record changes per cluster, one at a time on random nodes: the issue asks for at least 20,
    # so the p99 of 20 is the maximum; more would cost time at 64 Python daemons.
    updates: int
    # Idle window over which CPU, RSS and bytes/s are measured (no polling inside it).
    steady_s: float
    # The starvation run: its length, the cluster size, and the SIGSTOP burst pattern. A 0.8 s
    # stop every 3 s is below hubhop's suspicion timeout (>= 1.5 s at its defaults) and Serf's
    # (>= 4 s in its LAN profile), so a correct detector never declares the node dead.
    fp_s: float
    fp_nodes: int
    fp_stop_s: float = 0.8
    fp_period_s: float = 3.0
    # Simulator sizes for dissemination and failure detection. Not 10,000: every node of a
    # converged SWIM cluster holds every member, so the simulator holds N^2 member entries
    # (10^8 at 10,000, beyond this box's 24 GB) and converging costs ~N^2 Python work; see
    # the README. `--sim-sizes` runs other sizes.
    sim_sizes: tuple[int, ...] = (500, 1_000, 2_000)
    # Bounds on every wait: a join, an update reaching all, a kill seen by all.
    join_timeout_s: float = 150.0
    update_timeout_s: float = 60.0
    failure_timeout_s: float = 90.0
    # Daemons started at once while the cluster joins: each cold start of hubhop imports numpy,
    # aiohttp and numba on 2 shared cores, so more at once only makes each of them slower.
    launch_parallel: int = 6
    # Pause between two record changes, so one change's dissemination ends before the next.
    update_gap_s: float = 0.3

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Plan(
    sizes=(8, 32, 64),
    updates=20,
    steady_s=30.0,
    fp_s=300.0,
    fp_nodes=16,
)
QUICK = Plan(
    sizes=(8,),
    updates=10,
    steady_s=10.0,
    fp_s=60.0,
    fp_nodes=8,
    sim_sizes=(1_000,),
    join_timeout_s=60.0,
    update_timeout_s=30.0,
    failure_timeout_s=45.0,
)
