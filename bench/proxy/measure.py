"""Interleaved measuring: rounds of blocks, each block one workload on one variant.

Rules:
- Closed loop: a client sends its next request when the previous answer is complete, so the
  figures are service latency with no coordinated-omission question (there is no schedule to
  fall behind).
- Concurrency 1 for latency: one persistent keep-alive connection per variant, opened once.
  Concurrency N for throughput: N persistent connections per variant, each its own closed loop.
- Variants take turns in every round, in an order rotated by one each round, so slow drift and
  bursts of noise on a shared 2-core machine land on every variant alike.
- Warm-up requests are sent and checked in full, and their timings are thrown away.
- The client's garbage collector is paused during a block (and run between blocks), so a
  collection never lands inside one variant's timings.
- Every block is bounded by count and by a time cap; the whole run by a wall-clock budget.
- CPU of each proxy process is read (schedstat, ns) before and after every block, so CPU per
  request is known per round and its median across rounds is the figure.
- Memory: before every upload the proxy's peak RSS (VmHWM) is reset; after it, the peak is
  read. The figure is the highest peak of the run, and its growth over the RSS just before.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench._http import Connection, Request
from bench._launch import Proc, reset_peak_rss, vm_kib
from bench.proxy import workloads
from bench.proxy.plan import Plan


@dataclass
class Target:
    """One variant: where the client sends, and the proxy process in between (if any)."""

    name: str
    url: str
    proxy: Proc | None = None
    # A header every answer through this variant must carry (hubhop: proof it was routed).
    must_answer_with: str | None = None


@dataclass(frozen=True)
class Block:
    """One measured block: requests done, wall seconds, and CPU seconds of the proxy (None for
    direct) and of the backend during it."""

    requests: int
    seconds: float
    proxy_cpu_s: float | None
    backend_cpu_s: float

    def proxy_cpu_us_per_request(self) -> float | None:
        if self.proxy_cpu_s is None or not self.requests:
            return None
        return self.proxy_cpu_s / self.requests * 1e6


@dataclass
class Samples:
    """Everything measured for one workload on one variant."""

    c1_rounds: list[np.ndarray] = field(default_factory=list)  # ns per request, per round
    c1_blocks: list[Block] = field(default_factory=list)
    cn_latency: list[np.ndarray] = field(default_factory=list)  # ns per request under load
    cn_blocks: list[Block] = field(default_factory=list)
    # Uploads only: (RSS before, peak RSS during) of the proxy process, KiB, per block.
    rss_kib: list[tuple[int, int]] = field(default_factory=list)
    truncated_blocks: int = 0


@dataclass
class Outcome:
    samples: dict[str, dict[str, Samples]]  # workload -> variant -> samples
    rounds_done: int
    upload_rounds_done: int
    stopped_by_budget: bool
    seconds: float
    reconnects: dict[str, int]
    # CPU % of each proxy process while idle, before the measurement (gossip, timers).
    idle_cpu_percent: dict[str, float]


# Idle CPU is read over this long before round 1: enough to see a few gossip rounds.
IDLE_WINDOW_S = 2.0


class Runner:
    def __init__(self, plan: Plan, targets: list[Target], backend: Proc) -> None:
        self.plan = plan
        self.targets = targets
        self.backend = backend
        self.requests = {
            (w.name, t.name): workloads.build(w.name, t.url, plan.upload_bytes)
            for w in workloads.WORKLOADS
            for t in targets
        }
        self.idle_cpu_percent: dict[str, float] = {}
        self.c1: dict[str, Connection] = {}
        self.cn: dict[str, list[Connection]] = {}
        self.samples = {w.name: {t.name: Samples() for t in targets} for w in workloads.WORKLOADS}

    async def open(self) -> None:
        for target in self.targets:
            self.c1[target.name] = Connection(target.url)
            self.cn[target.name] = [Connection(target.url) for _ in range(self.plan.concurrency)]

    async def close(self) -> None:
        for connection in self._all_connections():
            await connection.close()

    def _all_connections(self) -> list[Connection]:
        return [c for name in self.c1 for c in (self.c1[name], *self.cn[name])]

    async def warm_up(self, say: Callable[[str], None]) -> None:
        """Check every answer shape on every variant, then send the discarded warm-up load."""
        for workload in workloads.WORKLOADS:
            for target in self.targets:
                request = self.requests[workload.name, target.name]
                answer = await self.c1[target.name].send(request)
                workloads.check(workload.name, answer, self.plan.upload_bytes)
                if target.must_answer_with and answer.header(target.must_answer_with) is None:
                    raise workloads.BadAnswer(
                        f"{target.name}: {workload.name} answer lacks {target.must_answer_with}"
                    )
                if workload.kind == "transfer":
                    await self.c1[target.name].send(request)
                    continue
                for _ in range(self.plan.warmup):
                    _ok(workload.name, (await self.c1[target.name].send(request)).status)
                await _concurrent(self.cn[target.name], request, self.plan.warmup, 30.0)
        say(f"warm-up done: {self.plan.warmup} requests per variant and workload")
        before = {t.name: t.proxy.cpu_seconds() for t in self.targets if t.proxy is not None}
        started = time.perf_counter()
        await asyncio.sleep(IDLE_WINDOW_S)
        elapsed = time.perf_counter() - started
        for target in self.targets:
            if target.proxy is not None:
                used = target.proxy.cpu_seconds() - before[target.name]
                self.idle_cpu_percent[target.name] = used / elapsed * 100

    async def run(self, say: Callable[[str], None]) -> Outcome:
        plan = self.plan
        started = time.monotonic()
        deadline = started + plan.budget_s
        rounds_done = uploads_done = 0
        stopped = False
        for round_index in range(max(plan.rounds, plan.upload_rounds)):
            if time.monotonic() > deadline:
                stopped = True
                break
            order = _rotated(self.targets, round_index)
            for workload in workloads.WORKLOADS:
                if workload.kind == "latency" and round_index < plan.rounds:
                    for target in order:
                        await self._c1_block(workload.name, target, plan.latency_block)
                    for target in order:
                        await self._cn_block(workload.name, target)
                elif workload.kind == "transfer" and round_index < plan.upload_rounds:
                    for target in order:
                        await self._c1_block(workload.name, target, plan.upload_block)
            rounds_done += round_index < plan.rounds
            uploads_done += round_index < plan.upload_rounds
            say(
                f"round {round_index + 1} done at {time.monotonic() - started:5.1f} s "
                f"(order: {', '.join(t.name for t in order)})"
            )
        reconnects = {
            name: sum(c.connects for c in (self.c1[name], *self.cn[name])) - 1 - len(self.cn[name])
            for name in self.c1
        }
        return Outcome(
            self.samples,
            rounds_done,
            uploads_done,
            stopped,
            time.monotonic() - started,
            reconnects,
            self.idle_cpu_percent,
        )

    async def _c1_block(self, workload: str, target: Target, count: int) -> None:
        samples = self.samples[workload][target.name]
        request = self.requests[workload, target.name]
        watch_rss = target.proxy is not None and workload == workloads.UPLOAD
        if watch_rss:
            assert target.proxy is not None
            reset_peak_rss(target.proxy.pid)
            rss_before = vm_kib(target.proxy.pid, "VmRSS")
        block, timings, truncated = await self._block(
            target,
            _sequential(self.c1[target.name], workload, request, count, self.plan.block_cap_s),
        )
        if watch_rss:
            assert target.proxy is not None
            samples.rss_kib.append((rss_before, vm_kib(target.proxy.pid, "VmHWM")))
        samples.c1_rounds.append(timings)
        samples.c1_blocks.append(block)
        samples.truncated_blocks += truncated

    async def _cn_block(self, workload: str, target: Target) -> None:
        samples = self.samples[workload][target.name]
        request = self.requests[workload, target.name]
        block, timings, truncated = await self._block(
            target,
            _concurrent(
                self.cn[target.name], request, self.plan.throughput_block, self.plan.block_cap_s
            ),
        )
        samples.cn_latency.append(timings)
        samples.cn_blocks.append(block)
        samples.truncated_blocks += truncated

    async def _block(
        self, target: Target, load: Coroutine[Any, Any, tuple[np.ndarray, bool]]
    ) -> tuple[Block, np.ndarray, bool]:
        """Run `load` with the client's GC paused, reading wall time and CPU around it."""
        proxy_before, backend_before = self._cpu(target)
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            timings, truncated = await load
            elapsed = time.perf_counter() - started
        finally:
            gc.enable()
        proxy_after, backend_after = self._cpu(target)
        proxy_cpu = None if target.proxy is None else proxy_after - proxy_before
        block = Block(len(timings), elapsed, proxy_cpu, backend_after - backend_before)
        return block, timings, truncated

    def _cpu(self, target: Target) -> tuple[float, float]:
        proxy = target.proxy.cpu_seconds() if target.proxy is not None else 0.0
        return proxy, self.backend.cpu_seconds()


def _rotated(targets: list[Target], by: int) -> list[Target]:
    shift = by % len(targets)
    return targets[shift:] + targets[:shift]


def _ok(workload: str, status: int) -> None:
    if status != 200:
        raise workloads.BadAnswer(f"{workload}: status {status} during the measurement")


async def _sequential(
    connection: Connection, workload: str, request: Request, count: int, cap_s: float
) -> tuple[np.ndarray, bool]:
    """`count` requests one after another; ns per request, and whether the time cap cut it."""
    timings = np.empty(count, dtype=np.int64)
    clock = time.perf_counter_ns
    cap_at = clock() + int(cap_s * 1e9)
    for index in range(count):
        sent = clock()
        response = await connection.send(request)
        done = clock()
        _ok(workload, response.status)
        timings[index] = done - sent
        if done > cap_at:
            return timings[: index + 1], index + 1 < count
    return timings, False


async def _concurrent(
    connections: list[Connection], request: Request, count: int, cap_s: float
) -> tuple[np.ndarray, bool]:
    """`count` requests over closed loops, one per connection; ns per request, and truncation."""
    clock = time.perf_counter_ns
    cap_at = clock() + int(cap_s * 1e9)
    per_connection = max(1, count // len(connections))
    results: list[list[int]] = [[] for _ in connections]

    async def loop(connection: Connection, out: list[int]) -> None:
        for _ in range(per_connection):
            sent = clock()
            response = await connection.send(request)
            done = clock()
            _ok("concurrent", response.status)
            out.append(done - sent)
            if done > cap_at:
                return

    async with asyncio.TaskGroup() as group:
        for connection, out in zip(connections, results, strict=True):
            group.create_task(loop(connection, out))
    timings = np.fromiter((t for out in results for t in out), dtype=np.int64)
    return timings, len(timings) < per_connection * len(connections)
