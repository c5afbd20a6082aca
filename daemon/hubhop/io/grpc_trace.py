"""Following one gRPC inference call that entered at this node, as an HTTP one is followed
(hubhop.io.request_trace): counted in the metrics and kept in the decision log, so `Explain`,
the live view and `/metrics` see gRPC calls too.

Rules:
- Only ModelInfer calls that this node routes (it gossips): a call a peer passed on was decided,
  counted and kept at its entry; metadata calls take no slot and decide nothing worth keeping.
- The call's request id is the client's `x-request-id` metadata when valid, else one made here;
  it goes back in the initial metadata at once, so the client has it whatever the outcome and can
  ask `Explain` about it.
- The outcome comes from how the call ended: OK is `served` (`spilled` when it left the asked
  tier); otherwise by its status: NOT_FOUND and a decision that chose nothing `no_route`,
  RESOURCE_EXHAUSTED `refused`, INVALID_ARGUMENT, PERMISSION_DENIED and UNAUTHENTICATED
  `rejected`, a cancelled call `client_gone`, the rest `failed`.
- The entry is an HTTP request's (hubhop.io.request_trace `AuditFacts`, kept the same way), with
  protocol `kserve_v2_grpc`, no HTTP `status` and `grpc_status` instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import grpc

from hubhop.core.headers import valid_request_id
from hubhop.core.kserve_grpc_config import GRPC_PROTOCOL
from hubhop.core.routing_hints import TIER_HEADER, RouteAsk
from hubhop.io.local_endpoint import EndpointState, new_request_id
from hubhop.io.request_router import TRIES_HEADER
from hubhop.io.request_trace import (
    ANONYMOUS,
    SPILLED_HEADER,
    AuditFacts,
    keep,
)
from hubhop.scoring.route import Route

_OUTCOME_OF_CODE = {
    grpc.StatusCode.NOT_FOUND: "no_route",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "refused",
    grpc.StatusCode.INVALID_ARGUMENT: "rejected",
    grpc.StatusCode.PERMISSION_DENIED: "rejected",
    grpc.StatusCode.UNAUTHENTICATED: "rejected",
    grpc.StatusCode.CANCELLED: "client_gone",
}


def request_id_of(metadata: dict[str, str]) -> str:
    """The client's request id when it gave a valid one, else a new one."""
    given = metadata.get("x-request-id")
    return given if given is not None and valid_request_id(given) else new_request_id()


@dataclass
class GrpcTrace:
    request_id: str
    client: str
    ask: RouteAsk
    started: float = field(default_factory=time.perf_counter)
    route: Route | None = None  # the last decision
    decision_s: float = 0.0
    tries: int = 0
    served: bool = False  # the last try answered

    def decided(self, route: Route, seconds: float) -> None:
        self.route = route
        self.decision_s += seconds
        self.tries += 1 if route.chosen is not None else 0


def finish(
    state: EndpointState,
    trace: GrpcTrace,
    code: grpc.StatusCode | None,
    message: str | None,
) -> None:
    """Count the call by its outcome and keep its entry in the decision log."""
    route = trace.route
    chosen = None if route is None else route.chosen
    if trace.served and chosen is not None:
        outcome = "spilled" if route is not None and route.spilled else "served"
    elif code is None or code is grpc.StatusCode.OK:
        outcome = "failed"  # ended without an answer and without a status: an error of ours
    elif route is not None and chosen is None:
        outcome = "no_route"
    else:
        outcome = _OUTCOME_OF_CODE.get(code, "failed")
    ask = trace.ask
    if state.metrics is not None:
        state.metrics.count_request(ask.lane, ask.tier, outcome)
        if trace.decision_s:
            state.metrics.decision_seconds.observe(trace.decision_s)
    if state.decisions is None:
        return
    served = trace.served and chosen is not None
    answer: dict[str, str] = {TRIES_HEADER: str(trace.tries)}
    if served and route is not None and chosen is not None:
        me = state.config.node.name
        answer["x-hubhop-node"], answer["x-hubhop-backend"] = chosen.node, chosen.backend
        # No relays for gRPC: the entry calls the serving node itself.
        answer["x-hubhop-path"] = me if chosen.node == me else f"{me}>{chosen.node}"
        answer[TIER_HEADER] = route.tier
        if route.spilled:
            answer[SPILLED_HEADER] = "1"
    facts = AuditFacts(
        node=state.config.node.name,
        request_id=trace.request_id,
        client=trace.client or ANONYMOUS,
        protocol=GRPC_PROTOCOL,
        ask=ask,
        outcome=outcome,
        status=None,
        answered=served,
        answer=answer,
        decision_ms=round(trace.decision_s * 1000.0, 3),
        total_ms=round((time.perf_counter() - trace.started) * 1000.0, 3),
        ended=time.time(),
        error=None if served or not message else (_code_name(code), message),
        grpc_status="OK" if served else (None if code is None else code.name),
    )
    keep(state.decisions, facts, route)


def _code_name(code: grpc.StatusCode | None) -> str | None:
    return None if code is None else code.name.lower()
