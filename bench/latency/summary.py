"""The latency benchmark's tables: the figures, and each target of the issue with its verdict."""

from __future__ import annotations

from typing import Any

from bench._report import format_table

# The targets.
VIVALDI_MEDIAN = 0.05
PROBE_REL, PROBE_ABS_MS = 0.03, 0.05
TIER_RIGHT = 0.995
BANDWIDTH_BYTES_S = 2048.0
JOIN_ERROR = 0.20


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} ms"


def figures_table(daemons: dict[str, Any], sim: dict[str, Any]) -> str:
    headers, rows = figures_rows(daemons, sim)
    return format_table(headers, rows)


def figures_rows(daemons: dict[str, Any], sim: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the figures table: each figure for the daemons and the simulator."""
    probes, viv, tiers, bw, join = _sections(daemons)
    s_viv, s_tiers = sim.get("vivaldi", {}), sim.get("tiers", {})
    s_probes, s_join = sim.get("probes", {}), sim.get("join", {})
    rows = [
        [
            "probed links: |error| p50 / p95",
            f"{_ms(probes.get('abs_error_ms', {}).get('p50'))} / "
            f"{_ms(probes.get('abs_error_ms', {}).get('p95'))}",
            _sim_probe(s_probes),
        ],
        [
            "probed links within 3% or 0.05 ms",
            f"{probes.get('within_3pct_or_0.05ms', 'n/a')} of {probes.get('links', 'n/a')}",
            "",
        ],
        [
            "Vivaldi: relative error p50 / p90",
            f"{_pct(viv.get('rel_error', {}).get('p50'))} / "
            f"{_pct(viv.get('rel_error', {}).get('p90'))} ({viv.get('pairs', 0)} pairs)",
            f"{_pct(s_viv.get('median'))} / {_pct(s_viv.get('p90'))}",
        ],
        [
            "tiers right (optimistic / pessimistic)",
            f"{_pct(tiers.get('right_share'), 2)} ({tiers.get('optimistic', 'n/a')} / "
            f"{tiers.get('pessimistic', 'n/a')} of {tiers.get('pairs', 'n/a')})",
            f"{_pct(s_tiers.get('right_share'), 2)} ({_v(s_tiers.get('optimistic'))} / "
            f"{_v(s_tiers.get('pessimistic'))} of {_v(s_tiers.get('pairs'))})",
        ],
        [
            "probe bytes/s per node: mean / max",
            f"{bw.get('mean', 'n/a')} / {bw.get('max', 'n/a')}",
            "",
        ],
        [
            "join: time / samples to < 20% error",
            "never" if not join else f"{join['seconds']} s / {join['vivaldi_samples']}",
            "never" if s_join.get("seconds") is None
            else f"{s_join['seconds']} s / {s_join.get('samples')}",
        ],
    ]  # fmt: skip
    n = len(daemons.get("sites", []))
    return ["figure", f"{n} daemons, emulated WAN", f"simulator, {sim.get('n', 'n/a')} nodes"], rows


def _sections(daemons: dict[str, Any]) -> tuple[Any, ...]:
    """The real-daemon run's probes, vivaldi, tiers, bandwidth and join-reached sections."""
    judged = daemons.get("judged", {})
    return (
        judged.get("probes", {}),
        judged.get("vivaldi", {}),
        judged.get("tiers", {}),
        daemons.get("bandwidth", {}).get("bytes_per_s", {}),
        (daemons.get("join") or {}).get("reached"),
    )


def _v(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _sim_probe(s_probes: dict[str, Any]) -> str:
    abs_ms = s_probes.get("abs_ms") or {}  # the simulator's names: median, p95
    if not abs_ms:
        return "n/a"
    return f"{_ms(abs_ms.get('median'))} / {_ms(abs_ms.get('p95'))}"


def targets(daemons: dict[str, Any]) -> list[dict[str, Any]]:
    probes, viv, tiers, bw, join = _sections(daemons)
    links = probes.get("links") or 0
    within = probes.get("within_3pct_or_0.05ms") or 0
    viv_p50 = viv.get("rel_error", {}).get("p50")
    rows = [
        ("Vivaldi median relative error <= 5%", _pct(viv_p50),
         viv_p50 is not None and viv_p50 <= VIVALDI_MEDIAN),
        ("probed links within 3% or 0.05 ms of truth", f"{within} of {links}",
         links > 0 and within == links),
        (">= 99.5% of pairs in the right tier", _pct(tiers.get("right_share"), 2),
         (tiers.get("right_share") or 0.0) >= TIER_RIGHT),
        ("no pair in a tighter tier than truth", f"{tiers.get('optimistic', 'n/a')} optimistic",
         tiers.get("optimistic") == 0),
        ("probe traffic < 2 KB/s per node (max)", f"{bw.get('max', 'n/a')} B/s",
         bw.get("max") is not None and bw["max"] < BANDWIDTH_BYTES_S),
        ("a joiner under 20% error (time, samples)",
         "never" if not join else f"{join['seconds']} s, {join['vivaldi_samples']} samples",
         join is not None),
    ]  # fmt: skip
    return [{"target": t, "measured": m, "met": bool(ok)} for t, m, ok in rows]


def targets_table(rows: list[dict[str, Any]]) -> str:
    return format_table(
        ["target", "measured", "verdict"],
        [[r["target"], r["measured"], "met" if r["met"] else "NOT met"] for r in rows],
    )
