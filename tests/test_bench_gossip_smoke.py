"""`python -m bench gossip --quick --no-serf` runs end to end, as a user would run it.

This checks that the benchmark starts a cluster of real daemons, measures the join, the record
changes and the kill, writes its JSON and prints its tables. It asserts no timings: those belong
to the benchmark's report, and a shared CI box is too noisy for thresholds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_runs import run_quick

# The quick plan with a 15 s starvation run (five SIGSTOP bursts, enough to see that none is taken
# for a death) and a 200-node simulation beside it takes about a minute; the bound leaves room
# for a loaded box. The benchmark's own quick run keeps its 60 s and 1,000 nodes.
TIMEOUT_S = 180


@pytest.mark.slow
def test_gossip_quick_run_writes_hubhop_figures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stdout, document = run_quick(
        "gossip", out, "--no-serf", "--fp-seconds", "15", "--sim-sizes", "200", timeout_s=TIMEOUT_S
    )
    assert document["machine"]["cpu_model"]
    assert "serf" in document["skipped"]
    hubhop = document["results"]["hubhop"]["8"]

    join = hubhop["join"]
    assert join["nodes_complete"] == 8
    assert join["complete_after_last_join_s"] is not None
    assert join["pairs"]["n"] == 8 * 7

    update = hubhop["update"]
    assert update["count"] >= 10
    assert update["timed_out"] == 0
    assert update["all_nodes"]["p50"] is not None
    assert update["all_nodes"]["max"] >= update["all_nodes"]["p50"]

    failure = hubhop["failure"]
    assert failure["seen_dead_by"] == failure["observers"] == 7
    assert failure["first_s"] is not None and failure["all_s"] is not None

    steady = hubhop["steady"]
    assert steady["nodes"] == 8
    assert steady["cpu_pct_mean"] is not None and steady["rss_mb_mean"] > 0

    assert "hubhop" in document["results"]["false_positives"]
    assert {t["target"] for t in document["targets"]} >= {"update p99 <= Serf's"}
    for title in ("hubhop vs Serf", "Targets"):
        assert title in stdout, title
    if "plot skipped" not in stdout:
        assert (out / "gossip.png").stat().st_size > 0
