"""A node's forwarding over the lean upstream client, against upstreams that misbehave in the
ways the forwarding rules speak of: an answer that comes before the body was read, an answer cut
short before or after its first byte reached the client, a keep-alive connection the upstream
closed as it was reused, a backend too slow for `backend_timeout_s`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import RunningNode, start_app
from tests.test_endpoint import point_backend_at

INFER = "/v2/models/ct-triage/infer"
METADATA = "/v2/models/ct-triage"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def raw_backend(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def node_in_front_of(make_node: Any, url: str, extra_http: str = "") -> RunningNode:
    running: RunningNode = await make_node(extra_http=extra_http)
    point_backend_at(running, url)
    return running


async def test_an_answer_before_the_body_was_read_leaves_the_client_connection_usable(
    make_node: Any, http: aiohttp.ClientSession
) -> None:
    """The upstream refuses a 3 MiB body on its Content-Length alone: the body still goes
    upstream before the client hears, so the client's keep-alive connection carries on."""

    async def infer(request: web.Request) -> web.Response:
        if (request.content_length or 0) > 1 << 20:
            return web.json_response({"error": "over the limit"}, status=413)
        return web.json_response({"n": len(await request.read())})

    app = web.Application()
    app.router.add_post(INFER, infer)
    runner, url = await start_app(app)
    try:
        running = await node_in_front_of(make_node, url)
        for _ in range(3):
            async with http.post(f"{running.url}{INFER}", data=b"\0" * (3 << 20)) as response:
                assert response.status == 413
                assert (await response.json())["error"] == "over the limit"
            async with http.post(f"{running.url}{INFER}", data=b"\0" * 1000) as response:
                assert response.status == 200
                assert (await response.json())["n"] == 1000
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("framing", "body_sent"),
    [
        (b"Content-Length: 1000\r\n", b"x" * 400),  # small: read whole before anything goes out
        (b"Content-Length: 1000000\r\n", b"x" * 300_000),  # streamed to the client as it comes
        (b"Transfer-Encoding: chunked\r\n", b"100\r\n" + b"x" * 256 + b"\r\n"),
    ],
)
async def test_an_answer_cut_short_is_a_502_or_a_cut_connection(
    make_node: Any, http: aiohttp.ClientSession, framing: bytes, body_sent: bytes
) -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n" + body_sent)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    server, url = await raw_backend(cut_short)
    async with server:
        running = await node_in_front_of(make_node, url)
        async with http.get(f"{running.url}{METADATA}") as response:
            if b"1000\r\n" in framing:  # nothing was written yet: the client is told
                assert response.status == 502
                assert "before its answer ended" in (await response.json())["error"]
                return
            assert response.status == 200  # already on its way: the cut is all that is left
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()


async def test_a_get_on_a_connection_closed_as_it_was_reused_is_sent_again(
    make_node: Any, http: aiohttp.ClientSession
) -> None:
    """The upstream answers the first request on each connection and closes the next one
    unanswered, as a server closing an idle connection does at the wrong moment."""
    connections = 0
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"

    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line[15:])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length: ")
            ),
            0,
        )
        await reader.readexactly(length)
        writer.write(answer)
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server, url = await raw_backend(one_answer)
    async with server:
        running = await node_in_front_of(make_node, url)
        for _ in range(3):
            async with http.get(f"{running.url}{METADATA}") as response:
                assert response.status == 200
        assert connections == 3  # the first, then one more for each retried GET
        # A POST is not sent twice: the upstream may have acted on it. The next one goes on
        # a fresh connection.
        async with http.post(f"{running.url}{INFER}", data=b"{}") as response:
            assert response.status == 502
            assert "without answering" in (await response.json())["error"]
        async with http.post(f"{running.url}{INFER}", data=b"{}") as response:
            assert response.status == 200


async def test_a_backend_over_its_time_is_a_504_and_sees_the_request_cancelled(
    make_node: Any, http: aiohttp.ClientSession
) -> None:
    cancelled = asyncio.Event()

    async def stuck(request: web.Request) -> web.Response:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return web.Response()

    app = web.Application()
    app.router.add_get(METADATA, stuck)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        running = await node_in_front_of(make_node, url, "backend_timeout_s = 0.3\n")
        async with http.get(f"{running.url}{METADATA}") as response:
            assert response.status == 504
            assert (await response.json())["error"].endswith("did not answer in time")
        await asyncio.wait_for(cancelled.wait(), 2.0)
    finally:
        await runner.cleanup()


async def test_head_and_a_path_prefix_pass_through(
    make_node: Any, http: aiohttp.ClientSession
) -> None:
    seen: list[str] = []

    async def model(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs}")
        return web.json_response({"name": "ct-triage"})

    app = web.Application()
    app.router.add_get("/prefix" + METADATA, model)
    runner, url = await start_app(app)
    try:
        running = await node_in_front_of(make_node, url + "/prefix")
        async with http.head(f"{running.url}{METADATA}?x=1") as response:
            assert response.status == 200
            assert await response.read() == b""
        async with http.get(f"{running.url}{METADATA}") as response:
            assert (await response.json())["name"] == "ct-triage"
    finally:
        await runner.cleanup()
    assert seen == [f"HEAD /prefix{METADATA}?x=1", f"GET /prefix{METADATA}"]


async def test_a_chunked_upload_streams_through_in_chunks(
    make_node: Any, http: aiohttp.ClientSession
) -> None:
    seen: dict[str, Any] = {}

    async def infer(request: web.Request) -> web.Response:
        seen["framing"] = request.headers.get("Transfer-Encoding")
        seen["size"] = len(await request.read())
        return web.json_response({})

    app = web.Application()
    app.router.add_post(INFER, infer)
    runner, url = await start_app(app)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"\1" * 100_000

    try:
        running = await node_in_front_of(make_node, url)
        async with http.post(f"{running.url}{INFER}", data=body()) as response:
            assert response.status == 200
    finally:
        await runner.cleanup()
    assert seen == {"framing": "chunked", "size": 800_000}
