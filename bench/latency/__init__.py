"""latency: how well hubhop's daemons know the latency between them, on an emulated WAN.

The question (issue 4): "after a 30 s warm-up on the shipped topology, how close are the probes
to the emulated truth, how good are the network coordinates, how many (node, node) pairs land
in the right latency tier (and which way do the wrong ones err), what do the probes cost, and
how fast does a new node get a useful coordinate? And the same accuracy at 1,000 nodes."

What runs:
- one real `hubhop run` daemon per site of topologies/hubei.toml (34 sites; `--quick`: 13),
  its hosts moved to 127.0.48.x, the emulated WAN on, two hub clusters named as hubs; the
  joiner (hub-guian, far from the centre) starts after the warm-up (`measure.py` says how
  each figure is taken);
- then the simulator (`simulate.py`, hubhop's sans-IO LatencyMonitor on a virtual clock) at
  1,000 nodes (`--quick`: 200), in a child process at nice 19, bounded in time.

Truth is the model's: its round trip plus the median jitter; its tiers from its base one-way
figure (`accuracy.py`). Rules: traffic stays on 127.0.0.0/8; every wait is bounded; every
process is started here and stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _launch
from bench._report import REPO_ROOT, add_run_arguments, load_average, machine_info, write_json
from bench.latency import measure, plot, summary
from bench.latency.cluster import WanCluster, localise_topology
from bench.latency.markdown import markdown_tables as markdown_tables  # the README regions
from bench.latency.plan import FULL, HUBS, JOINER, QUICK, Plan

NAME = "latency"
SUMMARY = "latency probes, Vivaldi coordinates and tiers on the emulated WAN; simulator at 1,000"
NET = "127.0.48"  # this benchmark's /24: tests use 127.0.47.x, the shipped file 127.0.40.x
# The simulator child's bound: its own budget is ~3 min of warm-up at 1,000 nodes plus a join.
SIM_TIMEOUT_S = 900.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(
        parser,
        NAME,
        "a smoke run (13 daemons, 20 s warm-up, simulator at 200; about 1 min) "
        "instead of the full one (34 daemons, 30 s warm-up, simulator at 1,000; about 4 min)",
    )
    parser.add_argument("--no-sim", action="store_true", help="skip the simulator")
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="the simulator's seed (default 1; the daemons' WAN jitter is not seeded)",
    )


def _say(line: str) -> None:
    print(f"[latency] {line}", file=sys.stderr, flush=True)


def _run_daemons(plan: Plan, workdir: Path) -> dict[str, Any]:
    topology = localise_topology(workdir, NET)
    hubs = [h for h in HUBS if h in plan.sites]
    first = [s for s in plan.sites if s != JOINER]
    with WanCluster(workdir, topology, list(plan.sites), hubs) as cluster:
        _say(f"starting {len(first)} daemons")
        t0 = time.monotonic()
        cluster.start_all(first)
        _say(f"all up after {time.monotonic() - t0:.1f} s; warm-up {plan.warmup_s:.0f} s")
        time.sleep(plan.warmup_s)
        bandwidth = measure.probe_bandwidth(cluster, plan.bandwidth_window_s, _say)
        views = cluster.views(first)
        judged = measure.judge(cluster, views)
        join = measure.measure_join(cluster, JOINER, plan, _say) if JOINER in plan.sites else None
        return {
            "sites": first,
            "hubs": cluster.hubs,
            "startup_s": round(time.monotonic() - t0 - plan.warmup_s, 1),
            "bandwidth": bandwidth,
            "judged": judged,
            "join": join,
        }


def _simulate(plan: Plan, seed: int, out_dir: Path) -> dict[str, Any]:
    path = out_dir / f"{NAME}_simulator.json"
    path.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "bench.latency.simulate", "--out", str(path)]
    argv += ["--sizes", str(plan.sim_nodes), "--seed", str(seed)]
    argv += ["--duration", str(plan.sim_duration_s)]
    _say(f"simulator at {plan.sim_nodes} nodes")
    try:
        done = subprocess.run(
            ["nice", "-n", "19", *argv],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=SIM_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"the simulator ran out of its {SIM_TIMEOUT_S:.0f} s"}
    if done.returncode != 0 or not path.exists():
        return {"skipped": f"the simulator failed ({done.returncode}): {done.stderr[-600:]}"}
    document: dict[str, Any] = json.loads(path.read_text())
    result: dict[str, Any] = document["results"][str(plan.sim_nodes)]
    return result


def run(ns: argparse.Namespace) -> int:
    started = time.monotonic()
    plan = QUICK if ns.quick else FULL
    out_dir: Path = ns.out
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    _say(f"{'quick' if ns.quick else 'full'} plan: {len(plan.sites)} sites")
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hubhop-bench-latency-") as tmp:
        workdir = Path(tmp)
        try:
            daemons = _run_daemons(plan, workdir)
        except (_launch.LaunchError, OSError, ValueError) as exc:
            errors.append(f"daemons: {type(exc).__name__}: {exc}")
            daemons = {}
        shutil.rmtree(out_dir / "logs", ignore_errors=True)
        shutil.copytree(workdir, out_dir / "logs", dirs_exist_ok=True)
    sim = {"skipped": "--no-sim was given"} if ns.no_sim else _simulate(plan, ns.seed, out_dir)

    target_rows = summary.targets(daemons) if daemons else []
    document = {
        "benchmark": NAME,
        "question": SUMMARY,
        "quick": bool(ns.quick),
        "machine": machine,
        "parameters": {
            "plan": "quick" if ns.quick else "full",
            **plan.as_dict(),
            "net": NET,
            "seed": ns.seed,
            # hubhop.lab.cluster gives the daemons no [wan] seed: their jitter is not repeatable.
            "seed_covers": "the simulator only",
        },
        "errors": errors,
        "run": {
            "total_s": round(time.monotonic() - started, 1),
            "load_average_at_end": load_average(),
        },
        "daemons": daemons,
        "simulator": sim,
        "targets": target_rows,
    }
    write_json(out_dir / f"{NAME}.json", document)
    title = (
        f"{NAME}: {machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, "
        f"{machine['date']}, commit {(machine['git_commit'] or 'none')[:10]}"
    )
    skipped_plot = plot.plot(daemons, title, out_dir / f"{NAME}.png")
    print()
    print(summary.figures_table(daemons, sim))
    print()
    print(summary.targets_table(target_rows))
    if skipped_plot:
        print(f"\nplot skipped: {skipped_plot}")
    if "skipped" in sim:
        print(f"\nsimulator: {sim['skipped']}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    print(f"\nwrote {out_dir / (NAME + '.json')} and {out_dir / (NAME + '.png')}")
    return 1 if errors else 0
