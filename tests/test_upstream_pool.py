"""The upstream client's connections and pool against real loopback servers: keep-alive reuse and
never reusing a broken connection, the per-origin bound and its waiters, connect failures,
deadlines, cancellation reaching the upstream, and both directions of flow control."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from hubhop.io.http1_messages import AnswerHead, BrokenAnswer, request_head
from hubhop.io.upstream_connection import READ_HIGH_WATER, UpstreamConnection
from hubhop.io.upstream_pool import IDLE_S, ConnectFailed, Origin, UpstreamPool

HOST = "127.0.0.1"


@dataclass
class Seen:
    """What the in-process upstream saw."""

    peers: list[int] = field(default_factory=list)  # the client port of each request
    requests: list[dict[str, object]] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0  # bytes of /slow-read's body read so far
    hold_s: float = 5.0


def upstream_app(seen: Seen) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.peers.append(peer[1] if peer else 0)
        body = await request.read()
        seen.requests.append({"headers": dict(request.headers), "body": body})
        return web.json_response({"n": len(body)})

    async def hold(request: web.Request) -> web.Response:
        try:
            await asyncio.sleep(seen.hold_s)
        except asyncio.CancelledError:
            seen.cancelled.set()
            raise
        return web.Response(text="held")

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(5):
            await response.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    async def slow_read(request: web.Request) -> web.Response:
        await request.content.readexactly(1 << 20)
        seen.received = 1 << 20
        await asyncio.sleep(1.0)  # the upstream stalls: the sender must stall with it
        async for piece in request.content.iter_any():
            seen.received += len(piece)
        return web.json_response({"n": seen.received})

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 32 << 20
        await response.prepare(request)
        piece = b"\0" * (1 << 20)
        for _ in range(32):
            await response.write(piece)
        return response

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/hold", hold)
    app.router.add_get("/events", events)
    app.router.add_post("/slow-read", slow_read)
    app.router.add_get("/big", big)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Origin, Seen]]:
    seen = Seen()
    # As a daemon runs its server: a client that leaves cancels its handler.
    runner = web.AppRunner(upstream_app(seen), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    try:
        yield (HOST, runner.addresses[0][1], None, None), seen
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def open_pool(
    limit: int = 4, connect_timeout_s: float = 2.0, idle_s: float = IDLE_S
) -> AsyncIterator[UpstreamPool]:
    made = UpstreamPool(limit, connect_timeout_s, idle_s)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    async with open_pool() as made:
        yield made


@pytest.fixture
async def pool_of_one() -> AsyncIterator[UpstreamPool]:
    """A pool of one connection per origin: the second request waits."""
    async with open_pool(limit=1) as made:
        yield made


def deadline(seconds: float = 10.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def start(
    pool: UpstreamPool,
    origin: Origin,
    head: bytes,
    within_s: float = 10.0,
    head_request: bool = False,
    body: tuple[AsyncIterator[bytes], bool] | None = None,
) -> tuple[UpstreamConnection, AnswerHead]:
    """Send `head` (and `body`: its pieces, chunked or not) and wait for the answer's head."""
    connection = await pool.acquire(origin, deadline(within_s))
    connection.begin(deadline(within_s), head_request)
    connection.write(head)
    if body is not None:
        connection.send_body(*body)
    try:
        return connection, await connection.answer_head()
    except BaseException:
        connection.abort()
        raise


async def exchange(
    pool: UpstreamPool, origin: Origin, path: str, method: str = "GET", body: bytes = b""
) -> tuple[AnswerHead, bytes, UpstreamConnection]:
    head = request_head(method, path, "upstream", [], content_length=len(body) or None)
    connection, answer = await start(pool, origin, head + body, head_request=method == "HEAD")
    pieces = [piece async for piece in pieces_of(connection)]
    if connection.finish():
        pool.release(connection, origin)
    return answer, b"".join(pieces), connection


async def pieces_of(connection: UpstreamConnection) -> AsyncIterator[bytes]:
    while piece := await connection.read():
        yield piece


async def eventually(check: Callable[[], bool], within_s: float = 5.0) -> None:
    end = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < end, "the condition did not come true in time"
        await asyncio.sleep(0.01)


async def test_keep_alive_carries_exchanges_on_one_connection(
    pool: UpstreamPool, upstream: tuple[Origin, Seen]
) -> None:
    origin, seen = upstream
    for _ in range(3):
        answer, body, connection = await exchange(pool, origin, "/echo", "POST", b"abc")
        assert answer.status == 200 and body == b'{"n": 3}'
    answer, body, connection = await exchange(pool, origin, "/echo", "HEAD")
    assert (answer.status, body) == (200, b"")  # the answer to HEAD ends with its head
    answer, body, connection = await exchange(pool, origin, "/echo")
    assert connection.exchanges == 5
    assert len(set(seen.peers)) == 1  # one client port: one connection all along
    assert pool.counts(origin) == (1, 1)


async def test_an_exchange_reads_an_event_stream_piece_by_piece(
    pool: UpstreamPool, upstream: tuple[Origin, Seen]
) -> None:
    origin, _ = upstream
    connection, answer = await start(pool, origin, request_head("GET", "/events", "u", []))
    assert answer.get("content-type") == "text/event-stream"
    assert answer.content_length is None
    arrivals: list[tuple[float, bytes]] = []
    async for piece in pieces_of(connection):
        arrivals.append((time.monotonic(), piece))
    assert b"".join(p for _, p in arrivals) == b"".join(f"data: {i}\n\n".encode() for i in range(5))
    # Written 50 ms apart, read as they came rather than all at the end.
    assert len(arrivals) >= 4
    assert arrivals[-1][0] - arrivals[0][0] >= 0.15
    assert connection.finish()


async def test_request_bodies_go_with_a_length_or_in_chunks(
    pool: UpstreamPool, upstream: tuple[Origin, Seen]
) -> None:
    origin, seen = upstream

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b"one ", b"", b"two ", b"three"):
            yield piece
            await asyncio.sleep(0.01)

    for chunked in (True, False):
        length = None if chunked else 13
        head = request_head("POST", "/echo", "u", [], content_length=length, chunked=chunked)
        connection, answer = await start(pool, origin, head, body=(pieces(), chunked))
        assert answer.status == 200
        assert [p async for p in pieces_of(connection)] == [b'{"n": 13}']
        await connection.body_sent()
        assert connection.finish()
        pool.release(connection, origin)
    chunked_leg, length_leg = seen.requests
    assert chunked_leg["body"] == length_leg["body"] == b"one two three"
    assert chunked_leg["headers"]["Transfer-Encoding"] == "chunked"  # type: ignore[index]
    assert length_leg["headers"]["Content-Length"] == "13"  # type: ignore[index]
    assert len(set(seen.peers)) == 1


async def test_a_streamed_body_waits_for_a_stalled_upstream(
    pool: UpstreamPool, upstream: tuple[Origin, Seen]
) -> None:
    """48 MiB to an upstream that stops reading for a second: the sender stops too, ahead of
    it by no more than the socket buffers (a few MiB on loopback), never by the body."""
    origin, seen = upstream
    size, piece = 48 << 20, b"\1" * (256 << 10)
    ahead: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            yield piece
            sent += len(piece)
            ahead.append(sent - seen.received)

    head = request_head("POST", "/slow-read", "u", [], content_length=size)
    connection, answer = await start(pool, origin, head, body=(body(), False))
    assert answer.status == 200
    assert [p async for p in pieces_of(connection)] == [f'{{"n": {size}}}'.encode()]
    assert max(ahead) < 16 << 20
    await connection.body_sent()
    assert connection.finish()


async def test_a_slow_reader_pauses_the_answer(
    pool: UpstreamPool, upstream: tuple[Origin, Seen]
) -> None:
    """32 MiB written as fast as the upstream can: a consumer that stops for a while finds
    no more than the high-water mark (and one socket read) waiting, never the answer."""
    origin, _ = upstream
    connection, answer = await start(pool, origin, request_head("GET", "/big", "u", []))
    assert answer.content_length == 32 << 20
    first = await connection.read()
    await asyncio.sleep(0.3)  # the consumer is slow: the upstream has written far more by now
    after_pause = await connection.read()
    assert len(after_pause) <= READ_HIGH_WATER + (256 << 10)
    total = len(first) + len(after_pause)
    async for piece in pieces_of(connection):
        total += len(piece)
    assert total == 32 << 20
    assert connection.finish()


async def test_a_broken_exchange_never_reuses_its_connection(pool: UpstreamPool) -> None:
    connections = 0

    async def truncating(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(truncating, HOST, 0)
    origin: Origin = (HOST, server.sockets[0].getsockname()[1], None, None)
    async with server:
        for _ in range(2):
            with pytest.raises(BrokenAnswer, match="before its answer ended"):
                await exchange(pool, origin, "/")
        assert connections == 2
        await eventually(lambda: pool.counts(origin) == (0, 0))


async def test_an_idle_connection_the_upstream_closed_leaves_the_pool(
    pool: UpstreamPool, upstream: tuple[Origin, Seen]
) -> None:
    origin, seen = upstream
    _, _, first = await exchange(pool, origin, "/echo")
    assert pool.counts(origin) == (1, 1)
    first.abort()  # as if the upstream had closed it: the pool sees it go
    await eventually(lambda: pool.counts(origin) == (0, 0))
    _, _, second = await exchange(pool, origin, "/echo")
    assert second is not first and len(set(seen.peers)) == 2


async def test_idle_connections_are_closed_after_the_idle_time(
    upstream: tuple[Origin, Seen],
) -> None:
    origin, _ = upstream
    async with open_pool(idle_s=0.2) as pool:
        _, _, connection = await exchange(pool, origin, "/echo")
        assert pool.counts(origin) == (1, 1)
        await eventually(lambda: pool.counts(origin) == (0, 0), within_s=2.0)
        assert connection.closed


async def test_at_the_limit_requests_wait_their_turn(
    pool_of_one: UpstreamPool, upstream: tuple[Origin, Seen]
) -> None:
    origin, seen = upstream
    seen.hold_s = 0.3
    pool = pool_of_one
    first = asyncio.create_task(exchange(pool, origin, "/hold"))
    await eventually(lambda: pool.counts(origin) == (1, 0))
    second = asyncio.create_task(exchange(pool, origin, "/echo"))
    # A third gives up at its deadline and leaves the queue.
    with pytest.raises(TimeoutError):
        await pool.acquire(origin, deadline(0.05))
    assert not second.done()
    (_, body, one), (_, _, two) = await asyncio.gather(first, second)
    assert body == b"held"
    assert one is two  # the connection handed back went to the one waiting
    assert pool.counts(origin) == (1, 1)


async def test_a_place_freed_by_a_closed_connection_goes_to_a_waiter(
    pool_of_one: UpstreamPool, upstream: tuple[Origin, Seen]
) -> None:
    origin, _ = upstream
    pool = pool_of_one
    holding = asyncio.create_task(start(pool, origin, request_head("GET", "/hold", "u", [])))
    await eventually(lambda: pool.counts(origin) == (1, 0))
    waiting = asyncio.create_task(exchange(pool, origin, "/echo"))
    await asyncio.sleep(0.05)
    holding.cancel()  # its connection is closed, not handed on: the waiter opens its own
    with contextlib.suppress(asyncio.CancelledError):
        await holding
    _, body, _ = await asyncio.wait_for(waiting, 5.0)
    assert body == b'{"n": 0}'


async def test_no_listener_is_a_connect_failure(pool: UpstreamPool) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    origin: Origin = (HOST, port, None, None)
    with pytest.raises(ConnectFailed, match=r"refused|Connect call failed"):
        await pool.acquire(origin, deadline())
    assert pool.counts(origin) == (0, 0)


async def test_a_connect_that_takes_too_long_is_a_connect_failure() -> None:
    # A listener whose accept queue is full drops further SYNs: connecting hangs.
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(listener.getsockname())
        fillers.append(filler)
    origin: Origin = (HOST, listener.getsockname()[1], None, None)
    try:
        async with open_pool(connect_timeout_s=0.3) as pool:
            started = time.monotonic()
            with pytest.raises(ConnectFailed, match=r"no connection within 0\.3 s"):
                await pool.acquire(origin, deadline())
            assert time.monotonic() - started < 2.0
            # The request's own deadline, shorter than the connect timeout, is a timeout instead.
            with pytest.raises(TimeoutError):
                await pool.acquire(origin, deadline(0.1))
            assert pool.counts(origin) == (0, 0)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_the_deadline_fails_the_exchange_and_the_upstream_sees_it(
    pool: UpstreamPool, upstream: tuple[Origin, Seen]
) -> None:
    origin, seen = upstream
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await start(pool, origin, request_head("GET", "/hold", "u", []), within_s=0.2)
    assert time.monotonic() - started < 1.0
    await asyncio.wait_for(seen.cancelled.wait(), 2.0)
    await eventually(lambda: pool.counts(origin) == (0, 0))


@pytest.mark.parametrize("when", ["waiting for the head", "reading the body"])
async def test_a_cancelled_exchange_closes_its_connection(
    pool: UpstreamPool, upstream: tuple[Origin, Seen], when: str
) -> None:
    """A hedge copy that lost, a client that left: the upstream's handler is cancelled."""
    origin, seen = upstream
    path = "/hold" if when == "waiting for the head" else "/events"

    async def call() -> None:
        connection, _ = await start(pool, origin, request_head("GET", path, "u", []))
        try:
            async for _ in pieces_of(connection):
                pass
            await asyncio.sleep(10)
        except BaseException:
            connection.abort()
            raise

    task = asyncio.create_task(call())
    await asyncio.sleep(0.1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if when == "waiting for the head":
        await asyncio.wait_for(seen.cancelled.wait(), 2.0)
    await eventually(lambda: pool.counts(origin) == (0, 0))


async def test_a_waiter_handed_a_connection_as_it_gives_up_passes_it_on(
    pool_of_one: UpstreamPool, upstream: tuple[Origin, Seen]
) -> None:
    origin, _ = upstream
    pool = pool_of_one
    connection = await pool.acquire(origin, deadline())
    waiters = [asyncio.create_task(pool.acquire(origin, deadline())) for _ in range(2)]
    await asyncio.sleep(0.01)
    connection.begin(deadline())
    connection.write(request_head("GET", "/echo", "u", []))
    await connection.answer_head()
    while await connection.read():
        pass
    assert connection.finish()
    pool.release(connection, origin)  # handed to the first waiter...
    waiters[0].cancel()  # ...which gives up before it runs: the second gets it
    assert await asyncio.wait_for(waiters[1], 2.0) is connection
    with contextlib.suppress(asyncio.CancelledError):
        await waiters[0]
    assert pool.counts(origin) == (1, 0)
