"""hubhop's own gRPC service, `hubhop.v1.Hubhop` (proto/hubhop/v1/hubhop.proto): Route, Members,
Table, WatchTable and Explain, answered from what the HTTP endpoint answers from.

Rules:
- Each answer is the HTTP endpoint's JSON document for the same ask (hubhop.io.local_endpoint's
  `route_document`, `table_document`, the members view; the table watch's events; the decision
  log's audit lines), turned into its message by field name: the .proto mirrors the JSON, so
  the two APIs cannot drift apart silently. JSON nulls are absent fields; JSON keys the message
  has no field for (yet) are left out, so a new key in the JSON breaks no gRPC client.
- Every call passes hubhop.io.grpc_auth.authorize first (tokens, rate limits), and its hints
  are checked by the HTTP endpoint's validators with its messages: a bad one is
  INVALID_ARGUMENT, one the client's policy does not allow PERMISSION_DENIED.
- Deadlines: Route, Members, Table and Explain are answered at once from memory (a decision
  takes well under a millisecond) and never wait, so a client's deadline bounds them without
  any check here; grpc refuses a call whose deadline has already passed. WatchTable waits for
  changes: at the client's deadline grpc cancels it, the client sees DEADLINE_EXCEEDED, and the
  watch lets go of the watcher at once (its iterator is closed).
- WatchTable ends with UNAVAILABLE when the node drains (the feed closes): a dashboard should
  follow another node. A watcher too slow for the changes gets a fresh snapshot (the table
  watch's rule), never an unbounded backlog.
- Explain is NOT_FOUND, with a message saying why, for an id this node holds no decision for:
  it entered elsewhere, or it has left the bounded log of recent decisions.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from hubhop.api.v1 import hubhop_pb2 as pb
from hubhop.api.v1 import hubhop_pb2_grpc as pb_grpc
from hubhop.core.headers import valid_request_id
from hubhop.io.backend_proxy import BackendPool
from hubhop.io.grpc_auth import authorize, grpc_status
from hubhop.io.http_errors import ApiError
from hubhop.io.local_endpoint import EndpointState, route_document, table_document
from hubhop.scoring.table_view import QueryError, parse_table_query

SERVICE_NAME = str(pb.DESCRIPTOR.services_by_name["Hubhop"].full_name)
DRAINED = "this node is shutting down: follow another node's table"
M = TypeVar("M", bound=Message)


def message(kind: type[M], document: Mapping[str, Any]) -> M:
    """`document` (a JSON document of the HTTP API) as a `kind` message, field by field name."""
    built = kind()
    json_format.ParseDict(document, built, ignore_unknown_fields=True)
    return cast(M, built)


def table_event(event: Mapping[str, Any]) -> pb.TableEvent:
    """One event of hubhop.io.table_watch as a TableEvent: its kind names the oneof field."""
    kind = str(event["kind"])
    payload = event.get(kind)  # row, member, decision: the thing itself
    if payload is None:  # snapshot, row_removed, member_removed: the event's other keys
        payload = {key: value for key, value in event.items() if key != "kind"}
    return message(pb.TableEvent, {kind: payload})


def set_fields(request: Message) -> dict[str, Any]:
    """The fields a client gave, by name (an absent optional field is not given)."""
    return {field.name: value for field, value in request.ListFields()}


class HubhopServicer(pb_grpc.HubhopServicer):
    def __init__(self, state: EndpointState) -> None:
        self.state = state

    async def Route(
        self, request: pb.RouteRequest, context: grpc.aio.ServicerContext
    ) -> pb.RouteReply:
        config = await authorize(context, self.state)
        try:
            body = route_document(self.state, config, set_fields(request))
        except ApiError as exc:
            if exc.code == "no_gossip":  # no retry helps: the node is configured so
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, exc.message)
            await context.abort(grpc_status(exc.status), exc.message)
        return message(pb.RouteReply, body)

    async def Members(
        self, request: pb.MembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.MembersReply:
        await authorize(context, self.state)
        state = self.state
        members = (
            state.members()
            if state.members is not None
            else [{"name": state.config.node.name, "state": "alive"}]
        )
        document = {
            "node": state.config.node.name,
            "gossip": state.members is not None,
            "members": members,
        }
        return message(pb.MembersReply, document)

    async def Table(
        self, request: pb.TableRequest, context: grpc.aio.ServicerContext
    ) -> pb.TableReply:
        await authorize(context, self.state)
        try:
            query = parse_table_query(set_fields(request).items())
        except QueryError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return message(pb.TableReply, table_document(self.state, query))

    async def WatchTable(
        self, request: pb.WatchTableRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TableEvent]:
        await authorize(context, self.state)
        watch = self.state.watch
        if watch is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this node keeps no table watch")
            return
        # An async generator (annotated as an iterator): closed at once when the call ends.
        feed = cast(AsyncGenerator[dict[str, Any], None], watch.events())
        async with contextlib.aclosing(feed) as events:
            async for event in events:
                yield table_event(event)
        await context.abort(grpc.StatusCode.UNAVAILABLE, DRAINED)

    async def Explain(
        self, request: pb.ExplainRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExplainReply:
        await authorize(context, self.state)
        request_id = request.request_id
        if not valid_request_id(request_id):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "request_id: give the x-request-id of a request that entered at this node",
            )
        log = self.state.decisions
        me = self.state.config.node.name
        if log is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"node {me} keeps no decisions ([log] recent_decisions = 0)",
            )
            raise AssertionError("grpc.aio's abort returned")  # pragma: no cover
        entry = log.get(request_id)
        if entry is None:
            kept = f"{log.capacity} most recent decisions"
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"node {me} holds no decision for request {request_id!r}: it entered at "
                f"another node, or it has left the {kept} this node keeps",
            )
        return message(pb.ExplainReply, {"node": me, "decision": entry})


def register(server: grpc.aio.Server, state: EndpointState, pool: BackendPool) -> str:
    """Serve hubhop.v1.Hubhop on `server`; its full name, for health and reflection."""
    pb_grpc.add_HubhopServicer_to_server(HubhopServicer(state), server)  # type: ignore[no-untyped-call]
    return SERVICE_NAME
