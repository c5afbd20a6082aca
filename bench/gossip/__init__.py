"""gossip: hubhop's SWIM/Lifeguard membership and capacity table, side by side with Serf.

The question (issue 3): "how fast do joins, record changes and failures spread, how often does
a healthy but slow node get declared dead, and what does it cost per node at idle: hubhop's
gossip against HashiCorp Serf, the tool operators would otherwise use?"

What runs, all on loopback, one system at a time:
- N = 8, 32, 64 real `hubhop run` daemons (HTTP 127.0.6.N, gossip 127.0.7.N:7946, default
  gossip timing) and N Serf agents (127.0.5.N:7946, RPC :7373, `-profile=lan`), both encrypted
  with the same 32-byte AES-GCM key. Serf is skipped, with a message, when it is not installed
  and `--install` was not given (or with `--no-serf`).
- Per cluster: join, 20 record changes, an idle window, a kill -9 (`measure.py` says how each
  is measured). hubhop daemons start a few at a time (Python cold starts on 2 cores); Serf's
  joins replay the same pace (the offsets of hubhop's joins at that N), so both are measured
  from the same pattern of joins.
- The starvation run: one node of a fresh cluster of each system (both at once, same SIGSTOP
  bursts) for 5 minutes.
- The simulator (`hubhop.sim`, virtual clock): an update and a failure spreading through
  500, 1,000 and 2,000 nodes (10,000 does not fit: see `plan.py`); it runs in a child process
  at nice 19 from the start of the run, on the CPU the mostly idle clusters leave.

Rules: traffic stays on 127.0.0.0/8; every wait is bounded; every process is started here and
stopped by its PID; figures not measurable here are "n/a" with the reason, never estimated.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._report import REPO_ROOT, add_run_arguments, load_average, machine_info, write_json
from bench.gossip import measure, plot, summary
from bench.gossip.clusters import BenchError, Cluster, HubhopCluster
from bench.gossip.markdown import markdown_tables as markdown_tables  # the README regions
from bench.gossip.plan import FULL, QUICK, Plan
from bench.gossip.serf import SerfCluster, find_serf, install_serf, serf_version

NAME = "gossip"
SUMMARY = "SWIM gossip: join, update, failure, idle cost, false positives; hubhop vs Serf"

# The child process that runs the simulator is bounded too, counted from the start of the run.
SIM_TIMEOUT_S = 1200.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(
        parser,
        NAME,
        "a smoke run (N = 8, 10 updates, 60 s starvation; about 3 min) "
        "instead of the full one (about 15 min)",
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="apt-get install serf when it is missing (otherwise the Serf side is skipped)",
    )
    parser.add_argument(
        "--no-serf", action="store_true", help="skip the Serf side even if installed"
    )
    parser.add_argument(
        "--no-hubhop", action="store_true", help="skip the hubhop side (to look at Serf alone)"
    )
    parser.add_argument(
        "--sizes",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        default=None,
        metavar="N,N",
        help="cluster sizes instead of the plan's (8,32,64; quick: 8)",
    )
    parser.add_argument("--no-false-positives", action="store_true", help="skip the starvation run")
    parser.add_argument(
        "--fp-seconds",
        type=float,
        default=None,
        metavar="S",
        help="length of the starvation run instead of the plan's (300 s; quick: 60 s)",
    )
    parser.add_argument("--no-sim", action="store_true", help="skip the simulator")
    parser.add_argument(
        "--sim-sizes",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        default=None,
        metavar="N,N",
        help="simulator sizes instead of the plan's (500,1000,2000; quick: 1000)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of the benchmark's choices: which node changes its record, which is killed "
        "(default 1; the daemons' and agents' own randomness is theirs)",
    )


_STARTED = time.monotonic()


def _say(line: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.0f} s] {line}", flush=True)


def _serf_binary(ns: argparse.Namespace) -> tuple[str | None, str]:
    if ns.no_serf:
        return None, "skipped: --no-serf was given"
    binary = find_serf()
    if binary is not None:
        return binary, ""
    if not ns.install:
        return None, (
            "skipped: serf is not installed. Install it (Debian: apt-get install serf) "
            "or run this benchmark with --install to have it installed."
        )
    _say("serf is not installed; --install given: apt-get update && apt-get install serf")
    binary, message = install_serf()
    if binary is None:
        return None, f"skipped: installing serf failed: {message}"
    return binary, ""


def _make(system: str, workdir: Path, n: int, plan: Plan, serf: str | None) -> Cluster:
    if system == "hubhop":
        return HubhopCluster(workdir, n, plan.launch_parallel)
    assert serf is not None
    return SerfCluster(workdir, n, serf)


def _failure_report(cluster: Cluster, exc: BaseException) -> str:
    tails = [
        f"--- {proc.name} log (tail) ---\n{proc.log_tail()[-800:]}"
        for proc in list(cluster.procs.values())[:2]
    ]
    return f"{cluster.system} N={cluster.n}: {type(exc).__name__}: {exc}\n" + "\n".join(tails)


async def _one_cluster(
    cluster: Cluster, plan: Plan, rng: random.Random, schedule: list[float] | None
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    try:
        result["join"] = await measure.measure_join(cluster, plan, schedule, _say)
        join = result["join"]
        _say(
            f"  {cluster.system} N={cluster.n}: joined; all alive "
            f"{join['complete_after_last_join_s']} s after the last join "
            f"(joins spread over {join['join_spread_s']} s)"
        )
        result["update"] = await measure.measure_updates(cluster, plan, rng, _say)
        result["steady"] = await measure.measure_steady(cluster, plan.steady_s, _say)
        result["failure"] = await measure.measure_failure(cluster, plan, rng, _say)
    finally:
        await cluster.close()
        await asyncio.to_thread(cluster.stop_all)
    return result


def _run_clusters(
    plan: Plan, sizes: list[int], systems: list[str], serf: str | None, workdir: Path, seed: int
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    results: dict[str, dict[str, Any]] = {s: {} for s in systems}
    errors: dict[str, str] = {}
    for n in sizes:
        schedule: list[float] | None = None
        for system in systems:
            _say(f"{system} N={n}: starting")
            cluster = _make(system, workdir / f"{system}-{n}", n, plan, serf)
            cluster.workdir.mkdir(parents=True, exist_ok=True)
            rng = random.Random(f"{seed}-{n}")  # the same choices for both systems
            try:
                got = asyncio.run(_one_cluster(cluster, plan, rng, schedule))
            except (BenchError, OSError, TimeoutError) as exc:
                errors[f"{system}-{n}"] = _failure_report(cluster, exc)
                print(errors[f"{system}-{n}"], file=sys.stderr, flush=True)
                continue
            if system == "hubhop":
                schedule = got["join"]["schedule"]
            got["join_pattern"] = (
                "own pace"
                if system == "hubhop"
                else ("replays hubhop's join offsets" if schedule else "all at once")
            )
            results[system][str(n)] = got
    return results, errors


async def _false_positive_run(
    plan: Plan, systems: list[str], serf: str | None, workdir: Path
) -> dict[str, Any]:
    clusters = [
        _make(system, workdir / f"fp-{system}", plan.fp_nodes, plan, serf) for system in systems
    ]
    try:
        for cluster in clusters:
            cluster.workdir.mkdir(parents=True, exist_ok=True)
            _say(f"starvation run: starting {cluster.system} N={cluster.n}")
            join = await measure.measure_join(cluster, plan, None, _say)
            if join["nodes_complete"] != cluster.n:
                raise BenchError(f"{cluster.system} cluster did not converge: {join}")
        _say(
            f"starvation run: {plan.fp_s:.0f} s, node 2 of each cluster stopped "
            f"{plan.fp_stop_s} s every {plan.fp_period_s} s"
        )
        return await measure.measure_false_positives(clusters, plan, 1, _say)
    finally:
        for cluster in clusters:
            await cluster.close()
            await asyncio.to_thread(cluster.stop_all)


def _start_simulator(sizes: tuple[int, ...], path: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "bench.gossip.simulate", "--out", str(path)]
    argv += ["--sizes", ",".join(str(n) for n in sizes)]
    # nice 19: the simulator takes what the clusters leave, not the other way round.
    return subprocess.Popen(
        ["nice", "-n", "19", *argv], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _finish_simulator(child: subprocess.Popen[bytes] | None, path: Path) -> dict[str, Any]:
    if child is None:
        return {"skipped": "--no-sim was given"}
    try:
        output, _ = child.communicate(
            timeout=max(1.0, SIM_TIMEOUT_S - (time.monotonic() - _STARTED))
        )
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        note = f"the simulator ran out of its {SIM_TIMEOUT_S:.0f} s and was stopped"
        if not path.exists():
            return {"skipped": note}
        partial: dict[str, Any] = json.loads(path.read_text())  # the sizes it finished
        partial["note"] = note
        return partial
    text = output.decode(errors="replace")
    if child.returncode != 0 or not path.exists():
        return {"skipped": f"the simulator failed ({child.returncode}): {text[-600:]}"}
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _keep_logs(workdir: Path, logs: Path) -> None:
    """Every process's log and config, for reading what a node said at a given moment."""
    shutil.rmtree(logs, ignore_errors=True)
    shutil.copytree(workdir, logs, ignore=shutil.ignore_patterns("*.npz"), dirs_exist_ok=True)


def run(ns: argparse.Namespace) -> int:
    global _STARTED
    _STARTED = time.monotonic()
    plan = QUICK if ns.quick else FULL
    if ns.fp_seconds is not None:
        plan = dataclasses.replace(plan, fp_s=ns.fp_seconds)
    sizes = list(ns.sizes or plan.sizes)
    out_dir: Path = ns.out
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    serf, serf_note = _serf_binary(ns)
    if serf_note:
        _say(f"Serf side {serf_note}")
    systems = ([] if ns.no_hubhop else ["hubhop"]) + (["serf"] if serf else [])
    _say(f"{'quick' if ns.quick else 'full'} plan: sizes {sizes}, systems {systems}")

    sim_path = out_dir / f"{NAME}_simulator.json"
    sim_path.unlink(missing_ok=True)
    sim_sizes = tuple(ns.sim_sizes or plan.sim_sizes)
    # The simulator is pure CPU in one child at nice 19 from the start: it takes what the
    # clusters leave idle (most of a core), and a waking daemon preempts it at once.
    child = None if ns.no_sim else _start_simulator(sim_sizes, sim_path)
    try:
        with tempfile.TemporaryDirectory(prefix="hubhop-bench-gossip-") as tmp:
            workdir = Path(tmp)
            results, errors = _run_clusters(plan, sizes, systems, serf, workdir, ns.seed)
            if ns.no_false_positives:
                fp: dict[str, Any] = {"skipped": "--no-false-positives was given"}
            else:
                try:
                    fp = asyncio.run(_false_positive_run(plan, systems, serf, workdir))
                except (BenchError, OSError, TimeoutError) as exc:
                    fp = {"error": f"{type(exc).__name__}: {exc}"}
                    print(f"starvation run failed: {exc}", file=sys.stderr, flush=True)
            _keep_logs(workdir, out_dir / "logs")
        if child is not None and child.poll() is None:
            _say("waiting for the simulator")
        simulator = _finish_simulator(child, sim_path)
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
    results["false_positives"] = fp
    results["simulator"] = simulator

    target_rows = summary.targets(results, sizes)
    document = {
        "benchmark": NAME,
        "question": SUMMARY,
        "quick": bool(ns.quick),
        "machine": machine,
        "parameters": {
            "plan": "quick" if ns.quick else "full",
            **plan.as_dict(),
            "sizes": sizes,
            "sim_sizes": list(sim_sizes),
            "seed": ns.seed,
            "update_poll_s": measure.UPDATE_POLL_S,
            "settle_s": measure.SETTLE_S,
            "hubhop_settings": HubhopCluster(Path(), 2).settings(),
            "serf_settings": SerfCluster(Path(), 2, serf or "serf").settings(),
            "serf_version": serf_version(serf) if serf else None,
        },
        "skipped": {"serf": serf_note} if serf_note else {},
        "errors": errors,
        "run": {
            "total_s": round(time.monotonic() - _STARTED, 1),
            "load_average_at_end": load_average(),
        },
        "results": results,
        "targets": target_rows,
    }
    json_path = out_dir / f"{NAME}.json"
    write_json(json_path, document)
    title = (
        f"{NAME}: {machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, "
        f"{machine['date']}, commit {(machine['git_commit'] or 'none')[:10]}"
    )
    skipped_plot = plot.plot(results, sizes, title, out_dir / f"{NAME}.png")

    print()
    print(summary.report(results, sizes, target_rows))
    print()
    for key, message in errors.items():
        print(f"error: {key}: {message.splitlines()[0]}")
    if serf_note:
        print(f"note: Serf side {serf_note}")
    print(f"wrote {json_path}")
    print(f"plot skipped: {skipped_plot}" if skipped_plot else f"wrote {out_dir / f'{NAME}.png'}")
    print(f"total {time.monotonic() - _STARTED:.1f} s")
    return 1 if errors else 0
