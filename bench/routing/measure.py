"""One run: a phase's load on one system through `hubhop loadgen`'s open-loop runner, judged by
the truth; and waiting until the network is idle again before the next run.

Rules:
- The tier an answer was served in is judged by the true one-way latency from the hospital that
  sent it to the site that served it (`x-hubhop-node`), for every system alike: hubhop's own
  `x-hubhop-tier` is its estimate, and a baseline has none. An answer that names no site known
  to the slice cannot be judged and counts as not within tier.
- Everything else is the load generator's: planned send times, latency from the planned time,
  every request ending as exactly one outcome.
- Idle: every demo backend reports nothing in flight and nothing queued; bounded, and a run that
  starts on a network still busy says so in the result.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from hubhop.core.tiers import tier_of
from hubhop.io.loop import run as run_loop
from hubhop.loadgen import runner
from hubhop.loadgen.outcome import Outcome
from hubhop.loadgen.stats import RunStats
from hubhop.loadgen.workload import Workload

# Between two polls of every backend's counters while waiting for idle: 24 small GETs.
IDLE_POLL_S = 0.5


class TruthStats(RunStats):
    """RunStats whose tier judgement is the truth's (see the rules)."""

    def __init__(
        self, workload: Workload, entry_of_stream: list[str], one_way: Callable[[str, str], float]
    ) -> None:
        super().__init__(workload)
        self.entry_of_stream = entry_of_stream
        self.one_way = one_way
        self.unknown_nodes = 0

    def record(self, outcome: Outcome) -> None:
        if outcome.ok:
            entry = self.entry_of_stream[outcome.stream]
            try:
                truth: str | None = tier_of(self.one_way(entry, outcome.node or ""))
            except (KeyError, ValueError):
                truth = None
                self.unknown_nodes += 1
            outcome = dataclasses.replace(outcome, served_tier=truth, spilled=False)
        super().record(outcome)


def run_phase(
    workload: Workload,
    entry_of_stream: list[str],
    one_way: Callable[[str, str], float],
    loop: str = "auto",
) -> tuple[TruthStats, float]:
    """Send `workload`; its stats (judged by the truth) and the seconds from plan start to the
    last outcome."""
    stats = TruthStats(workload, entry_of_stream, one_way)
    result = run_loop(runner.run(workload, None, stats), loop)
    return stats, result.elapsed_s


def wait_idle(
    backend_stats: Callable[[], Mapping[str, Mapping[str, Any]]], timeout_s: float
) -> tuple[float, dict[str, int]]:
    """Wait until no backend has anything in flight or queued; (seconds waited, what was still
    busy per site when the bound ran out: {} when idle)."""
    started = time.monotonic()
    while True:
        busy = {
            site: int(s.get("in_flight", 0)) + int(s.get("queued", 0))
            for site, s in backend_stats().items()
        }
        busy = {site: n for site, n in busy.items() if n}
        waited = time.monotonic() - started
        if not busy or waited > timeout_s:
            return waited, busy
        time.sleep(IDLE_POLL_S)
