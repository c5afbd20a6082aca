"""The local endpoint apps call: OpenAI-compatible and KServe v2 (Open Inference Protocol) REST.

Rules:
- The model comes from the request itself: the JSON `model` field (OpenAI) or the URL path
  (KServe). A request goes to a backend of this node that speaks its protocol and serves its model.
- OpenAI bodies are JSON and must be parsed to learn the model, so they are read whole, up to
  `http.max_json_body_bytes`. KServe bodies (tensors, possibly hundreds of MB) are streamed to
  the backend and never held whole, up to `http.max_body_bytes`.
- Every answer carries `x-request-id` (the client's, or one made here) and, when proxied,
  `x-hubhop-node` and `x-hubhop-backend` saying where it was served.
- With `[[tokens]]` configured, a client is known by its bearer token and gets that token's
  routing defaults and caps; a wrong token is a 401, no token is the listener's policy or a 401
  (`[routing] anonymous`); health probes need none. The token never goes upstream.
- A client past its rate limit (hubhop.core.rate_limit; the clients without a token share one
  bucket) is answered 429 with Retry-After before anything is read, routed or admitted. Health
  probes and requests peer daemons pass on are not counted: their client was, at its entry.
- Every failure is a JSON error in the client's API style; the daemon keeps serving.
- While draining, readiness answers 503 and new work is refused with 503 so a load balancer or a
  client retries elsewhere; requests already in flight run to completion.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from hubhop import __version__
from hubhop.core.client_tokens import ClientToken, TokenError, identify
from hubhop.core.config import NodeConfig
from hubhop.core.headers import REQUEST_ID_HEADER, valid_request_id
from hubhop.core.kserve_grpc_config import GRPC_PROTOCOL
from hubhop.core.local_choice import pick_backend
from hubhop.core.rate_limit import ANONYMOUS, ClientBuckets, RateLimit, retry_after_s
from hubhop.core.routing_hints import HintError, check_model, route_ask_from_json
from hubhop.io.admission_gate import AdmissionGate
from hubhop.io.backend_proxy import REFUSED_HEADER, BackendPool, LimitedBody
from hubhop.io.decision_log import DecisionLog
from hubhop.io.http_errors import ApiError, error_response
from hubhop.io.lab_controls import lab_routes
from hubhop.io.live_view import UI_ASSET_PATHS, live_view_routes
from hubhop.io.node_metrics import NodeMetrics
from hubhop.io.request_router import (
    TARGET_HEADER,
    Call,
    Cluster,
    route_request,
    serve_forwarded,
    served_headers,
)
from hubhop.io.request_trace import CLIENT_NAME, TRACE, observed
from hubhop.io.table_watch import TableWatch
from hubhop.scoring.route import decide_route, route_json
from hubhop.scoring.table_view import QueryError, TableQuery, parse_table_query, table_json

log = logging.getLogger(__name__)

OPENAI = "openai"
KSERVE = "kserve_v2"


@dataclass
class EndpointState:
    """What the handlers read on every request; the app swaps `config` on reload."""

    config: NodeConfig
    draining: bool = False
    # Set when the node gossips: the members as this node sees them.
    members: Callable[[], list[dict[str, Any]]] | None = None
    # Set when the node gossips: the probe table, and the latency estimate between two members.
    peers: Callable[[], list[dict[str, Any]]] | None = None
    probe_status: Callable[[], dict[str, Any]] | None = None
    rtt: Callable[[str, str], dict[str, Any] | None] | None = None
    # Set when the node gossips: what carrying requests to other nodes needs.
    cluster: Cluster | None = None
    # Admission to this node's backends; the app sets it before serving.
    gate: AdmissionGate | None = None
    # This node's metrics (GET /metrics) and the hooks that count requests; the app sets them.
    metrics: NodeMetrics | None = None
    # The recent decisions of requests entering here (Explain, /ui), and the live feed of the
    # table, members and decisions (WatchTable, /ui); the app sets them.
    decisions: DecisionLog | None = None
    watch: TableWatch | None = None
    # The config as each token's client sees it (its routing policy), for the config in force.
    _client_configs: tuple[NodeConfig | None, dict[str, NodeConfig]] = field(
        default_factory=lambda: (None, {})
    )
    # Every rate-limited client's bucket, and the config they were last fitted to.
    _buckets: ClientBuckets = field(default_factory=ClientBuckets)
    _buckets_for: NodeConfig | None = None

    def rate_wait(self, client: str) -> float:
        """0.0 when `client` (a token's name, or ANONYMOUS) may send a request now, else the
        seconds until it may. The buckets follow the config in force (a reload)."""
        if self._buckets_for is not self.config:
            self._buckets.reconfigure(client_rate_limits(self.config), time.monotonic())
            self._buckets_for = self.config
        if client not in self._buckets:  # no limit: no clock read either
            return 0.0
        return self._buckets.take(client, time.monotonic())

    def config_for(self, token: ClientToken) -> NodeConfig:
        """The config in force, with the routing policy of `token`'s client."""
        built_for, configs = self._client_configs
        if built_for is not self.config:
            configs = {}
            self._client_configs = (self.config, configs)
        if token.name not in configs:
            configs[token.name] = replace(self.config, routing=token.routing)
        return configs[token.name]


def client_rate_limits(config: NodeConfig) -> dict[str, RateLimit]:
    """Each client's rate limit under `config`: every token's, and the anonymous clients'."""
    limits = {token.name: token.routing.rate_limit for token in config.tokens}
    limits[ANONYMOUS] = config.routing.rate_limit
    return limits


ALL_ROWS = parse_table_query([])
STATE_KEY = web.AppKey("hubhop_state", EndpointState)
POOL_KEY = web.AppKey("hubhop_pool", BackendPool)
REQUEST_ID = web.RequestKey("hubhop_request_id", str)
CLIENT_CONFIG = web.RequestKey("hubhop_client_config", NodeConfig)
AUTHORIZATION = "Authorization"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Ids made here: a random prefix drawn once per process, then a counter. Unique within the process
# and, by the 64-bit prefix, across nodes and restarts; a uuid4 per request would cost a
# getrandom call each. An id names a request in logs and traces, it is no secret, so that the
# next one is guessable does not matter.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def new_request_id() -> str:
    """A request id for a request that brought none (32 hex digits, like a uuid4's)."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


@web.middleware
async def errors_and_request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id, know its client by its token (with [[tokens]] configured), and
    turn every failure into a JSON error in the client's style. One middleware, not one per
    concern: each layer costs every request a few microseconds."""
    given = request.headers.get(REQUEST_ID_HEADER)
    request_id = given if given is not None and valid_request_id(given) else new_request_id()
    request[REQUEST_ID] = request_id
    headers = {REQUEST_ID_HEADER: request_id}
    try:
        state = _state(request)
        config = state.config
        client: str | None = None  # whom a rate limit counts this request against; None: nobody
        try:
            if config.tokens:
                request, client = _with_client_token(request, config)
            else:
                request[CLIENT_CONFIG] = config
                if config.routing.rate_limit.limited and _from_a_client(request):
                    client = ANONYMOUS
            if client is not None:
                wait = state.rate_wait(client)
                if wait > 0.0:
                    raise _rate_limited(request, wait)
        except ApiError as exc:  # turned away at the door: counted apart from routed requests
            if state.metrics is not None and exc.code is not None:
                state.metrics.count_turned_away(exc.code)
            raise
        return await handler(request)
    except ApiError as exc:
        headers.update(exc.headers)
        response = error_response(
            request.path, exc.status, exc.message, exc.code, headers, exc.route
        )
        if exc.status == 413:
            # The rest of the body is not wanted: a client that reused this connection would
            # wait while aiohttp reads and drops it (up to its 10 s lingering time).
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status)
        message = exc.reason if exc.status != 405 else f"{request.method} is not allowed here"
        if "Allow" in exc.headers:
            headers["Allow"] = exc.headers["Allow"]
        return error_response(request.path, exc.status, message, code, headers)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("request %s %s failed", request.method, request.path)
        return error_response(request.path, 500, "internal error", "internal_error", headers)


# Liveness and readiness probes answer anyone: a load balancer or systemd holds no token. The
# live view's page and assets hold no data (its feed takes a token): a browser loads them first.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"}) | UI_ASSET_PATHS
UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="hubhop"'}


def _from_a_client(request: web.Request) -> bool:
    """Not a health probe, nor a request a peer daemon passes on (serve_forwarded vets those)."""
    return request.path not in OPEN_PATHS and TARGET_HEADER not in request.headers


def _rate_limited(request: web.Request, wait_s: float) -> ApiError:
    limit = request[CLIENT_CONFIG].routing.rate_limit
    seconds = retry_after_s(wait_s)
    message = (
        f"over this client's rate limit of {limit.rate_per_s:g} requests a second "
        f"(bursts of {limit.burst}); retry in {seconds} s"
    )
    return ApiError(429, message, "rate_limited", {"Retry-After": str(seconds)})


def _with_client_token(request: web.Request, config: NodeConfig) -> tuple[web.Request, str | None]:
    """With [[tokens]] configured: who the client is (hubhop.core.client_tokens), its routing
    policy for the handlers (CLIENT_CONFIG), the request as the handlers see it, its token kept
    from every upstream, and the name its rate limit goes by (None: not a client's request). A
    request from a peer daemon (TARGET_HEADER) carries no client token: serve_forwarded vets
    it."""
    request[CLIENT_CONFIG] = config
    if not _from_a_client(request):
        return request, None
    try:
        token = identify(config.tokens, request.headers.get(AUTHORIZATION))
    except TokenError as exc:
        raise ApiError(401, str(exc), "unauthorized", UNAUTHORIZED) from None
    if token is None and not config.routing.anonymous:
        message = "this node serves only clients with a bearer token"
        raise ApiError(401, message, "unauthorized", UNAUTHORIZED)
    if token is not None:
        request[CLIENT_CONFIG] = _state(request).config_for(token)
        request[CLIENT_NAME] = token.name
    headers = request.headers.copy()
    headers.popall(AUTHORIZATION, None)
    return request.clone(headers=headers), ANONYMOUS if token is None else token.name


def _client_config(request: web.Request) -> NodeConfig:
    """The config as this request's client sees it: the token's routing policy, if any."""
    return request[CLIENT_CONFIG]


def _check_model(request: web.Request, model: str) -> None:
    """403 when this request's client may not ask for `model` (its token's allowed_models)."""
    try:
        check_model(model, _client_config(request).routing)
    except HintError as exc:
        raise ApiError(exc.status, str(exc), "model_not_allowed") from None


def _state(request: web.Request) -> EndpointState:
    return request.app[STATE_KEY]


def _refuse_while_draining(request: web.Request) -> None:
    """503 while draining; to a peer daemon, marked as a refusal it may re-route."""
    if _state(request).draining:
        forwarded = TARGET_HEADER in request.headers
        headers = {REFUSED_HEADER: "draining", "Retry-After": "1"} if forwarded else {}
        raise ApiError(503, "this node is shutting down; retry on another", "draining", headers)


def _served_by(request: web.Request, backend_name: str) -> dict[str, str]:
    return served_headers(request[REQUEST_ID], _state(request).config.node.name, backend_name)


async def read_json_body(request: web.Request, limit: int) -> tuple[bytes, dict[str, Any]]:
    too_large = f"request body is over the limit of {limit} bytes"
    length = request.content_length
    if length is not None:
        if length > limit:
            raise ApiError(413, too_large, "request_too_large")
        # One read of the announced length: a small body has usually arrived whole already.
        try:
            body = await request.content.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            message = f"request body ended after {len(exc.partial)} of {length} bytes"
            raise ApiError(400, message, "invalid_json") from None
    else:  # chunked: counted as it comes, cut off once over the limit
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, too_large, "request_too_large")
            chunks.append(chunk)
        body = b"".join(chunks)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting recurses
        raise ApiError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(document, dict):
        raise ApiError(400, "request body must be a JSON object", "invalid_request")
    return body, document


async def openai_inference(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions, /v1/completions, /v1/embeddings."""
    started = time.perf_counter()
    _refuse_while_draining(request)
    config = _state(request).config
    body, document = await read_json_body(request, config.http.max_json_body_bytes)
    model = document.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "the request needs a 'model' string", "missing_model")
    return await _inference(request, OPENAI, model, body, started)


async def _inference(
    request: web.Request, protocol: str, model: str, body: bytes | LimitedBody, started: float
) -> web.StreamResponse:
    """An inference call: served here, or carried to the node its routing decision picks."""
    state = _state(request)
    assert state.gate is not None, "the app sets the admission gate before serving"
    call = Call(
        request, request[REQUEST_ID], _client_config(request), request.app[POOL_KEY], state.gate,
        body, started, trace=request.get(TRACE),
    )  # fmt: skip
    if TARGET_HEADER in request.headers:
        return await serve_forwarded(call, state.cluster)
    return await route_request(call, state.cluster, protocol, model)


async def openai_models(request: web.Request) -> web.Response:
    """GET /v1/models: every model an OpenAI-speaking backend of this node serves."""
    config = _state(request).config
    allowed = _client_config(request).routing.allowed_models
    models = [m for m in config.models_for(OPENAI) if allowed is None or m in allowed]
    data = [_openai_model(config, m) for m in models]
    return web.json_response(
        {"object": "list", "data": data}, headers={REQUEST_ID_HEADER: request[REQUEST_ID]}
    )


async def openai_model(request: web.Request) -> web.Response:
    """GET /v1/models/{model}."""
    config = _state(request).config
    model = request.match_info["model"]
    _check_model(request, model)
    if model not in config.models_for(OPENAI):
        raise ApiError(404, f"the model '{model}' is not served here", "model_not_found")
    return web.json_response(
        _openai_model(config, model), headers={REQUEST_ID_HEADER: request[REQUEST_ID]}
    )


def _openai_model(config: NodeConfig, model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": config.node.name}


async def kserve_live(request: web.Request) -> web.Response:
    return web.json_response({"live": True}, headers={REQUEST_ID_HEADER: request[REQUEST_ID]})


async def kserve_ready(request: web.Request) -> web.Response:
    ready = not _state(request).draining
    return web.json_response(
        {"ready": ready},
        status=200 if ready else 503,
        headers={REQUEST_ID_HEADER: request[REQUEST_ID]},
    )


async def kserve_server_metadata(request: web.Request) -> web.Response:
    return web.json_response(
        {"name": "hubhop", "version": __version__, "extensions": ["binary_tensor_data"]},
        headers={REQUEST_ID_HEADER: request[REQUEST_ID]},
    )


async def kserve_model(request: web.Request) -> web.StreamResponse:
    """Model metadata, model readiness and inference: all passed to a backend serving the model,
    on this node or, routed, on another."""
    started = time.perf_counter()
    config = _state(request).config
    is_infer = request.method == "POST"
    if is_infer:
        _refuse_while_draining(request)
    model = request.match_info["model"]
    if is_infer:
        limit = config.http.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(
                413, f"request body is over the limit of {limit} bytes", "request_too_large"
            )
        return await _inference(
            request, KSERVE, model, LimitedBody(request.content, limit), started
        )
    return await _kserve_model_info(request, model, started)


async def _kserve_model_info(
    request: web.Request, model: str, started: float
) -> web.StreamResponse:
    """GET model metadata or readiness: from a backend of this node that serves the model, else
    routed like an inference call (its hints count) to a node whose backend does, where it
    takes no admission slot (the router's `Call.inference`)."""
    state = _state(request)
    if TARGET_HEADER in request.headers:  # from a peer daemon: served here or passed on
        _refuse_while_draining(request)
        return await serve_forwarded(_kserve_info_call(request, started), state.cluster)
    _check_model(request, model)
    pool = request.app[POOL_KEY]
    backend = pick_backend(state.config.backends_for(KSERVE, model), pool.in_flight)
    if backend is None:
        if state.cluster is None:
            raise ApiError(404, f"the model '{model}' is not served here", "model_not_found")
        call = _kserve_info_call(request, started)
        return await route_request(call, state.cluster, KSERVE, model)
    route_ms = (time.perf_counter() - started) * 1000.0
    return await pool.forward(request, backend, None, _served_by(request, backend.name), route_ms)


def _kserve_info_call(request: web.Request, started: float) -> Call:
    """A metadata or readiness request as the router carries it: no body, no admission slot."""
    gate = _state(request).gate
    assert gate is not None, "the app sets the admission gate before serving"
    config, pool = _client_config(request), request.app[POOL_KEY]
    return Call(request, request[REQUEST_ID], config, pool, gate, None, started, inference=False)


async def hubhop_members(request: web.Request) -> web.Response:
    """GET /hubhop/v1/members: the membership and capacity view of this node."""
    state = _state(request)
    members = (
        state.members()
        if state.members is not None
        else [{"name": state.config.node.name, "state": "alive", "gossip": False}]
    )
    return web.json_response(
        {"node": state.config.node.name, "members": members},
        headers={REQUEST_ID_HEADER: request[REQUEST_ID]},
    )


async def hubhop_peers(request: web.Request) -> web.Response:
    """GET /hubhop/v1/peers: what this node's probes measured, and its estimate, per member."""
    state = _state(request)
    peers = state.peers() if state.peers is not None else []
    status = state.probe_status() if state.probe_status is not None else {}
    return web.json_response(
        {
            "node": state.config.node.name,
            "gossip": state.peers is not None,
            "self": status,
            "peers": peers,
        },
        headers={REQUEST_ID_HEADER: request[REQUEST_ID]},
    )


async def hubhop_rtt(request: web.Request) -> web.Response:
    """GET /hubhop/v1/rtt?to=B[&from=A]: the latency estimate between two members (A: us)."""
    state = _state(request)
    me = state.config.node.name
    to = request.query.get("to", "")
    source = request.query.get("from", me)
    headers = {REQUEST_ID_HEADER: request[REQUEST_ID]}
    if not to:
        return web.json_response(
            {"error": "give the member to estimate with ?to=NAME (and optionally &from=NAME)"},
            status=400,
            headers=headers,
        )
    estimate = state.rtt(source, to) if state.rtt is not None else None
    body: dict[str, Any] = {"node": me, "from": source, "to": to, "estimate": estimate}
    if estimate is None:
        body["reason"] = (
            "this node does not gossip"
            if state.rtt is None
            else f"no fresh measurement and no coordinates for {source} and {to} yet"
        )
    return web.json_response(body, headers=headers)


async def hubhop_route(request: web.Request) -> web.Response:
    """POST /hubhop/v1/route: the routing decision alone, for clients that call the backend
    themselves. The body names the model and the hints as JSON fields (`protocol`: openai, the
    default, or kserve_v2)."""
    state = _state(request)
    _, document = await read_json_body(request, state.config.http.max_json_body_bytes)
    body = route_document(state, _client_config(request), document)
    return web.json_response(body, headers={REQUEST_ID_HEADER: request[REQUEST_ID]})


def route_document(
    state: EndpointState, config: NodeConfig, document: dict[str, Any]
) -> dict[str, Any]:
    """The route endpoint's answer to `document` (its JSON fields) for a client whose config is
    `config` (its token's policy); ApiError when the ask cannot be decided. gRPC's Route too."""
    protocol = document.pop("protocol", OPENAI)
    if protocol not in (OPENAI, KSERVE, GRPC_PROTOCOL):
        message = f"protocol: {protocol!r} is not openai, kserve_v2 or {GRPC_PROTOCOL}"
        raise ApiError(400, message, "invalid_hint")
    try:
        ask = route_ask_from_json(document, config.routing)
    except HintError as exc:
        raise ApiError(exc.status, str(exc), "invalid_hint") from None
    if state.cluster is None:
        raise ApiError(503, "this node does not gossip: it knows no other node", "no_gossip")
    route = decide_route(state.cluster.scorer, ask, protocol)
    body = route_json(route)
    if route.chosen is not None:
        node = route.chosen.node
        if protocol == GRPC_PROTOCOL:  # where a gRPC call for it goes: that node's gRPC server
            addr = state.cluster.peer_grpc_addr(node)
            body["chosen"]["url"] = None if addr is None else f"grpc://{addr}"
        else:
            body["chosen"]["url"] = state.cluster.peer_url(node)
    return {"node": state.config.node.name, **body}


async def hubhop_table(request: web.Request) -> web.Response:
    """GET /hubhop/v1/table[?model=&chip=&node=&role=&tier=&state=]: the capacity table as this
    node sees it, one row per (node, backend); its own backends only when it does not gossip."""
    try:
        query = parse_table_query(request.query.items())
    except QueryError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from None
    body = table_document(_state(request), query)
    return web.json_response(body, headers={REQUEST_ID_HEADER: request[REQUEST_ID]})


def table_document(state: EndpointState, query: TableQuery) -> dict[str, Any]:
    """The capacity table as this node sees it (GET /hubhop/v1/table, the table watch)."""
    body = table_json(
        state.config,
        state.gate.admission.load() if state.gate is not None else {},
        query,
        members=state.members() if state.members is not None else None,
        scorer=state.cluster.scorer if state.cluster is not None else None,
    )
    health = None if state.gate is None else state.gate.health
    if health is not None:  # this node's own rows: in rotation, ejected or in slow start
        rotation = health.status()
        for row in body["rows"]:
            if row["node"] == state.config.node.name and row["backend"] in rotation:
                row["rotation"] = rotation[row["backend"]]
    return body


def watched_view(state: EndpointState) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the table watch compares: every row of the table, and the members."""
    rows = table_document(state, ALL_ROWS)["rows"]
    return rows, state.members() if state.members is not None else []


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: this node's figures for Prometheus (hubhop.io.node_metrics). With
    [[tokens]] it takes a token like every other path: give the scraper its own."""
    state = _state(request)
    if state.metrics is None:
        raise ApiError(404, "this node keeps no metrics", "not_found")
    body, content_type = state.metrics.exposition(request.headers.get("Accept"))
    headers = {"Content-Type": content_type, REQUEST_ID_HEADER: request[REQUEST_ID]}
    return web.Response(body=body, headers=headers)


def build_endpoint_app(state: EndpointState, pool: BackendPool) -> web.Application:
    app = web.Application(middlewares=[errors_and_request_ids])
    app[STATE_KEY] = state
    app[POOL_KEY] = pool
    traced: Callable[[Handler], Handler] = _as_is
    if state.metrics is not None:
        traced = observed(state.metrics, lambda: state.config, REQUEST_ID, state.decisions)
    app.router.add_post("/v1/chat/completions", traced(openai_inference))
    app.router.add_post("/v1/completions", traced(openai_inference))
    app.router.add_post("/v1/embeddings", traced(openai_inference))
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", openai_models)
    app.router.add_get("/v1/models/{model}", openai_model)
    app.router.add_get("/hubhop/v1/members", hubhop_members)
    app.router.add_get("/hubhop/v1/peers", hubhop_peers)
    app.router.add_get("/hubhop/v1/rtt", hubhop_rtt)
    app.router.add_post("/hubhop/v1/route", hubhop_route)
    app.router.add_get("/hubhop/v1/table", hubhop_table)
    app.router.add_routes(lab_routes(lambda: state.cluster, REQUEST_ID))
    app.router.add_routes(live_view_routes(lambda: state.watch, lambda: state.metrics, REQUEST_ID))
    app.router.add_get("/v2", kserve_server_metadata)
    app.router.add_get("/v2/health/live", kserve_live)
    app.router.add_get("/v2/health/ready", kserve_ready)
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        app.router.add_get(prefix, kserve_model)
        app.router.add_get(prefix + "/ready", kserve_model)
        app.router.add_post(prefix + "/infer", traced(kserve_model))
    return app


def _as_is(handler: Handler) -> Handler:
    return handler
