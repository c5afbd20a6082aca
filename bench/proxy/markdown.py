"""The proxy benchmark's README regions, from its JSON document (`proxy.json`).

- `proxy` (README.md): per variant, for chat completions, req/s, added latency at 1 and at N
  connections, the proxy's CPU per request, and its peak RSS during the upload; then issue 6's
  CPU verdict with hubhop's ratio to the minimal proxy and to HAProxy.
- `proxy-detail` (bench/README.md): the tables the run prints, for every workload.
"""

from __future__ import annotations

from typing import Any

from bench._markdown import markdown_table, text_block
from bench.proxy import summary

# The workload the front page shows; the other small one (kserve_json) is in the detail.
README_WORKLOAD = "chat"


def _pair(first: float | None, second: float | None, scale: float = 1.0, digits: int = 0) -> str:
    if first is None and second is None:
        return "-"
    return " / ".join("-" if v is None else f"{v / scale:.{digits}f}" for v in (first, second))


def _rss(upload: dict[str, Any] | None) -> str:
    c1 = (upload or {}).get("c1", {})
    if c1.get("peak_rss_mib") is None:
        return "-"
    return f"{c1['peak_rss_mib']:.0f} MiB (+{c1.get('rss_growth_mib') or 0:.1f})"


def _ratio(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "not measured"
    return f"{entry['ratio']:.2f}x [{entry['round_min']:.2f}..{entry['round_max']:.2f}]"


def _variant_table(document: dict[str, Any]) -> str:
    results = document["results"]
    chat = results[README_WORKLOAD]
    upload = results.get("upload", {})
    concurrency = document["parameters"]["concurrency"]
    size_mb = next(iter(upload.values()))["c1"]["upload_bytes"] / 1e6 if upload else 0
    headers = [
        "variant",
        f"req/s, 1 / {concurrency} conn.",
        "added p50 / p99, 1 conn.",
        f"added p50 / p99, {concurrency} conn.",
        f"CPU per request, 1 / {concurrency} conn.",
        f"peak RSS, {size_mb:.0f} MB upload",
    ]
    rows = []
    for variant, entry in chat.items():
        c1, cn = entry["c1"], entry.get("cN", {})
        proxied = variant != summary.DIRECT
        rows.append(
            [
                variant,
                _pair(c1.get("req_per_s"), cn.get("req_per_s")),
                _pair(c1.get("added_median_us"), c1.get("added_p99_us"), 1e3, 2) + " ms"
                if proxied
                else "-",
                _pair(cn.get("added_median_us"), cn.get("added_p99_us"), 1e3, 1) + " ms"
                if proxied
                else "-",
                _pair(c1.get("proxy_cpu_us_per_request"), cn.get("proxy_cpu_us_per_request"))
                + " µs"
                if proxied
                else "-",
                _rss(upload.get(variant)) if proxied else "-",
            ]
        )
    return markdown_table(headers, rows)


def _verdict(document: dict[str, Any]) -> str:
    cpu = document["cpu_per_request"]
    concurrency = document["parameters"]["concurrency"]
    c1, cn = cpu["c1"], cpu["cN"]
    verdict = cpu.get("verdict") or "not judged"
    line = (
        f"Issue 6's target, hubhop's CPU per request (routing decision included; chat and KServe "
        f"JSON pooled per round) at most {summary.CPU_TARGET_RATIO}x the minimal proxy's: "
        f"**{verdict}**: {_ratio(c1['hubhop_over_minimal'])} at 1 connection, "
        f"{_ratio(cn['hubhop_over_minimal'])} at {concurrency} (median ratio, [min..max] of the "
        f"same ratio within each round). Against HAProxy: {_ratio(c1['hubhop_over_haproxy'])} "
        f"and {_ratio(cn['hubhop_over_haproxy'])}."
    )
    skipped = document.get("skipped", {}).get(summary.HAPROXY)
    if skipped:
        line += f" HAProxy {skipped}"
    return line


def _detail(document: dict[str, Any]) -> str:
    parameters = document["parameters"]
    text = summary.tables(
        document["results"], document["cpu_per_request"], parameters["concurrency"]
    )
    run = document["run"]
    idle = ", ".join(f"{k} {v:.2f}%" for k, v in run.get("idle_cpu_percent", {}).items())
    notes = [
        f"{run['rounds_done']} rounds ({run.get('upload_rounds_done', 0)} with uploads), "
        f"{run['measuring_s']:.0f} s measuring; load average at the end "
        f"{run.get('load_average_at_end')}; {parameters.get('haproxy_version') or 'no HAProxy'}.",
        f"Idle CPU of each proxy before round 1 (counted in its CPU per request): {idle}.",
    ]
    if run.get("stopped_by_budget"):
        notes.append(
            f"The {parameters['budget_s']:.0f} s budget ran out: fewer rounds than planned."
        )
    return text_block(text) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def markdown_tables(document: dict[str, Any]) -> dict[str, str]:
    """Region id -> markdown; see the module docstring."""
    return {
        "proxy": _variant_table(document) + "\n\n" + _verdict(document),
        "proxy-detail": _detail(document),
    }
