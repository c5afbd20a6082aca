"""What `hubhop loadgen` prints and writes: tables per (lane, tier), and the JSON result.

Rules:
- The printed tables and the JSON come from the same summaries, so they never disagree.
- Every request sent is in exactly one row's `sent`, as ok or as one error kind: the `all` row's
  sent is the run's. `failed` counts every one not ok; `shed`, those of them the network turned
  away on purpose (`outcome.SHED_KINDS`).
- Shares (within tier, within deadline) are of the ok answers; goodput is per second of the
  planned duration, like throughput.
- Latency is in milliseconds, measured from each request's planned send time. The header line
  says how late the client itself sent (its lag), so a reader can tell whether the latency is
  the server's.
- Pure: the clock readings and the machine description are passed in.
"""

from __future__ import annotations

from typing import Any

from hubhop.cli_tables import aligned
from hubhop.loadgen.stats import RunStats, cdf_points, latency_summary
from hubhop.loadgen.workload import Workload

TOOL = "hubhop loadgen"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def run_summary(workload: Workload, stats: RunStats, elapsed_s: float) -> dict[str, Any]:
    """The run's figures: one summary per (lane, tier), the `all` row, and the client's lag."""
    duration = workload.duration_s
    return {
        "duration_s": duration,
        "elapsed_s": round(elapsed_s, 3),
        "planned_rate_rps": round(workload.rate, 3),
        "sent": stats.sent,
        "sent_rate_rps": round(stats.sent / duration, 3),
        "client_lag_ms": latency_summary(stats.lag),
        "groups": [group.summary(duration) for group in stats.groups.values()],
        "all": stats.merged().summary(duration),
        "first_error": dict(sorted(stats.first_error.items())),
    }


def document(
    workload: Workload,
    summary: dict[str, Any],
    *,
    args: dict[str, Any],
    machine: dict[str, Any],
) -> dict[str, Any]:
    """The JSON result: the machine, how it was run, the workload as run, and the figures."""
    return {
        "tool": TOOL,
        "machine": machine,
        "args": args,
        "seed": workload.seed,
        "workload": workload.as_json(),
        "result": summary,
    }


def cdf_series(stats: RunStats) -> dict[str, list[tuple[float, float]]]:
    """Per (lane, tier) row, the CDF of total latency, for the plot."""
    return {g.label: cdf_points(g.total) for g in stats.groups.values() if g.ok}


def lines(workload: Workload, summary: dict[str, Any]) -> list[str]:
    """The printed report: a header, a counts table, a latency table, errors."""
    lag = summary["client_lag_ms"]
    out = [
        f"{TOOL}: {workload.source}: {summary['duration_s']:g} s, seed {workload.seed}, "
        f"{len(workload.streams)} stream(s), planned {summary['planned_rate_rps']:g} req/s, "
        f"sent {summary['sent']} ({summary['sent_rate_rps']:g} req/s), "
        f"elapsed {summary['elapsed_s']:.1f} s",
        f"client lag (sent after planned, ms): p50 {_ms(lag['p50'])}, p99 {_ms(lag['p99'])}, "
        f"max {_ms(lag['max'])}; latency counts from the planned send",
        "",
    ]
    rows = [*summary["groups"], summary["all"]]
    counts = [
        ("LANE/TIER", "SENT", "OK", "FAILED", "SHED", "OK/S", "IN_TIER", "IN_DEADLINE", "GOODPUT/S")
    ]
    for r in rows:
        counts.append((
            f"{r['lane']}/{r['tier']}" if r["lane"] != "all" else "all", str(r["sent"]),
            str(r["ok"]), str(r["failed"]), str(r["shed"]), f"{r['throughput_rps']:g}",
            _share(r["within_tier_share"]), _share(r["within_deadline_share"]),
            f"{r['goodput_rps']:g}",
        ))  # fmt: skip
    out += aligned(counts)
    out.append("FAILED counts every request not answered ok; SHED, those the network turned away")
    out.append("")
    latency = [("LATENCY_MS", "TTFB_P50", "TTFB_P99", "P50", "P90", "P99", "P99.9", "MAX")]
    for r in rows:
        t, f = r["total_ms"], r["ttfb_ms"]
        latency.append((
            f"{r['lane']}/{r['tier']}" if r["lane"] != "all" else "all", _ms(f["p50"]),
            _ms(f["p99"]), _ms(t["p50"]), _ms(t["p90"]), _ms(t["p99"]), _ms(t["p99_9"]),
            _ms(t["max"]),
        ))  # fmt: skip
    out += aligned(latency)
    out += error_lines(summary)
    unknown = [
        f"{r['lane']}/{r['tier']} {r['tier_unknown']}" for r in rows[:-1] if r["tier_unknown"]
    ]
    if unknown:
        out.append(
            f"note: answers without x-hubhop-tier (not from a routing hubhop node?), counted as "
            f"not within tier: {', '.join(unknown)}"
        )
    return out


def error_lines(summary: dict[str, Any]) -> list[str]:
    """Errors by kind per row, and the first of each kind in a line (nothing when none)."""
    failing = [r for r in summary["groups"] if r["errors"]]
    if not failing:
        return []
    out = ["", "errors by kind:"]
    for r in failing:
        kinds = ", ".join(f"{kind} {n}" for kind, n in r["errors"].items())
        out.append(f"  {r['lane']}/{r['tier']}: {kinds}")
    for kind, detail in summary["first_error"].items():
        if detail:
            out.append(f"  first {kind}: {detail}")
    return out
