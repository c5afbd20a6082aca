"""Hedged requests: when the first attempt has not answered in time, a copy goes to the next
best node, and whichever answers first is the one the client gets.

Rules:
- The first attempt starts at once. If it settles (answers or fails) within the hedge delay,
  that is the outcome: no copy is sent.
- Otherwise `start_copy` is asked for a copy; it may decline (no other feasible node), and then
  the first attempt alone decides.
- With both running, the first to answer wins. A failure does not end the race while the other
  attempt may still answer; it is reported among the failures, so the caller can learn from it
  (a refusal marks that node full).
- Every attempt that does not win is cancelled (a running one) or discarded (one that answered
  too late): `discard` closes its connection, so the node serving it sees the request cancelled
  and frees its slot. This holds when the race itself is cancelled (the client went away): then
  no attempt wins and all are dropped.
- An attempt here means "up to the answer head": nothing has been written to the client while
  the race runs, so dropping the loser never cuts an answer someone already sees.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# The derived hedge delay is this many times the expected latency of the chosen node: a first
# byte later than twice the expectation is in the tail (service times seldom run past twice
# their mean unless something is wrong), and hedging earlier than that would double the load
# for answers that were merely a little slow.
HEDGE_FACTOR = 2.0
# Never hedge sooner than this: one loaded event-loop tick plus a garbage-collection pause on
# the serving host is about this long, and a copy cannot beat that noise.
HEDGE_FLOOR_MS = 2.0
# An expectation that is not a finite number (no service-time estimate yet) hedges after this:
# long enough not to double every request, short enough that a stalled node costs an emergency
# call a quarter second rather than its whole timeout.
HEDGE_UNKNOWN_MS = 250.0


def hedge_delay_ms(expected_ms: float, configured_ms: float | None) -> float:
    """How long the first attempt has before a copy is sent: the configured delay if any, else
    derived from the chosen node's expected latency."""
    if configured_ms is not None:
        return configured_ms
    if not math.isfinite(expected_ms) or expected_ms < 0:
        return HEDGE_UNKNOWN_MS
    return max(HEDGE_FLOOR_MS, HEDGE_FACTOR * expected_ms)


@dataclass
class HedgeOutcome(Generic[T]):
    winner: T | None  # None: every attempt failed
    won_by_copy: bool = False
    copies: int = 0  # copies sent: 0 or 1
    failures: list[tuple[int, BaseException]] = field(default_factory=list)  # (0 first, 1 copy)


async def first_to_answer(
    start: Callable[[], Awaitable[T]],
    delay_s: float,
    start_copy: Callable[[], Awaitable[T] | None],
    discard: Callable[[T], Awaitable[None]],
) -> HedgeOutcome[T]:
    """Race `start()` against a copy from `start_copy()` sent after `delay_s`."""
    tasks: list[asyncio.Task[T]] = [asyncio.ensure_future(start())]
    outcome: HedgeOutcome[T] = HedgeOutcome(None)
    winner: asyncio.Task[T] | None = None
    returning = False
    try:
        done, _ = await asyncio.wait(tasks, timeout=delay_s)
        if not done:
            copy = start_copy()
            if copy is not None:
                tasks.append(asyncio.ensure_future(copy))
                outcome.copies = 1
        pending: set[asyncio.Task[T]] = set(tasks)
        while pending and winner is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for index, task in enumerate(tasks):
                if task not in done:
                    continue
                error = task.exception()
                if error is not None:
                    outcome.failures.append((index, error))
                elif winner is None:
                    winner = task
                    outcome.winner = task.result()
                    outcome.won_by_copy = index == 1
        returning = True
        return outcome
    finally:
        keep = winner if returning else None
        # Shielded: the losers are dropped even when the race is cancelled half-way.
        await asyncio.shield(_drop_losers([t for t in tasks if t is not keep], discard))


async def _drop_losers(
    losers: list[asyncio.Task[T]], discard: Callable[[T], Awaitable[None]]
) -> None:
    for task in losers:
        task.cancel()  # no-op for one that already settled
    for result in await asyncio.gather(*losers, return_exceptions=True):
        if isinstance(result, BaseException):
            continue  # cancelled or failed: its own clean-up ran as it unwound
        try:
            await discard(result)
        except Exception:  # a clean-up failing must not take the winner's answer with it
            log.exception("dropping a hedged attempt failed")
