"""An open-loop load of OpenAI chat calls through one daemon, kept request by request, for the
fault tests (tests/test_faults.py): what was sent, and how each request ended.

Rules:
- Open loop: request i is sent at start + i / rate whatever the answers do, so a node dying or
  draining shows as failures or re-routes, never as fewer requests sent.
- Each request carries its own id (x-request-id) and ends as exactly one Result: `ok` (a whole
  answer; a stream that reached `data: [DONE]`), `error_event` (a stream that ended with an
  OpenAI-style error event), `truncated` (a stream or body that ended early without saying
  why: what a client must never get), `http_error` (a JSON error answer) or `transport` (no
  answer at all).
- Runs on its own thread and event loop; `stop()` stops sending and waits, bounded, for every
  request in flight. Times are time.monotonic() readings, comparable with the test's own.
- Every request goes to the one loopback URL it was given, and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

DONE = b"data: [DONE]"
ERROR_EVENT = b'data: {"error"'
# A request that has not ended this long after the load stopped is a hang: the test fails.
DRAIN_TIMEOUT_S = 15.0
# Per request: far above the few hundred ms any answer here takes, so only a hang hits it.
REQUEST_TIMEOUT_S = 10.0


@dataclass
class Result:
    request_id: str
    streamed: bool
    sent: float  # time.monotonic() as it was handed to the HTTP client
    ended: float = 0.0
    outcome: str = ""  # ok, error_event, truncated, http_error, transport
    status: int | None = None
    node: str | None = None  # x-hubhop-node
    tries: int = 1  # x-hubhop-tries
    detail: str = ""  # the error's message: what the client was told

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass
class OpenLoad:
    """`rate` requests a second of `model` to `url`; `streamed(i)` says which are streams (of
    `max_tokens` tokens; the others ask for one)."""

    url: str
    model: str
    rate: float
    streamed: Callable[[int], bool]
    max_tokens: int = 4
    headers: dict[str, str] = field(default_factory=dict)
    prefix: str = "load"
    results: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.prefix}-load")
        self._thread.start()

    def stop(self) -> list[Result]:
        """Stop sending; every request sent has ended (or the test fails) when this returns."""
        self._stop.set()
        assert self._thread is not None
        self._thread.join(DRAIN_TIMEOUT_S + REQUEST_TIMEOUT_S)
        if self._thread.is_alive():
            raise AssertionError(f"requests still running {DRAIN_TIMEOUT_S} s after the load")
        if self._error is not None:
            raise self._error
        return self.results

    def ended(self) -> list[Result]:
        """The requests that have ended so far (a snapshot; safe from the test's thread)."""
        return [r for r in list(self.results) if r.outcome]

    def _run(self) -> None:
        try:
            asyncio.run(self._send_all())
        except BaseException as exc:  # handed to stop()'s caller
            self._error = exc

    async def _send_all(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            tasks: set[asyncio.Task[None]] = set()
            start = time.monotonic()
            i = 0
            while not self._stop.is_set():
                due = start + i / self.rate
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                    continue
                result = Result(f"{self.prefix}-{i:05d}", self.streamed(i), time.monotonic())
                self.results.append(result)
                task = asyncio.create_task(self._one(session, result))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if tasks:
                await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT_S)

    async def _one(self, session: aiohttp.ClientSession, result: Result) -> None:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": "a fault test"}],
            "max_tokens": self.max_tokens if result.streamed else 1,
            "stream": result.streamed,
        }
        headers = {**self.headers, "x-request-id": result.request_id}
        try:
            async with session.post(
                f"{self.url}/v1/chat/completions", json=body, headers=headers
            ) as response:
                result.status = response.status
                result.node = response.headers.get("x-hubhop-node")
                result.tries = int(response.headers.get("x-hubhop-tries", "1"))
                data = await response.read()
                result.outcome, result.detail = _judge(result.streamed, response.status, data)
        except aiohttp.ClientPayloadError as exc:
            result.outcome, result.detail = "truncated", f"{type(exc).__name__}: {exc}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            result.outcome, result.detail = "transport", f"{type(exc).__name__}: {exc}"
        result.ended = time.monotonic()


def _judge(streamed: bool, status: int, data: bytes) -> tuple[str, str]:
    """How an answer that arrived whole (by its framing) ended, and what it said if it failed."""
    if status >= 400:
        return "http_error", _error_message(data)
    if not streamed:
        try:
            document = json.loads(data)
        except ValueError:
            return "truncated", f"not JSON: {data[:80]!r}"
        return ("ok", "") if document.get("choices") else ("truncated", str(document)[:200])
    if DONE in data:
        return "ok", ""
    start = data.rfind(ERROR_EVENT)
    if start >= 0:
        event = data[start + len(b"data: ") :].split(b"\n", 1)[0]
        return "error_event", _error_message(event)
    return "truncated", f"a stream of {len(data)} bytes with neither [DONE] nor an error"


def _error_message(data: bytes) -> str:
    try:
        error = json.loads(data)["error"]
    except (ValueError, KeyError, TypeError):
        return f"no JSON error: {data[:120]!r}"
    return str(error.get("message") if isinstance(error, dict) else error)
