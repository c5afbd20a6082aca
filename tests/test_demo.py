"""`hubhop demo`: its parts (progress, the table and its accounting, the knobs), and one real
run in its short mode, as `make demo` runs it, whose printed table must add up: every request
sent counted exactly once, as served, shed or failed."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hubhop.cli import main
from hubhop.demo import table
from hubhop.demo.progress import LINE_EVERY_S, Progress, bar_line
from hubhop.loadgen import report
from hubhop.loadgen.outcome import Outcome
from hubhop.loadgen.request_shapes import route_ask
from hubhop.loadgen.schedule import plan
from hubhop.loadgen.stats import RunStats
from hubhop.loadgen.workload import Stream, Workload

# Its own /24s (the backends take 127.0.45): tests elsewhere use neither.
NET = "127.0.44"
# The short mode starts 6 daemons and 6 backends (~10 s), waits for routes (~30 s), sends for
# 8 s and stops: about a minute on 2 cores; three times that is a hang.
RUN_TIMEOUT_S = 180.0


# --- progress ---------------------------------------------------------------------------------


def test_the_bar_fills_with_the_fraction_and_clamps() -> None:
    assert bar_line("load", 0.0, "x", width=10) == "load [..........]   0% x"
    assert bar_line("load", 0.5, "x", width=10) == "load [#####.....]  50% x"
    assert bar_line("load", 1.7, "x", width=10) == "load [##########] 100% x"
    assert bar_line("load", -1.0, "x", width=4) == "load [....]   0% x"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_progress_is_a_line_every_few_seconds() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(out, tty=False, clock=clock)
    progress.update("load", 0.1, "a")
    clock.now = LINE_EVERY_S / 2
    progress.update("load", 0.2, "b")  # too soon: not shown
    clock.now = LINE_EVERY_S + 0.1
    progress.update("load", 0.3, "c")
    progress.done("sent 3")
    lines = out.getvalue().splitlines()
    assert [line.split()[-1] for line in lines] == ["a", "c", "3"]
    assert "\r" not in out.getvalue()


def test_on_a_terminal_the_bar_is_redrawn_in_place_and_replaced_at_the_end() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(out, tty=True, clock=clock)
    progress.update("load", 0.1, "first, longer")
    clock.now = 1.0
    progress.update("load", 0.2, "2nd")
    progress.done("done")
    text = out.getvalue()
    assert text.count("\r") >= 3 and text.endswith("done\n")
    assert text.count("\n") == 1  # one line left in the log: the phase's result


# --- the table and its accounting --------------------------------------------------------------


def stream(name: str, lane: str, tier: str, protocol: str = "openai_chat") -> Stream:
    return Stream(
        name=name, entries=("http://127.0.0.1:1",), protocol=protocol, model=f"{name}-model",
        rate=1.0, arrival="fixed", lane=lane, tier=tier,
    )  # fmt: skip


def outcome(stream: int, error: str | None = None, node: str | None = None, **more: Any) -> Outcome:
    return Outcome(
        stream=stream, planned=0.0, sent=0.0, total_s=0.05, ttfb_s=0.01, error=error,
        node=node, **more,
    )  # fmt: skip


def summary_of(*outcomes: Outcome) -> tuple[Workload, dict[str, Any]]:
    w = Workload(
        "hospital.toml",
        (stream("ct", "emergency", "city", "kserve_v2_binary"), stream("batch", "batch", "any")),
        duration_s=10.0,
    )
    stats = RunStats(w)
    for o in outcomes:
        stats.record(o)
    return w, report.run_summary(w, stats, 10.0)


def test_every_request_is_one_of_served_shed_or_failed() -> None:
    _, summary = summary_of(
        outcome(0, node="wuhan-dc-1", served_tier="city", path="wuhan-hospital>wuhan-dc-1"),
        outcome(0, node="wuhan-dc-1", served_tier="city", path="wuhan-hospital>wuhan-dc-1"),
        outcome(0, "no_route"),
        outcome(1, node="hub-wuhu", path="yichang-hospital>wuhan-dc-2>hub-wuhu"),
        outcome(1, "http_429"),
        outcome(1, "http_503"),
        outcome(1, "timeout"),
        outcome(1, "http_508"),
    )
    assert table.accounting_faults(summary) == []
    rows = {table.label(r): table.counts(r) for r in [*summary["groups"], summary["all"]]}
    assert rows["emergency/city"] == {"sent": 3, "served": 2, "shed": 1, "failed": 0}
    assert rows["batch/any"] == {"sent": 5, "served": 1, "shed": 2, "failed": 2}
    assert rows["all"] == {"sent": 8, "served": 3, "shed": 3, "failed": 2}
    assert table.accounting_line(summary) == (
        "every request counted once: 8 sent = 3 served + 3 shed + 2 failed"
    )
    assert table.routes(summary) == {
        ("wuhan-hospital", "wuhan-dc-1"): 2,
        ("yichang-hospital", "wuhan-dc-2", "hub-wuhu"): 1,
    }
    text = "\n".join(table.lane_lines(summary))
    assert "wuhan-dc-1 2" in text and "batch/any: http_429 1, http_503 1, http_508 1" in text
    printed = {line.split()[0]: line.split()[1:8] for line in text.splitlines()[1:4]}
    assert printed["emergency/city"][:2] == ["3", "2"] and printed["emergency/city"][-2:] == [
        "1", "0",
    ]  # fmt: skip


def test_a_miscount_is_named() -> None:
    _, summary = summary_of(outcome(0, node="n1"), outcome(1, "timeout"))
    summary["groups"][0]["sent"] += 1  # a request counted in no outcome
    summary["all"]["shed"] += 1
    faults = table.accounting_faults(summary)
    assert any(f.startswith("emergency/city: sent 2 is not served + shed + failed") for f in faults)
    assert any(f.startswith("all: shed 1 is not the rows' sum 0") for f in faults)


def test_the_site_table_counts_each_lane_per_site() -> None:
    _, summary = summary_of(outcome(0, node="yichang"), outcome(1, node="yichang"))
    sites = [
        table.SiteRow("yichang", "city", "Yichang", "ascend-910b", 4, 1.5, 0.4),
        table.SiteRow("hub-wuhu", "hub", "Wuhu", "nvidia-h100", 16, 0.4, 0.85),
    ]
    header, first, second = table.site_lines(summary, sites)
    assert header.split()[-3:] == ["SERVED", "EMERGENCY", "BATCH"]
    assert first.split()[0] == "yichang" and first.split()[-3:] == ["2", "1", "1"]
    assert second.split()[0] == "hub-wuhu" and second.split()[-3:] == ["0", "0", "0"]


def test_a_stream_becomes_the_route_endpoints_question() -> None:
    ct = stream("ct", "emergency", "city", "kserve_v2_binary")
    assert route_ask(ct) == {
        "model": "ct-model", "protocol": "kserve_v2", "lane": "emergency", "tier": "city",
    }  # fmt: skip
    assert route_ask(stream("chat", "standard", "province"))["protocol"] == "openai"


# --- the knobs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--net", "10.0.0"], "--net: '10.0.0' is not a /24"),
        (["--duration", "0"], "--duration must be more than 0"),
        (["--rate", "-1"], "--rate must be more than 0"),
        (["--cities", "0"], "--cities must be at least 1"),
        (["--mix", "nosuch"], "'nosuch' is neither a file nor a shipped mix (hospital)"),
    ],
)
def test_a_bad_knob_is_a_usage_error(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *args]) == 2
    assert said in capsys.readouterr().err


def test_a_faulty_mix_file_is_a_config_error_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mix = tmp_path / "w.toml"
    mix.write_text(
        '[[streams]]\nentry = "http://127.0.0.1:1"\nmodel = "m"\nrate = 1\ntier = "town"\n'
    )
    assert main(["demo", "--mix", str(mix)]) == 78
    assert "streams[0].tier: 'town' is not one of" in capsys.readouterr().err


def test_a_slice_the_topology_cannot_give_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--cities", "9", "--out", str(tmp_path), "--net", NET]) == 2
    assert "4 Hubei cities have a hospital and a data centre" in capsys.readouterr().err


# --- one real run ---------------------------------------------------------------------------------


def planned_count(document: dict[str, Any]) -> int:
    """How many requests the run's schedule holds, drawn again from the workload it records."""
    run = dict(document["workload"])
    streams = tuple(Stream(**{**s, "entries": tuple(s["entries"])}) for s in run.pop("streams"))
    run.pop("rate")
    return sum(1 for _ in plan(Workload(**run, streams=streams), random.Random(run["seed"]), 0.0))


@pytest.mark.slow
def test_the_short_demo_runs_end_to_end_and_its_table_adds_up(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "hubhop", "demo", "--quick", "--duration", "8"]
    argv += ["--net", NET, "--out", str(tmp_path)]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    document = json.loads((tmp_path / "demo.json").read_text())
    result, demo = document["result"], document["demo"]

    # The printed table is the JSON's, and each row adds up.
    rows = {r["row"]: r for r in demo["table"]}
    printed = {}
    for line in done.stdout.splitlines():
        cells = line.split()
        if cells and cells[0] in rows and len(cells) >= 8:
            printed[cells[0]] = cells
    assert set(printed) == set(rows) == {"emergency/city", "standard/province", "batch/any", "all"}
    for name, row in rows.items():
        sent, served, shed, failed = (int(printed[name][i]) for i in (1, 2, 6, 7))
        assert (sent, served, shed, failed) == (
            row["sent"], row["served"], row["shed"], row["failed"],
        ), name  # fmt: skip
        assert sent == served + shed + failed, name
    assert sum(rows[n]["sent"] for n in rows if n != "all") == rows["all"]["sent"]
    # Every request the schedule planned was sent and counted: none skipped, none twice.
    assert rows["all"]["sent"] == result["sent"] == planned_count(document) > 40
    assert demo["accounting_faults"] == []
    assert rows["all"]["served"] > 0.9 * rows["all"]["sent"], done.stdout
    assert "every request counted once:" in done.stdout

    # Where each answer was served is named, by sites of the slice, and the backends ran them.
    sites = {s["name"] for s in demo["sites"]}
    served_by = {n: c for g in result["groups"] for n, c in g["served_by"].items()}
    assert set(served_by) <= sites
    assert sum(s["backend_served"] for s in demo["sites"]) >= rows["all"]["served"]
    assert all(route["path"][0] in demo["slice"]["entries"] for route in demo["routes"])

    # The plots, and every process stopped by PID, cleanly.
    if importlib.util.find_spec("matplotlib") is not None:
        for name in ("latency-cdf.png", "map.png"):
            assert (tmp_path / name).stat().st_size > 10_000, name
    stopped = {**demo["stopped"]["daemons"], **demo["stopped"]["backends"]}
    assert len(stopped) == 2 * len(sites) == 12
    assert set(stopped.values()) == {0}
    for pid in stopped:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} is still there"
    assert elapsed < RUN_TIMEOUT_S
