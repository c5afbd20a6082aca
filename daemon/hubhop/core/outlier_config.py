"""The `[outlier]` config section: when a backend is taken out of rotation, for how long, and how
it comes back (the rules themselves are hubhop.core.outlier_detection's).

Rules:
- The section is optional; without it outlier detection is on with every default below, each
  with its reason beside it. A reload may change it: it steers requests, it holds no socket.
- One section for all of a node's backends, not keys per backend: the thresholds say what a
  fault looks like, which does not depend on which server it is; a backend's own speed is
  learned (its baseline), not configured.
- `max_ejection_s` is at least `base_ejection_s` (a cap below the base would shorten the first
  ejection); `slow_ms` 0 means no absolute bound.
- Faults are collected on the table like every other section's (hubhop.core.config).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hubhop.core.routing_config import SectionReader


@dataclass(frozen=True)
class OutlierSettings:
    # On by default: a backend answering 500s or hanging should not keep getting a share of the
    # traffic on any node; an operator turns it off where another layer already does this.
    enabled: bool = True
    # Failures in a row (5xx answers, refused connections, timeouts) that eject a backend.
    # Envoy's default: at a 1% error rate five in a row happen once in ten billion windows, while
    # a dead backend reaches five within a few requests.
    consecutive_failures: int = 5
    # First ejection: Envoy's default 30 s, long enough for an inference server to restart and
    # reload its model weights, and for several record publishes to spread the news.
    base_ejection_s: float = 30.0
    # Ejections grow by base_ejection_s each time (each base_ejection_s served in rotation since
    # takes one back); Envoy's 300 s cap: a backend that stays broken is still tried every 5 min.
    max_ejection_s: float = 300.0
    # Slow start after an ejection: the backend comes back with a tenth of its slots, growing
    # linearly to all of them over this window. 30 s covers an inference server's warm-up
    # (kernel compilation, caches) and lets its service-time estimate settle on dozens of
    # answers before it takes a full share.
    slow_start_s: float = 30.0
    # Slow answers in a row that eject a backend: the same five as failures, for the same reason.
    consecutive_slow: int = 5
    # An answer is slow when it takes more than this many times the backend's own baseline.
    # One backend's answer times spread by about 2x between median and p99 (a lightly loaded
    # vLLM); 5x, five times in a row, is not the tail but a fault (a throttled or swapping
    # accelerator, a model fallen back to CPU).
    slow_factor: float = 5.0
    # ... and more than this: below 100 ms a 5x swing is host scheduling noise (a busy core, a
    # GC pause), not a failing backend.
    slow_min_ms: float = 100.0
    # An absolute bound: any answer slower than this is slow, whatever the baseline. 0: none.
    # For operators with a hard bound (CT triage answers within 10 s).
    slow_ms: float = 0.0
    # Most of a node's slots that may be out of rotation at once; one backend may always be.
    # Envoy's 10% is for clusters of dozens of hosts; a node fronts a handful, where half keeps
    # a fault common to all its backends (its network, a bad model rollout) from taking the whole
    # node out, while the network routes around what is ejected.
    max_ejected_share: float = 0.5


def parse_outlier(t: SectionReader) -> OutlierSettings:
    """Read the `[outlier]` table, recording every fault on it; defaults where a key is absent."""
    d = OutlierSettings()
    settings = OutlierSettings(
        enabled=t.boolean("enabled", d.enabled),
        consecutive_failures=t.integer(
            "consecutive_failures", d.consecutive_failures, lo=1, hi=1000
        ),
        base_ejection_s=t.number("base_ejection_s", d.base_ejection_s, lo=0.01, hi=86400.0),
        max_ejection_s=t.number("max_ejection_s", d.max_ejection_s, lo=0.01, hi=86400.0),
        slow_start_s=t.number("slow_start_s", d.slow_start_s, lo=0.0, hi=3600.0),
        consecutive_slow=t.integer("consecutive_slow", d.consecutive_slow, lo=1, hi=1000),
        slow_factor=t.number("slow_factor", d.slow_factor, lo=1.0, hi=1000.0),
        slow_min_ms=t.number("slow_min_ms", d.slow_min_ms, lo=0.0, hi=3_600_000.0),
        slow_ms=t.number("slow_ms", d.slow_ms, lo=0.0, hi=3_600_000.0),
        max_ejected_share=t.number("max_ejected_share", d.max_ejected_share, lo=0.0, hi=1.0),
    )
    if (
        t.has("max_ejection_s")
        and math.isfinite(settings.max_ejection_s)
        and settings.max_ejection_s < settings.base_ejection_s
    ):
        t.fault(
            "max_ejection_s",
            f"{settings.max_ejection_s:g} s is below base_ejection_s"
            f" ({settings.base_ejection_s:g} s)",
        )
    t.finish()
    return settings
