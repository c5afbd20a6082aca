"""What the `hubhop` commands print: the local daemon's JSON answers as aligned text.

Every renderer takes the decoded JSON view of one endpoint and returns the lines to print, so
tests feed them made-up views, and the commands in `hubhop.cli` only fetch, print and choose
an exit status. A figure the daemon does not know prints as an empty cell (`--json` shows it
as null); times are milliseconds with three decimals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hubhop.core.tiers import tier_of

View = Mapping[str, Any]


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as left-aligned columns two spaces apart, trailing blanks stripped."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def ms(value: object) -> str:
    return "" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]


def number(value: object) -> str:
    """A count or price as short as it reads: 4, 0.5, 12.25."""
    return "" if value is None else f"{float(value):g}"  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# members, peers, rtt


def members_lines(view: View) -> list[str]:
    rows = [("NAME", "STATE", "INC", "ADDR", "ROLE", "CITY", "VER", "MODELS")]
    for m in view["members"]:
        rows.append((
            m["name"], m["state"], str(m.get("incarnation", "")), m.get("addr", ""),
            m.get("role", ""), m.get("city", ""), str(m.get("record_version", "")),
            ",".join(m.get("models", [])),
        ))  # fmt: skip
    return aligned(rows)


def peers_lines(view: View) -> list[str]:
    if not view.get("gossip", False):
        return [f"{view['node']} does not gossip: no peers to probe"]
    rows = [
        ("NAME", "STATE", "SAMPLES", "MIN", "P50", "P99", "RTTVAR", "LOSS", "AGE_S", "ONE_WAY",
         "TIER", "SOURCE"),
    ]  # fmt: skip
    for p in view["peers"]:
        probe, est = p.get("probe") or {}, p.get("estimate") or {}
        rows.append((
            p["name"], p["state"], str(probe.get("samples", "")), ms(probe.get("min_ms")),
            ms(probe.get("p50_ms")), ms(probe.get("p99_ms")), ms(probe.get("rttvar_ms")),
            "" if "loss_rate" not in probe else f"{probe['loss_rate']:.1%}",
            "" if "last_sample_age_s" not in probe else f"{probe['last_sample_age_s']:.1f}",
            ms(est.get("conservative_one_way_ms")), est.get("tier", ""), est.get("source", ""),
        ))  # fmt: skip
    lines = aligned(rows)
    me = view.get("self") or {}
    if me:
        coordinate, wan = me.get("coordinate") or {}, me.get("wan")
        lines.append(
            f"{view['node']}: coordinate error {coordinate.get('error', 0.0):.1%} after "
            f"{coordinate.get('updates', 0)} updates; {me.get('probes_sent', 0)} probes sent; "
            + (f"emulated WAN on (site {wan['site']})" if wan else "no emulated WAN")
        )
    lines.append(
        "times in ms; RTT columns are round trips, ONE_WAY is the conservative one-way estimate"
    )
    lines.append("(half the round trip plus a jitter margin) that tiers are judged by")
    return lines


def rtt_line(view: View) -> str:
    est = view.get("estimate")
    if not est:
        return f"{view['from']} -> {view['to']}: unknown ({view.get('reason', '')})"
    return (
        f"{view['from']} -> {view['to']}: rtt {est['rtt_ms']:.3f} ms, one-way "
        f"{est['one_way_ms']:.3f} ms (conservative {est['conservative_one_way_ms']:.3f} ms), "
        f"tier {est['tier']}; {est['source']}"
        + (f" from {est['samples']} samples" if est["source"] == "measured" else "")
        + f", uncertainty {est['uncertainty']:.1%}"
    )


# --------------------------------------------------------------------------------------------
# route


def route_lines(decision: View, explain: bool) -> list[str]:
    """A `POST /hubhop/v1/route` answer: the ask, the chosen candidate (with --explain also the
    alternates and every rejected candidate with its reasons), and the verdict. When nothing
    was chosen the rejected candidates are shown anyway: they are the explanation."""
    bound = decision.get("bound_ms")
    bound_text = "no bound" if bound is None else f"{bound:g} ms one way"
    lines = [
        f"{decision['node']}: {decision['model']} over {decision['protocol']}, lane "
        f"{decision['lane']}, tier {decision['tier_asked']} ({bound_text}), "
        f"spill {decision['spill']}"
    ]
    rows: list[tuple[str, ...]] = [
        ("", "NODE", "BACKEND", "PATH", "ONE_WAY", "TIER", "SOURCE", "NETWORK", "QUEUE",
         "SERVICE", "TOTAL", "REASONS"),
    ]  # fmt: skip
    chosen = decision.get("chosen")
    if chosen is not None:
        rows.append(_candidate_row("chosen", chosen, bound))
    alternates, rejected = decision.get("alternates", []), decision.get("rejected", [])
    if explain:
        rows += [_candidate_row("alternate", c, bound) for c in alternates]
    if explain or chosen is None:
        rows += [_candidate_row("rejected", c, bound) for c in rejected]
    if len(rows) > 1:
        lines += aligned(rows)
    if chosen is None:
        lines.append(f"no route: {decision.get('reason', 'nothing feasible')}")
    else:
        spilled = f", spilled over from {decision['tier_asked']}" if decision.get("spilled") else ""
        where = f" at {chosen['url']}" if chosen.get("url") else ""
        lines.append(
            f"-> {chosen['node']}/{chosen['backend']}{where}, in tier {decision['tier']}{spilled}"
        )
        if not explain and (alternates or rejected):
            lines.append(
                f"({len(alternates)} alternate(s), {len(rejected)} rejected: --explain shows them)"
            )
    lines.append(
        "times in ms; ONE_WAY is half the round trip along the path, the figure tiers are judged"
    )
    lines.append("by; NETWORK counts both ways; TOTAL = NETWORK + QUEUE + SERVICE")
    return lines


def _candidate_row(pick: str, c: View, bound_ms: float | None) -> tuple[str, ...]:
    split = c.get("expected_ms") or {}
    one_way = c.get("one_way_ms")
    return (
        pick, c["node"], c["backend"], ">".join(c.get("path", [])), ms(one_way),
        "" if one_way is None else tier_of(one_way), _latency_source(c),
        ms(split.get("network")), ms(split.get("queue")), ms(split.get("service")),
        ms(split.get("total")), "; ".join(_reasons(c, one_way, bound_ms)),
    )  # fmt: skip


def _latency_source(c: View) -> str:
    path = c.get("path") or []
    if not path:
        return ""
    if len(path) == 1:
        return "local"
    return "estimated" if c.get("estimated") else "measured"


def _reasons(c: View, one_way: float | None, bound_ms: float | None) -> list[str]:
    """A candidate's reasons, with the figures of "over tier" (dropped when "unreachable"
    already says why: an unknown latency is over every bound)."""
    reasons = list(c.get("reasons", []))
    out = []
    for r in reasons:
        if r == "over tier":
            if "unreachable" in reasons:
                continue
            if one_way is not None and bound_ms is not None:
                r = f"over tier ({one_way:.3f} > {bound_ms:g} ms)"
        out.append(r)
    return out


# --------------------------------------------------------------------------------------------
# table


def _state(row: dict[str, Any]) -> str:
    """The member's state; for this node's own backend out of rotation (ejected, or in slow
    start with part of its slots), that too, with when it comes back."""
    rotation = row.get("rotation") or {}
    kind = rotation.get("state")
    if kind is None or kind == "in":
        return str(row["state"])
    if kind == "ejected" and rotation.get("back_in_s") is not None:
        return f"{row['state']} (ejected, back in {rotation['back_in_s']:.0f} s)"
    if kind == "slow-start":
        return f"{row['state']} (slow start, {rotation.get('slots')}/{row.get('slots')} slots)"
    return f"{row['state']} ({kind})"


def table_lines(view: View) -> list[str]:
    """A `GET /hubhop/v1/table` answer: one line per (node, backend), then what was shown."""
    rows = [
        ("NODE", "ROLE", "REGION", "CITY", "STATE", "BACKEND", "PROTOCOLS", "MODELS", "CHIP",
         "FREE", "QUEUE", "SVC_MS", "PRICE", "GREEN", "ONE_WAY", "TIER", "SOURCE"),
    ]  # fmt: skip
    for r in view["rows"]:
        latency, queue = r.get("latency") or {}, r.get("queue") or {}
        rows.append((
            r["node"], r.get("role", ""), r.get("region", ""), r.get("city", ""), _state(r),
            r["backend"], ",".join(r.get("protocols", [])), ",".join(r.get("models", [])),
            r.get("chip", ""), f"{number(r.get('free'))}/{number(r.get('slots'))}",
            "/".join(number(queue.get(lane)) for lane in ("emergency", "standard", "batch")),
            "" if r.get("service_ms") is None else f"{r['service_ms']:.1f}",
            number(r.get("price")),
            "" if r.get("green_share") is None else f"{r['green_share']:.0%}",
            ms(latency.get("one_way_ms")), latency.get("tier", ""), latency.get("source", ""),
        ))  # fmt: skip
    lines = aligned(rows)
    filters = view.get("filters") or {}
    matching = " matching " + ", ".join(f"{k}={v}" for k, v in filters.items()) if filters else ""
    alone = "" if view.get("gossip", True) else f"; {view['node']} does not gossip: its own only"
    lines.append(f"{len(view['rows'])} of {view['rows_total']} row(s){matching}{alone}")
    lines.append(
        "FREE is free/total slots; QUEUE is requests waiting per lane (emergency/standard/batch);"
    )
    lines.append(
        f"ONE_WAY is ms from {view['node']}, half the round trip along the path a route would "
        "take: the figure tiers are judged by"
    )
    return lines
