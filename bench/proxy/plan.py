"""How much load the proxy benchmark sends: the full run and the `--quick` one.

Every count has its reason beside it. Both plans are bounded twice: by request counts, and by
a wall-clock budget after which the remaining rounds are skipped (and the JSON says so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Decimal MB, so MB/s is 1e6 B/s. 200 MB: a CT series, the upload issue 6 names; the quick plan
# sends 16 MB (a thin-slice series) so a smoke run stays within seconds.
FULL_UPLOAD_BYTES = 200_000_000
QUICK_UPLOAD_BYTES = 16_000_000


@dataclass(frozen=True)
class Plan:
    # Rounds of the small workloads; each round runs a block on every variant, in rotated order,
    # so a burst of noise from a neighbour lands on all variants rather than on one.
    rounds: int
    # Sequential requests per variant per round (concurrency 1): enough for a stable median
    # per round, short enough (~0.1-0.3 s) that a round is over before the noise changes.
    latency_block: int
    # Requests per variant per round at `concurrency`: 50 per connection, long enough for the
    # pool to settle and for a CPU reading of the proxy to be well above the clock's grain.
    throughput_block: int
    # Discarded requests per variant and workload before round 1: connections are opened,
    # code paths are warm, and the first allocator and JIT-free Python costs are paid.
    warmup: int
    # Rounds of the upload, and uploads per variant per round.
    upload_rounds: int
    upload_block: int
    # The upload's size: streamed by the client from one reused chunk, never held whole.
    upload_bytes: int
    # Closed-loop clients for the throughput run: issue 6 asks for 1 and 32 connections.
    concurrency: int = 32
    # The whole measurement stops after this much wall-clock time, whatever is left.
    budget_s: float = 240.0
    # No single block may take longer than this; a slower one is cut and marked truncated.
    block_cap_s: float = 20.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# About 100 s of measuring on the 2-core box with four variants, plus a few seconds of start-up;
# the 240 s budget keeps even a very loaded run within 5 minutes.
FULL = Plan(
    rounds=16,
    latency_block=300,
    throughput_block=1600,
    warmup=300,
    upload_rounds=6,
    upload_block=2,
    upload_bytes=FULL_UPLOAD_BYTES,
)

# A smoke run: every code path, figures good to a few tens of percent; a few seconds of
# measuring, and the 20 s budget keeps it within 30 s with start-up.
QUICK = Plan(
    rounds=3,
    latency_block=100,
    throughput_block=640,
    warmup=64,
    upload_rounds=2,
    upload_block=1,
    upload_bytes=QUICK_UPLOAD_BYTES,
    budget_s=20.0,
    block_cap_s=5.0,
)
