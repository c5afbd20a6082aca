"""Carrying a sans-IO GossipNode over real sockets: one UDP endpoint, one TCP listener, one timer.

Rules:
- Every input (a datagram, a stream, a timer) is handed to the node with `time.monotonic()` as
  `now` (not `loop.time()`: uvloop's has millisecond resolution, and latency probes on a LAN or
  loopback measure fractions of a millisecond);
  after each one the transport carries out everything the node then wants: datagrams to send,
  push-pull streams to open, events to deliver, and the one timer re-armed for the node's next
  deadline. The node never sees a socket; the transport never decides anything.
- UDP and TCP share the configured address and port number, as memberlist does.
- A push-pull stream is one framed request and one framed reply per connection (frame: 4-byte
  big-endian length, then the sealed bytes, at most MAX_STREAM_BYTES). Every stream is bounded
  in time; a failed or slow one is dropped and counted, never retried here (the node's next
  push-pull round repairs whatever it missed).
- Streams run as tasks whose references are kept until they finish, bounded in number so a
  flood of requests cannot exhaust the process.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from hubhop.core.secure_channel import MAX_STREAM_BYTES
from hubhop.core.swim import GossipEvent, GossipNode

log = logging.getLogger(__name__)

Address = tuple[str, int]
FRAME_HEADER = struct.Struct(">I")
# A push-pull exchange on loopback or a LAN takes milliseconds; across the country tens. 5 s
# means the peer is gone or stuck, and the next round will try another.
STREAM_TIMEOUT_S = 5.0
# Concurrent push-pull streams, in and out. Joining 64 nodes at once stays far below this; a
# flood beyond it is refused rather than queued without bound.
MAX_STREAMS = 64


class GossipTransport:
    def __init__(self, node: GossipNode, bind: Address) -> None:
        self.node = node
        self.bind = bind
        self.counters: Counter[str] = Counter()
        self._subscribers: list[Callable[[GossipEvent], None]] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._streams: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def subscribe(self, callback: Callable[[GossipEvent], None]) -> None:
        """Call `callback` with every event the node emits, in order."""
        self._subscribers.append(callback)

    @property
    def now(self) -> float:
        assert self._loop is not None
        return time.monotonic()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._udp, _ = await self._loop.create_datagram_endpoint(
            lambda: _DatagramProtocol(self), local_addr=self.bind
        )
        self._server = await asyncio.start_server(self._serve_stream, self.bind[0], self.bind[1])
        self.pump()

    def pump(self) -> None:
        """Carry out what the node wants now, and arm the timer for its next deadline."""
        if self._closed or self._loop is None:
            return
        now = self.now
        for data, addr in self.node.datagrams_to_send(now):
            if self._udp is not None:
                self._udp.sendto(data, addr)
                self.counters["datagrams_sent"] += 1
                self.counters["bytes_sent"] += len(data)
        for addr, request in self.node.streams_to_open(now):
            self._spawn_stream(self._push_pull(addr, request))
        while (event := self.node.next_event()) is not None:
            for callback in self._subscribers:
                try:
                    callback(event)
                except Exception:
                    log.exception("gossip event subscriber failed on %s", event)
        self._arm()

    def _arm(self) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.node.get_timer()
        if deadline is not None:
            self._timer = self._loop.call_later(max(0.0, deadline - self.now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.node.handle_timer(self.now)
        self.pump()

    def on_datagram(self, data: bytes, addr: Address) -> None:
        self.counters["datagrams_received"] += 1
        self.counters["bytes_received"] += len(data)
        self.node.receive_datagram(data, (addr[0], addr[1]), self.now)
        self.pump()

    def _spawn_stream(self, coro: Coroutine[Any, Any, None]) -> None:
        if len(self._streams) >= MAX_STREAMS:
            self.counters["streams_refused"] += 1
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)

    async def _push_pull(self, addr: Address, request: bytes) -> None:
        try:
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(addr[0], addr[1])
                try:
                    writer.write(FRAME_HEADER.pack(len(request)) + request)
                    await writer.drain()
                    reply = await _read_frame(reader)
                finally:
                    writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, FrameTooLarge) as exc:
            self.counters[f"stream_out_failed_{type(exc).__name__}"] += 1
            return
        self.counters["streams_out"] += 1
        if reply:
            self.node.receive_stream_reply(reply, addr, self.now)
        self.pump()

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None and len(self._streams) >= MAX_STREAMS:
            self.counters["streams_refused"] += 1
            writer.close()
            return
        if task is not None:
            self._streams.add(task)
            task.add_done_callback(self._streams.discard)
        try:
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                request = await _read_frame(reader)
                reply = self.node.receive_stream_request(request, self.now)
                writer.write(FRAME_HEADER.pack(len(reply)) + reply)
                await writer.drain()
            self.counters["streams_in"] += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError, FrameTooLarge) as exc:
            self.counters[f"stream_in_failed_{type(exc).__name__}"] += 1
        finally:
            writer.close()
        self.pump()

    async def leave(self, wait_s: float) -> None:
        """Say goodbye to the cluster and give the goodbye up to `wait_s` to go out."""
        self.node.leave(self.now)
        self.pump()
        await asyncio.sleep(wait_s)

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._udp is not None:
            self._udp.close()
        for task in list(self._streams):
            task.cancel()
        await asyncio.gather(*self._streams, return_exceptions=True)


class FrameTooLarge(Exception):
    pass


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
    if length > MAX_STREAM_BYTES:
        raise FrameTooLarge(length)
    return await reader.readexactly(length)


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, transport: GossipTransport) -> None:
        self._owner = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        self._owner.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that is gone: the failure detector's business.
        self._owner.counters["udp_errors"] += 1
