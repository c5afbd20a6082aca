"""The real-daemon half of the latency benchmark: what N daemons on the emulated WAN know.

Steps, each bounded in time:
1. Start every site's daemon except the joiner; the clock starts when the last is up.
2. Warm-up (the issue's 30 s), then read every node's probe byte counter, wait the bandwidth
   window, read it again: probe bytes per second per node (probe and reply datagrams beyond
   the gossip they carried, plus 28 bytes of IPv4 and UDP header each).
3. Every node's peers view, judged against the emulated truth (`accuracy.py`): probed links,
   coordinates (every pair), tiers (every ordered pair).
4. The joiner starts; its view is read every `join_poll_s` until the median relative error of
   its coordinate against the others' is under 20% (or `join_limit_s` passes).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench._report import quantile
from bench.latency import accuracy
from bench.latency.cluster import WanCluster
from bench.latency.plan import Plan

# IPv4 (20) and UDP (8) headers of every datagram, which the daemon's counters do not see.
HEADER_BYTES = 28
# The Vivaldi paper's mark for a placed node; the join target.
JOIN_ERROR = 0.20

Say = Callable[[str], None]


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _stats(values: list[float], digits: int = 4) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": _r(quantile(values, 0.5), digits),
        "p90": _r(quantile(values, 0.9), digits),
        "p95": _r(quantile(values, 0.95), digits),
        "max": _r(max(values), digits) if values else None,
    }


def probe_bandwidth(cluster: WanCluster, window_s: float, say: Say) -> dict[str, Any]:
    def totals() -> dict[str, tuple[int, int]]:
        out = {}
        for site, view in cluster.views().items():
            me = view["self"]
            out[site] = (me["probe_bytes_sent"], me["probes_sent"] + me["probes_answered"])
        return out

    before, t0 = totals(), time.monotonic()
    say(f"probe bandwidth over {window_s:.0f} s")
    time.sleep(window_s)
    after, t1 = totals(), time.monotonic()
    per_node = {
        site: (after[site][0] - before[site][0] + HEADER_BYTES * (after[site][1] - before[site][1]))
        / (t1 - t0)
        for site in after
        if site in before
    }
    values = list(per_node.values())
    return {
        "window_s": round(t1 - t0, 2),
        "bytes_per_s": {"mean": round(statistics.mean(values), 1), **_stats(values, 1)},
        "per_node": {site: round(v, 1) for site, v in sorted(per_node.items())},
    }


def judge(cluster: WanCluster, views: accuracy.Views) -> dict[str, Any]:
    model = cluster.model
    links = accuracy.probed_links(views, model)
    coords = accuracy.coordinate_errors(views, model)
    pairs = accuracy.tier_pairs(views, model)
    tiers = accuracy.tier_summary(pairs)
    by_source: dict[str, dict[str, int]] = {}
    for pair in pairs:
        counts = by_source.setdefault(pair.source, {})
        counts[pair.verdict] = counts.get(pair.verdict, 0) + 1
    tiers["by_source"] = by_source
    return {
        "probes": {
            "links": len(links),
            "abs_error_ms": _stats([e.abs_ms for e in links]),
            "rel_error": _stats([e.rel for e in links]),
            "within_3pct_or_0.05ms": sum(e.within(0.03, 0.05) for e in links),
            "signed_error_ms_p50": _r(quantile([e.measured_ms - e.true_ms for e in links], 0.5)),
        },
        "vivaldi": {
            "pairs": len(coords),
            "rel_error": _stats([e.rel for e in coords]),
            "abs_error_ms": _stats([e.abs_ms for e in coords]),
        },
        "tiers": tiers,
        "lateness_ms": {
            site: (view["self"].get("wan") or {}).get("lateness_ms")
            for site, view in sorted(views.items())
        },
        # For the plots: (true, measured) of every probed link, (true, estimated) of every pair.
        "scatter": {
            "probes": [[round(e.true_ms, 4), round(e.measured_ms, 4)] for e in links],
            "vivaldi": [[round(e.true_ms, 4), round(e.measured_ms, 4)] for e in coords],
        },
    }


def measure_join(cluster: WanCluster, joiner: str, plan: Plan, say: Say) -> dict[str, Any]:
    """Start the joiner; time until its coordinate's median relative error is under 20%."""
    say(f"joining {joiner}")
    cluster.start(joiner)
    started = cluster.started_at[joiner]
    others = {s: v for s, v in cluster.views().items() if s != joiner}
    trace = []
    reached: dict[str, Any] | None = None
    while time.monotonic() - started < plan.join_limit_s:
        view = cluster.peers(joiner)
        mine = accuracy.coordinate(view, placed_only=False)  # at the origin before a sample
        if mine is not None:
            errors = []
            for site, other in others.items():
                theirs = accuracy.coordinate(other)
                if theirs is not None:
                    true = accuracy.true_rtt_ms(cluster.model, joiner, site)
                    errors.append(abs(mine.distance_ms(theirs) - true) / true)
            median = statistics.median(errors) if errors else None
            updates = view["self"]["coordinate"]["updates"]
            t = time.monotonic() - started
            trace.append([round(t, 2), _r(median), updates])
            if median is not None and median < JOIN_ERROR:
                reached = {"seconds": round(t, 2), "vivaldi_samples": updates}
                break
        time.sleep(plan.join_poll_s)
    return {
        "joiner": joiner,
        "error_at_start": trace[0][1] if trace and trace[0][2] == 0 else None,
        "target_error": JOIN_ERROR,
        # Counted from the joiner's ready line: start-up (imports, kernel load) comes before.
        "reached": reached,
        "trace": trace,
    }
