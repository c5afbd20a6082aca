"""What the demo prints after its run: per lane and tier, and per site; and the check that every
request sent is counted exactly once.

Rules:
- Everything comes from the load generator's run summary (`hubhop.loadgen.report.run_summary`),
  the same figures its JSON holds, so the table and the file never disagree.
- A row's SENT is SERVED + SHED + FAILED: served is an ok answer, shed is the network turning
  the request away (429, 503, no route: `hubhop.loadgen.outcome.SHED_KINDS`), failed is any
  other error (a timeout, a cut connection). `accounting_faults` checks this for every row, the
  `all` row against the sum of the others, and where each served answer was served.
- Latency is of served answers, from each request's planned send time, in milliseconds.
- Pure: text in, text out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from hubhop.cli_tables import aligned
from hubhop.loadgen.report import error_lines

# Nodes named in a row's SERVED_AT before the rest are summed up as "+N more".
SERVED_AT_SHOWN = 3
# A city's name is cut to this many characters ("Yangtze Delta demonstration zone" would
# widen the whole site table).
CITY_CHARS = 16


@dataclass(frozen=True)
class SiteRow:
    """A site as the site table shows it."""

    name: str
    role: str
    city: str
    chip: str
    slots: int
    price: float
    green_share: float


def label(row: dict[str, Any]) -> str:
    return "all" if row["lane"] == "all" else f"{row['lane']}/{row['tier']}"


def counts(row: dict[str, Any]) -> dict[str, int]:
    """A row's sent, served, shed and failed (failed: not ok and not shed)."""
    return {
        "sent": row["sent"],
        "served": row["ok"],
        "shed": row["shed"],
        "failed": row["failed"] - row["shed"],
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def served_at(served_by: dict[str, int], shown: int = SERVED_AT_SHOWN) -> str:
    """`yichang 12, wuhan-dc-2 10, +2 more (7)`: the busiest nodes first."""
    ranked = sorted(served_by.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{node} {n}" for node, n in ranked[:shown])
    rest = ranked[shown:]
    if rest:
        text += f", +{len(rest)} more ({sum(n for _, n in rest)})"
    return text or "-"


def lane_lines(summary: dict[str, Any]) -> list[str]:
    """The per lane and tier table, its `all` row last, and what its columns mean."""
    rows = [*summary["groups"], summary["all"]]
    table = [
        ("LANE/TIER", "SENT", "SERVED", "IN_TIER", "P50_MS", "P99_MS", "SHED", "FAILED",
         "SERVED_AT"),
    ]  # fmt: skip
    for r in rows:
        c = counts(r)
        table.append((
            label(r), str(c["sent"]), str(c["served"]), _share(r["within_tier_share"]),
            _ms(r["total_ms"]["p50"]), _ms(r["total_ms"]["p99"]), str(c["shed"]),
            str(c["failed"]), served_at(r["served_by"]),
        ))  # fmt: skip
    return [
        *aligned(table),
        "SENT = SERVED + SHED + FAILED. IN_TIER: served inside the tier asked, judged by one-way",
        "latency (half the measured round trip), not spilled. P50/P99: of served answers, from",
        "the planned send. SHED: turned away by the network (429, 503, no route); FAILED: any",
        "other error (timeout, cut connection).",
        *error_lines(summary),
    ]


def served_by_site(summary: dict[str, Any]) -> dict[str, Counter[str]]:
    """Per node, how many answers it served for each row (by the row's label)."""
    out: dict[str, Counter[str]] = {}
    for row in summary["groups"]:
        for node, n in row["served_by"].items():
            out.setdefault(node, Counter())[label(row)] += n
    return out


def site_lines(summary: dict[str, Any], sites: list[SiteRow]) -> list[str]:
    """One row per site of the slice: what it fronts and what it served, per lane and tier."""
    groups = [label(r) for r in summary["groups"]]
    lanes = [r["lane"] for r in summary["groups"]]
    columns = [lane.upper() for lane in lanes] if len(set(lanes)) == len(lanes) else groups
    served = served_by_site(summary)
    table = [("SITE", "ROLE", "CITY", "CHIP", "SLOTS", "PRICE", "GREEN", "SERVED", *columns)]
    for site in sorted(sites, key=lambda s: (-sum(served.get(s.name, Counter()).values()), s.name)):
        mine = served.get(site.name, Counter())
        table.append((
            site.name, site.role, site.city[:CITY_CHARS], site.chip, str(site.slots),
            f"{site.price:g}", f"{site.green_share:.0%}", str(sum(mine.values())),
            *(str(mine[g]) for g in groups),
        ))  # fmt: skip
    return aligned(table)


def routes(summary: dict[str, Any]) -> Counter[tuple[str, ...]]:
    """How many served answers took each path (entry, relays..., serving node), all rows."""
    found: Counter[tuple[str, ...]] = Counter()
    for row in summary["groups"]:
        for path, n in row["paths"].items():
            found[tuple(path.split(">"))] += n
    return found


def accounting_faults(summary: dict[str, Any]) -> list[str]:
    """Every way the run's figures fail to count each request exactly once; [] when they do."""
    faults = []
    rows = [*summary["groups"], summary["all"]]
    for r in rows:
        c = counts(r)
        if c["served"] + c["shed"] + c["failed"] != c["sent"] or min(c.values()) < 0:
            faults.append(f"{label(r)}: sent {c['sent']} is not served + shed + failed ({c})")
        if sum(r["errors"].values()) != r["failed"]:
            faults.append(f"{label(r)}: errors by kind {r['errors']} do not add up to failed")
        if sum(r["served_by"].values()) != r["ok"]:
            faults.append(f"{label(r)}: served {r['ok']} but nodes name {r['served_by']}")
    for key in ("sent", "ok", "shed", "failed"):
        total = sum(r[key] for r in summary["groups"])
        if total != summary["all"][key]:
            faults.append(f"all: {key} {summary['all'][key]} is not the rows' sum {total}")
    if summary["all"]["sent"] != summary["sent"]:
        faults.append(f"all: sent {summary['all']['sent']} is not the run's {summary['sent']}")
    return faults


def accounting_line(summary: dict[str, Any]) -> str:
    c = counts(summary["all"])
    return (
        f"every request counted once: {c['sent']} sent = {c['served']} served + "
        f"{c['shed']} shed + {c['failed']} failed"
    )
