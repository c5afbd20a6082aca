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
- A forwarded request is taken only from a member, and it is never decided again: the entry's
  decision holds. Hops are bounded (MAX_HOPS). With mutual TLS (`[tls]`), it comes over the
  peer listener (hubhop.io.peer_listener) with a client certificate that names the member the
  request says sent it (the last of VIA_HEADER), and the app listener refuses it; with plain
  TCP (a lab), from an address one of our members' records names. Peers are called at
  https:// with the peer's node name as the name its certificate must carry.
- Re-route: when the serving node refuses (admission full, draining, no such backend: answers
  with REFUSED_HEADER) or cannot be reached, before anything went to the client, the entry
  decides again without that candidate, up to `routing.max_tries` tries in all. A refusal also
  tells the scorer that backend is full until its next record says otherwise. A body that has
  started streaming upstream cannot be sent twice, so such a request is not re-routed: its
  client gets the refusal. Nothing is retried once the client has seen bytes.
- Outlier detection (hubhop.io.backend_health) hears how each call to one of this node's
  backends ended; admission refuses an ejected backend's requests like a full one's, so their
  entries re-route them.
- Hedging (hubhop.io.hedging): an emergency request marked idempotent whose body is held whole
  goes to the chosen node and, when no answer head has come back within the hedge delay
  (`routing.hedge_delay_ms`, or twice the chosen node's expected latency), to the next best
  feasible node too; the first answer is the client's and the other copy is cancelled, which
  the serving daemon sees as its client leaving (it frees the slot and cancels its backend
  call). A copy counts as a try.
- What a try holds it lets go once its answer is written, or once it fails or is dropped: a
  call served here holds its admission slot (its time feeds the service estimate only when the
  answer was written whole); a call sent to another node counts in the entry's in-flight figure
  for that row, which the kernels add to the gossiped load so entries do not herd onto one
  idle-looking backend. A call served here is not counted in flight: admission counts it, and
  this node's own rows read admission live (hubhop.scoring.candidates), so counting it again
  would see every local call twice.
- The answer says what happened: x-hubhop-node and x-hubhop-backend (where it was served),
  x-hubhop-path (entry to server, `>`-joined), x-hubhop-tier (the tier it was served in),
  x-hubhop-spilled when it left the asked tier, x-hubhop-tries when it took more than one try,
  x-hubhop-hedged when a hedge copy was sent (which copy won), and server-timing with route,
  network and backend time.
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
from typing import TYPE_CHECKING

from aiohttp import web

from hubhop.core.capacity import host_of
from hubhop.core.config import NodeConfig
from hubhop.core.headers import REQUEST_ID_HEADER
from hubhop.core.local_choice import pick_backend
from hubhop.core.routing_hints import (
    DEADLINE_HEADER,
    LANE_HEADER,
    HintError,
    RouteAsk,
    parse_hints,
)
from hubhop.core.tiers import LANES
from hubhop.core.tls_config import cert_node_names
from hubhop.io.admission_gate import AdmissionGate, HeldSlot, Refused
from hubhop.io.backend_proxy import (
    REFUSED_HEADER,
    BackendPool,
    LimitedBody,
    Opened,
    Upstream,
    UpstreamRefused,
    UpstreamUnreachable,
)
from hubhop.io.hedging import first_to_answer, hedge_delay_ms
from hubhop.io.http_errors import ApiError
from hubhop.io.wan_delay import WanDelay
from hubhop.scoring.candidates import CandidateTable
from hubhop.scoring.route import Route, RowKey, decide_route, no_route_reason, route_json
from hubhop.scoring.scorer import Scorer

if TYPE_CHECKING:
    from hubhop.io.request_trace import RequestTrace

TARGET_HEADER = "x-hubhop-target"
HOPS_HEADER = "x-hubhop-hops"
VIA_HEADER = "x-hubhop-via"
# On an answer that took more than one try: how many (re-routes and hedge copies included).
TRIES_HEADER = "x-hubhop-tries"
# On an emergency answer whose hedge copy was sent: which copy answered, "first" or "copy".
HEDGED_HEADER = "x-hubhop-hedged"
# Entry, at most two relays, the server: paths the scorer builds are shorter than this, and a
# request bouncing between daemons (a bug, or a forged header) stops here.
MAX_HOPS = 4
NODE_LIST = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}(,[a-z0-9][a-z0-9._-]{0,62})*$")

Body = bytes | LimitedBody | None
Headers = dict[str, str]


@dataclass
class Cluster:
    """What the router needs of the gossiping node; None in EndpointState when it does not."""

    scorer: Scorer
    peer_addr: Callable[[str], str | None]  # node -> "IP:PORT" of its daemon, None if unknown
    is_member_host: Callable[[str], bool]  # does a member's record name this address?
    wan: Callable[[], WanDelay | None]
    # Peers are called over mutual TLS and forwarded requests vetted by certificate.
    mutual_tls: bool = False
    # node -> "IP:PORT" of its gRPC server, None if it has none (hubhop.io.kserve_grpc).
    peer_grpc_addr: Callable[[str], str | None] = lambda node: None
    # The gossip keys, primary first: gRPC calls between daemons prove membership with them
    # (hubhop.core.peer_proof).
    gossip_keys: Callable[[], tuple[bytes, ...]] = tuple

    def peer_url(self, node: str) -> str | None:
        addr = self.peer_addr(node)
        return None if addr is None else f"{'https' if self.mutual_tls else 'http'}://{addr}"

    def forwarded_refusal(self, request: web.Request) -> str | None:
        """Why a forwarded request may not be taken from where it came; None: it may."""
        if not self.mutual_tls:
            if self.is_member_host(request.remote or ""):
                return None
            return f"{TARGET_HEADER} is only taken from hubhop daemons"
        transport = request.transport
        names = cert_node_names(None if transport is None else transport.get_extra_info("peercert"))
        if not names:
            return f"{TARGET_HEADER} is only taken on the peer listener, over mutual TLS"
        sender = request.headers.get(VIA_HEADER, "").rpartition(",")[2]
        if sender not in names:
            return f"the client certificate names {', '.join(names)}, not the sender {sender!r}"
        if self.peer_addr(sender) is None:
            return f"{sender} is not a member"
        return None


@dataclass(slots=True)
class Call:
    """One inference call as it passes through this daemon; not changed once made (not frozen:
    a frozen dataclass costs a microsecond more to make, on every call)."""

    request: web.Request
    request_id: str
    config: NodeConfig
    pool: BackendPool
    gate: AdmissionGate
    body: Body
    started: float  # time.perf_counter() when it arrived
    # False for a call that asks a backend about itself (KServe model metadata, readiness):
    # no work, so it takes no admission slot, is not counted in flight, never hedged, and a
    # refusal of it says nothing about the backend's load.
    inference: bool = True
    # The metrics' and audit log's record of it (hubhop.io.request_trace); None: not traced.
    trace: RequestTrace | None = None

    def route_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


def served_headers(request_id: str, node: str, backend: str) -> dict[str, str]:
    """The headers of an answer served by `backend` of `node`."""
    return {REQUEST_ID_HEADER: request_id, "x-hubhop-node": node, "x-hubhop-backend": backend}


async def route_request(
    call: Call, cluster: Cluster | None, protocol: str, model: str
) -> web.StreamResponse:
    """An app's request, entering the network here (a node that does not gossip serves it
    from its own backends)."""
    config = call.config
    try:
        ask = parse_hints(lambda name: call.request.headers.get(name), model, config.routing)
    except HintError as exc:
        raise ApiError(exc.status, str(exc), "invalid_hint") from None
    if call.trace is not None:
        call.trace.ask = ask
    deadline = None if ask.deadline_ms is None else time.monotonic() + ask.deadline_ms / 1000
    if cluster is None:
        health = call.gate.health
        serving = None if health is None else health.slots()
        backend = pick_backend(config.backends_for(protocol, model), call.pool.in_flight, serving)
        if backend is None:
            raise ApiError(404, f"the model '{model}' is not served here", "model_not_found")
        try:
            return await serve_here(call, backend.name, ask.lane, deadline, None)
        except Refused as exc:
            raise refusal_error(exc) from None
    # The decisions are let go of before the answer streams: each keeps its kernel outputs
    # (hubhop.scoring.scorer), which a long answer should not hold on to.
    attempt = await _first_answer(call, cluster, ask, protocol, deadline)
    return await attempt.answer(call.request)


async def _first_answer(
    call: Call, cluster: Cluster, ask: RouteAsk, protocol: str, deadline: float | None
) -> _Attempt:
    """Decide and try, re-routing on refusal, until a try's answer head is in."""
    max_tries = call.config.routing.max_tries
    table = cluster.scorer.table
    refused: set[RowKey] = set()
    resendable = not isinstance(call.body, LimitedBody)
    hedgeable = call.inference and ask.lane == "emergency" and ask.idempotent and resendable
    last: ApiError | None = None
    tries = 0
    while tries < max_tries:
        deciding = time.perf_counter()
        route = decide_route(cluster.scorer, ask, protocol, refused)
        if call.trace is not None:
            call.trace.decided(route, time.perf_counter() - deciding)
        chosen = route.chosen
        if chosen is None:
            if last is not None:
                raise last
            raise ApiError(503, no_route_reason(route), "no_route", route=route_json(route))
        tries += 1
        if hedgeable and tries < max_tries:
            outcome = await _hedged(call, cluster, route, refused, deadline)
            tries += outcome.copies
            attempt, failures = outcome.winner, outcome.failures
        else:
            failures = []
            try:
                attempt = await _attempt(call, cluster, route, deadline)
            except REROUTABLE as exc:
                attempt = None
                failures.append(((chosen.node, chosen.backend), exc, route))
        for key, error, failed_route in failures:
            if not isinstance(error, REROUTABLE):
                if attempt is None:
                    raise error
                continue  # the other copy answered: its answer stands
            refused.add(key)
            row = table.row_of(*key)
            # Membership, not this answer, decides about dead nodes.
            if row is not None and call.inference and not isinstance(error, UpstreamUnreachable):
                table.mark_full(row)
            last = refusal_error(error, failed_route)
        if attempt is not None:
            if tries > 1:
                attempt.opened.headers[TRIES_HEADER] = str(tries)
            return attempt
        assert last is not None
        if not resendable:
            raise last
    assert last is not None
    raise last


# What a try may fail with and still leave the request to another node: nothing was done with it.
REROUTABLE = (UpstreamRefused, Refused, UpstreamUnreachable)


class _Holds:
    """What one try holds until its answer is written or it is dropped: the entry's in-flight
    count against another node's row, or the admission slot of a backend served here. Let go
    once; the slot's time is a service-time sample only when the answer was written whole."""

    __slots__ = ("_counted", "slot")

    def __init__(self) -> None:
        self._counted: tuple[CandidateTable, RowKey] | None = None
        self.slot: HeldSlot | None = None

    def count_in_flight(self, table: CandidateTable, key: RowKey) -> None:
        """Count the call against its row while it runs: the entry's own in-flight figure,
        which the kernels add to the gossiped load, so entries do not herd onto one
        idle-looking backend."""
        _add_in_flight(table, key, 1.0)
        self._counted = (table, key)

    def let_go(self, measured: bool) -> None:
        if self._counted is not None:
            table, key = self._counted
            self._counted = None
            _add_in_flight(table, key, -1.0)
        if self.slot is not None:
            slot, self.slot = self.slot, None
            slot.release(measured)


def _add_in_flight(table: CandidateTable, key: RowKey, delta: float) -> None:
    row = table.row_of(*key)  # looked up each time: a record may have rebuilt the table
    if row is not None:
        table.add_local_inflight(row, delta)


class _Attempt:
    """One try whose answer head is in, with what it holds until its answer is written."""

    __slots__ = ("holds", "opened")

    def __init__(self, opened: Opened, holds: _Holds) -> None:
        self.opened = opened
        self.holds = holds

    async def answer(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await self.opened.relay(request)
        except BaseException:
            self.holds.let_go(measured=False)
            raise
        self.holds.let_go(measured=True)
        return response

    async def drop(self) -> None:
        """Not wanted (a hedge lost): closed without a service-time measurement."""
        self.opened.close()
        self.holds.let_go(measured=False)


async def _attempt(call: Call, cluster: Cluster, route: Route, deadline: float | None) -> _Attempt:
    """Send the call to the candidate `route` chose, up to its answer head."""
    chosen = route.chosen
    assert chosen is not None
    me = call.config.node.name
    key = (chosen.node, chosen.backend)
    path = carried_path(chosen.path)
    served = _route_headers(path, route)
    lane = route.ask.lane
    holds = _Holds()
    try:
        if chosen.node == me:
            # Not counted in flight: admission counts it, and this node's rows read that live.
            opened = await _open_here(call, chosen.backend, lane, deadline, served, holds)
        else:
            if call.inference:
                holds.count_in_flight(cluster.scorer.table, key)
            opened = await _open_peer(
                call, cluster, path[1], key, path[2:], (me,), lane, deadline, served
            )
    except BaseException:
        holds.let_go(measured=False)
        raise
    return _Attempt(opened, holds)


@dataclass
class _Hedged:
    winner: _Attempt | None
    copies: int
    failures: list[tuple[RowKey, BaseException, Route]]


async def _hedged(
    call: Call, cluster: Cluster, route: Route, refused: set[RowKey], deadline: float | None
) -> _Hedged:
    """The emergency lane's try: the chosen node, and the next best too if the first has not
    answered within the hedge delay (hubhop.io.hedging)."""
    chosen = route.chosen
    assert chosen is not None
    routes = [route]

    def start_copy() -> Awaitable[_Attempt] | None:
        first_key = (chosen.node, chosen.backend)
        second = decide_route(cluster.scorer, route.ask, route.protocol, refused | {first_key})
        if second.chosen is None:
            return None
        routes.append(second)
        return _attempt(call, cluster, second, deadline)

    delay_ms = hedge_delay_ms(chosen.expected_ms, call.config.routing.hedge_delay_ms)
    outcome = await first_to_answer(
        lambda: _attempt(call, cluster, route, deadline),
        delay_ms / 1000.0,
        start_copy,
        _Attempt.drop,
    )
    if outcome.winner is not None and outcome.copies:
        outcome.winner.opened.headers[HEDGED_HEADER] = "copy" if outcome.won_by_copy else "first"
    failures = [
        ((r.chosen.node, r.chosen.backend), exc, r)
        for index, exc in outcome.failures
        if (r := routes[index]).chosen is not None
    ]
    return _Hedged(outcome.winner, outcome.copies, failures)


async def serve_forwarded(call: Call, cluster: Cluster | None) -> web.StreamResponse:
    """A request a peer daemon sent on: serve it here or pass it to the next hop."""
    request, me = call.request, call.config.node.name
    if cluster is None:
        raise ApiError(403, f"{TARGET_HEADER} is only taken from hubhop daemons", "forbidden")
    if (refusal := cluster.forwarded_refusal(request)) is not None:
        raise ApiError(403, refusal, "forbidden")
    node, _, backend = request.headers.get(TARGET_HEADER, "").partition("/")
    hops_text = request.headers.get(HOPS_HEADER, "")
    via_text = request.headers.get(VIA_HEADER, "")
    for name, text in ((HOPS_HEADER, hops_text), (VIA_HEADER, via_text)):
        if text and not NODE_LIST.match(text):
            raise ApiError(400, f"{name}: not a list of node names: {text[:80]!r}", "bad_hop")
    hops = tuple(hops_text.split(",")) if hops_text else ()
    via = tuple(via_text.split(",")) if via_text else ()
    if len(via) + 1 + len(hops) > MAX_HOPS or me in via:
        raise ApiError(508, f"route {via_text} -> {me} loops or is too long", "loop")
    lane = request.headers.get(LANE_HEADER, "standard")
    if lane not in LANES:  # admission would raise on it
        raise ApiError(400, f"{LANE_HEADER}: not a lane: {lane[:40]!r}", "bad_hop")
    deadline = _deadline(request.headers.get(DEADLINE_HEADER))
    try:
        if not hops:
            if node != me:
                raise Refused(503, 1, "wrong_node", f"this is {me}, not {node}")
            return await serve_here(call, backend, lane, deadline, None)
        opened = await _open_peer(
            call, cluster, hops[0], (node, backend), hops[1:], (*via, me), lane, deadline, None
        )
    except Refused as exc:
        raise _refused_answer(exc.status, exc.reason, exc.detail, exc.retry_after_s) from None
    except UpstreamRefused as exc:
        raise _refused_answer(exc.status, exc.reason, str(exc), exc.retry_after) from None
    except UpstreamUnreachable as exc:
        raise _refused_answer(503, "unreachable", exc.message, None) from None
    return await opened.relay(request)


async def serve_here(
    call: Call, backend_name: str, lane: str, deadline: float | None, served: Headers | None
) -> web.StreamResponse:
    """Serve with one of this node's backends, once admission gives it a slot."""
    holds = _Holds()
    try:
        opened = await _open_here(call, backend_name, lane, deadline, served, holds)
    except BaseException:
        holds.let_go(measured=False)
        raise
    return await _Attempt(opened, holds).answer(call.request)


async def _open_here(
    call: Call,
    backend_name: str,
    lane: str,
    deadline: float | None,
    served: Headers | None,
    holds: _Holds,
) -> Opened:
    """Take a slot of one of this node's backends (held in `holds`) and send it the call.
    `served`: the entry's account of the route, for its answer headers (None: not the entry)."""
    backend = next((b for b in call.config.backends if b.name == backend_name), None)
    if backend is None:
        raise Refused(
            503, 1, "no_backend", f"no backend {backend_name!r} here (the record was stale)"
        )
    headers = served_headers(call.request_id, call.config.node.name, backend.name)
    if served is not None:
        headers.update(served)
    route_ms = call.route_ms()
    if call.inference:
        holds.slot = await call.gate.acquire(backend.name, lane, deadline)
    opening = call.pool.open(call.request, backend, call.body, headers, route_ms)
    health = call.gate.health  # outlier detection hears how the call went (io.backend_health)
    if health is not None:
        return await health.opened(backend.name, opening, call.inference)
    return await opening


async def _open_peer(
    call: Call,
    cluster: Cluster,
    next_hop: str,
    target: RowKey,
    hops_after: tuple[str, ...],
    via: tuple[str, ...],
    lane: str,
    deadline: float | None,
    served: Headers | None,
) -> Opened:
    """Pass the call to `next_hop` on its way to `target`. `served`: as for _open_here (the
    relays pass the serving node's answer head on unchanged)."""
    url = cluster.peer_url(next_hop)
    upstream = Upstream(next_hop, url or "", peer=True)
    if url is None:
        raise UpstreamUnreachable(upstream, "no address known for it")
    route_ms = call.route_ms()
    wan = cluster.wan()
    peer_host = host_of(url.partition("://")[2])
    held_ms = [0.0]  # the emulated WAN's holds both ways: network time the hop's clock misses

    async def hold() -> None:
        assert wan is not None
        started = time.perf_counter()
        await wan.hold(peer_host)
        held_ms[0] += (time.perf_counter() - started) * 1000.0

    if wan is not None:
        try:
            await hold()
        except ConnectionResetError as exc:
            raise UpstreamUnreachable(upstream, exc) from None
    forward_headers = [
        (TARGET_HEADER, "/".join(target)),
        (VIA_HEADER, ",".join(via)),
        (LANE_HEADER, lane),
    ]
    if hops_after:
        forward_headers.append((HOPS_HEADER, ",".join(hops_after)))
    if deadline is not None:
        left_ms = max(1.0, (deadline - time.monotonic()) * 1000.0)
        forward_headers.append((DEADLINE_HEADER, f"{left_ms:.0f}"))
    answer_headers = {REQUEST_ID_HEADER: call.request_id}
    if served is not None:
        answer_headers.update(served)
    return await call.pool.open(
        call.request,
        upstream,
        call.body,
        answer_headers,
        route_ms,
        request_headers=forward_headers,
        timing=lambda route, hop, theirs: _network_timing(route, hop + held_ms[0], theirs),
        before_answer=None if wan is None else hold,
    )


def carried_path(path: tuple[str, ...]) -> tuple[str, ...]:
    """The path a call takes: the decision's, or straight to the serving node when the decision
    relays through more nodes than a call may pass (MAX_HOPS). Relays only shave latency; every
    peer can be called directly, and a path the relays would refuse (508) gets nowhere."""
    return path if len(path) <= MAX_HOPS else (path[0], path[-1])


def _route_headers(path: tuple[str, ...], route: Route) -> Headers:
    """The entry's account of the route, for the answer: path, tier, whether it spilled."""
    headers = {"x-hubhop-path": ">".join(path), "x-hubhop-tier": route.tier}
    if route.spilled:
        headers["x-hubhop-spilled"] = "1"
    return headers


# A number float() takes: "1.2.3" or "." from a peer must not raise.
SERVER_TIMING_ENTRY = re.compile(r"(\w+);dur=([0-9]+(?:\.[0-9]+)?)")


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
    except (ValueError, OverflowError):  # "nan", "inf" or "1e400" from a peer
        return "1"


def _header_safe(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:200]


def refusal_error(exc: Exception, route: Route | None = None) -> ApiError:
    """What the client hears when its last try was refused."""
    decision = None if route is None else route_json(route)
    if isinstance(exc, UpstreamUnreachable):
        return ApiError(503, exc.message, "backend_unavailable", route=decision)
    if isinstance(exc, Refused):
        status, message, headers = exc.status, exc.detail, exc.headers
    else:
        assert isinstance(exc, UpstreamRefused)
        status, message = exc.status, str(exc)
        headers = {"Retry-After": _retry_after(exc.retry_after or "1")}
    code = "rate_limited" if status == 429 else "overloaded"
    return ApiError(status, message, code, headers, decision)
