"""The local endpoint against a real demo backend, over real loopback sockets.

What an app developer notices: the official OpenAI client works unchanged and streams; KServe
tensors come back intact; every answer says where it was served; every bad request gets a JSON
error in the API's own style, and the node keeps serving afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import zlib
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from hubhop.core.kserve_binary import binary_infer_header, binary_infer_headers
from tests.conftest import RunningNode, start_app


def openai_client(node: RunningNode) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{node.url}/v1", api_key="unused", max_retries=0)


def point_backend_at(running: RunningNode, url: str) -> None:
    """Swap the node's one backend for another URL, as a reload would."""
    config = running.node.state.config
    backend = dataclasses.replace(config.backends[0], url=url)
    running.node.state.config = dataclasses.replace(config, backends=(backend,))


async def assert_still_serving(http: aiohttp.ClientSession, node: RunningNode) -> None:
    async with http.get(f"{node.url}/v1/models") as response:
        assert response.status == 200
        assert [m["id"] for m in (await response.json())["data"]] == ["demo-llm", "ct-triage"]


async def test_streamed_chat_arrives_as_several_chunks_over_time(node: RunningNode) -> None:
    client = openai_client(node)
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    pieces: list[str] = []
    stream = await client.chat.completions.create(
        model="demo-llm",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        max_tokens=10,
    )
    async for chunk in stream:
        arrivals.append(loop.time())
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    await client.close()
    assert len(pieces) == 10
    # 10 tokens at 50 tokens/s take ~200 ms to generate: streamed, the first chunk arrives long
    # before the last; buffered, they would all land together.
    assert arrivals[-1] - arrivals[0] > 0.1


async def test_chat_through_official_client_says_where_it_was_served(node: RunningNode) -> None:
    client = openai_client(node)
    raw = await client.chat.completions.with_raw_response.create(
        model="demo-llm", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    completion = raw.parse()
    await client.close()
    assert completion.choices[0].message.content
    assert raw.headers["x-hubhop-node"] == "test-edge"
    assert raw.headers["x-hubhop-backend"] == "demo"
    assert raw.headers["x-backend-chip"] == "ascend-910b"
    assert "route;dur=" in raw.headers["server-timing"]
    assert len(raw.headers["x-request-id"]) >= 16


async def test_completions_and_embeddings_pass_through(node: RunningNode) -> None:
    client = openai_client(node)
    completion = await client.completions.create(model="demo-llm", prompt="CT shows", max_tokens=4)
    first = await client.embeddings.create(model="demo-llm", input=["left lung", "right lung"])
    again = await client.embeddings.create(model="demo-llm", input=["left lung", "right lung"])
    models = await client.models.list()
    await client.close()
    assert completion.choices[0].text
    assert len(first.data) == 2
    assert first.data[0].embedding == again.data[0].embedding
    assert first.data[0].embedding != first.data[1].embedding
    assert [m.id for m in models.data] == ["demo-llm", "ct-triage"]


async def test_kserve_json_infer_round_trips_tensors(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    inputs = [
        {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [1.5, -2.0, 3.25, 0.0]},
        {"name": "b", "shape": [3], "datatype": "INT64", "data": [7, 8, 9]},
        {"name": "c", "shape": [1], "datatype": "BYTES", "data": ["series-42"]},
    ]
    url = f"{node.url}/v2/models/ct-triage/versions/1/infer"
    async with http.post(url, json={"id": "req-7", "inputs": inputs}) as response:
        assert response.status == 200
        answer = await response.json()
        assert response.headers["x-hubhop-node"] == "test-edge"
    assert answer["id"] == "req-7"
    by_name = {o["name"]: o for o in answer["outputs"]}
    for tensor in inputs:
        out = by_name[tensor["name"]]
        assert (out["shape"], out["datatype"], out["data"]) == (
            tensor["shape"],
            tensor["datatype"],
            tensor["data"],
        )


async def test_kserve_binary_tensor_streams_through_intact(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    header = binary_infer_header("series", len(payload))

    async def body() -> Any:
        yield header
        for start in range(0, len(payload), 100_000):
            yield payload[start : start + 100_000]

    async with http.post(
        f"{node.url}/v2/models/ct-triage/infer",
        data=body(),
        headers=binary_infer_headers(header),
    ) as response:
        assert response.status == 200
        outputs = {o["name"]: o["data"][0] for o in (await response.json())["outputs"]}
    assert outputs["series_nbytes"] == len(payload)
    assert outputs["series_crc32"] == zlib.crc32(payload)


async def test_kserve_health_and_model_readiness(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    for path, status in [
        ("/v2/health/live", 200),
        ("/v2/health/ready", 200),
        ("/v2/models/ct-triage/ready", 200),
        ("/v2/models/ct-triage/versions/1/ready", 200),
        ("/v2/models/ct-triage/versions/3/ready", 404),  # the backend's own answer, passed on
        ("/v2/models/ct-triage", 200),
        ("/v2/models/no-such-model/ready", 404),
    ]:
        async with http.get(f"{node.url}{path}") as response:
            assert response.status == status, path
    async with http.get(f"{node.url}/v2/models/ct-triage") as response:
        assert (await response.json())["name"] == "ct-triage"


async def test_headers_a_proxy_must_keep_and_must_drop(
    make_node: Any, http: aiohttp.ClientSession
) -> None:
    seen: dict[str, dict[str, str]] = {}

    async def echo(request: web.Request) -> web.Response:
        seen[request.path] = {k.lower(): v for k, v in request.headers.items()}
        await request.read()
        return web.json_response({"outputs": []}, headers={"Keep-Alive": "timeout=5"})

    app = web.Application()
    app.router.add_post("/v1/embeddings", echo)
    app.router.add_post("/v2/models/ct-triage/infer", echo)
    runner, url = await start_app(app)
    try:
        running = await make_node()
        point_backend_at(running, url)
        trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        async with http.post(
            f"{running.url}/v1/embeddings",
            json={"model": "demo-llm", "input": "x"},
            headers={
                "x-request-id": "ct-read-0042",
                "traceparent": trace,
                "Connection": "keep-alive, x-secret-hop",
                "x-secret-hop": "must not pass",
                "Proxy-Authorization": "Basic c2VjcmV0",
            },
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
        ) as response:
            assert response.status == 200
            assert response.headers["x-request-id"] == "ct-read-0042"
            assert "keep-alive" not in {k.lower() for k in response.headers}
        async with http.post(
            f"{running.url}/v2/models/ct-triage/infer",
            data=b"\0" * 5000,
            headers={"Content-Type": "application/octet-stream"},
        ) as response:
            assert response.status == 200
    finally:
        await runner.cleanup()
    openai_leg = seen["/v1/embeddings"]
    assert openai_leg["x-request-id"] == "ct-read-0042"
    assert openai_leg["traceparent"] == trace
    assert "x-secret-hop" not in openai_leg
    assert "proxy-authorization" not in openai_leg
    assert "accept-encoding" not in openai_leg  # nothing the client did not send
    assert "user-agent" not in openai_leg
    kserve_leg = seen["/v2/models/ct-triage/infer"]
    assert kserve_leg["content-length"] == "5000"  # a known length is not re-framed as chunked
    assert "transfer-encoding" not in kserve_leg
    assert kserve_leg["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/chat/completions", b"{not json", 400, "invalid_json"),
        ("POST", "/v1/chat/completions", b"[1, 2]", 400, "invalid_request"),
        ("POST", "/v1/chat/completions", b'{"messages": []}', 400, "missing_model"),
        ("POST", "/v1/chat/completions", b'{"model": "gpt-9", "messages": []}', 404,
         "model_not_found"),
        ("GET", "/v1/chat/completions", b"", 405, "method_not_allowed"),
        ("DELETE", "/v1/models", b"", 405, "method_not_allowed"),
        ("GET", "/v1/no-such-endpoint", b"", 404, "not_found"),
        ("POST", "/v1/embeddings", b'{"model": "demo-llm", "input": "' + b"x" * 70_000 + b'"}',
         413, "request_too_large"),
    ],
)  # fmt: skip
async def test_bad_openai_requests_get_openai_errors(
    make_node: Any,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: bytes,
    status: int,
    code: str,
) -> None:
    running = await make_node(extra_http="max_json_body_bytes = 65536\n")
    async with http.request(method, f"{running.url}{path}", data=body) as response:
        assert response.status == status
        error = (await response.json())["error"]
        assert error["code"] == code
        assert error["message"]
        assert error["type"]
        assert response.headers["x-request-id"]
    await assert_still_serving(http, running)


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("POST", "/v2/models/no-such-model/infer", {}, 404),
        ("GET", "/v2/models/ct-triage/infer", {}, 405),
        ("POST", "/v2/models/ct-triage/infer", {"Content-Length": "9999999"}, 413),
        ("POST", "/v2/models/ct-triage/infer", {}, 400),
    ],
)
async def test_bad_kserve_requests_get_kserve_errors(
    make_node: Any,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    running = await make_node(extra_http="max_body_bytes = 1048576\n")
    body = b"{broken" if "Content-Length" not in headers else None
    async with http.request(
        method, f"{running.url}{path}", data=body, headers=headers, skip_auto_headers=()
    ) as response:
        assert response.status == status
        error = (await response.json())["error"]
        assert isinstance(error, str)
        assert error
    await assert_still_serving(http, running)


async def test_streamed_kserve_body_over_the_limit_is_refused(
    make_node: Any, http: aiohttp.ClientSession
) -> None:
    running = await make_node(extra_http="max_body_bytes = 1048576\n")
    header = binary_infer_header("x", 4 * 1048576)

    async def body() -> Any:  # chunked: no Content-Length to refuse up front
        yield header
        for _ in range(4):
            yield b"\0" * 1048576

    async with http.post(
        f"{running.url}/v2/models/ct-triage/infer",
        data=body(),
        headers=binary_infer_headers(header),
    ) as response:
        assert response.status == 413
        assert "limit" in (await response.json())["error"]
    await assert_still_serving(http, running)


@pytest.mark.parametrize(("size", "status"), [(1_000, 200), (70_000, 413)])
async def test_a_chunked_openai_body_is_read_whole_up_to_the_limit(
    make_node: Any, http: aiohttp.ClientSession, size: int, status: int
) -> None:
    running = await make_node(extra_http="max_json_body_bytes = 65536\n")
    document = json.dumps({"model": "demo-llm", "input": "x" * size}).encode()

    async def body() -> Any:  # chunked: no Content-Length to go by
        for start in range(0, len(document), 4096):
            yield document[start : start + 4096]

    async with http.post(f"{running.url}/v1/embeddings", data=body()) as response:
        assert "Content-Length" not in response.request_info.headers
        assert response.status == status
        if status == 413:
            assert (await response.json())["error"]["code"] == "request_too_large"
    await assert_still_serving(http, running)


async def test_backend_down_gives_503_in_api_style(
    make_node: Any, http: aiohttp.ClientSession
) -> None:
    running = await make_node()
    point_backend_at(running, "http://127.0.0.1:9")  # the discard port: nothing listens
    async with http.post(
        f"{running.url}/v1/chat/completions",
        json={"model": "demo-llm", "messages": [{"role": "user", "content": "x"}]},
    ) as response:
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "backend_unavailable"
    async with http.post(f"{running.url}/v2/models/ct-triage/infer", json={"inputs": []}) as r:
        assert r.status == 503
        assert "unreachable" in (await r.json())["error"]


async def test_draining_node_is_not_ready_and_refuses_new_work(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    node.node.state.draining = True
    async with http.get(f"{node.url}/v2/health/ready") as response:
        assert response.status == 503
    async with http.post(
        f"{node.url}/v1/chat/completions",
        json={"model": "demo-llm", "messages": [{"role": "user", "content": "x"}]},
    ) as response:
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "draining"
        assert "x-hubhop-refused" not in response.headers
    # A peer's forwarded call is told it may go elsewhere: its entry re-routes it.
    async with http.post(
        f"{node.url}/v1/chat/completions",
        json={"model": "demo-llm", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-hubhop-target": "test-edge/demo"},
    ) as response:
        assert response.status == 503
        assert response.headers["x-hubhop-refused"] == "draining"
    async with http.get(f"{node.url}/v2/health/live") as response:
        assert response.status == 200
