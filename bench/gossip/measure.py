"""The five measurements on a running cluster, the same code for hubhop and Serf.

Rules of the measurement:
- Everything is seen from outside, by polling each node's own members view (hubhop's
  `GET /hubhop/v1/members`, Serf's RPC `members`), concurrently for all nodes, each node on its
  own persistent connection, at a bounded interval. A poll's time is the midpoint of its request
  and its answer; the resolution of every figure is the poll interval, stated in the JSON.
- Join: node 0 runs alone first, then the others join it. Per pair (observer, member): from the
  later of the two joins until the observer lists the member alive. "Complete": from the last
  join until every node lists all N alive (and, for context, from the first join).
- Update: one record change at a time on a random node, until every other node lists the new
  models; polling starts at the change and stops per node once it has seen it.
- Failure: SIGKILL of a random non-seed node, until the first and until every other node lists
  it dead (Serf: failed).
- Steady state: after a settle pause, an idle window with no polling at all: CPU from schedstat,
  VmRSS, and bytes on loopback (`traffic.py`).
- False positives: one node's process is stopped in bursts (SIGSTOP, a pause, SIGCONT) shorter
  than both systems' suspicion timeouts; any node declared dead by anyone, by its logs or a
  poll, is a false positive. A suspicion that is refuted is not.
- Every wait has a deadline; what did not happen by then is reported as missing, not waited for.
"""

from __future__ import annotations

import asyncio
import random
import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import _launch
from bench._report import quantile
from bench.gossip.clusters import BASE_MODEL, VIEW_TIMEOUT_S, Cluster, View
from bench.gossip.plan import Plan
from bench.gossip.traffic import LoopbackCounter

# Poll interval while a change spreads: fine enough to resolve Serf's 0.2 s median.
UPDATE_POLL_S = 0.1
# After the updates, broadcasts are still being retransmitted (retransmit limits of a few
# seconds); the idle window starts after that.
SETTLE_S = 3.0
# While the starvation run lasts, each node is polled this often (its logs are the complete
# record; polling is the cross-check and catches suspicions).
FP_POLL_S = 0.5

Say = Callable[[str], None]
Handle = Callable[[int, View, float], bool]


def poll_interval(n: int) -> float:
    """Join and failure polling: every node polled at 0.1 s for small clusters, stretched so
    the poll rate stays near 130 requests/s in all at N = 64 (each poll of a hubhop daemon costs
    it about a millisecond of CPU; more would load the 2 cores that the gossip itself runs on)."""
    return min(0.5, max(0.1, n * 0.008))


def stats(values: Sequence[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": _r(quantile(values, 0.5)),
        "p99": _r(quantile(values, 0.99)),
        "max": _r(max(values)) if values else None,
        "mean": _r(statistics.fmean(values)) if values else None,
    }


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


async def poll_nodes(
    cluster: Cluster, nodes: Sequence[int], interval: float, deadline: float, handle: Handle
) -> set[int]:
    """Poll each node every `interval` until `handle(i, view, t)` says done or the deadline
    passes; returns the nodes that finished."""
    done: set[int] = set()

    async def one(i: int) -> None:
        await asyncio.sleep(random.uniform(0, interval))  # spread the polls over the interval
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            view = await cluster.view(i, limit_s=max(0.05, min(VIEW_TIMEOUT_S, deadline - t0)))
            t1 = time.monotonic()
            if view is not None and handle(i, view, (t0 + t1) / 2):
                done.add(i)
                return
            await asyncio.sleep(max(0.0, t0 + interval - time.monotonic()))

    await asyncio.gather(*(one(i) for i in nodes))
    return done


async def measure_join(
    cluster: Cluster, plan: Plan, schedule: Sequence[float] | None, say: Say
) -> dict[str, Any]:
    n, names = cluster.n, cluster.names
    await asyncio.to_thread(cluster.start_seed)
    joined_at: dict[int, float] = {}
    first_alive: dict[tuple[int, str], float] = {}
    complete_at: dict[int, float] = {}
    interval = poll_interval(n)

    def on_joined(i: int, t: float) -> None:
        joined_at[i] = t
        if len(joined_at) % max(1, n // 4) == 0 or len(joined_at) == n - 1:
            say(f"  {cluster.system} N={n}: {len(joined_at)}/{n - 1} joined")

    flaps: set[tuple[str, str, str]] = set()

    def handle(i: int, view: View, t: float) -> bool:
        for name, seen in view.items():
            if seen.state == "alive":
                first_alive.setdefault((i, name), t)
            elif (i, name) in first_alive:  # seen alive before, now suspect or dead
                flaps.add((names[i], name, seen.state))
        if len(joined_at) == n - 1 and all(
            name in view and view[name].state == "alive" for name in names
        ):
            complete_at[i] = t
            return True
        return False

    started = time.monotonic()
    joining = asyncio.create_task(cluster.join_rest(on_joined, schedule))
    deadline = started + plan.join_timeout_s + (n * 2.0 if cluster.system == "hubhop" else 0.0)
    polling = asyncio.create_task(poll_nodes(cluster, range(n), interval, deadline, handle))
    try:
        await joining
    except BaseException:
        polling.cancel()
        raise
    finished = await polling
    joined_at[0] = min(joined_at.values(), default=started)  # the seed was there before all
    joins = [joined_at[i] for i in range(1, n)]
    first, last = min(joins), max(joins)
    pairs: list[float] = []
    slowest: list[tuple[float, str, str]] = []
    for (i, name), t in first_alive.items():
        j = names.index(name) if name in names else None
        if j is None or j == i:
            continue
        pairs.append(max(0.0, t - max(joined_at[i], joined_at[j])))
        slowest.append((pairs[-1], names[i], name))
    slowest.sort(reverse=True)
    complete = max(complete_at.values()) if len(finished) == n else None
    return {
        "nodes": n,
        "poll_interval_s": interval,
        "join_spread_s": _r(last - first),
        "complete_after_last_join_s": _r(complete - last) if complete is not None else None,
        "complete_after_first_join_s": _r(complete - first) if complete is not None else None,
        "nodes_complete": len(finished),
        "pairs": stats(pairs),
        "pairs_expected": n * (n - 1),
        "pairs_within_1s": round(sum(p <= 1.0 for p in pairs) / max(1, n * (n - 1)), 4),
        # Pairs seen alive and later suspect/dead while the cluster was joining: what holds
        # "all list all alive" back when every pair was seen alive quickly.
        "flaps": len(flaps),
        "flapped": sorted(f"{o} saw {m} {st}" for o, m, st in flaps)[:10],
        # observer, member, seconds: where the tail comes from
        "slowest_pairs": [f"{o} saw {m} alive after {v:.2f} s" for v, o, m in slowest[:5]],
        "last_joiner": names[max(range(1, n), key=lambda i: joined_at[i])],
        "schedule": [round(t - first, 3) for t in sorted(joins)],
    }


async def measure_updates(
    cluster: Cluster, plan: Plan, rng: random.Random, say: Say
) -> dict[str, Any]:
    live = [i for i in range(cluster.n) if cluster.is_up(i)]
    per_update: list[dict[str, Any]] = []
    for k in range(plan.updates):
        origin = rng.choice(live)
        name = cluster.names[origin]
        token = f"u{k + 1:03d}-{rng.randrange(10**6):06d}"
        seen_at: dict[int, float] = {}

        def handle(
            i: int,
            view: View,
            t: float,
            name: str = name,
            token: str = token,
            seen_at: dict[int, float] = seen_at,
        ) -> bool:
            seen = view.get(name)
            if seen is not None and token in seen.models:
                seen_at[i] = t
                return True
            return False

        t_change = await cluster.update(origin, (BASE_MODEL, token))
        await poll_nodes(cluster, live, UPDATE_POLL_S, t_change + plan.update_timeout_s, handle)
        others = {i: seen_at[i] - t_change for i in live if i != origin and i in seen_at}
        everyone = max(others.values()) if len(others) == len(live) - 1 else None
        per_update.append(
            {
                "origin": name,
                "all_s": _r(everyone),
                "first_s": _r(min(others.values())) if others else None,
                "origin_s": _r(seen_at[origin] - t_change) if origin in seen_at else None,
                "missing": len(live) - 1 - len(others),
                "per_node_s": sorted(round(v, 4) for v in others.values()),
            }
        )
        if (k + 1) % 5 == 0 or everyone is None:
            shown = f"{everyone:.2f} s" if everyone is not None else "NOT all within timeout"
            say(f"  {cluster.system} N={cluster.n}: update {k + 1}/{plan.updates}: all {shown}")
        await asyncio.sleep(plan.update_gap_s)
    alls = [u["all_s"] for u in per_update if u["all_s"] is not None]
    per_node = [v for u in per_update for v in u["per_node_s"]]
    return {
        "count": len(per_update),
        "poll_interval_s": UPDATE_POLL_S,
        "timed_out": sum(u["all_s"] is None for u in per_update),
        "all_nodes": stats(alls),
        "per_node": stats(per_node),
        "updates": per_update,
    }


def memory_kib(pid: int) -> dict[str, int]:
    """Pss and private (unshared) memory from smaps_rollup: what one more node really costs,
    where RSS also counts library pages shared by every daemon (and loses them under reclaim)."""
    out = {"pss": 0, "private": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key == "Pss":
                out["pss"] = int(rest.split()[0])
            elif key in ("Private_Clean", "Private_Dirty"):
                out["private"] += int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def vm_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


async def measure_steady(cluster: Cluster, seconds: float, say: Say) -> dict[str, Any]:
    say(f"  {cluster.system} N={cluster.n}: settle {SETTLE_S:.0f} s, idle window {seconds:.0f} s")
    await asyncio.sleep(SETTLE_S)
    live = [i for i in range(cluster.n) if cluster.is_up(i)]
    pids = [cluster.pid(i) for i in live]
    # One look at node 0 before and after (two polls in all): how many record versions the
    # cluster published while idle, which is what most idle gossip bytes carry.
    before = await cluster.view(live[0])
    cpu0 = [_launch.cpu_seconds(p) for p in pids]
    t0 = time.monotonic()
    with LoopbackCounter([cluster.gossip_net]) as counter:
        await asyncio.sleep(seconds)
    t1 = time.monotonic()
    cpu1 = [_launch.cpu_seconds(p) for p in pids]
    after = await cluster.view(live[0])
    published = None
    if before and after:
        bumps = [
            after[name].version - seen.version  # type: ignore[operator]
            for name, seen in before.items()
            if seen.version is not None and name in after and after[name].version is not None
        ]
        published = sum(bumps) if bumps else None
    cpu_pct = [100.0 * (b - a) / (t1 - t0) for a, b in zip(cpu0, cpu1, strict=True)]
    rss_mb = [kib / 1024 for p in pids if (kib := vm_rss_kib(p)) is not None]
    memory = [memory_kib(p) for p in pids]
    private_mb = [m["private"] / 1024 for m in memory if m["private"]]
    pss_mb = [m["pss"] / 1024 for m in memory if m["pss"]]
    traffic: dict[str, Any] = (
        {"error": counter.error}
        if counter.error
        else counter.per_node(cluster.gossip_net, len(live))
    )
    return {
        "seconds": round(t1 - t0, 1),
        "nodes": len(live),
        "cpu_pct_mean": _r(statistics.fmean(cpu_pct)),
        "cpu_pct_max": _r(max(cpu_pct)),
        "rss_mb_mean": _r(statistics.fmean(rss_mb), 1) if rss_mb else None,
        "rss_mb_max": _r(max(rss_mb), 1) if rss_mb else None,
        "pss_mb_mean": _r(statistics.fmean(pss_mb), 1) if pss_mb else None,
        "private_mb_mean": _r(statistics.fmean(private_mb), 1) if private_mb else None,
        "traffic": traffic,
        # Record versions published by all nodes in the window, as node 0 saw them (Serf: n/a).
        "records_published": published,
        "records_published_per_node_per_min": (
            _r(published / len(live) / (t1 - t0) * 60, 2) if published is not None else None
        ),
    }


async def measure_failure(
    cluster: Cluster, plan: Plan, rng: random.Random, say: Say
) -> dict[str, Any]:
    live = [i for i in range(cluster.n) if cluster.is_up(i)]
    victim = rng.choice([i for i in live if i != 0])
    name = cluster.names[victim]
    others = [i for i in live if i != victim]
    dead_at: dict[int, float] = {}
    suspect_at: dict[int, float] = {}
    states: Counter[str] = Counter()

    def handle(i: int, view: View, t: float) -> bool:
        seen = view.get(name)
        state = seen.state if seen is not None else "absent"
        states[state] += 1
        if state == "suspect":
            suspect_at.setdefault(i, t)
        if state in ("dead", "absent"):  # a member reaped before the poll saw it dead is gone
            dead_at[i] = t
            return True
        return False

    interval = poll_interval(cluster.n)
    t_kill = cluster.kill(victim)
    await poll_nodes(cluster, others, interval, t_kill + plan.failure_timeout_s, handle)
    times = [t - t_kill for t in dead_at.values()]
    result = {
        "victim": name,
        "poll_interval_s": interval,
        "first_s": _r(min(times)) if times else None,
        "all_s": _r(max(times)) if len(times) == len(others) else None,
        "median_s": _r(quantile(times, 0.5)),
        "seen_dead_by": len(times),
        "observers": len(others),
        "first_suspect_s": _r(min(suspect_at.values()) - t_kill) if suspect_at else None,
        "states_polled": dict(states),
    }
    shown = f"{result['all_s']} s" if result["all_s"] is not None else "NOT by all"
    say(
        f"  {cluster.system} N={cluster.n}: killed {name}: first {result['first_s']} s, all {shown}"
    )
    return result


async def measure_false_positives(
    clusters: Sequence[Cluster], plan: Plan, victim: int, say: Say
) -> dict[str, dict[str, Any]]:
    """Starve node `victim` of every cluster at once (same bursts) for `plan.fp_s`."""
    before = {c.system: Counter(c.dead_declarations()) for c in clusters}
    polled_dead: dict[str, set[tuple[str, str]]] = {c.system: set() for c in clusters}
    suspects: dict[str, set[tuple[str, str]]] = {c.system: set() for c in clusters}
    incarnations: dict[str, set[int]] = {c.system: set() for c in clusters}
    bursts = 0
    stopped = False
    victim_name = clusters[0].names[victim]

    def send(signum: int) -> None:
        for c in clusters:
            c.signal(victim, signum)

    async def starve() -> None:
        nonlocal bursts, stopped
        while True:
            send(signal.SIGSTOP)
            stopped = True
            bursts += 1
            await asyncio.sleep(plan.fp_stop_s)
            send(signal.SIGCONT)
            stopped = False
            await asyncio.sleep(plan.fp_period_s - plan.fp_stop_s)

    def handler(c: Cluster) -> Handle:
        def handle(i: int, view: View, t: float) -> bool:
            for name, seen in view.items():
                if seen.state == "dead":
                    polled_dead[c.system].add((c.names[i], name))
                elif seen.state == "suspect":
                    suspects[c.system].add((c.names[i], name))
                if name == victim_name and seen.incarnation is not None:
                    incarnations[c.system].add(seen.incarnation)
            return False  # poll until the deadline

        return handle

    started = time.monotonic()
    deadline = started + plan.fp_s
    starving = asyncio.create_task(starve())

    async def progress() -> None:
        while True:
            await asyncio.sleep(60)
            say(f"  starvation run: {time.monotonic() - started:.0f}/{plan.fp_s:.0f} s")

    reporter = asyncio.create_task(progress())
    try:
        live = {c.system: [i for i in range(c.n) if c.is_up(i)] for c in clusters}
        await asyncio.gather(
            *(poll_nodes(c, live[c.system], FP_POLL_S, deadline, handler(c)) for c in clusters)
        )
    finally:
        starving.cancel()
        reporter.cancel()
        await asyncio.gather(starving, reporter, return_exceptions=True)
        send(signal.SIGCONT)  # whatever happened, never leave a process stopped
    results = {}
    for c in clusters:
        declared = Counter(c.dead_declarations()) - before[c.system]
        pairs = set(declared) | polled_dead[c.system]
        results[c.system] = {
            "seconds": round(time.monotonic() - started, 1),
            "nodes": c.n,
            "starved": victim_name,
            "stop_s": plan.fp_stop_s,
            "period_s": plan.fp_period_s,
            "bursts": bursts,
            "false_positive_nodes": len({subject for _, subject in pairs}),
            "dead_declarations_logged": sum(declared.values()),
            "dead_seen_by_polls": len(polled_dead[c.system]),
            "declared": sorted(f"{o}->{s}" for o, s in pairs)[:50],
            "suspect_pairs_seen_by_polls": len(suspects[c.system]),
            "starved_incarnations_seen": sorted(incarnations[c.system])[-5:],
            "polls_unanswered": c.view_failures,
        }
    return results
