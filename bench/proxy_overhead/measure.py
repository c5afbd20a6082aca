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
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bench._http import Connection, Request
from bench._launch import Proc
from bench.proxy_overhead import workloads
from bench.proxy_overhead.plan import Plan


@dataclass
class Target:
    """One variant: where the client sends, and the proxy process in between (if any)."""

    name: str
    url: str
    proxy: Proc | None = None


@dataclass
class CpuTally:
    """CPU seconds a process used during measured blocks, and the requests they served."""

    seconds: float = 0.0
    requests: int = 0

    def per_request_us(self) -> float | None:
        return self.seconds / self.requests * 1e6 if self.requests else None


@dataclass
class Samples:
    """Everything measured for one workload on one variant."""

    c1_rounds: list[np.ndarray] = field(default_factory=list)  # ns per request, per round
    cn_rounds: list[tuple[int, float]] = field(default_factory=list)  # (requests, seconds)
    cn_latency: list[np.ndarray] = field(default_factory=list)  # ns per request under load
    proxy_cpu_c1: CpuTally = field(default_factory=CpuTally)
    proxy_cpu_cn: CpuTally = field(default_factory=CpuTally)
    backend_cpu_c1: CpuTally = field(default_factory=CpuTally)
    truncated_blocks: int = 0


@dataclass
class Outcome:
    samples: dict[str, dict[str, Samples]]  # workload -> variant -> samples
    rounds_done: int
    upload_rounds_done: int
    stopped_by_budget: bool
    seconds: float
    reconnects: dict[str, int]


class Runner:
    def __init__(self, plan: Plan, targets: list[Target], backend: Proc) -> None:
        self.plan = plan
        self.targets = targets
        self.backend = backend
        self.requests = {
            (w.name, t.name): workloads.build(w.name, t.url)
            for w in workloads.WORKLOADS
            for t in targets
        }
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
                workloads.check(workload.name, await self.c1[target.name].send(request))
                if workload.kind == "transfer":
                    await self.c1[target.name].send(request)
                    continue
                for _ in range(self.plan.warmup):
                    _ok(workload.name, (await self.c1[target.name].send(request)).status)
                await _concurrent(self.cn[target.name], request, self.plan.warmup, 30.0)
        say(f"warm-up done: {self.plan.warmup} requests per variant and workload")

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
            self.samples, rounds_done, uploads_done, stopped, time.monotonic() - started, reconnects
        )

    async def _c1_block(self, workload: str, target: Target, count: int) -> None:
        samples = self.samples[workload][target.name]
        request = self.requests[workload, target.name]
        proxy_before, backend_before = self._cpu(target)
        gc.collect()
        gc.disable()
        try:
            timings, truncated = await _sequential(
                self.c1[target.name], workload, request, count, self.plan.block_cap_s
            )
        finally:
            gc.enable()
        proxy_after, backend_after = self._cpu(target)
        samples.c1_rounds.append(timings)
        samples.truncated_blocks += truncated
        if target.proxy is not None:
            samples.proxy_cpu_c1.seconds += proxy_after - proxy_before
            samples.proxy_cpu_c1.requests += len(timings)
        samples.backend_cpu_c1.seconds += backend_after - backend_before
        samples.backend_cpu_c1.requests += len(timings)

    async def _cn_block(self, workload: str, target: Target) -> None:
        samples = self.samples[workload][target.name]
        request = self.requests[workload, target.name]
        proxy_before, _ = self._cpu(target)
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            timings, truncated = await _concurrent(
                self.cn[target.name], request, self.plan.throughput_block, self.plan.block_cap_s
            )
            elapsed = time.perf_counter() - started
        finally:
            gc.enable()
        proxy_after, _ = self._cpu(target)
        samples.cn_rounds.append((len(timings), elapsed))
        samples.cn_latency.append(timings)
        samples.truncated_blocks += truncated
        if target.proxy is not None:
            samples.proxy_cpu_cn.seconds += proxy_after - proxy_before
            samples.proxy_cpu_cn.requests += len(timings)

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
