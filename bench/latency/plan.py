"""How much the latency benchmark does: the full run and the `--quick` one.

Both are bounded: every wait has a time limit, and a figure that could not be measured is
reported as missing with its reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# 34 of the shipped topology's sites: all but the hospitals outside Wuhan, added later for the
# demo (their links repeat their cities' data centres'). The joiner is started after the
# warm-up, to time how fast a new node's coordinate becomes useful: a far hub cluster, whose
# coordinate at the origin is far off (a central Hubei city starts within 20% of most others
# before any sample).
ALL_SITES = (
    "wuhan-dc-1", "wuhan-dc-2", "wuhan-hospital", "wuhan-5g-mec",
    "huangshi", "shiyan", "yichang", "xiangyang", "ezhou", "jingmen", "xiaogan", "jingzhou",
    "huanggang", "xianning", "suizhou", "enshi",
    "shanghai", "nanjing", "hangzhou", "hefei", "nanchang", "changsha", "chongqing", "chengdu",
    "hub-zhangjiakou", "hub-wuhu", "hub-yrd-demo", "hub-shaoguan", "hub-tianfu",
    "hub-chongqing", "hub-horinger", "hub-guian", "hub-qingyang", "hub-zhongwei",
)  # fmt: skip
JOINER = "hub-guian"
QUICK_SITES = (
    "wuhan-dc-1", "wuhan-dc-2", "wuhan-hospital", "huangshi", "shiyan", "enshi", "xianning",
    "shanghai", "changsha", "chengdu", "hub-zhangjiakou", "hub-wuhu", "hub-guian",
)  # fmt: skip
# Hubs every node probes each near round: the two national hubs a Hubei node spills batch
# work to first (the nearest hub cluster, and the northern one).
HUBS = ("hub-wuhu", "hub-zhangjiakou")


@dataclass(frozen=True)
class Plan:
    # Sites run as real daemons (the joiner among them starts later).
    sites: tuple[str, ...]
    # The warm-up: figures are taken this long after the last daemon is up.
    warmup_s: float
    # Probe bandwidth is the probe bytes sent over this window, per node.
    bandwidth_window_s: float
    # A joiner's coordinate is followed this long; "never" beyond it.
    join_limit_s: float = 60.0
    # How often the joiner's view is read while it settles.
    join_poll_s: float = 0.5
    # The simulator: nodes and simulated warm-up.
    sim_nodes: int = 1_000
    sim_duration_s: float = 120.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Plan(sites=ALL_SITES, warmup_s=30.0, bandwidth_window_s=30.0)
QUICK = Plan(
    sites=QUICK_SITES,
    warmup_s=20.0,
    bandwidth_window_s=10.0,
    join_limit_s=30.0,
    sim_nodes=200,
    sim_duration_s=60.0,
)
