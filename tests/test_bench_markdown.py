"""Each benchmark's `markdown_tables`: the README regions made from its JSON document.

The samples in tests/data/bench/ are real quick-pass results, trimmed of what no table reads
(CDF grids, per-round lists, logs); each test sets the figures it checks, so what it asserts
is what a reader of the README would see.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench import gossip, kernels, latency, proxy

SAMPLES = Path(__file__).with_name("data") / "bench"


def _sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return document


def _row(markdown: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is `first_cell`."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{markdown}")


def _tables_are_rectangular(markdown: str) -> None:
    """Every row of each table has as many cells as its header (a stray `|` would add one)."""
    for table in re.split(r"\n(?!\|)", markdown):
        rows = [line for line in table.splitlines() if line.startswith("|")]
        widths = {len(re.split(r"(?<!\\)\|", line.strip())) for line in rows}
        assert len(widths) <= 1, table


# --- proxy ----------------------------------------------------------------------------------


def test_proxy_summary_shows_each_variant_and_the_cpu_verdict() -> None:
    document = _sample("proxy")
    hubhop = document["results"]["chat"]["hubhop"]
    hubhop["c1"].update(req_per_s=1234.4, added_median_us=456.0, added_p99_us=932.0)
    hubhop["cN"]["req_per_s"] = 5678.0
    hubhop["c1"]["proxy_cpu_us_per_request"] = 416.0
    hubhop["cN"]["proxy_cpu_us_per_request"] = 275.0
    document["cpu_per_request"]["verdict"] = "missed"
    document["cpu_per_request"]["c1"]["hubhop_over_minimal"].update(
        ratio=1.53, round_min=1.47, round_max=1.64
    )

    region = proxy.markdown_tables(document)["proxy"]

    _tables_are_rectangular(region)
    assert _row(region, "hubhop") == [
        "hubhop",
        "1234 / 5678",
        "0.46 / 0.93 ms",
        _row(region, "hubhop")[3],
        "416 / 275 µs",
        _row(region, "hubhop")[5],
    ]
    assert _row(region, "direct")[2:] == ["-", "-", "-", "-"]
    assert "16 MB upload" in region  # the quick pass's upload, not the full run's 200 MB
    assert "**missed**: 1.53x [1.47..1.64] at 1 connection" in region
    assert [v for v in ("direct", "aiohttp-minimal", "hubhop", "haproxy") if v in region] == [
        "direct",
        "aiohttp-minimal",
        "hubhop",
        "haproxy",
    ]


def test_proxy_without_haproxy_says_why_instead_of_a_row() -> None:
    document = _sample("proxy")
    for by_variant in document["results"].values():
        del by_variant["haproxy"]
    for key in ("c1", "cN"):
        del document["cpu_per_request"][key]["us_per_request"]["haproxy"]
        document["cpu_per_request"][key]["hubhop_over_haproxy"] = None
    document["skipped"] = {"haproxy": "skipped: --no-haproxy was given"}

    regions = proxy.markdown_tables(document)

    assert "| haproxy |" not in regions["proxy"]
    assert "Against HAProxy: not measured and not measured." in regions["proxy"]
    assert "HAProxy skipped: --no-haproxy was given" in regions["proxy"]
    assert "chat / haproxy" not in regions["proxy-detail"]


def test_proxy_detail_holds_the_printed_tables() -> None:
    detail = proxy.markdown_tables(_sample("proxy"))["proxy-detail"]

    assert detail.startswith("```text\n")
    for title in ("Small requests, concurrency 1", "Small requests, concurrency 32"):
        assert title in detail
    assert "Binary tensor upload" in detail
    assert "Idle CPU of each proxy before round 1" in detail
    assert not any(line != line.rstrip() for line in detail.splitlines())


# --- kernels --------------------------------------------------------------------------------


def test_kernels_summary_shows_medians_with_the_speed_up_and_the_targets() -> None:
    document = _sample("kernels")
    results = document["results"]
    results["decide"]["numpy_ref"]["10000"]["median"] = 470.0
    results["speedup_over_numba"]["decide"]["numpy_ref"]["10000"]["ratio"] = 16.37
    results["decide"]["python_loop"]["10000"]["median"] = 7673.0
    document["targets"][0].update(measured=12.5, **{"pass": False})

    region = kernels.markdown_tables(document)["kernels"]

    _tables_are_rectangular(region)
    row = _row(region, "10,000")
    assert row[2] == "470 µs (16.4x)"
    assert row[3].startswith("7.67 ms (")
    # The quick pass runs no Python loop at 100,000 rows.
    assert _row(region, "100,000")[3] == "-"
    assert "Issue 5's targets: 5 of 6 met; **missed**: decide, 1,000 rows" in region
    assert "(measured 12.5 µs)" in region


def test_kernels_without_cold_start_say_so() -> None:
    document = _sample("kernels")
    document["results"]["cold_start"] = None

    regions = kernels.markdown_tables(document)

    assert "Cold start: not measured in this run." in regions["kernels"]
    assert "Cold start: a fresh process" not in regions["kernels-detail"]
    assert "Decision: one request over all rows" in regions["kernels-detail"]


# --- gossip ---------------------------------------------------------------------------------


def test_gossip_summary_puts_both_systems_side_by_side() -> None:
    document = _sample("gossip")
    document["results"]["hubhop"]["8"]["update"]["all_nodes"]["p50"] = 0.123
    document["results"]["serf"]["8"]["update"]["all_nodes"]["p50"] = 0.456

    region = gossip.markdown_tables(document)["gossip"]

    _tables_are_rectangular(region)
    assert _row(region, "metric") == ["metric", "hubhop N=8", "serf N=8"]
    assert _row(region, "update to all: p50 (s)") == ["update to all: p50 (s)", "0.12", "0.46"]
    assert "healthy nodes declared dead: hubhop 0, serf 0" in region
    assert "Issue 3's targets:" in region


def test_gossip_without_serf_or_the_starvation_run_says_why() -> None:
    document = _sample("gossip")
    document["results"]["serf"] = {}
    document["results"]["false_positives"] = {"skipped": "--no-false-positives was given"}
    document["skipped"] = {"serf": "skipped: --no-serf was given"}

    region = gossip.markdown_tables(document)["gossip"]

    assert _row(region, "kill -9: all mark dead (s)")[2] == "n/a"
    assert "Starvation run: --no-false-positives was given." in region
    assert "Serf side skipped: --no-serf was given" in region


def test_gossip_detail_holds_the_printed_tables() -> None:
    detail = gossip.markdown_tables(_sample("gossip"))["gossip-detail"]

    for title in ("Real processes on loopback", "False positives", "Simulator", "Targets"):
        assert title in detail


# --- latency --------------------------------------------------------------------------------


def test_latency_summary_shows_daemons_beside_the_simulator_and_a_missed_target() -> None:
    document = _sample("latency")
    document["targets"][2].update(measured="98.50%", met=False)
    document["daemons"]["join"].update(joiner="hub-guian", error_at_start=0.654)

    regions = latency.markdown_tables(document)

    front = regions["latency"]
    _tables_are_rectangular(front)
    assert _row(front, "figure")[1:] == ["12 daemons, emulated WAN", "simulator, 200 nodes"]
    # The cell's own pipes are escaped, so the row keeps its three cells.
    assert len(_row(front, "probed links: \\|error\\| p50 / p95")) == 3
    assert "5 of 6 met; **missed**: >= 99.5% of pairs in the right tier (measured 98.50%)" in front
    detail = regions["latency-detail"]
    assert _row(detail, ">= 99.5% of pairs in the right tier")[2] == "**not met**"
    assert "The joiner, hub-guian, started at 65% median relative error" in detail


def test_latency_without_the_simulator_says_why() -> None:
    document = _sample("latency")
    document["simulator"] = {"skipped": "--no-sim was given"}

    front = latency.markdown_tables(document)["latency"]

    assert "simulator, n/a nodes" in front
    assert "- simulator: --no-sim was given" in front
