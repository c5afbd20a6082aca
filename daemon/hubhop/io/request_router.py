"""Carrying one inference request to where its routing decision sends it, across daemons.

Rules:
- Entry (a request from an app): the hints become an ask (a bad hint is a 400 naming its header,
  a lane or tier this listener's clients may not ask for a 403); the scorer decides
  (`hubhop.scoring.route`); nothing feasible in the tier, nor where the request may spill, is a
  503 whose body carries the decision: the nearest candidates and why each was rejected.
- The chosen backend is served here (through admission, then the pooled backend connection) or
  the request goes to the first hop of the path, a peer daemon, over pooled keep-alive
  connections; the peer serves it or passes it on (a relay). The request says where it is going
  (TARGET_HEADER node/backend, HOPS_HEADER the nodes still to pass, VIA_HEADER the nodes passed)
  and the deadline left; the client's own x-hubhop-* headers are replaced by these.
- A forwarded request is taken only from an address one of our members' records names, and it
  is never decided again: the entry's decision holds. Hops are bounded (MAX_HOPS).
- Re-route: when the serving node refuses (admission full, draining, no such backend: answers
  with REFUSED_HEADER) or cannot be reached, before anything went to the client, the entry
  decides again without that candidate, up to `routing.max_tries` tries in all. A refusal also
  tells the scorer that backend is full until its next record says otherwise. A body that has
  started streaming upstream cannot be sent twice, so such a request is not re-routed: its
  client gets the refusal. Nothing is retried once the client has seen bytes.
- The answer says what happened: x-hubhop-node and x-hubhop-backend (where it was served),
  x-hubhop-path (entry to server, `>`-joined), x-hubhop-tier (the tier it was served in),
  x-hubhop-spilled when it left the asked tier, and server-timing with route, network and
  backend time.
- Emulated WAN (a lab feature): each hop to a peer daemon holds the request for the one-way
  delay before sending it, and the answer's head as long on its way back; the body chunks
  that follow the head are not delayed again.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from hubhop.core.config import BackendConfig, NodeConfig
from hubhop.core.headers import REQUEST_ID_HEADER
from hubhop.core.routing_hints import DEADLINE_HEADER, LANE_HEADER, HintError, parse_hints
from hubhop.io.admission_gate import AdmissionGate, Refused
from hubhop.io.backend_proxy import (
    REFUSED_HEADER,
    BackendPool,
    LimitedBody,
    Upstream,
    UpstreamRefused,
    UpstreamUnreachable,
)
from hubhop.io.http_errors import ApiError
from hubhop.io.wan_delay import WanDelay
from hubhop.scoring.route import Route, RowKey, decide_route, no_route_reason, route_json
from hubhop.scoring.scorer import Scorer
from hubhop_native import columns as col

TARGET_HEADER = "x-hubhop-target"
HOPS_HEADER = "x-hubhop-hops"
VIA_HEADER = "x-hubhop-via"
# Entry, at most two relays, the server: paths the scorer builds are shorter than this, and a
# request bouncing between daemons (a bug, or a forged header) stops here.
MAX_HOPS = 4
NODE_LIST = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}(,[a-z0-9][a-z0-9._-]{0,62})*$")

Body = bytes | LimitedBody | None


@dataclass
class Cluster:
    """What the router needs of the gossiping node; None in EndpointState when it does not."""

    scorer: Scorer
    peer_url: Callable[[str], str | None]  # node -> "http://host:port", None when unknown
    is_member_host: Callable[[str], bool]  # does a member's record name this address?
    wan: Callable[[], WanDelay | None]


@dataclass(frozen=True)
class Served:
    """Where the answer comes from, for its headers."""

    path: tuple[str, ...]
    tier: str | None
    spilled: bool


async def route_request(
    request: web.Request,
    config: NodeConfig,
    cluster: Cluster,
    pool: BackendPool,
    gate: AdmissionGate,
    protocol: str,
    model: str,
    body: Body,
    started: float,
    served_by: Callable[[str], dict[str, str]],
) -> web.StreamResponse:
    """An app's request, entering the network here."""
    try:
        ask = parse_hints(lambda name: request.headers.get(name), model, config.routing)
    except HintError as exc:
        raise ApiError(exc.status, str(exc), "invalid_hint") from None
    deadline = None if ask.deadline_ms is None else time.monotonic() + ask.deadline_ms / 1000
    me = config.node.name
    refused: set[RowKey] = set()
    resendable = not isinstance(body, LimitedBody)
    last: ApiError | None = None
    for _ in range(config.routing.max_tries):
        route = decide_route(cluster.scorer, ask, protocol, refused)
        chosen = route.chosen
        if chosen is None:
            if last is not None:
                raise last
            raise ApiError(503, no_route_reason(route), "no_route", route=route_json(route))
        served = Served(chosen.path, route.tier, route.spilled)
        key = (chosen.node, chosen.backend)
        route_ms = (time.perf_counter() - started) * 1000.0
        try:
            with _in_flight(cluster.scorer, key):
                if chosen.node == me:
                    return await serve_here(
                        request, config, pool, gate, chosen.backend, ask.lane, deadline, body,
                        route_ms, served_by, served,
                    )  # fmt: skip
                return await _to_peer(
                    request, cluster, pool, chosen.path[1], chosen.node, chosen.backend,
                    chosen.path[2:], (me,), ask.lane, deadline, body, route_ms, served,
                    served_by("")[REQUEST_ID_HEADER],
                )  # fmt: skip
        except (UpstreamRefused, Refused, UpstreamUnreachable) as exc:
            refused.add(key)
            _note_full(cluster.scorer, key, exc)
            last = refusal_error(exc, route)
            if not resendable:
                raise last from None
    assert last is not None
    raise last


async def serve_forwarded(
    request: web.Request,
    config: NodeConfig,
    cluster: Cluster | None,
    pool: BackendPool,
    gate: AdmissionGate,
    body: Body,
    started: float,
    served_by: Callable[[str], dict[str, str]],
) -> web.StreamResponse:
    """A request a peer daemon sent on: serve it here or pass it to the next hop."""
    remote = request.remote or ""
    if cluster is None or not cluster.is_member_host(remote):
        raise ApiError(403, f"{TARGET_HEADER} is only taken from hubhop daemons", "forbidden")
    target = request.headers.get(TARGET_HEADER, "")
    node, _, backend = target.partition("/")
    hops_text = request.headers.get(HOPS_HEADER, "")
    via_text = request.headers.get(VIA_HEADER, "")
    for name, text in ((HOPS_HEADER, hops_text), (VIA_HEADER, via_text)):
        if text and not NODE_LIST.match(text):
            raise ApiError(400, f"{name}: not a list of node names: {text[:80]!r}", "bad_hop")
    hops = tuple(hops_text.split(",")) if hops_text else ()
    via = tuple(via_text.split(",")) if via_text else ()
    if len(via) + 1 + len(hops) > MAX_HOPS or config.node.name in via:
        raise ApiError(508, f"route {via_text} -> {config.node.name} loops or is too long", "loop")
    lane = request.headers.get(LANE_HEADER, "standard")
    deadline = _deadline(request.headers.get(DEADLINE_HEADER))
    route_ms = (time.perf_counter() - started) * 1000.0
    path = (*via, config.node.name, *hops)
    served = Served(path, None, False)
    try:
        if not hops:
            if node != config.node.name:
                raise Refused(503, 1, "wrong_node", f"this is {config.node.name}, not {node}")
            return await serve_here(
                request, config, pool, gate, backend, lane, deadline, body, route_ms,
                served_by, served, forwarded=True,
            )  # fmt: skip
        return await _to_peer(
            request, cluster, pool, hops[0], node, backend, hops[1:],
            (*via, config.node.name), lane, deadline, body, route_ms, served,
            served_by("")[REQUEST_ID_HEADER],
        )  # fmt: skip
    except Refused as exc:
        raise _refused_answer(exc.status, exc.reason, exc.detail, exc.retry_after_s) from None
    except UpstreamRefused as exc:
        raise _refused_answer(exc.status, exc.reason, str(exc), exc.retry_after) from None
    except UpstreamUnreachable as exc:
        raise _refused_answer(503, "unreachable", exc.message, None) from None


async def serve_here(
    request: web.Request,
    config: NodeConfig,
    pool: BackendPool,
    gate: AdmissionGate,
    backend_name: str,
    lane: str,
    deadline: float | None,
    body: Body,
    route_ms: float,
    served_by: Callable[[str], dict[str, str]],
    served: Served,
    forwarded: bool = False,
) -> web.StreamResponse:
    """Serve with one of this node's backends, once admission gives it a slot."""
    backend = _backend(config, backend_name)
    if backend is None:
        raise Refused(
            503, 1, "no_backend", f"no backend {backend_name!r} here (the record was stale)"
        )
    headers = served_by(backend.name)
    if not forwarded:
        headers.update(_served_headers(served))
    async with gate.slot(backend.name, lane, deadline):
        return await pool.forward(request, backend, body, headers, route_ms)


async def _to_peer(
    request: web.Request,
    cluster: Cluster,
    pool: BackendPool,
    next_hop: str,
    node: str,
    backend: str,
    hops_after: tuple[str, ...],
    via: tuple[str, ...],
    lane: str,
    deadline: float | None,
    body: Body,
    route_ms: float,
    served: Served,
    request_id: str,
) -> web.StreamResponse:
    url = cluster.peer_url(next_hop)
    upstream = Upstream(next_hop, url or "", peer=True)
    if url is None:
        raise UpstreamUnreachable(upstream, "no address known for it")
    wan = cluster.wan()
    peer_host = _host_of(url)
    if wan is not None:
        try:
            await wan.hold(peer_host)
        except ConnectionResetError as exc:
            raise UpstreamUnreachable(upstream, exc) from None
    forward_headers = [
        (TARGET_HEADER, f"{node}/{backend}"),
        (VIA_HEADER, ",".join(via)),
        (LANE_HEADER, lane),
    ]
    if hops_after:
        forward_headers.append((HOPS_HEADER, ",".join(hops_after)))
    if deadline is not None:
        left_ms = max(1.0, (deadline - time.monotonic()) * 1000.0)
        forward_headers.append((DEADLINE_HEADER, f"{left_ms:.0f}"))
    answer_headers = {REQUEST_ID_HEADER: request_id}
    if len(via) == 1:  # the entry says what happened; relays pass the head on unchanged
        answer_headers.update(_served_headers(served))
    back: Callable[[], Awaitable[None]] | None = None
    if wan is not None:

        async def back() -> None:
            await wan.hold(peer_host)

    return await pool.forward(
        request,
        upstream,
        body,
        answer_headers,
        route_ms,
        request_headers=forward_headers,
        timing=_network_timing,
        before_answer=back,
    )


def _served_headers(served: Served) -> dict[str, str]:
    headers = {"x-hubhop-path": ">".join(served.path)}
    if served.tier is not None:
        headers["x-hubhop-tier"] = served.tier
    if served.spilled:
        headers["x-hubhop-spilled"] = "1"
    return headers


SERVER_TIMING_ENTRY = re.compile(r"(\w+);dur=([0-9.]+)")


def _network_timing(route_ms: float, hop_ms: float, upstream: str | None) -> str:
    """server-timing for an answer that came through a peer: the peer's route and backend
    time, and the rest of the wait for its answer as network (the hops both ways)."""
    theirs = dict(SERVER_TIMING_ENTRY.findall(upstream or ""))
    backend_ms = float(theirs.get("backend", 0.0))
    remote_route = float(theirs.get("route", 0.0))
    network_ms = max(0.0, hop_ms - backend_ms - remote_route) + float(theirs.get("network", 0.0))
    return (
        f"route;dur={route_ms + remote_route:.3f}, network;dur={network_ms:.3f}, "
        f"backend;dur={backend_ms:.3f}"
    )


def _backend(config: NodeConfig, name: str) -> BackendConfig | None:
    return next((b for b in config.backends if b.name == name), None)


def _host_of(url: str) -> str:
    host = url.removeprefix("http://").rsplit(":", 1)[0]
    return host.strip("[]")


def _deadline(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        left_ms = float(text)
    except ValueError:
        raise ApiError(400, f"{DEADLINE_HEADER}: not a number: {text[:40]!r}", "bad_hop") from None
    if not math.isfinite(left_ms) or left_ms <= 0:
        raise ApiError(400, f"{DEADLINE_HEADER}: must be > 0, got {text[:40]!r}", "bad_hop")
    return time.monotonic() + left_ms / 1000.0


def _refused_answer(
    status: int, reason: str, message: str, retry_after: float | str | None
) -> ApiError:
    """A refusal a peer can act on: REFUSED_HEADER says the request may go elsewhere."""
    headers = {REFUSED_HEADER: _header_safe(reason)}
    if retry_after is not None:
        headers["Retry-After"] = _retry_after(retry_after)
    return ApiError(status, message, "refused", headers)


def _retry_after(value: float | str) -> str:
    try:
        return str(max(1, math.ceil(float(value))))
    except ValueError:
        return "1"


def _header_safe(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:200]


def refusal_error(exc: Exception, route: Route | None = None) -> ApiError:
    """What the client hears when its last try was refused."""
    decision = None if route is None else route_json(route)
    if isinstance(exc, UpstreamUnreachable):
        return ApiError(503, exc.message, "backend_unavailable", route=decision)
    if isinstance(exc, Refused):
        status, message, retry = exc.status, exc.detail, _retry_after(exc.retry_after_s)
    else:
        assert isinstance(exc, UpstreamRefused)
        status, message, retry = exc.status, str(exc), _retry_after(exc.retry_after or "1")
    code = "rate_limited" if status == 429 else "overloaded"
    return ApiError(status, message, code, {"Retry-After": retry}, decision)


class _in_flight:
    """Count this request against its row in the scorer (the entry's own in-flight figure,
    which the kernels add to the gossiped load), while it runs."""

    def __init__(self, scorer: Scorer, key: RowKey) -> None:
        self._scorer = scorer
        self._key = key

    def __enter__(self) -> None:
        self._add(1.0)

    def __exit__(self, *exc: object) -> None:
        self._add(-1.0)

    def _add(self, delta: float) -> None:
        row = self._scorer.table.row_of(*self._key)
        if row is not None:  # a record since may have rebuilt the row at zero: never below it
            figures = self._scorer.table.row_num
            figures[col.ROW_LOCAL_INFLIGHT, row] = max(
                0.0, figures[col.ROW_LOCAL_INFLIGHT, row] + delta
            )


def _note_full(scorer: Scorer, key: RowKey, exc: Exception) -> None:
    """A refusal says the backend is full: until its next record, score it so."""
    if isinstance(exc, UpstreamUnreachable):
        return  # membership decides about dead nodes
    row = scorer.table.row_of(*key)
    if row is not None:
        figures = scorer.table.row_num
        figures[col.ROW_BUSY, row] = figures[col.ROW_SLOTS, row]
