"""Turning the routing benchmark's runs into its figures, its verdicts and its tables.

Rules:
- A run's figures are per lane (emergency, standard, batch) and `all`, from the load
  generator's HDR histograms of ok answers, with the counts beside them.
- p99 counts every request SENT: a request that was shed or failed was never answered, so it
  is slower than any answer. When more than 1% of the requests sent got no answer, the p99 is
  unbounded (shown as "-", JSON null) and the system cannot meet a p99 target. A system that
  sheds its way to a fast p99 does not look fast here.
- Within tier: served, by the truth, within the tier asked, as a share of the requests SENT.
- Rounds are pooled for percentiles (their histograms added: more samples than any one round),
  and each round's own p99 is kept, so the spread across rounds shows beside the pooled figure.
- Verdicts (issue 7): under skew and under the flood, every emergency request served within its
  tier (the city always has capacity for CT reads); the emergency p99 during the flood within
  10% of the same system's unloaded emergency p99; the overall p99 under skew at most half the
  best baseline's. The gap to the oracle is stated per lane.
- Pure: documents in, documents and text out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

from bench._markdown import markdown_table
from bench._report import format_table
from bench.routing.plan import BASELINE_PORTS, PHASES, SYSTEMS
from hubhop.loadgen.stats import GroupStats, latency_summary, new_histogram

LANES = ("emergency", "standard", "batch")
ROWS = (*LANES, "all")
# Issue 7's targets.
FLOOD_P99_SLACK = 1.10
SKEW_P99_FRACTION = 0.5
P99 = 99.0


def p_sent(histogram: Any, sent: int, percentile: float) -> float | None:
    """The `percentile` of every request sent, in ms, an unanswered one counting as slower than
    any answer; None when that request was never answered."""
    ok = histogram.get_total_count()
    if sent == 0 or ok == 0:
        return None
    rank = percentile / 100.0 * sent
    if rank > ok:
        return None
    return round(histogram.get_value_at_percentile(min(100.0, 100.0 * rank / ok)) / 1000.0, 3)


def group_figures(group: GroupStats) -> dict[str, Any]:
    """One lane's figures of one run, with its histograms encoded for pooling."""
    ok_ms = latency_summary(group.total)
    return {
        "sent": group.sent,
        "ok": group.ok,
        "shed": group.shed,
        "failed": group.sent - group.ok - group.shed,
        "errors": dict(sorted(group.errors.items())),
        "within_tier": group.within_tier,
        "p50_ms": p_sent(group.total, group.sent, 50.0),
        "p99_ms": p_sent(group.total, group.sent, P99),
        "p99_ok_ms": ok_ms["p99"],
        "served_by": dict(group.served_by.most_common()),
        "hdr_total_us": group.total.encode().decode("ascii"),
    }


def run_figures(groups: Mapping[str, GroupStats], merged: GroupStats) -> dict[str, Any]:
    """Every row of one run: the lanes it sent, and `all`."""
    out = {lane: group_figures(groups[lane]) for lane in LANES if lane in groups}
    out["all"] = group_figures(merged)
    return out


def _decode(encoded: str) -> Any:
    histogram = new_histogram()
    histogram.decode_and_add(encoded)
    return histogram


def pool(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One lane's figures over several rounds: counts added, histograms added."""
    histogram: HdrHistogram = new_histogram()
    for row in rows:
        histogram.add(_decode(row["hdr_total_us"]))
    sent = sum(int(r["sent"]) for r in rows)
    served_by: dict[str, int] = {}
    for row in rows:
        for site, n in row["served_by"].items():
            served_by[site] = served_by.get(site, 0) + n
    within = sum(int(r["within_tier"]) for r in rows)
    return {
        "sent": sent,
        "ok": sum(int(r["ok"]) for r in rows),
        "shed": sum(int(r["shed"]) for r in rows),
        "failed": sum(int(r["failed"]) for r in rows),
        "within_tier": within,
        "within_tier_share": round(within / sent, 4) if sent else None,
        "p50_ms": p_sent(histogram, sent, 50.0),
        "p99_ms": p_sent(histogram, sent, P99),
        "p99_rounds_ms": [r["p99_ms"] for r in rows],
        "served_by": dict(sorted(served_by.items(), key=lambda kv: -kv[1])),
    }


def pooled(runs: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """results[system][phase][row] over every round of `runs` (each: system, phase, rows)."""
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for run in runs:
        grouped.setdefault((run["system"], run["phase"]), []).append(run["rows"])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (system, phase), rounds in grouped.items():
        rows = {row for r in rounds for row in r}
        out.setdefault(system, {})[phase] = {
            row: pool([r[row] for r in rounds if row in r]) for row in ROWS if row in rows
        }
    return out


def _p99(results: Mapping[str, Any], system: str, phase: str, row: str) -> float | None:
    value = results.get(system, {}).get(phase, {}).get(row, {}).get("p99_ms")
    return None if value is None else float(value)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 3)


def verdicts(results: Mapping[str, Any]) -> dict[str, Any]:
    """Issue 7's targets for hubhop, and the gap to the oracle."""
    hub = results.get("hubhop", {})
    in_tier = {}
    for phase in ("skew", "flood"):
        row = hub.get(phase, {}).get("emergency")
        in_tier[phase] = None if row is None else row["within_tier"] == row["sent"]
    flood_ratio = {
        system: _ratio(_p99(results, system, "flood", "emergency"),
                       _p99(results, system, "unloaded", "emergency"))
        for system in results
    }  # fmt: skip
    baseline_p99 = {s: _p99(results, s, "skew", "all") for s in BASELINE_PORTS if s in results}
    answered = [v for v in baseline_p99.values() if v is not None]
    best = min(answered) if answered else None
    best_name = next((s for s, v in baseline_p99.items() if v == best), None) if answered else None
    hub_all = _p99(results, "hubhop", "skew", "all")
    if hub_all is None:
        skew_ok = False
    elif best is None:  # every baseline left over 1% unanswered: its p99 is unbounded
        skew_ok = bool(baseline_p99)
    else:
        skew_ok = hub_all <= SKEW_P99_FRACTION * best
    oracle_gap = {
        phase: {
            row: _ratio(_p99(results, "hubhop", phase, row), _p99(results, "oracle", phase, row))
            for row in ROWS
        }
        for phase in PHASES
    }
    return {
        "emergency_all_in_tier": in_tier,
        "emergency_flood_p99_over_unloaded": flood_ratio,
        "emergency_flood_target_met": (
            flood_ratio.get("hubhop") is not None
            and float(flood_ratio["hubhop"] or 0) <= FLOOD_P99_SLACK
        ),
        "skew_p99_all": {
            "hubhop": hub_all,
            "best_baseline": best_name,
            "best": best,
            "ratio": _ratio(hub_all, best),
            "target_met": skew_ok,
        },
        "hubhop_over_oracle_p99": oracle_gap,
    }


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _share(row: Mapping[str, Any] | None) -> str:
    if not row or row.get("within_tier_share") is None:
        return "-"
    return f"{100 * row['within_tier_share']:.1f}%"


def _lost(row: Mapping[str, Any] | None) -> str:
    if not row:
        return "-"
    return f"{row['shed']} / {row['failed']}"


def phase_rows(results: Mapping[str, Any], phase: str) -> tuple[list[str], list[list[str]]]:
    """The table of one phase: a row per system."""
    headers = ["system"]
    lanes = [r for r in ROWS if any(r in results[s].get(phase, {}) for s in results)]
    for lane in lanes:
        if lane == "all":
            headers += ["all p99"]
        else:
            headers += [f"{lane} in tier", f"{lane} p50", f"{lane} p99"]
    headers += ["shed / failed", "sent"]
    body = []
    for system in (s for s in SYSTEMS if s in results):
        rows = results[system].get(phase, {})
        line = [system]
        for lane in lanes:
            row = rows.get(lane)
            if lane == "all":
                line.append(_ms(row and row["p99_ms"]))
            else:
                line += [_share(row), _ms(row and row["p50_ms"]), _ms(row and row["p99_ms"])]
        every = rows.get("all")
        line += [_lost(every), str(every["sent"]) if every else "-"]
        body.append(line)
    return headers, body


PHASE_TITLES = {
    "unloaded": "unloaded: the emergency CT reads alone",
    "skew": "skew: the hospital mix, Wuhan sending most of it",
    "flood": "flood: the CT reads under a batch flood at 3x the batch capacity",
}


def verdict_lines(found: Mapping[str, Any]) -> list[str]:
    def mark(ok: bool | None) -> str:
        return "met" if ok else ("NOT met" if ok is not None else "not measured")

    in_tier = found["emergency_all_in_tier"]
    flood = found["emergency_flood_p99_over_unloaded"]
    skew = found["skew_p99_all"]
    gap = found["hubhop_over_oracle_p99"]
    others = ", ".join(f"{s} {v:.2f}x" for s, v in flood.items() if s != "hubhop" and v is not None)
    lines = [
        f"emergency 100% within tier: skew {mark(in_tier.get('skew'))}, "
        f"flood {mark(in_tier.get('flood'))}",
        f"emergency p99 in the flood / unloaded: hubhop "
        f"{flood.get('hubhop') or '-'}x (target <= {FLOOD_P99_SLACK}x: "
        f"{mark(found['emergency_flood_target_met'])}); others: {others or '-'}",
        f"overall p99 under skew: hubhop {_ms(skew['hubhop'])}, best baseline "
        f"{skew['best_baseline'] or '-'} {_ms(skew['best'])}, ratio {skew['ratio'] or '-'} "
        f"(target <= {SKEW_P99_FRACTION}: {mark(skew['target_met'])})",
        "hubhop p99 over the oracle's: "
        + "; ".join(
            f"{phase} "
            + ", ".join(f"{row} {v:.2f}x" for row, v in gap[phase].items() if v is not None)
            for phase in gap
            if any(v is not None for v in gap[phase].values())
        ),
    ]
    return lines


def text_report(document: Mapping[str, Any]) -> str:
    results = document["results"]
    parts = []
    for phase in PHASES:
        if any(phase in results[s] for s in results):
            headers, rows = phase_rows(results, phase)
            parts.append(format_table(headers, rows, title=PHASE_TITLES[phase]))
    parts.append("\n".join(verdict_lines(document["verdicts"])))
    return "\n\n".join(parts)


def markdown_tables(document: Mapping[str, Any]) -> dict[str, str]:
    """README regions: `routing` (skew and flood, and the verdicts) and `routing-detail` (every
    phase, the verdicts, and where each system served under skew)."""
    results = document["results"]
    verdict_list = "\n".join(f"- {line}" for line in verdict_lines(document["verdicts"]))

    def tables(phases: Sequence[str]) -> list[str]:
        out = []
        for phase in phases:
            if any(phase in results[s] for s in results):
                headers, rows = phase_rows(results, phase)
                out += [f"**{PHASE_TITLES[phase]}**", markdown_table(headers, rows)]
        return out

    served = [
        [system, lane, ", ".join(f"{site} {n}" for site, n in list(row["served_by"].items())[:6])]
        for system in (s for s in SYSTEMS if s in results)
        for lane, row in results[system].get("skew", {}).items()
        if lane in LANES
    ]
    detail = [
        *tables(PHASES),
        verdict_list,
        "**where each system served under skew (the six busiest sites)**",
        markdown_table(["system", "lane", "served at (answers)"], served),
    ]
    return {
        "routing": "\n\n".join([*tables(("skew", "flood")), verdict_list]),
        "routing-detail": "\n\n".join(detail),
    }
