"""The sender: carries out a run's plan over one aiohttp session and records every outcome.

Rules:
- The plan (`schedule.plan`) is fixed before the first send. Each request is sent at its planned
  time: the sender sleeps until it is due, and a request already due (the client fell behind)
  goes at once. None is ever skipped or merged, whatever the server does.
- Latency counts from the planned time (`outcome`): a stalled server, or a stalled client,
  shows as latency, never as fewer requests.
- One ClientSession for the run: keep-alive connections, up to `max_connections` of them (a
  request waiting for one counts the wait as latency), no cookies, answers read as they come.
- Each request is a task held in `in_flight` until it ends, and each ends as exactly one
  Outcome, recorded by the task's done callback: an answer, an error, or, for a request still
  running when the drain (`drain_s` after the last send) ends, a cut that counts as a timeout.
- A request's own timeout (`timeout_s`) covers connecting, sending and reading the whole answer;
  `connect_timeout_s` bounds the connection alone.
- Time is the event loop's monotonic clock; outcomes carry readings of it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import aiohttp

from hubhop.loadgen import schedule
from hubhop.loadgen.outcome import ERROR_BODY_LIMIT, Outcome, http_error_kind, sse_complete
from hubhop.loadgen.request_shapes import PreparedRequest, prepare
from hubhop.loadgen.stats import RunStats
from hubhop.loadgen.workload import Workload

# The plan starts this long after the session exists, so the first requests are not late only
# because the session was being made; well under any gap worth measuring.
START_LEAD_S = 0.05
# The end of a streamed answer kept to find its `data: [DONE]`: the event and its line breaks.
SSE_TAIL_BYTES = 64
# An error's body as shown in a report line.
DETAIL_CHARS = 200


@dataclass(frozen=True)
class RunResult:
    stats: RunStats
    elapsed_s: float  # from the plan's origin to the last outcome


@dataclass(frozen=True)
class _Send:
    stream: int
    planned: float
    sent: float


def _exception_kind(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated"
    return "other"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:DETAIL_CHARS]


async def _send(
    session: aiohttp.ClientSession,
    request: PreparedRequest,
    url: str,
    send: _Send,
    timeout_s: float,
) -> Outcome:
    loop = asyncio.get_running_loop()
    planned = send.planned
    status: int | None = None
    ttfb: float | None = None
    kept = b""
    try:
        async with (
            asyncio.timeout(timeout_s),
            session.post(url, data=request.body, headers=request.headers) as response,
        ):
            status = response.status
            answered = 200 <= status < 300
            async for chunk in response.content.iter_any():
                if ttfb is None:
                    ttfb = loop.time() - planned
                if answered:
                    if request.streamed_answer:
                        kept = (kept[-SSE_TAIL_BYTES:] + chunk)[-SSE_TAIL_BYTES:]
                elif len(kept) < ERROR_BODY_LIMIT:
                    kept += chunk[: ERROR_BODY_LIMIT - len(kept)]
            headers = response.headers
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        kind = _exception_kind(exc)
        return Outcome(
            send.stream, planned, send.sent, loop.time() - planned, ttfb, status, kind,
            detail=_one_line(f"{type(exc).__name__}: {exc}"),
        )  # fmt: skip
    total = loop.time() - planned
    error, detail = None, ""
    if not answered:
        error = http_error_kind(status, kept)
        detail = _one_line(f"{status} {kept[:DETAIL_CHARS].decode(errors='replace')}")
    elif request.streamed_answer and not sse_complete(kept):
        error, detail = "truncated", "the streamed answer ended without data: [DONE]"
    return Outcome(
        stream=send.stream,
        planned=planned,
        sent=send.sent,
        total_s=total,
        ttfb_s=total if ttfb is None else ttfb,  # an empty body: its end is its first byte
        status=status,
        error=error,
        served_tier=headers.get("x-hubhop-tier"),
        spilled=headers.get("x-hubhop-spilled") == "1",
        node=headers.get("x-hubhop-node"),
        path=headers.get("x-hubhop-path"),
        detail=detail,
    )


def _ended(task: asyncio.Task[Outcome], send: _Send, now: float) -> Outcome:
    """The outcome of a finished task: its own, or a timeout when it was cut at the drain."""
    if task.cancelled():
        detail = "still running when the drain ended"
        return Outcome(send.stream, send.planned, send.sent, now - send.planned, None, None,
                       "timeout", detail=detail)  # fmt: skip
    exc = task.exception()
    if exc is not None:  # a bug, not a result: still counted, once, with what it said
        return Outcome(send.stream, send.planned, send.sent, now - send.planned, None, None,
                       "other", detail=_one_line(repr(exc)))  # fmt: skip
    return task.result()


async def run(
    workload: Workload, token: str | None = None, stats: RunStats | None = None
) -> RunResult:
    """Send the workload's plan, wait for the answers (up to the drain), return the figures.
    `stats`, when given, is filled as outcomes arrive, so a caller can show progress."""
    loop = asyncio.get_running_loop()
    stats = RunStats(workload) if stats is None else stats
    prepared = [prepare(stream, token) for stream in workload.streams]
    in_flight: dict[asyncio.Task[Outcome], _Send] = {}
    all_recorded = asyncio.Event()  # set once the plan is sent and every outcome recorded
    sending = True

    def finished(task: asyncio.Task[Outcome]) -> None:
        stats.record(_ended(task, in_flight.pop(task), loop.time()))
        if not in_flight and not sending:
            all_recorded.set()

    connector = aiohttp.TCPConnector(limit=workload.max_connections, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=workload.connect_timeout_s)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        origin = loop.time() + START_LEAD_S
        for planned in schedule.plan(workload, random.Random(workload.seed), origin):
            delay = planned.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            stream = workload.streams[planned.stream]
            send = _Send(planned.stream, planned.at, loop.time())
            url = prepared[planned.stream].url(stream.entries[planned.entry])
            task = asyncio.create_task(
                _send(session, prepared[planned.stream], url, send, workload.timeout_s)
            )
            in_flight[task] = send
            task.add_done_callback(finished)
        sending = False
        if in_flight:
            _, late = await asyncio.wait(set(in_flight), timeout=workload.drain_s)
            for task in late:
                task.cancel()
            # Done callbacks run from the loop's queue, after the tasks end: wait for the last.
            await all_recorded.wait()
    return RunResult(stats, loop.time() - origin)
