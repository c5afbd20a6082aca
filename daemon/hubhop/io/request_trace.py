"""Following one inference request through this node: what it asked, how it was decided, how it
ended; counted in the metrics and, when asked for, written to the audit log.

Rules:
- `observed(metrics, config, request_id)` wraps the inference handlers (OpenAI POSTs, KServe
  infer). Every POST through them ends with one outcome (hubhop.io.node_metrics.OUTCOMES),
  from what the handler returned or raised:
  - an answer: `spilled` when the entry says it left the asked tier (x-hubhop-spilled), else
    `served`; a 5xx from the backend is `failed`;
  - our error: `no_route` (nothing feasible, or no backend here serves the model), `refused`
    (admission full or shedding, the serving node draining: 429 or 503 with a Retry-After),
    `rejected` (another 4xx: a bad hint, body or token policy), `failed` (another 5xx:
    unreachable, broken or too slow);
  - `client_gone` when the client left first (the handler was cancelled).
  Requests refused before a handler runs (401 without a token, 404, 405) are not inference
  requests and are not counted here.
- A request from an app (the entry) counts in hubhop_requests_total by its lane and asked tier
  ("unknown" when it ended before its hints were read); one a peer sent on counts in
  hubhop_forwarded_requests_total by the lane the peer gave.
- The router fills in the trace (`Call.trace`): the ask once its hints are read, each
  decision's time (and, for the audit log, its reason) as it is made. Nothing else is kept,
  so the decision is let go of before the answer streams, as the router wants.
- Every request that entered here leaves its audit line in the node's decision log (the recent
  decisions: gRPC's Explain, the live view), and with `[log] requests` in the request log too;
  the decision's reason in the decision log is worked out when it is read, not per request.
- Added latency is server-timing's `route` on the entry's answer (hubhop.io.node_metrics
  says what it spans); decision time is every decision's, re-routes included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web

from hubhop.core.config import NodeConfig
from hubhop.core.routing_hints import LANE_HEADER, TIER_HEADER, RouteAsk
from hubhop.io.backend_proxy import SERVER_TIMING
from hubhop.io.decision_log import DecisionLog
from hubhop.io.http_errors import ApiError, is_kserve_path
from hubhop.io.node_metrics import UNKNOWN, NodeMetrics
from hubhop.io.request_log import REQUEST_LOG, decision_reason, utc_stamp
from hubhop.io.request_router import HEDGED_HEADER, SERVER_TIMING_ENTRY, TARGET_HEADER, TRIES_HEADER
from hubhop.scoring.route import Route

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The client's name, with [[tokens]] configured and a token presented (hubhop.io.local_endpoint
# sets it); the audit log says "anonymous" otherwise.
CLIENT_NAME = web.RequestKey("hubhop_client_name", str)
ANONYMOUS = "anonymous"
SPILLED_HEADER = "x-hubhop-spilled"
# Our error codes (hubhop.io.http_errors.ApiError.code) that are outcomes of their own; other
# codes go by status: 4xx rejected, 5xx failed.
_OUTCOME_OF_CODE = {
    "no_route": "no_route",
    "model_not_found": "no_route",
    "overloaded": "refused",
    "rate_limited": "refused",
    "draining": "refused",
    "refused": "refused",
}
_ROUTE_PREFIX = "route;dur="


class RequestTrace:
    """What the router tells about one request while it routes it."""

    __slots__ = (
        "ask",
        "audit",
        "decision_s",
        "decisions",
        "decisions_log",
        "logged",
        "request_id",
        "route",
        "started",
    )  # fmt: skip

    def __init__(self, started: float, audit: bool) -> None:
        self.started = started  # time.perf_counter() when it arrived
        self.audit = audit  # an audit line will be written: keep each decision's reason
        self.ask: RouteAsk | None = None
        self.decision_s = 0.0
        self.decisions = 0
        # The last decision, for its reason: worked out only when someone reads it (the request
        # log at once; the decision log when Explain or the live view asks), since listing the
        # alternates and rejections costs far more than deciding did.
        self.route: Route | None = None
        self.request_id = ""  # kept for the audit line only
        self.decisions_log: DecisionLog | None = None  # where the audit line is kept
        self.logged = False  # the audit line is also written to the request log

    def decided(self, route: Route, seconds: float) -> None:
        """A routing decision, made in `seconds`."""
        self.decision_s += seconds
        self.decisions += 1
        if self.audit:
            self.route = route


TRACE = web.RequestKey("hubhop_trace", RequestTrace)


def observed(
    metrics: NodeMetrics,
    config: Callable[[], NodeConfig],
    request_id: web.RequestKey[str],
    decisions: DecisionLog | None = None,
) -> Callable[[Handler], Handler]:
    """A decorator for the inference handlers: each POST through it is traced, counted by its
    outcome, kept in `decisions` (the recent decisions) and, with `[log] requests`, logged
    (`config`: the config in force; `request_id`: where the endpoint keeps each request's id)."""

    def wrap(handler: Handler) -> Handler:
        async def observe(request: web.Request) -> web.StreamResponse:
            if request.method != "POST":
                return await handler(request)
            entry = TARGET_HEADER not in request.headers
            logged = config().log.requests and REQUEST_LOG.isEnabledFor(logging.INFO)
            audit = entry and (logged or decisions is not None)
            trace = request[TRACE] = RequestTrace(time.perf_counter(), audit)
            trace.decisions_log = decisions
            trace.logged = logged
            if audit:
                trace.request_id = request[request_id]
            try:
                response = await handler(request)
            except ApiError as exc:
                outcome = _OUTCOME_OF_CODE.get(exc.code or "") or _by_status(exc.status)
                _finish(metrics, config, request, trace, entry, outcome, exc.status, None, exc)
                raise
            except web.HTTPException as exc:  # aiohttp's own (a 404 or 405 raised inside)
                outcome = _by_status(exc.status)
                _finish(metrics, config, request, trace, entry, outcome, exc.status, None, None)
                raise
            except (asyncio.CancelledError, ConnectionResetError):
                _finish(metrics, config, request, trace, entry, "client_gone", None, None, None)
                raise
            except Exception:
                _finish(metrics, config, request, trace, entry, "failed", 500, None, None)
                raise
            status = response.status
            if status >= 500:
                outcome = "failed"
            else:
                outcome = "spilled" if SPILLED_HEADER in response.headers else "served"
            _finish(metrics, config, request, trace, entry, outcome, status, response, None)
            return response

        return observe

    return wrap


def _by_status(status: int) -> str:
    return "rejected" if status < 500 else "failed"


def _finish(
    metrics: NodeMetrics,
    config: Callable[[], NodeConfig],
    request: web.Request,
    trace: RequestTrace,
    entry: bool,
    outcome: str,
    status: int | None,
    response: web.StreamResponse | None,
    error: ApiError | None,
) -> None:
    """Count the request's outcome and observe its times; write its audit line when asked."""
    ask = trace.ask
    if not entry:
        metrics.count_forwarded(request.headers.get(LANE_HEADER, UNKNOWN), outcome)
        return
    if ask is None:
        metrics.count_request(UNKNOWN, UNKNOWN, outcome)
    else:
        metrics.count_request(ask.lane, ask.tier, outcome)
    if trace.decisions:
        metrics.decision_seconds.observe(trace.decision_s)
    timing = None if response is None else response.headers.get(SERVER_TIMING)
    if timing is not None and timing.startswith(_ROUTE_PREFIX):
        end = timing.find(",")
        try:
            route_ms = float(timing[len(_ROUTE_PREFIX) : end if end >= 0 else None])
        except ValueError:
            pass
        else:
            metrics.added_seconds.observe(route_ms / 1000.0)
    if trace.audit:
        facts = AuditFacts.of(config().node.name, request, trace, outcome, status, response, error)
        route, trace.route = trace.route, None
        if trace.logged:
            line = facts.line()
            line["reason"] = None if route is None else decision_reason(route)
            REQUEST_LOG.info(line)
        if trace.decisions_log is not None:
            keep(trace.decisions_log, facts, route)


_NO_HEADERS: Mapping[str, str] = {}


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs microseconds more
class AuditFacts:
    """What one request's audit line says, taken at its end in a microsecond or two: strings,
    numbers and the answer's finished headers, so keeping it (the decision log) holds no
    request, connection or decision. The line itself is built when someone reads it."""

    node: str
    request_id: str
    client: str
    protocol: str
    ask: RouteAsk | None
    outcome: str
    status: int | None
    answered: bool
    answer: Mapping[str, str]  # the answer's headers (empty: none was answered)
    decision_ms: float | None
    total_ms: float
    ended: float  # time.time()
    error: tuple[str | None, str] | None  # (code, message)
    grpc_status: str | None = None  # a gRPC call's status name (its `status` is HTTP's)

    @classmethod
    def of(
        cls,
        node: str,
        request: web.Request,
        trace: RequestTrace,
        outcome: str,
        status: int | None,
        response: web.StreamResponse | None,
        error: ApiError | None,
    ) -> AuditFacts:
        return cls(
            node,
            trace.request_id,
            request.get(CLIENT_NAME, ANONYMOUS),
            "kserve_v2" if is_kserve_path(request.path) else "openai",
            trace.ask,
            outcome,
            status,
            response is not None,
            _NO_HEADERS if response is None else response.headers,
            round(trace.decision_s * 1000.0, 3) if trace.decisions else None,
            round((time.perf_counter() - trace.started) * 1000.0, 3),
            time.time(),
            None if error is None else (error.code, error.message),
        )

    def line(self) -> dict[str, Any]:
        """The audit log's line for the request (hubhop.io.request_log), without its reason."""
        ask, answer = self.ask, self.answer
        path = answer.get("x-hubhop-path")
        times = {k: float(v) for k, v in SERVER_TIMING_ENTRY.findall(answer.get(SERVER_TIMING, ""))}
        if self.decision_ms is not None:
            times["decision"] = self.decision_ms
        times["total"] = self.total_ms
        line: dict[str, Any] = {
            "ts": utc_stamp(self.ended),  # when it ended: the decision log's entries say when
            "event": "request",
            "node": self.node,
            "request_id": self.request_id,
            "client": self.client,
            "protocol": self.protocol,
            "model": None if ask is None else ask.model,
            "lane": None if ask is None else ask.lane,
            "tier_asked": None if ask is None else ask.tier,
            "tier_served": answer.get(TIER_HEADER),
            "spilled": SPILLED_HEADER in answer,
            "served_by": answer.get("x-hubhop-node"),
            "backend": answer.get("x-hubhop-backend"),
            "path": path.split(">") if path else None,
            "tries": int(answer.get(TRIES_HEADER, "1" if self.answered else "0")),
            "hedged": answer.get(HEDGED_HEADER),
            "outcome": self.outcome,
            "status": self.status,
            "ms": times,
        }
        if self.grpc_status is not None:
            line["grpc_status"] = self.grpc_status
        if self.error is not None:
            line["error"] = {"code": self.error[0], "message": self.error[1]}
        return line

    def undecided_line(self) -> dict[str, Any]:
        """The line of a request that ended before any decision: no reason to give."""
        return {**self.line(), "reason": None}


def keep(log: DecisionLog, facts: AuditFacts, route: Route | None) -> None:
    """Keep a request in the decision log: its line and its decision's reason built when read."""
    if route is None:  # it ended before a decision: its line says so
        log.record_later(facts.request_id, facts.undecided_line, None)
    else:
        log.record_later(facts.request_id, facts.line, partial(decision_reason, route))
