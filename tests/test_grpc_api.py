"""hubhop's gRPC API as a client sees it: a real grpc.aio client on loopback against real nodes.

edge-a (HTTP, gossip and gRPC on 127.0.70.1) fronts a demo backend serving demo-llm; city-b
(127.0.70.2) joins later, fronting one serving ct-triage, so edge-a's table, members and
routes change as it joins and leaves. Both nodes run in this module's loop; the demo backend
on 127.0.70.11. edge-a has client tokens: `dash` (anything), `batch-only` (the batch lane),
`slow` (one call per ~17 minutes); a call without a token is anonymous, which [routing] allows.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hubhop.api.v1 import hubhop_pb2 as pb
from hubhop.api.v1 import hubhop_pb2_grpc as pb_grpc
from hubhop.app import Node
from hubhop.core.config import ConfigError, parse_config
from hubhop.core.grpc_config import GrpcConfig
from hubhop.core.service_time import ServiceTimeDistribution
from hubhop.io import demo_backend
from hubhop.io.grpc_server import GrpcServer
from hubhop.io.sd_notify import SdNotifier

KEY = "AAECAwQFBgcICQoLDA0ODw=="
GOSSIP_PORT = 7946
TOKENS = {"dash": "dash-secret", "batch-only": "batch-secret", "slow": "slow-secret"}
DASH = (("authorization", "Bearer dash-secret"),)
# Two nodes in one loop join and publish within a second or two; wide for a loaded 2-core box.
CONVERGE_S = 20.0
# Every call's own bound: a hung server fails the test instead of hanging it.
CALL_S = 10.0
pytestmark = pytest.mark.asyncio(loop_scope="module")


def config_text(name: str, i: int, model: str, backend_url: str) -> str:
    text = (
        f'[node]\nname = "{name}"\nrole = "{"edge" if i == 1 else "city"}"\n'
        'region = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "127.0.70.{i}:0"\n'
        "[lifecycle]\ndrain_grace_s = 1.0\n"
        f'[gossip]\nbind = "127.0.70.{i}:{GOSSIP_PORT}"\n'
        f'seeds = ["127.0.70.1:{GOSSIP_PORT}"]\nkeys = ["{KEY}"]\n'
        "gossip_interval_s = 0.05\npush_pull_interval_s = 1.0\n"
        "[latency]\nnear_interval_s = 0.1\nrandom_interval_s = 0.1\nlinks_republish_s = 1.0\n"
        "[tls]\nplaintext = true\n"
        f'[grpc]\nlisten = "127.0.70.{i}:0"\n'
        f'[[backends]]\nname = "{name}-gpu"\nurl = "{backend_url}"\n'
        f'protocol = ["openai", "kserve_v2"]\nmodels = ["{model}"]\nslots = 4\n'
    )
    if i == 1:
        policies = {"dash": "", "batch-only": 'allowed_lanes = ["batch"]\n'}
        policies["slow"] = "rate_per_s = 0.001\nburst = 1\n"
        for token, policy in policies.items():
            digest = hashlib.sha256(TOKENS[token].encode()).hexdigest()
            text += f'[[tokens]]\nname = "{token}"\nsha256 = "{digest}"\n{policy}'
    return text


@dataclass
class Net:
    backend_url: str
    edge: Node
    http: aiohttp.ClientSession
    channel: grpc.aio.Channel
    stub: pb_grpc.HubhopStub
    started: list[Node] = field(default_factory=list)

    async def start(self, name: str, i: int, model: str) -> Node:
        config = parse_config(config_text(name, i, model, self.backend_url), f"{name}.toml")
        node = Node(config, notifier=SdNotifier.from_environ({}))
        self.started.append(node)
        await node.start()
        return node


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def net() -> AsyncIterator[Net]:
    settings = demo_backend.DemoBackendSettings(
        host="127.0.70.11", models=("demo-llm", "ct-triage"),
        service_time=ServiceTimeDistribution.parse("const:1"), token_rate=1000.0, max_tokens=2,
        seed=1,
    )  # fmt: skip
    runner, port = await demo_backend.start(settings)
    url = f"http://127.0.70.11:{port}"
    started: list[Node] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_S)) as http:
            config = parse_config(config_text("edge-a", 1, "demo-llm", url), "edge-a.toml")
            edge = Node(config, notifier=SdNotifier.from_environ({}))
            started.append(edge)
            await edge.start()
            assert edge.grpc is not None
            async with grpc.aio.insecure_channel(edge.grpc.address) as channel:
                net = Net(url, edge, http, channel, pb_grpc.HubhopStub(channel), started)
                yield net
    finally:
        for node in started:
            if node.phase != "draining":
                await node.drain_and_stop()
        await runner.cleanup()


async def http_route(net: Net, model: str) -> dict[str, Any]:
    async with net.http.post(f"{net.edge.url}/hubhop/v1/route", json={"model": model}) as answer:
        body: dict[str, Any] = await answer.json()
        return body


async def status_of(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def next_event(stream: Any, want: Any, what: str) -> pb.TableEvent:
    """The first event of `stream` for which `want(event)` holds, within CONVERGE_S."""
    deadline = time.monotonic() + CONVERGE_S
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {what} within {CONVERGE_S} s"
        event: pb.TableEvent = await asyncio.wait_for(stream.read(), remaining)
        assert event is not grpc.aio.EOF, f"the stream ended before {what}"
        if want(event):
            return event


async def test_health_and_reflection_need_no_token_and_list_every_service(net: Net) -> None:
    health = health_pb2_grpc.HealthStub(net.channel)
    for service in ("", "hubhop.v1.Hubhop"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=CALL_S)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    unknown = await status_of(
        health.Check(health_pb2.HealthCheckRequest(service="nope.Nope"), timeout=CALL_S)
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND

    reflection = reflection_pb2_grpc.ServerReflectionStub(net.channel)
    asks = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="hubhop.v1.Hubhop"),
    ]
    answers = [a async for a in reflection.ServerReflectionInfo(iter(asks), timeout=CALL_S)]
    listed = {s.name for s in answers[0].list_services_response.service}
    assert listed >= {
        "hubhop.v1.Hubhop",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    # What grpcurl needs to call a method without the .proto: the file that defines it.
    files = answers[1].file_descriptor_response.file_descriptor_proto
    assert any(b"hubhop/v1/hubhop.proto" in f and b"WatchTable" in f for f in files)


async def test_tokens_rate_limits_and_policy_as_grpc_statuses(net: Net) -> None:
    stub = net.stub
    wrong = await status_of(
        stub.Members(
            pb.MembersRequest(), metadata=(("authorization", "Bearer nope"),), timeout=CALL_S
        )
    )
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not one this node knows" in (wrong.details() or "")
    # The batch-only client may not jump the queue; a hint that is wrong names its field.
    batch = (("authorization", "Bearer batch-secret"),)
    denied = await status_of(
        stub.Route(pb.RouteRequest(model="demo-llm", lane="emergency"), metadata=batch)
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "lane" in (denied.details() or "") and "batch" in (denied.details() or "")
    bad = await status_of(stub.Route(pb.RouteRequest(model="demo-llm", tier="planet")))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "tier" in (bad.details() or "")
    missing = await status_of(stub.Route(pb.RouteRequest()))
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model" in (missing.details() or "")
    bad_filter = await status_of(stub.Table(pb.TableRequest(role="moon"), timeout=CALL_S))
    assert bad_filter.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "role" in (bad_filter.details() or "")
    # One call, then over the limit: told when to come back, as HTTP's Retry-After.
    slow = (("authorization", "Bearer slow-secret"),)
    await stub.Members(pb.MembersRequest(), metadata=slow, timeout=CALL_S)
    limited = await status_of(stub.Members(pb.MembersRequest(), metadata=slow, timeout=CALL_S))
    assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailing = dict(limited.trailing_metadata() or ())
    assert int(trailing["retry-after"]) > 60
    assert int(trailing["grpc-retry-pushback-ms"]) == int(trailing["retry-after"]) * 1000


async def test_route_members_table_and_explain_agree_with_http(net: Net) -> None:
    stub, me = net.stub, "edge-a"
    reply = await stub.Route(pb.RouteRequest(model="demo-llm"), metadata=DASH, timeout=CALL_S)
    over_http = await http_route(net, "demo-llm")
    assert reply.node == me and reply.chosen.node == over_http["chosen"]["node"] == me
    assert reply.chosen.url == over_http["chosen"]["url"]
    assert reply.chosen.backend == "edge-a-gpu" and list(reply.chosen.path) == [me]
    assert reply.tier_asked == "any" and not reply.HasField("bound_ms")  # any: no bound
    assert set(reply.chosen.expected_ms.ListFields()) and reply.lane == "standard"
    nowhere = await stub.Route(pb.RouteRequest(model="no-such-model"), timeout=CALL_S)
    assert not nowhere.HasField("chosen") and "nothing feasible" in nowhere.reason
    assert [(r.node, list(r.reasons)) for r in nowhere.rejected] == [(me, ["model not served"])]

    members = await stub.Members(pb.MembersRequest(), timeout=CALL_S)
    assert members.gossip and [m.name for m in members.members] == [me]
    (mine,) = members.members
    assert (mine.state, mine.role, mine.city) == ("alive", "edge", "wuhan")
    assert list(mine.models) == ["demo-llm"]

    table = await stub.Table(pb.TableRequest(model="demo-llm", node=me), timeout=CALL_S)
    assert dict(table.filters) == {"model": "demo-llm", "node": me}
    (row,) = table.rows
    assert (row.backend, row.slots, row.latency.source, row.state) == (
        "edge-a-gpu", 4, "local", "alive",
    )  # fmt: skip
    assert row.rotation.state == "in"
    empty = await stub.Table(pb.TableRequest(model="ct-triage"), timeout=CALL_S)
    assert list(empty.rows) == []

    # A chat request through the HTTP endpoint, then explained by its request id.
    chat = {"model": "demo-llm", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-request-id": "grpc-explain-1", "x-hubhop-lane": "emergency"}
    async with net.http.post(
        f"{net.edge.url}/v1/chat/completions", json=chat, headers=headers
    ) as answer:
        assert answer.status == 200
        await answer.read()
    explained = await stub.Explain(
        pb.ExplainRequest(request_id="grpc-explain-1"), metadata=DASH, timeout=CALL_S
    )
    decision = explained.decision
    assert explained.node == me and decision.request_id == "grpc-explain-1"
    assert (decision.served_by, decision.backend, list(decision.path)) == (me, "edge-a-gpu", [me])
    assert (decision.lane, decision.outcome, decision.status) == ("emergency", "served", 200)
    assert decision.reason.expected_ms.HasField("total") and "total" in decision.ms
    assert decision.client == "anonymous"
    assert decision.ts.endswith("Z") and decision.ts[:4].isdigit()  # when it was decided
    unknown = await status_of(
        stub.Explain(pb.ExplainRequest(request_id="never-sent"), timeout=CALL_S)
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    assert "never-sent" in (unknown.details() or "")


async def test_a_client_deadline_ends_a_watch_in_time_and_the_node_lets_go(net: Net) -> None:
    assert net.edge.state.watch is not None
    began = time.monotonic()
    stream = net.stub.WatchTable(pb.WatchTableRequest(), timeout=0.5)
    first = await stream.read()
    assert first.WhichOneof("event") == "snapshot" and first.snapshot.node == "edge-a"
    rest = await status_of(stream.read())
    assert rest.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - began < 3.0
    deadline = time.monotonic() + CALL_S
    while net.edge.state.watch.watchers:
        assert time.monotonic() < deadline, "the server kept the watcher after the deadline"
        await asyncio.sleep(0.02)


async def test_a_watch_sees_a_node_join_and_leave_and_route_follows(net: Net) -> None:
    stream = net.stub.WatchTable(pb.WatchTableRequest(), metadata=DASH, timeout=CONVERGE_S * 3)
    first = await stream.read()
    assert [m.name for m in first.snapshot.members] == ["edge-a"]
    assert {r.node for r in first.snapshot.rows} == {"edge-a"}
    city = await net.start("city-b", 2, "ct-triage")

    joined = await next_event(
        stream,
        lambda e: e.WhichOneof("event") == "member" and e.member.name == "city-b",
        "city-b joining",
    )
    assert joined.member.addr == f"127.0.70.2:{GOSSIP_PORT}"
    row = await next_event(
        stream, lambda e: e.WhichOneof("event") == "row" and e.row.node == "city-b", "its row"
    )
    assert row.row.backend == "city-b-gpu" and list(row.row.models) == ["ct-triage"]

    # Route decides as the HTTP endpoint does, across nodes too.
    deadline = time.monotonic() + CONVERGE_S
    while True:
        reply = await net.stub.Route(pb.RouteRequest(model="ct-triage"), timeout=CALL_S)
        if reply.HasField("chosen"):
            break
        assert time.monotonic() < deadline, f"never routed ct-triage: {reply.reason}"
        await asyncio.sleep(0.05)
    over_http = await http_route(net, "ct-triage")
    assert reply.chosen.node == over_http["chosen"]["node"] == "city-b"
    assert list(reply.chosen.path) == ["edge-a", "city-b"]

    await city.drain_and_stop()

    def left(event: pb.TableEvent) -> bool:
        kind = event.WhichOneof("event")
        return (kind == "member" and event.member.name == "city-b" and event.member.state in (
            "left", "dead",
        )) or (kind == "member_removed" and event.member_removed.name == "city-b")  # fmt: skip

    await next_event(stream, left, "city-b leaving")
    stream.cancel()


async def test_a_second_server_on_the_same_port_fails_to_start(net: Net) -> None:
    assert net.edge.grpc is not None
    taken = GrpcConfig(("127.0.70.1", net.edge.grpc.port))
    clash = GrpcServer(taken, net.edge.state, net.edge.pool)
    with pytest.raises(OSError) as caught:
        await clash.start()
    assert caught.value.filename == f"[grpc] listen 127.0.70.1:{net.edge.grpc.port}"


async def test_draining_turns_health_not_serving_and_ends_watches(net: Net) -> None:
    health = health_pb2_grpc.HealthStub(net.channel)
    statuses = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=CONVERGE_S)
    assert (await statuses.read()).status == health_pb2.HealthCheckResponse.SERVING
    watch = net.stub.WatchTable(pb.WatchTableRequest(), timeout=CONVERGE_S)
    assert (await watch.read()).WhichOneof("event") == "snapshot"

    drained = asyncio.ensure_future(net.edge.drain_and_stop())
    try:
        changed = await asyncio.wait_for(statuses.read(), CALL_S)
        assert changed.status == health_pb2.HealthCheckResponse.NOT_SERVING
        # Said, the health watch ends: it does not hold the drain for its grace.
        assert await asyncio.wait_for(statuses.read(), CALL_S) is grpc.aio.EOF
        ended = await status_of(watch.read())
        assert ended.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (ended.details() or "")
    finally:
        await asyncio.wait_for(drained, CALL_S)
    after = await status_of(net.stub.Members(pb.MembersRequest(), timeout=CALL_S))
    assert after.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_grpc_section_is_validated_whole() -> None:
    base = '[node]\nname = "a"\nrole = "edge"\n[http]\nlisten = "127.0.70.1:0"\n[grpc]\n'
    config = parse_config(base + 'listen = "127.0.70.1:0"\n', "a.toml")
    assert config.grpc == GrpcConfig(("127.0.70.1", 0))
    assert config.grpc.max_message_bytes == 256 * 1024 * 1024
    with pytest.raises(ConfigError) as caught:
        parse_config(base + 'listen = "somewhere"\nmax_message_bytes = 3000000000\n', "a.toml")
    assert caught.value.faults == [
        "a.toml: grpc.listen: 'somewhere' must be IP:PORT (e.g. 127.0.1.1:8080)",
        "a.toml: grpc.max_message_bytes: 3000000000 is out of range [1024, 2147483647]",
    ]
    assert parse_config(base.removesuffix("[grpc]\n"), "a.toml").grpc is None
