"""One request's result, and how the report judges it.

Rules:
- Latency counts from the request's PLANNED send time, not from when it left: a client that
  fell behind, or a server that stalled and held every send behind it back in a closed-loop
  tool, shows as latency. `sent - planned` is kept apart as the client's own lag.
- Every request sent ends as exactly one Outcome: an answer (ok, or an HTTP error) or a
  transport error. One still in flight when the drain ends is cut and is a `timeout`.
- ok: a 2xx answer whose body arrived whole; a streamed (SSE) answer must end with
  `data: [DONE]`, or it is `truncated`.
- Error kinds: `connect` (no connection to the entry point), `timeout` (the per-request timeout,
  or cut at the end of the drain), `disconnected` (the server closed before answering),
  `truncated` (the body ended early), `no_route` (a 503 whose routing decision chose nothing),
  `http_<status>` (any other non-2xx: `http_429` when a queue is full, `http_503`, `http_400`,
  ...), `other` (anything else; its message is kept).
- Shed: the errors by which the network itself turned a request away, on purpose and at once,
  with an answer (`http_429` a full queue, `http_503` nothing would take it, `no_route` nothing
  fits its hints); every other error is a failure (the request was lost, cut or malformed).
- Within tier: the answer's x-hubhop-tier is no looser than the tier asked and the answer did not
  spill (x-hubhop-spilled). A stream that asks no tier, or `any`, is within tier whenever it is
  answered; an answer without x-hubhop-tier to a stream that asks one (a server that is not a
  routing hubhop node) cannot be judged, and counts as not within tier but apart, as unknown.
- Within deadline: an ok answer whose total latency is at most the stream's deadline_ms (every
  ok answer when the stream sets none). Goodput: ok, within tier and within deadline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hubhop.core.tiers import TIER_BOUNDS_MS

SSE_DONE = b"data: [DONE]"
# Bytes of an error answer kept to classify it: a no-route 503 carries the routing decision
# with every rejected candidate, a few kB for a province; 1 MiB holds any real one.
ERROR_BODY_LIMIT = 1024 * 1024
SHED_KINDS = frozenset({"http_429", "http_503", "no_route"})


@dataclass(frozen=True)
class Outcome:
    stream: int  # index into the workload's streams
    planned: float  # planned send time (the runner's clock, s)
    sent: float  # when it was actually handed to the HTTP client
    total_s: float  # planned send to the end of the answer (or to the error)
    ttfb_s: float | None = None  # planned send to the answer's first body byte
    status: int | None = None  # None: no HTTP answer at all
    error: str | None = None  # the error kind; None when ok
    served_tier: str | None = None  # x-hubhop-tier
    spilled: bool = False  # x-hubhop-spilled
    node: str | None = None  # x-hubhop-node: where it was served
    path: str | None = None  # x-hubhop-path: entry>relay>...>node, the hops it took
    detail: str = ""  # what went wrong, in a line

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def lag_s(self) -> float:
        """How late the client sent it (0 when on time)."""
        return max(0.0, self.sent - self.planned)


def is_shed(kind: str | None) -> bool:
    """Whether an error of `kind` is the network shedding the request (see the rules)."""
    return kind in SHED_KINDS


def http_error_kind(status: int, body_start: bytes) -> str:
    """The kind of a non-2xx answer: `no_route` for a 503 that says nothing was feasible."""
    if status == 503 and _chose_nothing(body_start):
        return "no_route"
    return f"http_{status}"


def _chose_nothing(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(document, dict):
        return False
    error, route = document.get("error"), document.get("route")
    if isinstance(error, dict) and error.get("code") == "no_route":
        return True
    return isinstance(route, dict) and route.get("chosen") is None


def sse_complete(tail: bytes) -> bool:
    """Whether a streamed answer whose last bytes are `tail` ended with its [DONE] event."""
    return SSE_DONE in tail


def within_tier(asked: str | None, served: str | None, spilled: bool) -> bool | None:
    """Whether an answer served in `served` (spilled or not) honours the `asked` tier; None
    when it cannot be told (no or unknown x-hubhop-tier on a stream that asks a tier)."""
    if spilled:
        return False
    if asked is None or asked == "any":
        return True
    if served not in TIER_BOUNDS_MS or asked not in TIER_BOUNDS_MS:
        return None
    return TIER_BOUNDS_MS[served] <= TIER_BOUNDS_MS[asked]


def within_deadline(outcome: Outcome, deadline_ms: float | None) -> bool:
    if not outcome.ok:
        return False
    return deadline_ms is None or outcome.total_s * 1000.0 <= deadline_ms
