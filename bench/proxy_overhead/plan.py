"""How much load the proxy_overhead benchmark sends: the full run and the `--quick` one.

Every count has its reason beside it. Both plans are bounded twice: by request counts, and by
a wall-clock budget after which the remaining rounds are skipped (and the JSON says so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# A 16 MB tensor: a thin-slice CT series or a batch of images, the size class where a proxy's
# copying shows as lost MB/s rather than as added microseconds. Decimal MB, so MB/s is 1e6 B/s.
UPLOAD_BYTES = 16_000_000


@dataclass(frozen=True)
class Plan:
    # Rounds of the small workloads; each round runs a block on every variant, in rotated order,
    # so a burst of noise from a neighbour lands on all variants rather than on one.
    rounds: int
    # Sequential requests per variant per round (concurrency 1): enough for a stable median
    # per round, short enough (~0.1-0.3 s) that a round is over before the noise changes.
    latency_block: int
    # Requests per variant per round at `concurrency`: long enough for the pool to settle.
    throughput_block: int
    # Discarded requests per variant and workload before round 1: connections are opened,
    # code paths are warm, and the first allocator and JIT-free Python costs are paid.
    warmup: int
    # Rounds of the 16 MB upload, and uploads per variant per round.
    upload_rounds: int
    upload_block: int
    # Closed-loop clients for the throughput run: well above the 1 that latency uses, and a
    # typical small app's parallelism; higher only measures the 2-core box's scheduler.
    concurrency: int = 8
    # The whole measurement stops after this much wall-clock time, whatever is left.
    budget_s: float = 150.0
    # No single block may take longer than this; a slower one is cut and marked truncated.
    block_cap_s: float = 20.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "upload_bytes": UPLOAD_BYTES}


# About 65 s of measuring on the 2-core box, plus a few seconds of start-up; the 150 s budget
# keeps even a very loaded run within 3 minutes.
FULL = Plan(
    rounds=20,
    latency_block=300,
    throughput_block=1600,
    warmup=300,
    upload_rounds=12,
    upload_block=5,
    budget_s=150.0,
)

# A smoke run: every code path, figures good to a few tens of percent; about 5 s of
# measuring, and the 20 s budget keeps it within 30 s with start-up.
QUICK = Plan(
    rounds=4,
    latency_block=100,
    throughput_block=400,
    warmup=50,
    upload_rounds=3,
    upload_block=2,
    budget_s=20.0,
    block_cap_s=5.0,
)
