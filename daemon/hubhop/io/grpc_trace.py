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
- The entry has the audit line's shape (hubhop.io.request_trace `audit_line`), with protocol
  `kserve_v2_grpc`, `status` left out (an HTTP status) and `grpc_status` instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc

from hubhop.core.headers import valid_request_id
from hubhop.core.kserve_grpc_config import GRPC_PROTOCOL
from hubhop.core.routing_hints import RouteAsk
from hubhop.io.local_endpoint import EndpointState, new_request_id
from hubhop.io.request_log import decision_reason, utc_stamp
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


def _path(me: str, node: str) -> list[str]:
    return [me] if node == me else [me, node]  # no relays for gRPC: the entry calls the node


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
    me = state.config.node.name
    served = trace.served and chosen is not None
    entry: dict[str, Any] = {
        "ts": utc_stamp(time.time()),
        "event": "request",
        "node": me,
        "request_id": trace.request_id,
        "client": trace.client or "anonymous",
        "protocol": GRPC_PROTOCOL,
        "model": ask.model,
        "lane": ask.lane,
        "tier_asked": ask.tier,
        "tier_served": route.tier if served and route is not None else None,
        "spilled": bool(served and route is not None and route.spilled),
        "served_by": chosen.node if served and chosen is not None else None,
        "backend": chosen.backend if served and chosen is not None else None,
        "path": _path(me, chosen.node) if served and chosen is not None else None,
        "tries": trace.tries,
        "hedged": None,
        "outcome": outcome,
        "grpc_status": "OK" if served else (None if code is None else code.name),
        "ms": {
            "decision": round(trace.decision_s * 1000.0, 3),
            "total": round((time.perf_counter() - trace.started) * 1000.0, 3),
        },
    }
    if not served and message:
        entry["error"] = {"code": None if code is None else code.name.lower(), "message": message}
    if route is None:
        entry["reason"] = None
        state.decisions.record(entry)
    else:  # worked out when read (hubhop.io.decision_log)
        state.decisions.record(entry, partial(decision_reason, route))
