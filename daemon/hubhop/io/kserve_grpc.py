"""The KServe v2 / Open Inference Protocol gRPC service (inference.GRPCInferenceService) apps
call at their local daemon, routed exactly like the HTTP calls.

Rules:
- A Triton or KServe gRPC client points at the daemon's `[grpc] listen` unchanged. Its hints
  are metadata with the HTTP headers' names (x-hubhop-lane, -tier, -chip, -budget,
  -deadline-ms, ...), read by the same parser (hubhop.core.routing_hints); a wrong one is
  INVALID_ARGUMENT naming it, one the client's policy forbids PERMISSION_DENIED. Tokens, policies
  and rate limits are the HTTP endpoint's (hubhop.io.grpc_auth).
- ServerLive, ServerReady and ServerMetadata answer for this node (not ready while draining).
  ModelReady and ModelMetadata go to a backend of this node that serves the model over gRPC,
  else are routed like an inference (no admission slot). ModelInfer is routed: the scorer
  decides among backends speaking `kserve_v2_grpc` (hubhop.scoring.route), the call is served
  here (admission, then the backend's pooled channel) or passed to the serving node's gRPC
  server, and on a refusal before anything was answered (admission full, draining, a backend
  that did nothing, a node unreachable) the entry decides again without that candidate, up to
  `routing.max_tries` tries. A refusal also marks that row full until its next record.
- Nothing serves the model anywhere: NOT_FOUND. Nothing feasible in the tier (nor where it may
  spill): UNAVAILABLE with the reason. A backend's own failure reaches the client with the
  backend's code and message.
- The answer's trailing metadata says where it was served: x-hubhop-node, x-hubhop-backend,
  x-hubhop-path, x-hubhop-tier (x-hubhop-spilled, x-hubhop-tries when they apply).
- Between daemons: the entry calls the serving node's gRPC server directly (the address its
  record gives) with x-hubhop-target NODE/BACKEND, x-hubhop-via, the lane and the deadline left.
  Under mutual TLS the call goes to the peer's `[grpc] peer_listen` with this node's certificate,
  and the serving node takes it only when that certificate names the sending member, as the HTTP
  peer listener does; in a plaintext lab it carries a peer proof (hubhop.core.peer_proof) made
  with the cluster's keyring instead. The serving node never decides again, and answers a
  refusal with x-hubhop-refused in trailing metadata so the entry may re-route it. No relays: a
  gRPC call is not passed on.
- A message over `[grpc] max_message_bytes` is refused by the server itself,
  RESOURCE_EXHAUSTED, before any handler runs: nothing reaches a backend.
- Messages pass as bytes (hubhop.io.kserve_grpc_upstream): only the model's name is decoded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NoReturn

import grpc
import numpy as np
from google.protobuf.message import DecodeError

from hubhop import __version__
from hubhop.api.inference import grpc_service_pb2 as pb
from hubhop.core.headers import REQUEST_ID_HEADER
from hubhop.core.kserve_grpc_config import GRPC_PROTOCOL
from hubhop.core.local_choice import pick_backend
from hubhop.core.peer_proof import peer_proof, proof_refusal
from hubhop.core.routing_hints import (
    DEADLINE_HEADER,
    LANE_HEADER,
    HintError,
    RouteAsk,
    check_model,
    parse_hints,
)
from hubhop.core.tiers import LANES
from hubhop.io.admission_gate import Refused
from hubhop.io.backend_proxy import HUBHOP_PREFIX, REFUSED_HEADER, BackendPool
from hubhop.io.grpc_auth import authorize_client, grpc_status, refuse_while_draining
from hubhop.io.grpc_trace import GrpcTrace, finish, request_id_of
from hubhop.io.kserve_grpc_upstream import SERVICE, Answer, GrpcChannels, serve_here, timeout_s
from hubhop.io.local_endpoint import EndpointState
from hubhop.io.peer_tls import read_bytes
from hubhop.io.request_router import TARGET_HEADER, TRIES_HEADER, VIA_HEADER, Cluster
from hubhop.scoring.candidates import CandidateTable
from hubhop.scoring.route import RowKey, decide_route, no_route_reason, scoring_model

PROOF_KEY = "x-hubhop-peer-proof"
SPILLED_KEY = "x-hubhop-spilled"
Parse = Callable[[bytes], tuple[str, str]]  # a request's bytes -> (model, version)


class _PeerRefused(Exception):
    """A peer refused the call before doing anything with it: it may go elsewhere."""

    def __init__(self, code: grpc.StatusCode, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.unreachable = unreachable  # membership, not this call, decides about dead nodes


def register(server: grpc.aio.Server, state: EndpointState, pool: BackendPool) -> str:
    """Add the KServe v2 gRPC service to `server`; its full name."""
    service = KServeGrpc(state)
    unary = grpc.unary_unary_rpc_method_handler
    handlers = {
        "ServerLive": unary(
            service.server_live,
            pb.ServerLiveRequest.FromString,
            pb.ServerLiveResponse.SerializeToString,
        ),
        "ServerReady": unary(
            service.server_ready,
            pb.ServerReadyRequest.FromString,
            pb.ServerReadyResponse.SerializeToString,
        ),
        "ServerMetadata": unary(
            service.server_metadata,
            pb.ServerMetadataRequest.FromString,
            pb.ServerMetadataResponse.SerializeToString,
        ),
        # Bytes in, bytes out (no (de)serializer): routed without decoding the tensors.
        "ModelReady": unary(service.model_ready),
        "ModelMetadata": unary(service.model_metadata),
        "ModelInfer": unary(service.model_infer),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    return SERVICE


def _model_of(message: type[pb.ModelReadyRequest] | type[pb.ModelMetadataRequest]) -> Parse:
    def parse(data: bytes) -> tuple[str, str]:
        request = message.FromString(data)
        return request.name, request.version

    return parse


def _infer_model(data: bytes) -> tuple[str, str]:
    request = pb.ModelInferRequest.FromString(data)
    return request.model_name, request.model_version


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {
        k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        for k, v in context.invocation_metadata() or ()
    }


class KServeGrpc:
    def __init__(self, state: EndpointState) -> None:
        self.state = state
        config = state.config.grpc
        limit = config.max_message_bytes if config is not None else 4 * 1024 * 1024
        tls = state.config.tls
        credentials = None
        if tls.mutual_tls:  # files read at start: a renewed certificate needs a restart here
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read_bytes(tls.ca_file),
                private_key=read_bytes(tls.key_file),
                certificate_chain=read_bytes(tls.cert_file),
            )
        self.channels = GrpcChannels(limit, credentials)

    async def server_live(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=not self.state.draining)

    async def server_metadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="hubhop", version=__version__)

    async def model_ready(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await self._model_call("ModelReady", data, context, _model_of(pb.ModelReadyRequest))

    async def model_metadata(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        parse = _model_of(pb.ModelMetadataRequest)
        return await self._model_call("ModelMetadata", data, context, parse)

    async def model_infer(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await self._model_call("ModelInfer", data, context, _infer_model, inference=True)

    async def _model_call(
        self,
        method: str,
        data: bytes,
        context: grpc.aio.ServicerContext,
        parse: Parse,
        inference: bool = False,
    ) -> bytes:
        metadata = _metadata(context)
        if TARGET_HEADER in metadata:
            return await self._forwarded(method, data, context, metadata, inference)
        if inference:
            await refuse_while_draining(context, self.state)
        config, client = await authorize_client(context, self.state)
        try:
            model, _ = parse(data)
        except DecodeError as exc:
            await _abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, f"not a {method} request: {exc}"
            )
        if not model:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the request names no model")
        try:
            check_model(model, config.routing)
            ask = parse_hints(metadata.get, model, config.routing)
        except HintError as exc:  # PERMISSION_DENIED what the policy forbids, else INVALID_ARGUMENT
            await _abort(context, grpc_status(exc.status), str(exc))
        deadline = None if ask.deadline_ms is None else time.monotonic() + ask.deadline_ms / 1000
        left = context.time_remaining()
        if left is not None:
            client_deadline = time.monotonic() + left
            deadline = client_deadline if deadline is None else min(deadline, client_deadline)
        served = self._served_locally(model, inference)
        if served is not None:
            return await self._here(context, served, ask.lane, deadline, method, data, inference)
        cluster = self.state.cluster
        if cluster is None:
            await _abort(
                context, grpc.StatusCode.NOT_FOUND, f"the model '{model}' is not served here"
            )
        if not inference:
            return await self._routed(context, cluster, ask, method, data, deadline, inference)
        trace = GrpcTrace(request_id_of(metadata), client, ask)
        await context.send_initial_metadata(((REQUEST_ID_HEADER, trace.request_id),))
        try:
            answer = await self._routed(
                context, cluster, ask, method, data, deadline, inference, trace
            )
        except asyncio.CancelledError:
            finish(self.state, trace, grpc.StatusCode.CANCELLED, "the client went away")
            raise
        except BaseException:
            finish(self.state, trace, context.code(), context.details())
            raise
        finish(self.state, trace, grpc.StatusCode.OK, None)
        return answer

    def _served_locally(self, model: str, inference: bool) -> str | None:
        """A backend of this node to serve the call with, before any routing: for a metadata
        call, any that serves the model; for an inference, one only when the node does not
        gossip (routing decides otherwise)."""
        if inference and self.state.cluster is not None:
            return None
        config, gate = self.state.config, self.state.gate
        health = None if gate is None else gate.health
        serving = None if health is None or not inference else health.slots()
        backends = config.backends_for(GRPC_PROTOCOL, model)
        backend = pick_backend(backends, {}, serving)
        return None if backend is None else backend.name

    async def _here(
        self,
        context: grpc.aio.ServicerContext,
        backend: str,
        lane: str,
        deadline: float | None,
        method: str,
        data: bytes,
        inference: bool,
    ) -> bytes:
        """Serve with a backend of this node, unrouted (no gossip, or a metadata call)."""
        try:
            answer = await self._serve_here(backend, lane, deadline, method, data, inference)
        except Refused as exc:
            await _abort_refused(context, exc.status, exc.detail, None)
        except grpc.aio.AioRpcError as exc:
            await _pass_failure(context, exc)
        me = self.state.config.node.name
        _answer_with(context, answer, [("x-hubhop-node", me), ("x-hubhop-backend", backend)])
        return answer.message

    async def _serve_here(
        self,
        backend: str,
        lane: str,
        deadline: float | None,
        method: str,
        data: bytes,
        inference: bool,
    ) -> Answer:
        gate = self.state.gate
        assert gate is not None, "the app sets the admission gate before serving"
        return await serve_here(
            self.state.config, gate, self.channels, backend, lane, deadline, method, data, inference
        )

    async def _routed(
        self,
        context: grpc.aio.ServicerContext,
        cluster: Cluster,
        ask: RouteAsk,
        method: str,
        data: bytes,
        deadline: float | None,
        inference: bool,
        trace: GrpcTrace | None = None,
    ) -> bytes:
        """Decide and try, re-routing on refusal, as the HTTP router does."""
        config = self.state.config
        me = config.node.name
        table = cluster.scorer.table
        refused: set[RowKey] = set()
        last: tuple[grpc.StatusCode, str] | None = None
        tries = 0
        while tries < config.routing.max_tries:
            deciding = time.perf_counter()
            route = decide_route(cluster.scorer, ask, GRPC_PROTOCOL, refused)
            if trace is not None:
                trace.decided(route, time.perf_counter() - deciding)
            chosen = route.chosen
            if chosen is None:
                if last is not None:
                    await _abort(context, *last)
                if not _served_anywhere(table, ask.model):
                    message = f"no node serves the model '{ask.model}' over gRPC"
                    await _abort(context, grpc.StatusCode.NOT_FOUND, message)
                await _abort(context, grpc.StatusCode.UNAVAILABLE, no_route_reason(route))
            tries += 1
            key = (chosen.node, chosen.backend)
            try:
                if chosen.node == me:
                    answer = await self._serve_here(
                        chosen.backend, ask.lane, deadline, method, data, inference
                    )
                else:
                    answer = await self._call_peer(cluster, key, ask.lane, deadline, method, data)
            except Refused as exc:
                last, full = (_refusal_code(exc.status), exc.detail), True
            except _PeerRefused as exc:
                last, full = (exc.code, str(exc)), not exc.unreachable
            except grpc.aio.AioRpcError as exc:
                await _pass_failure(context, exc)
            else:
                trailing = [
                    ("x-hubhop-node", chosen.node),
                    ("x-hubhop-backend", chosen.backend),
                    ("x-hubhop-path", f"{me}>{chosen.node}" if chosen.node != me else me),
                    ("x-hubhop-tier", route.tier),
                ]
                if route.spilled:
                    trailing.append((SPILLED_KEY, "1"))
                if tries > 1:
                    trailing.append((TRIES_HEADER, str(tries)))
                _answer_with(context, answer, trailing)
                if trace is not None:
                    trace.served = True
                return answer.message
            refused.add(key)
            row = table.row_of(*key)
            if row is not None and inference and full:
                table.mark_full(row)
        assert last is not None
        await _abort(context, *last)

    async def _call_peer(
        self,
        cluster: Cluster,
        target: RowKey,
        lane: str,
        deadline: float | None,
        method: str,
        data: bytes,
    ) -> Answer:
        """Send the call to the serving node's gRPC server (see the rules)."""
        node = target[0]
        addr = cluster.peer_grpc_addr(node)
        if addr is None:
            raise _PeerRefused(grpc.StatusCode.UNAVAILABLE, f"node {node} serves no gRPC", True)
        me = self.state.config.node.name
        target_text = "/".join(target)
        metadata = [(TARGET_HEADER, target_text), (VIA_HEADER, me), (LANE_HEADER, lane)]
        if not cluster.mutual_tls:  # over mutual TLS the certificates say who calls
            keys = cluster.gossip_keys()
            if not keys:
                raise _PeerRefused(grpc.StatusCode.UNAVAILABLE, "this node holds no gossip key")
            proof = peer_proof(keys[0], me, target_text, method, time.time_ns() // 1_000_000)
            metadata.append((PROOF_KEY, proof))
        if deadline is not None:
            left_ms = max(1.0, (deadline - time.monotonic()) * 1000.0)
            metadata.append((DEADLINE_HEADER, f"{left_ms:.0f}"))
        config = self.state.config
        try:
            return await self.channels.call(
                addr,
                method,
                data,
                timeout_s(config, deadline),
                metadata,
                tls_name=node if cluster.mutual_tls else None,
            )
        except grpc.aio.AioRpcError as exc:
            trailing = dict(exc.trailing_metadata() or ())
            if REFUSED_HEADER in trailing:
                raise _PeerRefused(exc.code(), exc.details() or "refused") from None
            if exc.code() is grpc.StatusCode.UNAVAILABLE:  # no connection: nothing was sent
                message = f"node {node} is unreachable: {exc.details()}"
                raise _PeerRefused(exc.code(), message, unreachable=True) from None
            raise

    async def _forwarded(
        self,
        method: str,
        data: bytes,
        context: grpc.aio.ServicerContext,
        metadata: dict[str, str],
        inference: bool,
    ) -> bytes:
        """A call a peer daemon sent on: serve it here, or refuse so its entry re-routes."""
        cluster = self.state.cluster
        target = metadata[TARGET_HEADER]
        sender = metadata.get(VIA_HEADER, "")
        if cluster is None:
            await _abort(context, grpc.StatusCode.PERMISSION_DENIED, "this node does not gossip")
        if cluster.mutual_tls:
            refusal = _certificate_refusal(context, sender, cluster)
        else:
            refusal = proof_refusal(
                cluster.gossip_keys(),
                metadata.get(PROOF_KEY),
                sender,
                target,
                method,
                time.time_ns() // 1_000_000,
            )
        if refusal is not None:
            await _abort(context, grpc.StatusCode.PERMISSION_DENIED, refusal)
        me = self.state.config.node.name
        node, _, backend = target.partition("/")
        lane = metadata.get(LANE_HEADER, "standard")
        if lane not in LANES:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{LANE_HEADER}: not a lane")
        if node != me:
            await _abort_refused(context, 503, f"this is {me}, not {node}", "wrong_node")
        if self.state.draining:
            await _abort_refused(context, 503, "this node is shutting down", "draining")
        deadline = _deadline(metadata.get(DEADLINE_HEADER))
        try:
            answer = await self._serve_here(backend, lane, deadline, method, data, inference)
        except Refused as exc:
            await _abort_refused(context, exc.status, exc.detail, exc.reason)
        except grpc.aio.AioRpcError as exc:
            await _pass_failure(context, exc)
        _answer_with(context, answer, [("x-hubhop-node", me), ("x-hubhop-backend", backend)])
        return answer.message


def _certificate_refusal(
    context: grpc.aio.ServicerContext, sender: str, cluster: Cluster
) -> str | None:
    """Under mutual TLS: why the caller may not pass this call on; None when its certificate
    (checked against our CA by the peer port) names the member the call says sent it."""
    auth = context.auth_context() or {}
    if auth.get("transport_security_type") != [b"ssl"]:
        return f"{TARGET_HEADER} is only taken on [grpc] peer_listen, over mutual TLS"
    names = {n.decode() for n in auth.get("x509_subject_alternative_name", [])}
    names |= {n.decode() for n in auth.get("x509_common_name", [])}
    if sender not in names:
        return f"the client certificate names {', '.join(sorted(names))}, not the sender {sender!r}"
    if cluster.peer_addr(sender) is None:
        return f"{sender} is not a member"
    return None


def _answer_with(
    context: grpc.aio.ServicerContext, answer: Answer, ours: list[tuple[str, str]]
) -> None:
    """The upstream's trailing metadata, with ours in place of any x-hubhop-* it carried."""
    theirs = [(k, v) for k, v in answer.trailing if not k.startswith(HUBHOP_PREFIX)]
    context.set_trailing_metadata((*theirs, *ours))


def _served_anywhere(table: CandidateTable, model: str) -> bool:
    """Does any row of the table serve `model` over gRPC (alive or not)?"""
    ident = table.models.lookup(scoring_model(GRPC_PROTOCOL, model))
    if ident is None:
        return False
    table.materialize()
    column = table.row_models[:, ident // 64]
    return bool((column & np.uint64(1 << (ident % 64))).any())


def _deadline(text: str | None) -> float | None:
    try:
        left_ms = float(text) if text is not None else None
    except ValueError:
        return None
    if left_ms is None or not 0 < left_ms < 86_400_000:
        return None
    return time.monotonic() + left_ms / 1000.0


def _refusal_code(status: int) -> grpc.StatusCode:
    """HTTP's refusal statuses as gRPC says them: 429 RESOURCE_EXHAUSTED, else UNAVAILABLE."""
    return grpc.StatusCode.RESOURCE_EXHAUSTED if status == 429 else grpc.StatusCode.UNAVAILABLE


async def _abort_refused(
    context: grpc.aio.ServicerContext, status: int, detail: str, reason: str | None
) -> NoReturn:
    trailing = () if reason is None else ((REFUSED_HEADER, reason),)
    await _abort(context, _refusal_code(status), detail, trailing)


async def _pass_failure(context: grpc.aio.ServicerContext, exc: grpc.aio.AioRpcError) -> NoReturn:
    """A backend's own failure, passed to the client as it said it."""
    await _abort(context, exc.code(), exc.details() or exc.code().name)


async def _abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    trailing: tuple[tuple[str, str], ...] = (),
) -> NoReturn:
    """End the call with `code` and `message` (grpc raises out of abort)."""
    await context.abort(code, message, trailing)
    raise AssertionError("grpc.aio's abort returned")  # pragma: no cover
