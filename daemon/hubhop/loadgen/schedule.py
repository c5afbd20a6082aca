"""The arrival schedule: when each request of a run is planned to be sent, decided up front.

This is what makes the load generator open loop. The plan depends only on the workload, the
random generator and the clock origin, never on how the server answers: a stalled server does
not delay the next send, so it cannot thin out the very requests that would have measured the
stall (coordinated omission). The runner sends each request at its planned time (at once when
it is already late) and measures its latency from the planned time.

Rules:
- Per stream, arrivals fall in [0, duration): `fixed` every 1/rate seconds after a random phase
  within the first gap, so a stream sends exactly rate x duration requests when that product is
  a whole number (one more or less otherwise), and streams of one rate do not send in lockstep;
  `poisson` with exponential gaps of mean 1/rate.
- Each stream draws from its own generator, seeded from `rng` in stream order, so one stream's
  arrivals do not change when another's rate does; the same seed gives the same plan.
- A stream's requests take its entry points in turn.
- The plan is a lazy iterator in time order (streams merged; ties keep stream order), so a long
  run does not hold every planned request in memory.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from hubhop.loadgen.workload import Workload


@dataclass(frozen=True)
class Planned:
    """One request of the plan: when (on the runner's clock, seconds), which stream, which entry."""

    at: float
    stream: int
    entry: int


def arrival_offsets(
    rate: float, arrival: str, duration_s: float, rng: random.Random
) -> Iterator[float]:
    """Send times of one stream as offsets from the start, in [0, duration_s), ascending."""
    if rate <= 0.0 or duration_s <= 0.0:
        return
    gap = 1.0 / rate
    if arrival == "fixed":
        phase = rng.random() * gap
        for k in range(math.ceil((duration_s - phase) * rate)):
            at = phase + k * gap  # multiplied, not summed: no drift over a long run
            if at >= duration_s:
                return
            yield at
        return
    if arrival != "poisson":
        raise ValueError(f"unknown arrival process {arrival!r}")
    at = rng.expovariate(rate)
    while at < duration_s:
        yield at
        at += rng.expovariate(rate)


def _stream_plan(
    workload: Workload, index: int, rng: random.Random, origin: float
) -> Iterator[Planned]:
    stream = workload.streams[index]
    offsets = arrival_offsets(stream.rate, stream.arrival, workload.duration_s, rng)
    for n, offset in enumerate(offsets):
        yield Planned(origin + offset, index, n % len(stream.entries))


def plan(workload: Workload, rng: random.Random, origin: float) -> Iterator[Planned]:
    """Every request of the run in planned-time order; `origin` is the clock's time of offset 0."""
    rngs = [random.Random(rng.getrandbits(64)) for _ in workload.streams]
    per_stream = [_stream_plan(workload, i, r, origin) for i, r in enumerate(rngs)]
    return heapq.merge(*per_stream, key=lambda p: p.at)
