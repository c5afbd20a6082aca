"""The hedged race on its own: which attempt's answer the client gets, and that every other
attempt is cancelled or dropped, whatever order things happen in.

Attempts here are coroutines gated on events the test sets, so the order is the test's, not the
scheduler's; the hedge delay is 0 where a copy must go out, and an hour where it must not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from hubhop.io.hedging import (
    HEDGE_FLOOR_MS,
    HEDGE_UNKNOWN_MS,
    HedgeOutcome,
    first_to_answer,
    hedge_delay_ms,
)

AN_HOUR_S = 3600.0


class Refusal(Exception):
    pass


class Attempt:
    """A fake attempt: answers its name once `go` is set, or raises `error` then."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.go = asyncio.Event()
        self.started = False
        self.cancelled = False

    async def run(self) -> str:
        self.started = True
        try:
            await self.go.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        return self.name


class Race:
    def __init__(self, first: Attempt, copy: Attempt | None) -> None:
        self.first = first
        self.copy = copy
        self.discarded: list[str] = []

    def start_copy(self) -> Awaitable[str] | None:
        return None if self.copy is None else self.copy.run()

    async def discard(self, name: str) -> None:
        self.discarded.append(name)

    def run(self, delay_s: float) -> asyncio.Task[HedgeOutcome[str]]:
        return asyncio.ensure_future(
            first_to_answer(self.first.run, delay_s, self.start_copy, self.discard)
        )


async def settle(until: Callable[[], bool]) -> None:
    """Let the loop run until `until()` holds (bounded: a few hundred turns)."""
    for _ in range(500):
        if until():
            return
        await asyncio.sleep(0)
    raise AssertionError("the race never got there")


async def test_a_first_answer_within_the_delay_sends_no_copy() -> None:
    race = Race(Attempt("first"), Attempt("copy"))
    race.first.go.set()
    outcome = await race.run(AN_HOUR_S)
    assert outcome.winner == "first" and outcome.copies == 0 and not outcome.won_by_copy
    assert race.copy is not None and not race.copy.started
    assert race.discarded == []


async def test_a_stalled_first_loses_to_the_copy_and_is_cancelled() -> None:
    race = Race(Attempt("first"), Attempt("copy"))
    task = race.run(0.0)
    assert race.copy is not None
    await settle(lambda: race.copy is not None and race.copy.started)
    race.copy.go.set()
    outcome = await task
    assert outcome.winner == "copy" and outcome.won_by_copy and outcome.copies == 1
    assert race.first.cancelled, "the stalled first attempt must be cancelled, not left running"
    assert outcome.failures == []


async def test_an_answer_that_comes_second_is_dropped_not_leaked() -> None:
    race = Race(Attempt("first"), Attempt("copy"))
    task = race.run(0.0)
    assert race.copy is not None
    await settle(lambda: race.copy is not None and race.copy.started)
    race.first.go.set()  # both answer in the same turn: the first in list order wins
    race.copy.go.set()
    outcome = await task
    assert outcome.winner == "first" and not outcome.won_by_copy
    assert race.discarded == ["copy"]


async def test_a_refused_first_does_not_end_the_race_while_the_copy_may_answer() -> None:
    refusal = Refusal("full")
    race = Race(Attempt("first", refusal), Attempt("copy"))
    task = race.run(0.0)
    assert race.copy is not None
    await settle(lambda: race.copy is not None and race.copy.started)
    race.first.go.set()
    await settle(lambda: race.first.go.is_set() and not task.done())
    race.copy.go.set()
    outcome = await task
    assert outcome.winner == "copy"
    assert outcome.failures == [(0, refusal)], "the refusal is reported, to mark that node full"


async def test_when_both_fail_there_is_no_winner_and_both_failures_are_told() -> None:
    first_error, copy_error = Refusal("first full"), Refusal("copy full")
    race = Race(Attempt("first", first_error), Attempt("copy", copy_error))
    task = race.run(0.0)
    assert race.copy is not None
    await settle(lambda: race.copy is not None and race.copy.started)
    race.first.go.set()
    race.copy.go.set()
    outcome = await task
    assert outcome.winner is None
    assert sorted(outcome.failures, key=lambda f: f[0]) == [(0, first_error), (1, copy_error)]


async def test_no_other_node_means_the_first_attempt_alone_decides() -> None:
    race = Race(Attempt("first"), None)
    task = race.run(0.0)
    await settle(lambda: race.first.started)
    race.first.go.set()
    outcome = await task
    assert outcome.winner == "first" and outcome.copies == 0


async def test_a_cancelled_race_cancels_every_attempt() -> None:
    race = Race(Attempt("first"), Attempt("copy"))
    task = race.run(0.0)
    assert race.copy is not None
    await settle(lambda: race.copy is not None and race.copy.started)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert race.first.cancelled and race.copy.cancelled


def test_the_hedge_delay_is_the_configured_one_or_twice_the_expectation() -> None:
    assert hedge_delay_ms(30.0, 5.0) == 5.0
    assert hedge_delay_ms(30.0, None) == 60.0
    assert hedge_delay_ms(0.1, None) == HEDGE_FLOOR_MS
    assert hedge_delay_ms(float("inf"), None) == HEDGE_UNKNOWN_MS
    assert hedge_delay_ms(float("nan"), None) == HEDGE_UNKNOWN_MS
